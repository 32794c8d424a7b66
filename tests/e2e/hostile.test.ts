// The project's hostile suite: what an attacker sends to a standalone instance, a master and a
// TLS slave started as an operator starts them. Every case asserts the precise gRPC status,
// that the configuration version and Caddy's running config did not move, and at the end
// that no token or private key reached any service's log.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import {
  AccessList,
  AccessListSatisfy,
  AccountServiceService,
  CaddyRendererService,
  Certificate,
  CertificateType,
  ConfigServiceService,
  CreateAccessListRequest,
  CreateCertificateRequest,
  CreateL4ProxyHostRequest,
  CreateProxyHostRequest,
  CreateUserRequest,
  L4Matcher,
  L4ProxyHost,
  L4Protocol,
  NackCode,
  ProxyHost,
  Role,
  Settings,
  Snapshot,
  SyncDispatcherService,
  SyncReceiverService,
  UpdateProxyHostRequest,
  UpdateSettingsRequest,
  UpdateUserRequest,
  type SyncResponse,
} from "@cpm/proto";
import { snapshotContentHash, SNAPSHOT_SCHEMA_VERSION } from "@cpm/core";
import { channelCredentials, unary } from "@cpm/grpc-kit";
import { Instance, SPLIT } from "../support/instance.ts";
import { startUpstream, type TestServer } from "../support/net.ts";
import { callRaw, sendAnnouncedMessage, sendGarbage } from "../support/raw-grpc.ts";
import { makePki, type TestPki } from "../support/tls.ts";

const SYNC_TOKEN = "hostile-suite-sync-token-0123456789";
const MASTER_ID = "hostile-master-0001";
const BCRYPT = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";

const CONTROL = ["\u0000", "\r", "\n", "\u001b", "\u007f", "\u0085", "\u2028"];
const PLACEHOLDERS = [
  "{env.CPM_ADMIN_TOKEN}",
  "{http.request.header.X-User}",
  "{file./etc/passwd}",
  "x{env.CPM_INTERNAL_TOKEN}y",
];
const show = (s: string) => JSON.stringify(s);

describe("hostile input: nothing moves, nothing leaks", () => {
  let pki: TestPki;
  let standalone: Instance;
  let master: Instance;
  let slave: Instance;
  let up: TestServer;
  let viewerToken: string;
  let internalToken: string;
  let slaveInternalToken: string;
  let seededHost: ProxyHost;
  let slaveVersion = 10;

  before(async () => {
    pki = makePki(mkdtempSync(path.join(os.tmpdir(), "cpm-hostile-pki-")));
    up = await startUpstream("H");
    [standalone, slave, master] = await Promise.all([
      Instance.start({ name: "standalone" }),
      Instance.start({
        name: "slave",
        mode: "slave",
        env: { INSTANCE_SYNC_TOKEN: SYNC_TOKEN, CPM_SYNC_TLS_CERT: pki.cert, CPM_SYNC_TLS_KEY: pki.key },
      }),
      Instance.start({ name: "master", mode: "master", env: { INSTANCE_SLAVES: "[]" } }),
    ]);
    // Split over processes, the services of an instance share a token; in one process there is none.
    if (SPLIT) {
      internalToken = readFileSync(path.join(standalone.dataDir, "internal-token"), "utf8").trim();
      slaveInternalToken = readFileSync(path.join(slave.dataDir, "internal-token"), "utf8").trim();
    }
    // Content to protect: a proxy host, and a viewer.
    seededHost = (
      await unary(
        standalone.config.createProxyHost.bind(standalone.config),
        {
          proxyHost: ProxyHost.fromPartial({
            name: "seed",
            domains: ["seed.hostile.test"],
            upstreams: [`127.0.0.1:${up.port}`],
          }),
        },
        standalone.adminToken,
      )
    ).proxyHost!;
    const viewer = await unary(
      standalone.account.createUser.bind(standalone.account),
      CreateUserRequest.fromPartial({ username: "viewer", role: Role.ROLE_VIEWER }),
      standalone.adminToken,
    );
    viewerToken = (
      await unary(
        standalone.account.createApiToken.bind(standalone.account),
        { name: "v", role: Role.ROLE_VIEWER, userId: viewer.user!.id, expiresAt: undefined },
        standalone.adminToken,
      )
    ).secret;
    await standalone.waitServes("seed.hostile.test", /upstream=H/);
    // The slave starts from a valid snapshot of a master.
    const r = await pushToSlave(snapshot(slaveVersion, baseContent()));
    assert.ok(r.ack, `the base snapshot is acked: ${JSON.stringify(r.nack)}`);
    await slave.waitServes("base.hostile.test", /upstream=H/);
  });

  after(async () => {
    for (const i of [standalone, master, slave]) await i?.stop();
    await up?.close();
  });

  // --- helpers -------------------------------------------------------------------------------

  const caddyConfigHash = async (inst: Instance) => {
    const res = await fetch(`http://127.0.0.1:${inst.ports.caddyAdmin}/config/`);
    return createHash("sha256")
      .update(await res.text())
      .digest("hex");
  };

  /** Runs `fn` and asserts the instance's version and its Caddy's running config did not move. */
  const unmoved = async <T>(inst: Instance, fn: () => Promise<T>): Promise<T> => {
    const v0 = await inst.version();
    const c0 = await caddyConfigHash(inst);
    const out = await fn();
    assert.equal(await inst.version(), v0, "the configuration version did not move");
    assert.equal(await caddyConfigHash(inst), c0, "Caddy's running config did not move");
    return out;
  };

  const api = (inst: Instance) => `127.0.0.1:${inst.ports.api}`;

  /** A public API call by path with a typed request; asserts the status and that the field is named. */
  const expectRefused = async (inst: Instance, method: string, body: Buffer, code: status, field?: string) => {
    const r = await unmoved(inst, () => callRaw(api(inst), method, body, { token: inst.adminToken }));
    assert.equal(r.code, code, `${method}: expected ${status[code]}, got ${status[r.code] ?? r.code}: ${r.details}`);
    if (field) assert.ok(r.details.startsWith(field), `the status names ${field}: ${r.details}`);
  };

  const enc = <T>(type: { encode(m: T): { finish(): Uint8Array }; fromPartial(o: object): T }, o: object) =>
    Buffer.from(type.encode(type.fromPartial(o)).finish());

  const host = (over: Partial<ProxyHost>) => ({
    name: "h",
    domains: ["h.hostile.test"],
    upstreams: [`127.0.0.1:${up.port}`],
    ...over,
  });
  const acl = (over: Partial<AccessList>) => ({
    name: "a",
    users: [{ username: "ops", password: "a long passphrase" }],
    ...over,
  });
  const l4 = (over: Partial<L4ProxyHost>) => ({
    name: "l",
    listenAddress: "127.0.0.1:39999",
    upstreams: [`127.0.0.1:${up.port}`],
    ...over,
  });

  function baseContent() {
    return {
      proxyHosts: [
        ProxyHost.fromPartial({
          id: "ph-1",
          name: "base",
          domains: ["base.hostile.test"],
          upstreams: [`127.0.0.1:${up.port}`],
          enabled: true,
        }),
      ],
      accessLists: [
        AccessList.fromPartial({
          id: "acl-1",
          name: "office",
          users: [{ username: "ops", passwordHash: BCRYPT }],
          satisfy: AccessListSatisfy.ACCESS_LIST_SATISFY_ANY,
        }),
      ],
      certificates: [
        Certificate.fromPartial({
          id: "c-1",
          name: "managed",
          type: CertificateType.CERTIFICATE_TYPE_MANAGED,
          domainNames: ["base.hostile.test"],
          autoRenew: true,
        }),
      ],
      l4ProxyHosts: [] as L4ProxyHost[],
      settings: Settings.fromPartial({ http: { hstsMaxAgeSeconds: 31_536_000 } }),
    };
  }

  function snapshot(version: number, content: ReturnType<typeof baseContent>, over: Partial<Snapshot> = {}): Snapshot {
    const s = Snapshot.fromPartial({
      schemaVersion: SNAPSHOT_SCHEMA_VERSION,
      masterInstanceId: MASTER_ID,
      version,
      generatedAt: new Date(),
      ...content,
    });
    return { ...s, contentSha256: snapshotContentHash(s), ...over };
  }

  /** One snapshot over a fresh TLS stream to the slave's receiver; resolves with its answer. */
  function pushToSlave(s: Snapshot, token: string | undefined = SYNC_TOKEN): Promise<SyncResponse> {
    return slave.pushSnapshot(s, token, pki.caCert);
  }

  // --- 1. validation of every field of every resource (API writes) ----------------------------

  describe("every field refuses what Caddy could read as code, control characters and zone ids", () => {
    const P = "/cpm.config.v1.ConfigService/";
    const cases: { what: string; method: string; body: () => Buffer; field: string; code?: status }[] = [];
    const add = (what: string, method: string, body: () => Buffer, field: string, code = status.INVALID_ARGUMENT) =>
      cases.push({ what, method, body, field, code });

    for (const c of CONTROL) {
      add(
        `proxy host name with ${show(c)}`,
        "CreateProxyHost",
        () => enc(CreateProxyHostRequest, { proxyHost: host({ name: `a${c}b` }) }),
        "proxy_host.name",
      );
      add(
        `certificate name with ${show(c)}`,
        "CreateCertificate",
        () =>
          enc(CreateCertificateRequest, {
            certificate: {
              name: `a${c}b`,
              type: CertificateType.CERTIFICATE_TYPE_MANAGED,
              domainNames: ["c.hostile.test"],
            },
          }),
        "certificate.name",
      );
      add(
        `access list name with ${show(c)}`,
        "CreateAccessList",
        () => enc(CreateAccessListRequest, { accessList: acl({ name: `a${c}b` }) }),
        "access_list.name",
      );
      add(
        `access list username with ${show(c)}`,
        "CreateAccessList",
        () =>
          enc(CreateAccessListRequest, {
            accessList: acl({ users: [{ username: `o${c}ps`, password: "a long passphrase", passwordHash: "" }] }),
          }),
        "access_list.users[0].username",
      );
      add(
        `L4 host name with ${show(c)}`,
        "CreateL4ProxyHost",
        () => enc(CreateL4ProxyHostRequest, { l4ProxyHost: l4({ name: `a${c}b` }) }),
        "l4_proxy_host.name",
      );
      add(
        `proxy host domain with ${show(c)}`,
        "CreateProxyHost",
        () => enc(CreateProxyHostRequest, { proxyHost: host({ domains: [`a${c}.hostile.test`] }) }),
        "proxy_host.domains[0]",
      );
    }
    for (const c of ["\u0000", "\u001b", "\u2029"]) {
      add(
        `access list description with ${show(c)}`,
        "CreateAccessList",
        () => enc(CreateAccessListRequest, { accessList: acl({ description: `d${c}` }) }),
        "access_list.description",
      );
      add(
        `access list password with ${show(c)}`,
        "CreateAccessList",
        () =>
          enc(CreateAccessListRequest, {
            accessList: acl({ users: [{ username: "ops", password: `long pass${c}phrase`, passwordHash: "" }] }),
          }),
        "access_list.users[0].password",
      );
    }
    for (const p of PLACEHOLDERS) {
      add(
        `proxy host domain ${p}`,
        "CreateProxyHost",
        () => enc(CreateProxyHostRequest, { proxyHost: host({ domains: [p] }) }),
        "proxy_host.domains[0]",
      );
      add(
        `proxy host upstream host ${p}`,
        "CreateProxyHost",
        () => enc(CreateProxyHostRequest, { proxyHost: host({ upstreams: [`${p}:80`] }) }),
        "proxy_host.upstreams[0]",
      );
      add(
        `certificate domain ${p}`,
        "CreateCertificate",
        () =>
          enc(CreateCertificateRequest, {
            certificate: { name: "c", type: CertificateType.CERTIFICATE_TYPE_MANAGED, domainNames: [p] },
          }),
        "certificate.domain_names[0]",
      );
      add(
        `basic-auth username ${p}`,
        "CreateAccessList",
        () =>
          enc(CreateAccessListRequest, {
            accessList: acl({ users: [{ username: p, password: "a long passphrase", passwordHash: "" }] }),
          }),
        "access_list.users[0].username",
      );
      add(
        `access list allow ${p}`,
        "CreateAccessList",
        () => enc(CreateAccessListRequest, { accessList: acl({ allow: [p] }) }),
        "access_list.allow[0]",
      );
      add(
        `access list deny ${p}`,
        "CreateAccessList",
        () => enc(CreateAccessListRequest, { accessList: acl({ deny: [p] }) }),
        "access_list.deny[0]",
      );
      add(
        `L4 upstream ${p}`,
        "CreateL4ProxyHost",
        () => enc(CreateL4ProxyHostRequest, { l4ProxyHost: l4({ upstreams: [`${p}:5432`] }) }),
        "l4_proxy_host.upstreams[0]",
      );
      add(
        `L4 SNI value ${p}`,
        "CreateL4ProxyHost",
        () =>
          enc(CreateL4ProxyHostRequest, {
            l4ProxyHost: l4({ matcher: L4Matcher.L4_MATCHER_TLS_SNI, matcherValues: [p] }),
          }),
        "l4_proxy_host.matcher_values[0]",
      );
      add(
        `L4 listen address ${p}`,
        "CreateL4ProxyHost",
        () => enc(CreateL4ProxyHostRequest, { l4ProxyHost: l4({ listenAddress: `${p}:5432` }) }),
        "l4_proxy_host.listen_address",
      );
      add(
        `settings primary_domain ${p}`,
        "UpdateSettings",
        () => enc(UpdateSettingsRequest, { settings: { general: { primaryDomain: p } } }),
        "settings.general.primary_domain",
      );
      add(
        `settings acme_email ${p}@example.com`,
        "UpdateSettings",
        () => enc(UpdateSettingsRequest, { settings: { general: { acmeEmail: `${p}@example.com` } } }),
        "settings.general.acme_email",
      );
      add(
        `settings acme.ca_url with ${p} in the path`,
        "UpdateSettings",
        () => enc(UpdateSettingsRequest, { settings: { acme: { caUrl: `https://acme.hostile.test/${p}` } } }),
        "settings.acme.ca_url",
      );
    }
    // The two cases that stalled a whole fleet, and the one that sent tokens to a CA.
    add(
      "acme_email {env.CPM_INTERNAL_TOKEN}.{env.CPM_ADMIN_TOKEN}@example.com",
      "UpdateSettings",
      () =>
        enc(UpdateSettingsRequest, {
          settings: { general: { acmeEmail: "{env.CPM_INTERNAL_TOKEN}.{env.CPM_ADMIN_TOKEN}@example.com" } },
        }),
      "settings.general.acme_email",
    );
    add(
      "acme_email {env.UNSET}@example.com",
      "UpdateSettings",
      () => enc(UpdateSettingsRequest, { settings: { general: { acmeEmail: "{env.UNSET}@example.com" } } }),
      "settings.general.acme_email",
    );
    add(
      "acme_email ops@{env.HOST}",
      "UpdateSettings",
      () => enc(UpdateSettingsRequest, { settings: { general: { acmeEmail: "ops@{env.HOST}" } } }),
      "settings.general.acme_email",
    );
    add(
      "acme.ca_url query {env.CPM_ADMIN_TOKEN}",
      "UpdateSettings",
      () =>
        enc(UpdateSettingsRequest, {
          settings: { acme: { caUrl: "https://acme.hostile.test/dir?t={env.CPM_ADMIN_TOKEN}" } },
        }),
      "settings.acme.ca_url",
    );
    add(
      "acme.ca_url host {env.X}",
      "UpdateSettings",
      () => enc(UpdateSettingsRequest, { settings: { acme: { caUrl: "https://{env.X}/dir" } } }),
      "settings.acme.ca_url",
    );
    add(
      "acme.ca_url with a newline",
      "UpdateSettings",
      () => enc(UpdateSettingsRequest, { settings: { acme: { caUrl: "https://acme.hostile.test/dir\nX: y" } } }),
      "settings.acme.ca_url",
    );
    // IPv6 zone ids.
    const ZONE = "fe80::1%eth0";
    add(
      "proxy host domain with a zone id",
      "CreateProxyHost",
      () => enc(CreateProxyHostRequest, { proxyHost: host({ domains: [ZONE] }) }),
      "proxy_host.domains[0]",
    );
    add(
      "proxy host upstream with a zone id",
      "CreateProxyHost",
      () => enc(CreateProxyHostRequest, { proxyHost: host({ upstreams: [`[${ZONE}]:80`] }) }),
      "proxy_host.upstreams[0]",
    );
    add(
      "certificate domain with a zone id",
      "CreateCertificate",
      () =>
        enc(CreateCertificateRequest, {
          certificate: { name: "c", type: CertificateType.CERTIFICATE_TYPE_MANAGED, domainNames: [ZONE] },
        }),
      "certificate.domain_names[0]",
    );
    add(
      "L4 listen address with a zone id",
      "CreateL4ProxyHost",
      () => enc(CreateL4ProxyHostRequest, { l4ProxyHost: l4({ listenAddress: `[${ZONE}]:5432` }) }),
      "l4_proxy_host.listen_address",
    );
    add(
      "L4 upstream with a zone id",
      "CreateL4ProxyHost",
      () => enc(CreateL4ProxyHostRequest, { l4ProxyHost: l4({ upstreams: [`[${ZONE}]:5432`] }) }),
      "l4_proxy_host.upstreams[0]",
    );
    add(
      "L4 SNI value with a zone id",
      "CreateL4ProxyHost",
      () =>
        enc(CreateL4ProxyHostRequest, {
          l4ProxyHost: l4({ matcher: L4Matcher.L4_MATCHER_TLS_SNI, matcherValues: [ZONE] }),
        }),
      "l4_proxy_host.matcher_values[0]",
    );
    add(
      "access list allow with a zone id",
      "CreateAccessList",
      () => enc(CreateAccessListRequest, { accessList: acl({ allow: [ZONE] }) }),
      "access_list.allow[0]",
    );
    add(
      "settings primary_domain with a zone id",
      "UpdateSettings",
      () => enc(UpdateSettingsRequest, { settings: { general: { primaryDomain: ZONE } } }),
      "settings.general.primary_domain",
    );
    // Other malformed values.
    add(
      "basic-auth username with a colon",
      "CreateAccessList",
      () =>
        enc(CreateAccessListRequest, {
          accessList: acl({ users: [{ username: "a:b", password: "a long passphrase", passwordHash: "" }] }),
        }),
      "access_list.users[0].username",
    );
    add(
      "access-list password over 72 bytes (UTF-8)",
      "CreateAccessList",
      () =>
        enc(CreateAccessListRequest, {
          accessList: acl({ users: [{ username: "ops", password: "é".repeat(37), passwordHash: "" }] }),
        }),
      "access_list.users[0].password",
    );
    add(
      "access-list password hash sent by a client",
      "CreateAccessList",
      () =>
        enc(CreateAccessListRequest, {
          accessList: acl({ users: [{ username: "ops", password: "", passwordHash: BCRYPT }] }),
        }),
      "access_list.users[0].password_hash",
    );
    add(
      "proxy host upstream with a path",
      "CreateProxyHost",
      () => enc(CreateProxyHostRequest, { proxyHost: host({ upstreams: ["127.0.0.1:80/x"] }) }),
      "proxy_host.upstreams[0]",
    );
    add(
      "proxy host upstream ftp://",
      "CreateProxyHost",
      () => enc(CreateProxyHostRequest, { proxyHost: host({ upstreams: ["ftp://127.0.0.1:21"] }) }),
      "proxy_host.upstreams[0]",
    );
    add(
      "proxy host without domains",
      "CreateProxyHost",
      () => enc(CreateProxyHostRequest, { proxyHost: host({ domains: [] }) }),
      "proxy_host.domains",
    );
    add(
      "proxy host with an unknown certificate",
      "CreateProxyHost",
      () => enc(CreateProxyHostRequest, { proxyHost: host({ certificateId: "nope" }) }),
      "proxy_host.certificate_id",
    );
    add(
      "proxy host with an unknown access list",
      "CreateProxyHost",
      () => enc(CreateProxyHostRequest, { proxyHost: host({ accessListId: "nope" }) }),
      "proxy_host.access_list_id",
    );
    add(
      "proxy host with an unknown load-balancing policy",
      "CreateProxyHost",
      () => enc(CreateProxyHostRequest, { proxyHost: host({ loadBalancing: 99 as ProxyHost["loadBalancing"] }) }),
      "proxy_host.load_balancing",
    );
    add(
      "L4 host on a host name",
      "CreateL4ProxyHost",
      () => enc(CreateL4ProxyHostRequest, { l4ProxyHost: l4({ listenAddress: "db.hostile.test:5432" }) }),
      "l4_proxy_host.listen_address",
    );
    add(
      "L4 host on port 0",
      "CreateL4ProxyHost",
      () => enc(CreateL4ProxyHostRequest, { l4ProxyHost: l4({ listenAddress: ":0" }) }),
      "l4_proxy_host.listen_address",
    );
    add(
      "L4 host with an unknown protocol",
      "CreateL4ProxyHost",
      () => enc(CreateL4ProxyHostRequest, { l4ProxyHost: l4({ protocol: 42 as L4Protocol }) }),
      "l4_proxy_host.protocol",
    );
    add(
      "certificate of unspecified type",
      "CreateCertificate",
      () => enc(CreateCertificateRequest, { certificate: { name: "c", domainNames: ["c.hostile.test"] } }),
      "certificate.type",
    );
    add(
      "imported certificate that is not PEM",
      "CreateCertificate",
      () =>
        enc(CreateCertificateRequest, {
          certificate: {
            name: "c",
            type: CertificateType.CERTIFICATE_TYPE_IMPORTED,
            certificatePem: "{env.CPM_ADMIN_TOKEN}",
            privateKeyPem: "x",
          },
        }),
      "certificate.certificate_pem",
    );
    add(
      "HSTS max-age above the maximum",
      "UpdateSettings",
      () => enc(UpdateSettingsRequest, { settings: { http: { hstsMaxAgeSeconds: 10 ** 9 } } }),
      "settings.http.hsts_max_age_seconds",
    );
    // Updates of an existing host: refused and the stored host unchanged.
    for (const p of [...PLACEHOLDERS, "fe80::1%eth0", "a\u0000b"]) {
      add(
        `update of the seeded host with domain ${show(p)}`,
        "UpdateProxyHost",
        () => enc(UpdateProxyHostRequest, { proxyHost: { ...seededHost, domains: [p] } }),
        "proxy_host.domains[0]",
      );
    }

    for (const c of cases) {
      it(`${c.method}: ${c.what} -> ${status[c.code!]}`, async () => {
        await expectRefused(standalone, P + c.method, c.body(), c.code!, c.field);
      });
    }

    it("accounts: usernames and passwords are checked, in bytes", async () => {
      const A = "/cpm.config.v1.AccountService/";
      for (const u of ["a\u0000dmin", "ad\nmin", PLACEHOLDERS[0]!]) {
        await expectRefused(
          standalone,
          `${A}CreateUser`,
          enc(CreateUserRequest, { username: u, role: Role.ROLE_VIEWER }),
          status.INVALID_ARGUMENT,
          "username",
        );
      }
      await expectRefused(
        standalone,
        `${A}CreateUser`,
        enc(CreateUserRequest, { username: "longpw", role: Role.ROLE_VIEWER, password: "é".repeat(40) }),
        status.INVALID_ARGUMENT,
        "password",
      );
    });

    it("a refused placeholder does not stall anything: the next change is served", async () => {
      await expectRefused(
        standalone,
        `${P}UpdateSettings`,
        enc(UpdateSettingsRequest, { settings: { general: { acmeEmail: "{env.UNSET}@example.com" } } }),
        status.INVALID_ARGUMENT,
        "settings.general.acme_email",
      );
      await expectRefused(
        standalone,
        `${P}CreateAccessList`,
        enc(CreateAccessListRequest, {
          accessList: acl({
            users: [{ username: "{http.request.header.X-User}", password: "a long passphrase", passwordHash: "" }],
          }),
        }),
        status.INVALID_ARGUMENT,
        "access_list.users[0].username",
      );
      await unary(
        standalone.config.createProxyHost.bind(standalone.config),
        { proxyHost: ProxyHost.fromPartial(host({ name: "after", domains: ["after.hostile.test"] })) },
        standalone.adminToken,
      );
      await standalone.waitServes("after.hostile.test", /upstream=H/);
      await standalone.waitInSync();
    });
  });

  // --- 1b. what Caddy refuses but no validation can know ----------------------------------------

  describe("one resource Caddy refuses does not stop the others from being served", () => {
    it("an L4 host on a port another process holds: HTTP hosts are still served, the render status says why", async () => {
      const squatter = net.createServer(() => undefined);
      await new Promise<void>((r) => squatter.listen(0, "127.0.0.1", r));
      const port = (squatter.address() as net.AddressInfo).port;
      try {
        await unary(
          standalone.config.createL4ProxyHost.bind(standalone.config),
          {
            l4ProxyHost: L4ProxyHost.fromPartial({
              name: "squatted",
              listenAddress: `127.0.0.1:${port}`,
              upstreams: [`127.0.0.1:${up.port}`],
            }),
          },
          standalone.adminToken,
        );
        await unary(
          standalone.config.createProxyHost.bind(standalone.config),
          { proxyHost: ProxyHost.fromPartial(host({ name: "beside-l4", domains: ["beside.hostile.test"] })) },
          standalone.adminToken,
        );
        await standalone.waitServes("beside.hostile.test", /upstream=H/);
        const st = await standalone.waitInSync();
        assert.ok(
          st.warnings.some((w) => /L4 proxy host not served: Caddy refused/.test(w)),
          `warnings: ${st.warnings.join(" | ")}`,
        );
      } finally {
        squatter.close();
      }
    });
  });

  // --- 2. upstreams that point at this instance --------------------------------------------------

  describe("an upstream that points at this instance's Caddy admin API or an internal port is refused", () => {
    const targets = () => [
      ["Caddy's admin API", `127.0.0.1:${standalone.ports.caddyAdmin}`],
      ["Caddy's admin API as localhost", `localhost:${standalone.ports.caddyAdmin}`],
      ["the renderer", `127.0.0.1:${standalone.ports.renderer}`],
      ["the public API", `[::1]:${standalone.ports.api}`],
      ["the dispatcher", `127.0.0.2:${standalone.ports.dispatcher}`],
    ];
    for (let i = 0; i < 5; i++) {
      it(`proxy host and L4 host upstream #${i}`, async () => {
        const [what, target] = targets()[i]!;
        await expectRefused(
          standalone,
          "/cpm.config.v1.ConfigService/CreateProxyHost",
          enc(CreateProxyHostRequest, { proxyHost: host({ upstreams: [target!] }) }),
          status.INVALID_ARGUMENT,
          "proxy_host.upstreams[0]",
        );
        await expectRefused(
          standalone,
          "/cpm.config.v1.ConfigService/CreateL4ProxyHost",
          enc(CreateL4ProxyHostRequest, { l4ProxyHost: l4({ upstreams: [target!] }) }),
          status.INVALID_ARGUMENT,
          "l4_proxy_host.upstreams[0]",
        );
        assert.ok(what);
      });
    }
  });

  describe("an L4 listener on this instance's own HTTP, HTTPS or admin port is refused at write time", () => {
    const cases = () =>
      [
        ["HTTP port", L4Protocol.L4_PROTOCOL_TCP, `:${standalone.ports.http}`],
        ["HTTPS port", L4Protocol.L4_PROTOCOL_TCP, `127.0.0.1:${standalone.ports.https}`],
        ["HTTP/3", L4Protocol.L4_PROTOCOL_UDP, `:${standalone.ports.https}`],
        ["admin API", L4Protocol.L4_PROTOCOL_TCP, `127.0.0.1:${standalone.ports.caddyAdmin}`],
      ] as const;
    for (let i = 0; i < 4; i++) {
      it(`listener #${i}`, async () => {
        const [what, protocol, listenAddress] = cases()[i]!;
        await expectRefused(
          standalone,
          "/cpm.config.v1.ConfigService/CreateL4ProxyHost",
          enc(CreateL4ProxyHostRequest, { l4ProxyHost: l4({ protocol, listenAddress }) }),
          status.INVALID_ARGUMENT,
          "l4_proxy_host.listen_address",
        );
        assert.ok(what);
      });
    }
  });

  // --- 3. authentication and authorization, per method --------------------------------------------

  describe("every method of every service: no token, a wrong token, the wrong principal", () => {
    const services = [
      { name: "ConfigService", def: ConfigServiceService, port: () => standalone.ports.api },
      { name: "AccountService", def: AccountServiceService, port: () => standalone.ports.api },
      { name: "CaddyRenderer", def: CaddyRendererService, port: () => standalone.ports.renderer },
      { name: "SyncDispatcher", def: SyncDispatcherService, port: () => master.ports.dispatcher },
    ];
    for (const svc of services) {
      for (const [name, m] of Object.entries(
        svc.def as Record<string, { path: string; requestStream: boolean; responseStream: boolean }>,
      )) {
        if (m.requestStream) continue;
        for (const [who, token] of [
          ["no token", undefined],
          ["a wrong token", "cpm_not-a-real-token-0123456789abcdef"],
          ["an empty bearer", ""],
        ] as const) {
          it(`${svc.name}.${name} with ${who} -> UNAUTHENTICATED`, async () => {
            const inst = svc.name === "SyncDispatcher" ? master : standalone;
            const r = await unmoved(inst, () =>
              callRaw(`127.0.0.1:${svc.port()}`, m.path, Buffer.alloc(0), { token, serverStream: m.responseStream }),
            );
            assert.equal(r.code, status.UNAUTHENTICATED, `${m.path}: ${status[r.code]} ${r.details}`);
          });
        }
      }
    }

    const ADMIN_ONLY =
      /\/(Create|Update|Delete|Revoke)[A-Za-z0-9]*$|\/(UpdateSettings|ImportConfig)$|\/GetSnapshot$|\/ApplySnapshot$|\/(GetUser|ListUsers|ListApiTokens)$|\/LoadSnapshot$|\/TriggerFullSync$/;
    for (const svc of services) {
      for (const [name, m] of Object.entries(
        svc.def as Record<string, { path: string; requestStream: boolean; responseStream: boolean }>,
      )) {
        if (m.requestStream || !ADMIN_ONLY.test(m.path)) continue;
        it(`${svc.name}.${name} with a viewer token -> PERMISSION_DENIED`, async () => {
          if (svc.name === "SyncDispatcher") return; // the master has its own accounts; covered below
          const r = await unmoved(standalone, () =>
            callRaw(`127.0.0.1:${svc.port()}`, m.path, Buffer.alloc(0), {
              token: viewerToken,
              serverStream: m.responseStream,
            }),
          );
          assert.equal(r.code, status.PERMISSION_DENIED, `${m.path}: ${status[r.code]} ${r.details}`);
        });
      }
    }

    // The internal token is for the services of one instance talking to each other, on their own
    // listener: the public API does not know it at all.
    const PUBLIC = [...Object.values(ConfigServiceService), ...Object.values(AccountServiceService)].filter(
      (m) => !/\/(GetSnapshot|WatchConfig|GetInstanceInfo|ApplySnapshot|RecordCertificateIssuance)$/.test(m.path),
    );
    for (const m of PUBLIC) {
      it(
        `${m.path} with the internal token -> UNAUTHENTICATED`,
        { skip: !SPLIT && "one process: no internal token, no internal listener" },
        async () => {
          const r = await unmoved(standalone, () =>
            callRaw(api(standalone), m.path, Buffer.alloc(0), { token: internalToken, serverStream: m.responseStream }),
          );
          assert.equal(r.code, status.UNAUTHENTICATED, `${m.path}: ${status[r.code]} ${r.details}`);
        },
      );
    }

    for (const m of PUBLIC) {
      it(
        `${m.path} on the internal listener with the internal token -> refused`,
        { skip: !SPLIT && "one process: no internal token, no internal listener" },
        async () => {
          const r = await unmoved(standalone, () =>
            callRaw(`127.0.0.1:${standalone.ports.configInternal}`, m.path, Buffer.alloc(0), {
              token: internalToken,
              serverStream: m.responseStream,
            }),
          );
          assert.ok(
            [status.UNIMPLEMENTED, status.PERMISSION_DENIED].includes(r.code),
            `${m.path}: ${status[r.code]} ${r.details}`,
          );
        },
      );
    }

    it(
      "the internal listener refuses API tokens, even the admin's",
      { skip: !SPLIT && "one process: no internal token, no internal listener" },
      async () => {
        for (const p of [
          ConfigServiceService.getSnapshot.path,
          ConfigServiceService.applySnapshot.path,
          ConfigServiceService.getInstanceInfo.path,
        ]) {
          const r = await unmoved(standalone, () =>
            callRaw(`127.0.0.1:${standalone.ports.configInternal}`, p, Buffer.alloc(0), {
              token: standalone.adminToken,
            }),
          );
          assert.equal(r.code, status.UNAUTHENTICATED, `${p}: ${status[r.code]} ${r.details}`);
        }
      },
    );

    it("in one process, nothing listens on the internal listener's address", { skip: SPLIT }, async () => {
      for (const inst of [standalone, slave, master]) {
        const r = await callRaw(
          `127.0.0.1:${inst.ports.configInternal}`,
          ConfigServiceService.getInstanceInfo.path,
          Buffer.alloc(0),
          {
            token: inst.adminToken,
          },
        );
        assert.equal(r.code, status.UNAVAILABLE, `${inst.opts.name}: ${status[r.code]} ${r.details}`);
      }
    });

    it("an API token (even admin) cannot call the renderer's LoadSnapshot", async () => {
      const r = await unmoved(standalone, () =>
        callRaw(`127.0.0.1:${standalone.ports.renderer}`, CaddyRendererService.loadSnapshot.path, Buffer.alloc(0), {
          token: standalone.adminToken,
        }),
      );
      assert.equal(r.code, status.PERMISSION_DENIED, r.details);
    });

    it(
      "one instance's internal token is worth nothing on another",
      { skip: !SPLIT && "one process: no internal token, no internal listener" },
      async () => {
        const r = await unmoved(slave, () =>
          callRaw(`127.0.0.1:${slave.ports.renderer}`, CaddyRendererService.loadSnapshot.path, Buffer.alloc(0), {
            token: internalToken,
          }),
        );
        assert.equal(r.code, status.UNAUTHENTICATED, r.details);
        assert.notEqual(internalToken, slaveInternalToken);
      },
    );

    it("the sync receiver refuses a missing or wrong sync token, and an API token", async () => {
      for (const token of [undefined, "wrong-sync-token-0123456789", slave.adminToken]) {
        await unmoved(slave, async () => {
          const err = await pushToSlave(snapshot(slaveVersion + 1, baseContent()), token ?? "").then(
            () => undefined,
            (e: { code: number }) => e,
          );
          assert.equal(err?.code, status.UNAUTHENTICATED);
        });
        const r = await callRaw(
          `localhost:${slave.ports.sync}`,
          SyncReceiverService.getReceiverStatus.path,
          Buffer.alloc(0),
          {
            token,
            creds: channelCredentials({ tls: true, caFile: pki.caCert }),
          },
        );
        assert.equal(r.code, status.UNAUTHENTICATED, r.details);
      }
    });

    it("revoking a token stops it at once on every service (no grace period)", async () => {
      const t = await unary(
        standalone.account.createApiToken.bind(standalone.account),
        { name: "short-lived", role: Role.ROLE_ADMIN, userId: "", expiresAt: undefined },
        standalone.adminToken,
      );
      const call = (port: number, p: string) => callRaw(`127.0.0.1:${port}`, p, Buffer.alloc(0), { token: t.secret });
      assert.equal((await call(standalone.ports.renderer, CaddyRendererService.getRenderStatus.path)).code, status.OK);
      assert.equal((await call(standalone.ports.api, ConfigServiceService.listProxyHosts.path)).code, status.OK);
      await unary(
        standalone.account.revokeApiToken.bind(standalone.account),
        { id: t.apiToken!.id },
        standalone.adminToken,
      );
      assert.equal(
        (await call(standalone.ports.renderer, CaddyRendererService.getRenderStatus.path)).code,
        status.UNAUTHENTICATED,
      );
      assert.equal(
        (await call(standalone.ports.api, ConfigServiceService.listProxyHosts.path)).code,
        status.UNAUTHENTICATED,
      );
    });

    it("disabling a user stops its tokens at once on the renderer and the dispatcher", async () => {
      const u = await unary(
        master.account.createUser.bind(master.account),
        CreateUserRequest.fromPartial({ username: "ops2", role: Role.ROLE_ADMIN }),
        master.adminToken,
      );
      const t = await unary(
        master.account.createApiToken.bind(master.account),
        { name: "ops2", role: Role.ROLE_ADMIN, userId: u.user!.id, expiresAt: undefined },
        master.adminToken,
      );
      const call = (port: number, p: string) => callRaw(`127.0.0.1:${port}`, p, Buffer.alloc(0), { token: t.secret });
      assert.equal((await call(master.ports.dispatcher, SyncDispatcherService.getSyncStatus.path)).code, status.OK);
      assert.equal((await call(master.ports.renderer, CaddyRendererService.getRenderStatus.path)).code, status.OK);
      await unary(
        master.account.updateUser.bind(master.account),
        UpdateUserRequest.fromPartial({ id: u.user!.id, role: Role.ROLE_ADMIN, disabled: true }),
        master.adminToken,
      );
      assert.equal(
        (await call(master.ports.dispatcher, SyncDispatcherService.getSyncStatus.path)).code,
        status.UNAUTHENTICATED,
      );
      assert.equal(
        (await call(master.ports.renderer, CaddyRendererService.getRenderStatus.path)).code,
        status.UNAUTHENTICATED,
      );
    });

    it("the bootstrap admin token: no part of it is stored or listed", async () => {
      const list = await unary(standalone.account.listApiTokens.bind(standalone.account), {}, standalone.adminToken);
      const text = JSON.stringify(list);
      const secret = standalone.adminToken;
      for (let i = 0; i + 6 <= secret.length; i++)
        assert.ok(!text.includes(secret.slice(i, i + 6)), "ListApiTokens shows no part of the bootstrap token");
      const dbFile = path.join(standalone.dataDir, "cpm.db");
      const db = readFileSync(dbFile).toString("latin1");
      for (let i = 0; i + 6 <= secret.length; i++)
        assert.ok(!db.includes(secret.slice(i, i + 6)), "the database holds no part of the bootstrap token");
    });

    it("the last two admins demoting each other at once leave one admin", async () => {
      const a = await unary(
        master.account.createUser.bind(master.account),
        CreateUserRequest.fromPartial({ username: "adm-a", role: Role.ROLE_ADMIN }),
        master.adminToken,
      );
      const b = await unary(
        master.account.createUser.bind(master.account),
        CreateUserRequest.fromPartial({ username: "adm-b", role: Role.ROLE_ADMIN }),
        master.adminToken,
      );
      const tok = async (id: string) =>
        (
          await unary(
            master.account.createApiToken.bind(master.account),
            { name: id, role: Role.ROLE_ADMIN, userId: id, expiresAt: undefined },
            master.adminToken,
          )
        ).secret;
      const ta = await tok(a.user!.id);
      const tb = await tok(b.user!.id);
      // Leave only adm-a and adm-b as admins: demote the bootstrap "admin" user (adm-a does it).
      const users = await unary(master.account.listUsers.bind(master.account), {}, ta);
      for (const u of users.users) {
        if (u.role === Role.ROLE_ADMIN && u.id !== a.user!.id && u.id !== b.user!.id && !u.disabled) {
          await unary(
            master.account.updateUser.bind(master.account),
            UpdateUserRequest.fromPartial({ id: u.id, role: Role.ROLE_VIEWER }),
            ta,
          );
        }
      }
      const demote = (token: string, id: string) =>
        unary(
          master.account.updateUser.bind(master.account),
          UpdateUserRequest.fromPartial({ id, role: Role.ROLE_VIEWER }),
          token,
        ).then(
          () => "ok",
          (e: { code: number }) => e.code,
        );
      const results = await Promise.all([demote(ta, b.user!.id), demote(tb, a.user!.id)]);
      assert.ok(
        results.includes(status.FAILED_PRECONDITION) || results.includes(status.PERMISSION_DENIED),
        `one demotion is refused: ${results.join(", ")}`,
      );
      const survivor = results[0] === "ok" ? ta : tb;
      const after = await unary(master.account.listUsers.bind(master.account), {}, survivor);
      assert.ok(
        after.users.some((u) => u.role === Role.ROLE_ADMIN && !u.disabled),
        "an enabled admin remains",
      );
      // Give the bootstrap user back its role for the tests that follow.
      const boot = after.users.find((u) => u.username === "admin")!;
      await unary(
        master.account.updateUser.bind(master.account),
        UpdateUserRequest.fromPartial({ id: boot.id, role: Role.ROLE_ADMIN }),
        survivor,
      );
    });
  });

  // --- 4. hostile snapshots to a real TLS receiver ------------------------------------------------

  describe("hostile snapshots from a master holding the sync token", () => {
    type Content = ReturnType<typeof baseContent>;
    const mutate = (f: (c: Content) => void) => {
      const c = baseContent();
      f(c);
      return c;
    };
    const invalid: [string, () => Snapshot, string][] = [
      [
        "acme_email with {env.CPM_ADMIN_TOKEN}",
        () =>
          snapshot(
            ++slaveVersion,
            mutate(
              (c) =>
                (c.settings.general = {
                  primaryDomain: "",
                  acmeEmail: "{env.CPM_INTERNAL_TOKEN}.{env.CPM_ADMIN_TOKEN}@example.com",
                }),
            ),
          ),
        "snapshot.settings.general.acme_email",
      ],
      [
        "acme_email {env.UNSET}@example.com",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => (c.settings.general = { primaryDomain: "", acmeEmail: "{env.UNSET}@example.com" })),
          ),
        "snapshot.settings.general.acme_email",
      ],
      [
        "acme.ca_url with a placeholder",
        () =>
          snapshot(
            ++slaveVersion,
            mutate(
              (c) => (c.settings.acme = { caUrl: "https://acme.hostile.test/{env.CPM_ADMIN_TOKEN}", caRootPem: "" }),
            ),
          ),
        "snapshot.settings.acme.ca_url",
      ],
      [
        "username {env.CPM_ADMIN_TOKEN}",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => (c.accessLists[0]!.users[0]!.username = "{env.CPM_ADMIN_TOKEN}")),
          ),
        "snapshot.access_lists[0].users[0].username",
      ],
      [
        "username {http.request.header.X-User}",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => (c.accessLists[0]!.users[0]!.username = "{http.request.header.X-User}")),
          ),
        "snapshot.access_lists[0].users[0].username",
      ],
      [
        "a clear-text password in a stored access list",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => (c.accessLists[0]!.users[0]!.password = "hunter2hunter2")),
          ),
        "snapshot.access_lists[0].users[0].password",
      ],
      [
        "a domain with a zone id",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => (c.proxyHosts[0]!.domains = ["fe80::1%eth0"])),
          ),
        "snapshot.proxy_hosts[0].domains[0]",
      ],
      [
        "a name with a NUL",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => (c.proxyHosts[0]!.name = "a\u0000b")),
          ),
        "snapshot.proxy_hosts[0].name",
      ],
      [
        "an upstream host placeholder",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => (c.proxyHosts[0]!.upstreams = ["{env.HOST}:80"])),
          ),
        "snapshot.proxy_hosts[0].upstreams[0]",
      ],
      [
        "two proxy hosts with the same name",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => c.proxyHosts.push({ ...c.proxyHosts[0]!, id: "ph-2", domains: ["other.hostile.test"] })),
          ),
        "snapshot.proxy_hosts[1].name",
      ],
      [
        "two certificates with the same name",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => c.certificates.push({ ...c.certificates[0]!, id: "c-2" })),
          ),
        "snapshot.certificates[1].name",
      ],
      [
        "two access lists with the same name",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => c.accessLists.push({ ...c.accessLists[0]!, id: "acl-2" })),
          ),
        "snapshot.access_lists[1].name",
      ],
      [
        "two L4 hosts with the same name",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => {
              const h = L4ProxyHost.fromPartial({
                id: "l4-1",
                name: "db",
                listenAddress: "127.0.0.1:39001",
                upstreams: ["127.0.0.1:5432"],
                enabled: true,
              });
              c.l4ProxyHosts.push(h, { ...h, id: "l4-2", listenAddress: "127.0.0.1:39002" });
            }),
          ),
        "snapshot.l4_proxy_hosts[1].name",
      ],
      [
        "one domain on two hosts",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => c.proxyHosts.push({ ...c.proxyHosts[0]!, id: "ph-2", name: "other" })),
          ),
        "snapshot.proxy_hosts[1].domains[0]",
      ],
      [
        "two resources with one id",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => c.proxyHosts.push({ ...c.proxyHosts[0]!, name: "other", domains: ["other.hostile.test"] })),
          ),
        "snapshot.proxy_hosts[1].id",
      ],
      [
        "a reference to a missing certificate",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => (c.proxyHosts[0]!.certificateId = "missing")),
          ),
        "snapshot.proxy_hosts[0].certificate_id",
      ],
      [
        "a reference to a missing access list",
        () =>
          snapshot(
            ++slaveVersion,
            mutate((c) => (c.proxyHosts[0]!.accessListId = "missing")),
          ),
        "snapshot.proxy_hosts[0].access_list_id",
      ],
      [
        "a content hash that does not match",
        () => snapshot(++slaveVersion, baseContent(), { contentSha256: "0".repeat(64) }),
        "snapshot.content_sha256",
      ],
      [
        "an unknown schema version",
        () => snapshot(++slaveVersion, baseContent(), { schemaVersion: 99 }),
        "snapshot.schema_version",
      ],
      [
        "no master instance id",
        () => snapshot(++slaveVersion, baseContent(), { masterInstanceId: "" }),
        "snapshot.master_instance_id",
      ],
      ["version 0", () => snapshot(0, baseContent()), "snapshot.version"],
      ["a negative version", () => snapshot(-5, baseContent()), "snapshot.version"],
    ];
    for (const [what, make, field] of invalid) {
      it(`${what} -> NACK INVALID_SNAPSHOT naming ${field}, nothing preloaded`, async () => {
        const r = await unmoved(slave, () => pushToSlave(make()));
        assert.ok(r.nack, `refused: ${JSON.stringify(r)}`);
        assert.equal(r.nack.code, NackCode.NACK_CODE_INVALID_SNAPSHOT, r.nack.reason);
        assert.ok(r.nack.reason.startsWith(field), `names ${field}: ${r.nack.reason}`);
        assert.equal(r.nack.appliedVersion, 10, "the slave still runs its last good version");
        assert.equal(r.nack.retryable, false, "a retry cannot help");
      });
    }

    it("an older version of the same master -> NACK STALE_VERSION", async () => {
      const r = await unmoved(slave, () => pushToSlave(snapshot(3, baseContent())));
      assert.equal(r.nack?.code, NackCode.NACK_CODE_STALE_VERSION, JSON.stringify(r));
    });

    it("the slave still serves its last good configuration", async () => {
      await slave.waitServes("base.hostile.test", /upstream=H/);
      assert.equal(await slave.version(), 10);
    });
  });

  // --- 5. oversize and garbage on every port ---------------------------------------------------------

  describe("oversized and garbage traffic on every port", () => {
    const ports = () => [
      {
        name: "public API",
        url: `http://127.0.0.1:${standalone.ports.api}`,
        port: standalone.ports.api,
        path: ConfigServiceService.createProxyHost.path,
        token: standalone.adminToken,
        variable: "CPM_API_MAX_MESSAGE_BYTES",
        inst: standalone,
      },
      {
        name: "renderer",
        url: `http://127.0.0.1:${standalone.ports.renderer}`,
        port: standalone.ports.renderer,
        path: CaddyRendererService.render.path,
        token: standalone.adminToken,
        variable: "CPM_SYNC_MAX_MESSAGE_BYTES",
        inst: standalone,
      },
      {
        name: "dispatcher",
        url: `http://127.0.0.1:${master.ports.dispatcher}`,
        port: master.ports.dispatcher,
        path: SyncDispatcherService.triggerFullSync.path,
        token: master.adminToken,
        variable: "CPM_API_MAX_MESSAGE_BYTES",
        inst: master,
      },
      {
        name: "sync receiver (TLS)",
        url: `https://localhost:${slave.ports.sync}`,
        port: slave.ports.sync,
        path: SyncReceiverService.sync.path,
        token: SYNC_TOKEN,
        variable: "CPM_SYNC_MAX_MESSAGE_BYTES",
        inst: slave,
        tls: true,
      },
    ];
    const ca = () => readFileSync(pki.caCert);
    for (let i = 0; i < 4; i++) {
      it(`port #${i}: a 70 MB anonymous message is refused before it is read whole`, async () => {
        const p = ports()[i]!;
        const r = await unmoved(p.inst, () =>
          sendAnnouncedMessage(p.url, p.path, 70 * 1024 * 1024, { ca: p.tls ? ca() : undefined }),
        );
        assert.equal(r.status, status.UNAUTHENTICATED, `${p.name}: ${r.status} ${r.message}`);
        assert.ok(r.bytesWritten < 70 * 1024 * 1024, `${p.name}: answered after ${r.bytesWritten} bytes`);
      });
      it(`port #${i}: a 70 MB authenticated message is refused before it is read whole, naming the limit`, async () => {
        const p = ports()[i]!;
        const r = await unmoved(p.inst, () =>
          sendAnnouncedMessage(p.url, p.path, 70 * 1024 * 1024, { ca: p.tls ? ca() : undefined, token: p.token }),
        );
        assert.equal(r.status, status.RESOURCE_EXHAUSTED, `${p.name}: ${r.status} ${r.message}`);
        assert.ok(r.bytesWritten < 70 * 1024 * 1024, `${p.name}: answered after ${r.bytesWritten} bytes`);
        assert.match(r.message, new RegExp(p.variable), `${p.name}: the status names ${p.variable}`);
      });
      it(`port #${i}: a compressed frame without an encoding is refused`, async () => {
        const p = ports()[i]!;
        const r = await unmoved(p.inst, () =>
          sendAnnouncedMessage(p.url, p.path, 16, {
            ca: p.tls ? ca() : undefined,
            token: p.token,
            compressedFlag: true,
          }),
        );
        assert.ok(
          [status.INTERNAL, status.UNIMPLEMENTED, status.INVALID_ARGUMENT].includes(r.status),
          `${p.name}: ${r.status} ${r.message}`,
        );
      });
      for (const [what, bytes, closes] of [
        ["random bytes", Buffer.from(Array.from({ length: 4096 }, (_, k) => (k * 7919) % 256)), true],
        ["an HTTP/1.1 request", Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), true],
        // An incomplete preface may be waited for; it must still not harm the port.
        ["a truncated HTTP/2 preface", Buffer.from("PRI * HTTP/2.0\r\n\r\nSM"), false],
      ] as const) {
        it(`port #${i}: ${what}${closes ? " close the connection and" : ""} the port keeps serving`, async () => {
          const p = ports()[i]!;
          await unmoved(p.inst, async () => {
            const r = await sendGarbage(p.port, bytes, p.tls ? { tls: { ca: ca() } } : {});
            if (closes) assert.ok(r.closed, `${p.name}: the server closes a connection that speaks ${what}`);
          });
          // Health is open (it tells nothing but SERVING) and the port still answers.
          const h = await callRaw(
            p.tls ? `localhost:${p.port}` : `127.0.0.1:${p.port}`,
            "/grpc.health.v1.Health/Check",
            Buffer.alloc(0),
            {
              creds: p.tls ? channelCredentials({ tls: true, caFile: pki.caCert }) : undefined,
            },
          );
          assert.equal(h.code, status.OK, `${p.name}: health ${status[h.code]} ${h.details}`);
        });
      }
    }

    it("server reflection on the sync port needs the sync token", async () => {
      const r = await callRaw(
        `localhost:${slave.ports.sync}`,
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        Buffer.alloc(0),
        {
          creds: channelCredentials({ tls: true, caFile: pki.caCert }),
          serverStream: true,
        },
      );
      assert.equal(r.code, status.UNAUTHENTICATED, r.details);
    });
  });

  // --- 6. secrets ------------------------------------------------------------------------------------------

  describe("secrets stay in the instance", () => {
    it("Caddy runs with a minimal environment: no CPM_*, INSTANCE_* or DATABASE_URL", async () => {
      for (const inst of [standalone, slave, master]) {
        const pid = caddyPid(inst);
        const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
        const names = env.map((e) => e.slice(0, e.indexOf("=")));
        const leaked = names.filter((n) => /^(CPM_|INSTANCE_|DATABASE_URL)/.test(n));
        assert.deepEqual(leaked, [], `${inst.opts.name}: Caddy's environment holds ${leaked.join(", ")}`);
        assert.ok(!env.some((e) => e.includes(inst.adminToken)), "no token in Caddy's environment");
      }
    });

    it("no token or private key appears in any service's log", async () => {
      const secrets = [
        SYNC_TOKEN,
        ...(SPLIT ? [internalToken, slaveInternalToken] : []),
        viewerToken,
        standalone.adminToken,
        slave.adminToken,
        master.adminToken,
      ];
      for (const inst of [standalone, slave, master]) {
        const log = inst.log();
        assert.ok(log.length > 0, `${inst.opts.name} wrote a log`);
        for (const s of secrets)
          assert.ok(!log.includes(s), `${inst.opts.name}'s log holds a secret (${s.slice(0, 4)}...)`);
        assert.ok(!/PRIVATE KEY/.test(log), `${inst.opts.name}'s log holds a private key`);
      }
    });
  });
});

/** The pid of the Caddy process the instance's launcher started (a child of the launcher). */
function caddyPid(inst: Instance): number {
  const launcher = inst.child!.pid!;
  for (const d of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
      if (ppid === launcher && /caddy\0run/.test(cmd)) return Number(d);
    } catch {
      /* gone */
    }
  }
  throw new Error(`${inst.opts.name}: no Caddy child of the launcher (pid ${launcher})`);
}
