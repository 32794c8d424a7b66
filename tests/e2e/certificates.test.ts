// Certificates end to end: gRPC API -> config-service -> renderer -> a real Caddy, checked on
// real TLS handshakes. Test certificates are made with openssl at test time.
import assert from "node:assert/strict";
import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import {
  Certificate,
  CertificateStatus,
  CertificateType,
  CreateApiTokenRequest,
  ProxyHost,
  Role,
  type DeepPartial,
} from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { expectStatus } from "../support/grpc.ts";
import { Instance, stopCleanly } from "../support/instance.ts";
import { startUpstream } from "../support/net.ts";
import { makePki, peerCertificate, selfSigned } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";

/** GET over HTTPS through Caddy with SNI and Host `host`; `ca` verifies the server (else unverified). */
function httpsGet(port: number, host: string, ca?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: "127.0.0.1",
        port,
        path: "/via-tls",
        servername: host,
        headers: { Host: host },
        ca,
        rejectUnauthorized: !!ca,
        timeout: 5000,
        agent: false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

const sha256Hex = (der: Buffer) => createHash("sha256").update(der).digest("hex");
const samePrivateKey = (a: string, b: string) =>
  createPrivateKey(a)
    .export({ type: "pkcs8", format: "der" })
    .equals(createPrivateKey(b).export({ type: "pkcs8", format: "der" }));

describe("certificates: imported and managed, served by a real Caddy", () => {
  let inst: Instance;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let dir: string;
  let secure: { cert: string; key: string };
  let importedCert: Certificate;
  let secureHost: ProxyHost;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "cpm-e2e-certs-"));
    secure = selfSigned(dir, "secure.test", ["DNS:secure.test", "DNS:www.secure.test"]);
    upstream = await startUpstream("TLS");
    inst = await Instance.start({ name: "certificates" });
  });
  after(async () => {
    await stopCleanly(inst);
    await upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const createCert = (c: DeepPartial<Certificate>, token = inst.adminToken) =>
    unary(inst.config.createCertificate.bind(inst.config), { certificate: Certificate.fromPartial(c) }, token);
  const createHost = (h: DeepPartial<ProxyHost>) =>
    unary(inst.config.createProxyHost.bind(inst.config), { proxyHost: ProxyHost.fromPartial(h) }, inst.adminToken);
  const getCert = (id: string, includePrivateKey: boolean, token = inst.adminToken) =>
    unary(inst.config.getCertificate.bind(inst.config), { id, includePrivateKey }, token);
  const listCerts = (includePrivateKeys: boolean, token = inst.adminToken) =>
    unary(inst.config.listCertificates.bind(inst.config), { includePrivateKeys }, token);

  it("an imported certificate is the one presented on the TLS handshake for its name", async () => {
    const v = await inst.version();
    const created = await createCert({
      name: "secure",
      type: CertificateType.CERTIFICATE_TYPE_IMPORTED,
      certificatePem: secure.cert,
      privateKeyPem: secure.key,
    });
    assert.equal(created.configVersion, v + 1);
    importedCert = created.certificate!;
    assert.deepEqual(importedCert.domainNames, ["secure.test", "www.secure.test"], "names filled from the SANs");
    const expected = sha256Hex(new X509Certificate(secure.cert).raw);
    assert.equal(importedCert.fingerprintSha256, expected);

    secureHost = (
      await createHost({
        name: "secure-host",
        domains: ["secure.test"],
        upstreams: [`127.0.0.1:${upstream.port}`],
        certificateId: importedCert.id,
        sslForced: true,
      })
    ).proxyHost!;
    await inst.waitInSync();
    const peer = await waitFor(
      () => peerCertificate(inst.ports.https, "secure.test"),
      "TLS handshake for secure.test",
      30_000,
      200,
    );
    assert.equal(sha256Hex(peer.raw), expected, "Caddy presents the imported certificate");
  });

  it("an HTTPS request with that SNI reaches the upstream (verified against the imported certificate)", async () => {
    const r = await waitFor(
      async () => {
        const x = await httpsGet(inst.ports.https, "secure.test", secure.cert);
        return x.status === 200 ? x : undefined;
      },
      "HTTPS through Caddy",
      30_000,
      200,
    );
    assert.match(r.body, /upstream=TLS/);
    assert.match(r.body, /path=\/via-tls/);
  });

  it("ssl_forced redirects plain HTTP to HTTPS with 308", async () => {
    const r = await inst.waitServes("secure.test", 308);
    assert.equal(
      r.headers.location,
      `https://secure.test:${inst.ports.https}/`,
      "the redirect keeps the instance's HTTPS port",
    );
  });

  it("a managed certificate for a private name comes from Caddy's internal CA", async () => {
    const m = await createCert({
      name: "internal",
      type: CertificateType.CERTIFICATE_TYPE_MANAGED,
      domainNames: ["app.internal"],
    });
    assert.equal(m.certificate!.certificatePem, "");
    await createHost({
      name: "internal-host",
      domains: ["app.internal"],
      upstreams: [`127.0.0.1:${upstream.port}`],
      certificateId: m.certificate!.id,
    });
    await inst.waitInSync();
    const peer = await waitFor(
      () => peerCertificate(inst.ports.https, "app.internal"),
      "a certificate for app.internal",
      60_000,
      300,
    );
    assert.match(peer.issuer, /Caddy Local Authority/, `issuer: ${peer.issuer}`);
    assert.match(peer.subjectAltName ?? "", /DNS:app\.internal/);
    const r = await httpsGet(inst.ports.https, "app.internal");
    assert.equal(r.status, 200);
    assert.match(r.body, /upstream=TLS/);
    // The imported certificate is still the one for its own name.
    assert.equal(
      sha256Hex((await peerCertificate(inst.ports.https, "secure.test")).raw),
      importedCert.fingerprintSha256,
    );
    // Caddy keeps the managed key: our database has none.
    assert.equal((await getCert(m.certificate!.id, true)).certificate!.privateKeyPem, "");
    // The issued chain is recorded in a commit of its own (a new version): wait for it, so the
    // tests after this one start from a version that no background write moves.
    await waitFor(
      async () => {
        const c = (await getCert(m.certificate!.id, false)).certificate!;
        return c.status === CertificateStatus.CERTIFICATE_STATUS_ISSUED ? c : undefined;
      },
      "the managed certificate recorded as issued",
      30_000,
      100,
    );
    await inst.waitInSync();
  });

  it("deleting a certificate in use fails with FAILED_PRECONDITION naming the host; nothing changes", async () => {
    const v = await inst.version();
    const details = await expectStatus(
      unary(inst.config.deleteCertificate.bind(inst.config), { id: importedCert.id }, inst.adminToken),
      status.FAILED_PRECONDITION,
    );
    assert.match(details, /secure-host/);
    assert.equal(await inst.version(), v);
    assert.equal(
      sha256Hex((await peerCertificate(inst.ports.https, "secure.test")).raw),
      importedCert.fingerprintSha256,
      "still served",
    );
  });

  it("Get and List omit the private key unless an admin asks; a viewer cannot ask", async () => {
    assert.equal((await getCert(importedCert.id, false)).certificate!.privateKeyPem, "");
    assert.ok((await listCerts(false)).certificates.every((c) => c.privateKeyPem === ""));
    const withKey = (await getCert(importedCert.id, true)).certificate!;
    assert.ok(samePrivateKey(withKey.privateKeyPem, secure.key), "an admin gets the key it stored");
    const listed = (await listCerts(true)).certificates.find((c) => c.id === importedCert.id)!;
    assert.ok(samePrivateKey(listed.privateKeyPem, secure.key));

    const viewer = (
      await unary(
        inst.account.createApiToken.bind(inst.account),
        CreateApiTokenRequest.fromPartial({ name: "cert-reader", role: Role.ROLE_VIEWER }),
        inst.adminToken,
      )
    ).secret;
    assert.equal((await getCert(importedCert.id, false, viewer)).certificate!.privateKeyPem, "");
    assert.ok((await listCerts(false, viewer)).certificates.length >= 2);
    await expectStatus(getCert(importedCert.id, true, viewer), status.PERMISSION_DENIED);
    await expectStatus(listCerts(true, viewer), status.PERMISSION_DENIED);
  });

  it("a key that does not match is refused naming the field; the version does not move", async () => {
    const other = selfSigned(dir, "other.test", ["DNS:other.test"]);
    const v = await inst.version();
    const details = await expectStatus(
      createCert({
        name: "mismatch",
        type: CertificateType.CERTIFICATE_TYPE_IMPORTED,
        certificatePem: secure.cert,
        privateKeyPem: other.key,
      }),
      status.INVALID_ARGUMENT,
    );
    assert.ok(details.startsWith("certificate.private_key_pem: does not match the certificate"), details);
    assert.equal(await inst.version(), v);
  });

  it("after the host lets go, the certificate can be deleted and Caddy stops presenting it", async () => {
    await unary(
      inst.config.updateProxyHost.bind(inst.config),
      { proxyHost: { ...secureHost, certificateId: "", sslForced: false } },
      inst.adminToken,
    );
    await unary(inst.config.deleteCertificate.bind(inst.config), { id: importedCert.id }, inst.adminToken);
    await inst.waitInSync();
    await inst.waitServes("secure.test", /upstream=TLS/);
    await waitFor(async () => {
      try {
        const peer = await peerCertificate(inst.ports.https, "secure.test");
        return sha256Hex(peer.raw) !== importedCert.fingerprintSha256;
      } catch {
        return true; // no certificate for the name any more: the handshake fails
      }
    }, "the imported certificate no longer served");
  });

  it("never writes private keys to its logs", async () => {
    const keyBody = secure.key
      .split("\n")
      .filter((l) => l && !l.startsWith("-----"))
      .join("");
    const log = inst.log().replace(/\\n|\n/g, "");
    assert.ok(!log.includes(keyBody.slice(0, 40)), "the private key appears in the instance log");
    assert.ok(!/PRIVATE KEY-----/.test(inst.log()), "a PEM private key appears in the instance log");
  });
});

describe("certificates reach a slave: the snapshot carries the imported key, the slave's Caddy presents it", () => {
  const TOKEN = "cert-slave-sync-token-0123456789";
  let master: Instance;
  let slave: Instance;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "cpm-e2e-certs-sync-"));
    const pki = makePki(dir);
    upstream = await startUpstream("SLAVE-TLS");
    slave = await Instance.start({
      name: "cert-slave",
      mode: "slave",
      env: { INSTANCE_SYNC_TOKEN: TOKEN, CPM_SYNC_TLS_CERT: pki.cert, CPM_SYNC_TLS_KEY: pki.key },
    });
    master = await Instance.start({
      name: "cert-master",
      mode: "master",
      env: {
        INSTANCE_SLAVES: JSON.stringify([{ name: "s", url: `https://localhost:${slave.ports.sync}`, token: TOKEN }]),
        CPM_SYNC_TLS_CA: pki.caCert,
      },
    });
  });
  after(async () => {
    for (const i of [master, slave]) await i?.stop();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("an imported certificate created on the master is presented by the slave for its name", async () => {
    const pem = selfSigned(dir, "synced.test", ["DNS:synced.test"]);
    const cert = (
      await unary(
        master.config.createCertificate.bind(master.config),
        {
          certificate: Certificate.fromPartial({
            name: "synced",
            type: CertificateType.CERTIFICATE_TYPE_IMPORTED,
            certificatePem: pem.cert,
            privateKeyPem: pem.key,
          }),
        },
        master.adminToken,
      )
    ).certificate!;
    const host = await unary(
      master.config.createProxyHost.bind(master.config),
      {
        proxyHost: ProxyHost.fromPartial({
          name: "synced-host",
          domains: ["synced.test"],
          upstreams: [`127.0.0.1:${upstream.port}`],
          certificateId: cert.id,
        }),
      },
      master.adminToken,
    );
    await waitFor(
      async () => (await slave.version()) >= host.configVersion,
      "the slave on the master's version",
      60_000,
      200,
    );
    await slave.waitInSync(60_000);
    const peer = await waitFor(
      () => peerCertificate(slave.ports.https, "synced.test"),
      "the slave's TLS handshake for synced.test",
      30_000,
      200,
    );
    assert.equal(sha256Hex(peer.raw), cert.fingerprintSha256);
    const r = await httpsGet(slave.ports.https, "synced.test", pem.cert);
    assert.match(r.body, /upstream=SLAVE-TLS/);
    // The slave stores the key (its Caddy needs it) and, like the master, hands it out only when an admin asks.
    const onSlave = (id: string, includePrivateKey: boolean) =>
      unary(slave.config.getCertificate.bind(slave.config), { id, includePrivateKey }, slave.adminToken);
    assert.equal((await onSlave(cert.id, false)).certificate!.privateKeyPem, "");
    assert.ok(samePrivateKey((await onSlave(cert.id, true)).certificate!.privateKeyPem, pem.key));
    // Writes to synced resources are refused on the slave.
    await expectStatus(
      unary(slave.config.deleteCertificate.bind(slave.config), { id: cert.id }, slave.adminToken),
      status.FAILED_PRECONDITION,
    );
    for (const i of [master, slave])
      assert.ok(!/PRIVATE KEY-----/.test(i.log()), `${i.opts.name}: a PEM private key appears in the log`);
  });
});
