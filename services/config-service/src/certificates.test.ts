// Service-level tests of the certificate API: the real gRPC server in-process on 127.0.0.1:0,
// a temporary SQLite file per harness, generated grpc-js clients. Test certificates are made
// with openssl at test time; no key is committed.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  Certificate,
  CertificateStatus,
  CertificateType,
  CreateApiTokenRequest,
  L4ProxyHost,
  ProxyHost,
  Role,
  type DeepPartial,
} from "@cpm/proto";
import { status, unary } from "@cpm/grpc-kit";
import { l4Row } from "./store.ts";
import { ADMIN, expectStatus, INTERNAL, startConfigService, type Harness } from "./test-support.ts";

const MANAGED = CertificateType.CERTIFICATE_TYPE_MANAGED;
const IMPORTED = CertificateType.CERTIFICATE_TYPE_IMPORTED;
const DAY = 86_400_000;

const tmp = mkdtempSync(path.join(tmpdir(), "cpm-cert-service-test-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

// ---- a throw-away CA (openssl) --------------------------------------------------------
const pkiDir = path.join(tmp, "pki");
const openssl = (args: string[]) => execFileSync("openssl", args, { cwd: pkiDir, stdio: "pipe" });
let serial = 0;
function setupCa(): void {
  execFileSync("mkdir", ["-p", pkiDir]);
  writeFileSync(
    path.join(pkiDir, "ca.cnf"),
    "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n",
  );
  writeFileSync(path.join(pkiDir, "index.txt"), "");
  writeFileSync(path.join(pkiDir, "serial"), "1000\n");
  openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "30",
    "-subj",
    "/CN=CPM service test CA",
  ]);
}
const stamp = (ms: number) => `${new Date(ms).toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`;
/** A leaf for `sans` (e.g. "DNS:a.test"), valid from now+fromDays to now+toDays; reuses `keyPem` when given. */
function issue(
  sans: string[],
  o: { fromDays?: number; toDays?: number; keyPem?: string } = {},
): { cert: string; key: string } {
  const id = ++serial;
  if (o.keyPem) writeFileSync(path.join(pkiDir, `k${id}.pem`), o.keyPem);
  else openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `k${id}.pem`]);
  writeFileSync(path.join(pkiDir, `x${id}`), `basicConstraints=CA:FALSE\nsubjectAltName=${sans.join(",")}\n`);
  openssl(["req", "-new", "-key", `k${id}.pem`, "-out", `r${id}.pem`, "-subj", "/CN=leaf"]);
  const now = Date.now();
  openssl([
    "ca",
    "-batch",
    "-config",
    "ca.cnf",
    "-notext",
    "-cert",
    "ca.crt",
    "-keyfile",
    "ca.key",
    "-in",
    `r${id}.pem`,
    "-out",
    `c${id}.pem`,
    "-startdate",
    stamp(now + (o.fromDays ?? -1) * DAY),
    "-enddate",
    stamp(now + (o.toDays ?? 10) * DAY),
    "-extfile",
    `x${id}`,
  ]);
  return {
    cert: readFileSync(path.join(pkiDir, `c${id}.pem`), "utf8"),
    key: readFileSync(path.join(pkiDir, `k${id}.pem`), "utf8"),
  };
}

// ---- API ---------------------------------------------------------------------------------
const api = (h: Harness) => ({
  create: (c: DeepPartial<Certificate> | undefined, token = ADMIN) =>
    unary(
      h.config.createCertificate.bind(h.config),
      { certificate: c === undefined ? undefined : Certificate.fromPartial(c) },
      token,
    ),
  get: (id: string, includePrivateKey = false, token = ADMIN) =>
    unary(h.config.getCertificate.bind(h.config), { id, includePrivateKey }, token),
  list: async (includePrivateKeys = false, token = ADMIN) =>
    (await unary(h.config.listCertificates.bind(h.config), { includePrivateKeys }, token)).certificates,
  update: (c: DeepPartial<Certificate> | undefined, token = ADMIN) =>
    unary(
      h.config.updateCertificate.bind(h.config),
      { certificate: c === undefined ? undefined : Certificate.fromPartial(c) },
      token,
    ),
  delete: (id: string, token = ADMIN) => unary(h.config.deleteCertificate.bind(h.config), { id }, token),
  createHost: (p: DeepPartial<ProxyHost>) =>
    unary(h.config.createProxyHost.bind(h.config), { proxyHost: ProxyHost.fromPartial(p) }, ADMIN),
  updateHost: (p: ProxyHost) => unary(h.config.updateProxyHost.bind(h.config), { proxyHost: p }, ADMIN),
  snapshot: async () => (await unary(h.config.getSnapshot.bind(h.config), {}, ADMIN)).snapshot!,
  version: async () => (await unary(h.config.getInstanceInfo.bind(h.config), {}, ADMIN)).version,
  viewerToken: async () =>
    (
      await unary(
        h.account.createApiToken.bind(h.account),
        CreateApiTokenRequest.fromPartial({ name: "reader", role: Role.ROLE_VIEWER }),
        ADMIN,
      )
    ).secret,
});

describe("certificates API", () => {
  let h: Harness;
  let c: ReturnType<typeof api>;
  let secure: { cert: string; key: string };
  let expired: { cert: string; key: string };
  let notYet: { cert: string; key: string };
  let otherKey: string;

  before(async () => {
    setupCa();
    secure = issue(["DNS:secure.test", "DNS:*.secure.test"]);
    expired = issue(["DNS:old.test"], { fromDays: -30, toDays: -1 });
    notYet = issue(["DNS:soon.test"], { fromDays: 3, toDays: 30 });
    otherKey = issue(["DNS:x.test"]).key;
    h = await startConfigService();
    c = api(h);
  });
  after(async () => h?.close());

  const imported = (over: DeepPartial<Certificate> = {}): DeepPartial<Certificate> => ({
    name: "secure",
    type: IMPORTED,
    certificatePem: secure.cert,
    privateKeyPem: secure.key,
    ...over,
  });

  it("creates an imported certificate: names from the SANs, facts from the leaf, no key in the answer", async () => {
    const v = await c.version();
    const r = await c.create(imported({ name: "imp-1" }));
    assert.equal(r.configVersion, v + 1);
    const cert = r.certificate!;
    assert.ok(cert.id);
    assert.deepEqual(cert.domainNames, ["secure.test", "*.secure.test"]);
    assert.equal(cert.privateKeyPem, "", "Create answers without the key");
    assert.match(cert.certificatePem, /BEGIN CERTIFICATE/);
    assert.match(cert.fingerprintSha256, /^[0-9a-f]{64}$/);
    assert.equal(cert.issuer, "CN=CPM service test CA");
    assert.ok(cert.expiresAt && cert.expiresAt.getTime() > Date.now());
    assert.ok(cert.createdAt && cert.updatedAt);
    await c.delete(cert.id);
  });

  it("creates a managed certificate: no PEM, auto_renew on", async () => {
    const r = await c.create({ name: "managed-1", type: MANAGED, domainNames: ["App.Internal", "www.example.com"] });
    assert.deepEqual(r.certificate!.domainNames, ["app.internal", "www.example.com"]);
    assert.equal(r.certificate!.autoRenew, true);
    assert.equal(r.certificate!.certificatePem, "");
    await c.delete(r.certificate!.id);
  });

  it("keys: omitted from Get and List unless an admin asks; a viewer cannot ask; the snapshot carries them", async () => {
    const { certificate } = await c.create(imported({ name: "keys" }));
    const id = certificate!.id;
    assert.equal((await c.get(id)).certificate!.privateKeyPem, "");
    assert.ok((await c.list()).every((x) => x.privateKeyPem === ""));
    const withKey = (await c.get(id, true)).certificate!;
    assert.match(withKey.privateKeyPem, /^-----BEGIN PRIVATE KEY-----/);
    const listed = (await c.list(true)).find((x) => x.id === id)!;
    assert.equal(listed.privateKeyPem, withKey.privateKeyPem);

    const viewer = await c.viewerToken();
    assert.equal(
      (await c.get(id, false, viewer)).certificate!.privateKeyPem,
      "",
      "a viewer reads certificates without keys",
    );
    assert.ok((await c.list(false, viewer)).length > 0);
    assert.match(await expectStatus(c.get(id, true, viewer), status.PERMISSION_DENIED), /^include_private_key: /);
    assert.match(await expectStatus(c.list(true, viewer), status.PERMISSION_DENIED), /^include_private_keys: /);
    await expectStatus(c.create(imported({ name: "by-viewer" }), viewer), status.PERMISSION_DENIED);
    await expectStatus(c.delete(id, viewer), status.PERMISSION_DENIED);

    const snap = await c.snapshot();
    assert.equal(
      snap.certificates.find((x) => x.id === id)?.privateKeyPem,
      withKey.privateKeyPem,
      "slaves need the key",
    );
    await c.delete(id);
  });

  it("update keeps the id and every reference; an empty key keeps the stored one", async () => {
    const { certificate } = await c.create(imported({ name: "ref" }));
    const cert = certificate!;
    const host = (
      await c.createHost({
        name: "uses-ref",
        domains: ["secure.test"],
        upstreams: ["127.0.0.1:1"],
        certificateId: cert.id,
        sslForced: true,
      })
    ).proxyHost!;
    const keyBefore = (await c.get(cert.id, true)).certificate!.privateKeyPem;

    // Renewal: a new chain for the same key, sent without the key.
    const renewed = issue(["DNS:secure.test", "DNS:*.secure.test"], { keyPem: secure.key });
    const v = await c.version();
    const u = await c.update({ ...cert, name: "ref-renamed", certificatePem: renewed.cert, privateKeyPem: "" });
    assert.equal(u.configVersion, v + 1);
    assert.equal(u.certificate!.id, cert.id);
    assert.equal(u.certificate!.name, "ref-renamed");
    assert.equal(u.certificate!.privateKeyPem, "");
    assert.notEqual(u.certificate!.fingerprintSha256, cert.fingerprintSha256, "the new chain is stored");
    assert.equal(u.certificate!.createdAt?.getTime(), cert.createdAt?.getTime());
    assert.equal((await c.get(cert.id, true)).certificate!.privateKeyPem, keyBefore, "the stored key is kept");
    const snap = await c.snapshot();
    assert.equal(
      snap.proxyHosts.find((x) => x.id === host.id)?.certificateId,
      cert.id,
      "the host still names the certificate",
    );

    // A new chain for another key needs that key: the stored one does not match it.
    const rekeyed = issue(["DNS:secure.test"]);
    const v2 = await c.version();
    assert.match(
      await expectStatus(
        c.update({ ...cert, certificatePem: rekeyed.cert, privateKeyPem: "" }),
        status.INVALID_ARGUMENT,
      ),
      /^certificate\.private_key_pem: does not match the certificate/,
    );
    assert.equal(await c.version(), v2);
    const re = await c.update({
      ...cert,
      name: "ref-renamed",
      domainNames: [],
      certificatePem: rekeyed.cert,
      privateKeyPem: rekeyed.key,
    });
    assert.deepEqual(re.certificate!.domainNames, ["secure.test"], "empty domain_names are filled from the new chain");

    // Managed -> imported -> managed keeps references too.
    await c.update({ id: cert.id, name: "ref-renamed", type: MANAGED, domainNames: ["secure.test"] });
    assert.equal(
      (await c.get(cert.id, true)).certificate!.privateKeyPem,
      "",
      "a managed certificate has no key in our database",
    );
    await c.updateHost({ ...host, certificateId: "", sslForced: false });
    await c.delete(cert.id);
  });

  it("deleting a certificate in use fails with FAILED_PRECONDITION naming the hosts; nothing changes", async () => {
    const { certificate } = await c.create(imported({ name: "in-use" }));
    const id = certificate!.id;
    const a = (
      await c.createHost({ name: "web-a", domains: ["a.secure.test"], upstreams: ["127.0.0.1:1"], certificateId: id })
    ).proxyHost!;
    const b = (
      await c.createHost({ name: "web-b", domains: ["b.secure.test"], upstreams: ["127.0.0.1:1"], certificateId: id })
    ).proxyHost!;
    // An L4 host that terminates TLS with it (written straight to the database: its API is another feature's).
    const l4 = L4ProxyHost.fromPartial({
      id: "l4-1",
      name: "tls-db",
      listenAddress: ":5433",
      upstreams: ["db:5432"],
      tlsTermination: true,
      certificateId: id,
    });
    await h.db.l4ProxyHost.create({ data: l4Row(l4, new Date()) });

    const v = await c.version();
    const msg = await expectStatus(c.delete(id), status.FAILED_PRECONDITION);
    assert.match(msg, /"in-use"/);
    assert.match(msg, /proxy hosts "web-a", "web-b"/);
    assert.match(msg, /L4 proxy host "tls-db"/);
    assert.equal(await c.version(), v, "a refused delete does not move the version");
    assert.ok((await c.get(id)).certificate);

    await h.db.l4ProxyHost.delete({ where: { id: "l4-1" } });
    await c.updateHost({ ...a, certificateId: "" });
    const msg2 = await expectStatus(c.delete(id), status.FAILED_PRECONDITION);
    assert.match(msg2, /proxy host "web-b"/);
    assert.doesNotMatch(msg2, /web-a|L4/);
    await c.updateHost({ ...b, certificateId: "" });
    const d = await c.delete(id);
    assert.equal(d.configVersion, await c.version());
    await expectStatus(c.get(id), status.NOT_FOUND);
  });

  describe("bad input: precise status and field, nothing written, version unchanged", () => {
    type Case = { name: string; call: () => Promise<unknown>; code: status; field?: string; detail?: RegExp };
    const cases = (): Case[] => [
      { name: "no certificate", call: () => c.create(undefined), code: status.INVALID_ARGUMENT, field: "certificate" },
      {
        name: "empty name",
        call: () => c.create(imported({ name: "  " })),
        code: status.INVALID_ARGUMENT,
        field: "certificate.name",
      },
      {
        name: "type unspecified",
        call: () => c.create(imported({ type: CertificateType.CERTIFICATE_TYPE_UNSPECIFIED })),
        code: status.INVALID_ARGUMENT,
        field: "certificate.type",
      },
      {
        name: "managed without names",
        call: () => c.create({ name: "m", type: MANAGED }),
        code: status.INVALID_ARGUMENT,
        field: "certificate.domain_names",
      },
      {
        name: "managed with a bad second name",
        call: () => c.create({ name: "m", type: MANAGED, domainNames: ["ok.example.com", "bad name"] }),
        code: status.INVALID_ARGUMENT,
        field: "certificate.domain_names[1]",
      },
      {
        name: "managed public wildcard",
        call: () => c.create({ name: "m", type: MANAGED, domainNames: ["*.example.com"] }),
        code: status.INVALID_ARGUMENT,
        field: "certificate.domain_names[0]",
      },
      {
        name: "managed with a key",
        call: () => c.create({ name: "m", type: MANAGED, domainNames: ["a.example.com"], privateKeyPem: secure.key }),
        code: status.INVALID_ARGUMENT,
        field: "certificate.private_key_pem",
      },
      {
        name: "imported without a chain",
        call: () => c.create(imported({ certificatePem: "" })),
        code: status.INVALID_ARGUMENT,
        field: "certificate.certificate_pem",
      },
      {
        name: "imported chain is not PEM",
        call: () => c.create(imported({ certificatePem: "not a certificate" })),
        code: status.INVALID_ARGUMENT,
        field: "certificate.certificate_pem",
      },
      {
        name: "imported without a key",
        call: () => c.create(imported({ privateKeyPem: "" })),
        code: status.INVALID_ARGUMENT,
        field: "certificate.private_key_pem",
      },
      {
        name: "key does not match",
        call: () => c.create(imported({ privateKeyPem: otherKey })),
        code: status.INVALID_ARGUMENT,
        field: "certificate.private_key_pem",
        detail: /does not match the certificate/,
      },
      {
        name: "expired",
        call: () => c.create(imported({ certificatePem: expired.cert, privateKeyPem: expired.key })),
        code: status.INVALID_ARGUMENT,
        field: "certificate.certificate_pem",
        detail: /expired/,
      },
      {
        name: "not valid yet",
        call: () => c.create(imported({ certificatePem: notYet.cert, privateKeyPem: notYet.key })),
        code: status.INVALID_ARGUMENT,
        field: "certificate.certificate_pem",
        detail: /not valid yet/,
      },
      {
        name: "name not covered",
        call: () => c.create(imported({ domainNames: ["secure.test", "other.test"] })),
        code: status.INVALID_ARGUMENT,
        field: "certificate.domain_names[1]",
        detail: /not covered/,
      },
      {
        name: "duplicate name",
        call: () => c.create(imported({ name: "taken" })),
        code: status.ALREADY_EXISTS,
        field: "certificate.name",
      },
      {
        name: "update without id",
        call: () => c.update(imported({ name: "x" })),
        code: status.INVALID_ARGUMENT,
        field: "certificate.id",
      },
      { name: "update unknown id", call: () => c.update(imported({ id: "nope", name: "x" })), code: status.NOT_FOUND },
      {
        name: "update to a taken name",
        call: async () =>
          c.update(imported({ id: (await c.list()).find((x) => x.name === "other")!.id, name: "taken" })),
        code: status.ALREADY_EXISTS,
        field: "certificate.name",
      },
      {
        name: "update with a mismatched key",
        call: async () =>
          c.update(
            imported({
              id: (await c.list()).find((x) => x.name === "other")!.id,
              name: "other",
              privateKeyPem: otherKey,
            }),
          ),
        code: status.INVALID_ARGUMENT,
        field: "certificate.private_key_pem",
      },
      {
        name: "update to managed with a public wildcard",
        call: async () =>
          c.update({
            id: (await c.list()).find((x) => x.name === "other")!.id,
            name: "other",
            type: MANAGED,
            domainNames: ["a.example.com", "*.example.com"],
          }),
        code: status.INVALID_ARGUMENT,
        field: "certificate.domain_names[1]",
      },
      { name: "get without id", call: () => c.get(""), code: status.INVALID_ARGUMENT, field: "id" },
      { name: "get unknown id", call: () => c.get("nope"), code: status.NOT_FOUND },
      { name: "delete without id", call: () => c.delete(""), code: status.INVALID_ARGUMENT, field: "id" },
      { name: "delete unknown id", call: () => c.delete("nope"), code: status.NOT_FOUND },
    ];

    before(async () => {
      await c.create(imported({ name: "taken" }));
      await c.create(imported({ name: "other" }));
    });

    for (const k of cases().map((x) => x.name)) {
      it(k, async () => {
        const tc = cases().find((x) => x.name === k)!;
        const v = await c.version();
        const before = (await c.list(true)).map((x) => Certificate.toJSON(x));
        const details = await expectStatus(tc.call(), tc.code);
        if (tc.field) assert.ok(details.startsWith(`${tc.field}: `), `"${details}" should start with "${tc.field}: "`);
        if (tc.detail) assert.match(details, tc.detail);
        assert.ok(!details.includes("BEGIN"), "no PEM in error messages");
        assert.equal(await c.version(), v, "version unchanged");
        assert.deepEqual(
          (await c.list(true)).map((x) => Certificate.toJSON(x)),
          before,
          "nothing written",
        );
      });
    }
  });

  describe("RecordCertificateIssuance (internal): the states the master's renderer reports", () => {
    let id: string;
    let leaf: { cert: string; key: string };
    const record = (over: { status: CertificateStatus; statusDetail?: string; issued?: boolean }) =>
      unary(
        h.internal.recordCertificateIssuance.bind(h.internal),
        {
          certificateId: id,
          domainNames: ["fleet.test"],
          status: over.status,
          statusDetail: over.statusDetail ?? "",
          issued:
            over.issued === false
              ? []
              : [{ domainName: "fleet.test", certificatePem: leaf.cert, privateKeyPem: leaf.key, notAfter: undefined }],
        },
        INTERNAL,
      );

    before(async () => {
      leaf = issue(["DNS:fleet.test"]);
      id = (await c.create({ name: "fleet", type: MANAGED, domainNames: ["fleet.test"] })).certificate!.id;
    });

    it("RENEWING keeps the issued entry and its not-after", async () => {
      await record({ status: CertificateStatus.CERTIFICATE_STATUS_ISSUED });
      const v = await c.version();
      assert.equal((await record({ status: CertificateStatus.CERTIFICATE_STATUS_RENEWING })).changed, true);
      assert.equal(await c.version(), v + 1, "one version");
      const got = (await c.get(id)).certificate!;
      assert.equal(got.status, CertificateStatus.CERTIFICATE_STATUS_RENEWING);
      assert.equal(got.issued.length, 1);
      assert.ok(
        got.expiresAt && got.issued[0]!.notAfter && got.expiresAt.getTime() === got.issued[0]!.notAfter.getTime(),
      );
    });

    it("FAILED carries the CA's error; the issued entry stays", async () => {
      await record({
        status: CertificateStatus.CERTIFICATE_STATUS_FAILED,
        statusDetail: "fleet.test: HTTP 400 urn:ietf:params:acme:error:rejectedIdentifier - no",
      });
      const got = (await c.get(id)).certificate!;
      assert.equal(got.status, CertificateStatus.CERTIFICATE_STATUS_FAILED);
      assert.equal(got.statusDetail, "fleet.test: HTTP 400 urn:ietf:params:acme:error:rejectedIdentifier - no");
      assert.equal(got.issued.length, 1);
      assert.equal(got.issued[0]!.privateKeyPem, "", "no key unless asked");
    });

    it("a detail with a placeholder or a control character, an oversized one and an unknown status are refused, naming the field", async () => {
      const v = await c.version();
      const braces = await expectStatus(
        record({ status: CertificateStatus.CERTIFICATE_STATUS_FAILED, statusDetail: "{env.HOME}" }),
        status.INVALID_ARGUMENT,
      );
      assert.match(braces, /status_detail: /);
      const control = await expectStatus(
        record({ status: CertificateStatus.CERTIFICATE_STATUS_FAILED, statusDetail: "bad\u001b[31m" }),
        status.INVALID_ARGUMENT,
      );
      assert.match(control, /status_detail: contains a control character \(U\+001B\)/);
      const long = await expectStatus(
        record({ status: CertificateStatus.CERTIFICATE_STATUS_FAILED, statusDetail: "x".repeat(2001) }),
        status.INVALID_ARGUMENT,
      );
      assert.match(long, /status_detail: is longer than 2000 characters/);
      const unknown = await expectStatus(record({ status: 99 as CertificateStatus }), status.INVALID_ARGUMENT);
      assert.match(unknown, /status: 99 is not a known value/);
      assert.equal(await c.version(), v, "nothing committed");
    });
  });
});
