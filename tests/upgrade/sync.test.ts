// A fleet of mixed releases: the previous release (built from git, see
// scripts/previous-release.env) and this one sync both ways, a change an older slave cannot
// serve is withheld from it alone, and nodes are upgraded in place one at a time.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  AccessList,
  Certificate,
  CertificateType,
  Compatibility,
  CompatibilityIssueCode,
  L4ProxyHost,
  ProxyHost,
  Role,
  Settings,
  type SlaveStatus,
} from "@cpm/proto";
import { RELEASE } from "@cpm/core";
import { unary } from "@cpm/grpc-kit";
import { Instance } from "../support/instance.ts";
import { serveHttp, type TestServer } from "../support/net.ts";
import { previousRelease, type PreviousRelease } from "../support/previous-release.ts";
import { makePki, peerCertificate, selfSigned, type TestPki } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";

const TOKEN_OLD = "old-slave-sync-token-0123456789";
const TOKEN_NEW = "new-slave-sync-token-9876543210";
/** A text body well above Caddy's 512-byte floor for compressing. */
const BODY = `${"compressible text line\n".repeat(400)}`;

/** GET through an instance's Caddy asking for gzip: the status, Content-Encoding and the raw body's size. */
function getGzip(inst: Instance, host: string): Promise<{ status: number; encoding: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port: inst.ports.http,
        path: "/",
        headers: { Host: host, "Accept-Encoding": "gzip" },
        timeout: 5000,
      },
      (res) => {
        let bytes = 0;
        res.on("data", (c: Buffer) => (bytes += c.length));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, encoding: String(res.headers["content-encoding"] ?? ""), bytes }),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });

/** Resources of every synced kind, created through `master`'s API; the host "web" uses them all. */
async function createEveryKind(master: Instance, upstream: number, pem: { cert: string; key: string }) {
  const t = master.adminToken;
  const acl = await unary(
    master.config.createAccessList.bind(master.config),
    {
      accessList: AccessList.fromPartial({
        name: "office",
        allow: ["10.0.0.0/8"],
        users: [{ username: "ops", password: "a long passphrase" }],
      }),
    },
    t,
  );
  await unary(
    master.config.createL4ProxyHost.bind(master.config),
    { l4ProxyHost: L4ProxyHost.fromPartial({ name: "pg", listenAddress: ":15433", upstreams: ["10.0.0.9:5432"] }) },
    t,
  );
  await unary(
    master.config.updateSettings.bind(master.config),
    {
      settings: Settings.fromPartial({
        general: { primaryDomain: "example.com", acmeEmail: "ops@example.com" },
        acme: {},
        http: { upstreamDialTimeoutSeconds: 7 },
      }),
    },
    t,
  );
  const cert = await unary(
    master.config.createCertificate.bind(master.config),
    {
      certificate: Certificate.fromPartial({
        name: "web-cert",
        type: CertificateType.CERTIFICATE_TYPE_IMPORTED,
        certificatePem: pem.cert,
        privateKeyPem: pem.key,
      }),
    },
    t,
  );
  const gated = await unary(
    master.config.createProxyHost.bind(master.config),
    {
      proxyHost: ProxyHost.fromPartial({
        name: "gated",
        domains: ["gated.upgrade.test"],
        upstreams: [`127.0.0.1:${upstream}`],
        accessListId: acl.accessList!.id,
      }),
    },
    t,
  );
  const web = await unary(
    master.config.createProxyHost.bind(master.config),
    {
      proxyHost: ProxyHost.fromPartial({
        name: "web",
        domains: ["web.upgrade.test"],
        upstreams: [`127.0.0.1:${upstream}`],
        certificateId: cert.certificate!.id,
      }),
    },
    t,
  );
  return { web: web.proxyHost!, cert: cert.certificate!, version: Math.max(gated.configVersion, web.configVersion) };
}

/** What a slave serves and holds of createEveryKind's resources. */
async function assertServesEveryKind(slave: Instance, certFingerprint: string) {
  await slave.waitServes("web.upgrade.test", 200);
  await slave.waitServes("gated.upgrade.test", 401);
  const ok = await slave.get("gated.upgrade.test", "/", {
    Authorization: `Basic ${Buffer.from("ops:a long passphrase").toString("base64")}`,
  });
  assert.equal(ok.status, 200, "the synced access list's user is let in");
  const l4 = await unary(slave.config.listL4ProxyHosts.bind(slave.config), {}, slave.adminToken);
  assert.deepEqual(
    l4.l4ProxyHosts.map((h) => [h.name, h.listenAddress]),
    [["pg", ":15433"]],
  );
  const settings = await unary(slave.config.getSettings.bind(slave.config), {}, slave.adminToken);
  assert.equal(settings.settings!.http!.upstreamDialTimeoutSeconds, 7);
  const peer = await waitFor(
    () => peerCertificate(slave.ports.https, "web.upgrade.test"),
    `${slave.opts.name}: the TLS handshake for web.upgrade.test`,
    30_000,
    200,
  );
  assert.equal(createHash("sha256").update(peer.raw).digest("hex"), certFingerprint);
}

/** A slave token of its own on `slave` (users and API tokens are never synced). */
async function createLocalToken(slave: Instance): Promise<string> {
  const r = await unary(
    slave.account.createApiToken.bind(slave.account),
    { name: "local-ops", role: Role.ROLE_VIEWER, expiresAt: undefined, userId: "" },
    slave.adminToken,
  );
  return r.secret;
}

describe("a fleet across releases: a current master, a previous-release slave and a current slave", () => {
  let prev: PreviousRelease;
  let pki: TestPki;
  let dir: string;
  let up: TestServer;
  let master: Instance;
  let oldSlave: Instance;
  let newSlave: Instance;
  let pem: { cert: string; key: string };
  let created: Awaited<ReturnType<typeof createEveryKind>>;

  const slaveEnv = (token: string) => ({
    INSTANCE_SYNC_TOKEN: token,
    CPM_SYNC_TLS_CERT: pki.cert,
    CPM_SYNC_TLS_KEY: pki.key,
  });
  const statusOf = async (name: string): Promise<SlaveStatus> =>
    (await unary(master.dispatcher.getSyncStatus.bind(master.dispatcher), {}, master.adminToken)).slaves.find(
      (s) => s.name === name,
    )!;

  before(async () => {
    prev = previousRelease();
    dir = mkdtempSync(path.join(os.tmpdir(), "cpm-upgrade-"));
    pki = makePki(dir);
    pem = selfSigned(dir, "web", ["DNS:web.upgrade.test"]);
    up = await serveHttp((_req, res) => {
      res.setHeader("content-type", "text/plain");
      res.end(BODY);
    });
    oldSlave = await Instance.start({ name: "old-slave", mode: "slave", root: prev.root, env: slaveEnv(TOKEN_OLD) });
    newSlave = await Instance.start({ name: "new-slave", mode: "slave", env: slaveEnv(TOKEN_NEW) });
    master = await Instance.start({
      name: "master",
      mode: "master",
      env: {
        INSTANCE_SLAVES: JSON.stringify([
          { name: "old", url: `https://localhost:${oldSlave.ports.sync}`, token: TOKEN_OLD },
          { name: "new", url: `https://localhost:${newSlave.ports.sync}`, token: TOKEN_NEW },
        ]),
        CPM_SYNC_TLS_CA: pki.caCert,
      },
    });
  });

  after(async () => {
    for (const i of [master, oldSlave, newSlave]) await i?.stop();
    await up?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("every synced kind reaches the previous-release slave, sent in the schema it reads", async () => {
    created = await createEveryKind(master, up.port, pem);
    for (const name of ["old", "new"])
      await waitFor(
        async () => ((await statusOf(name)).ackedVersion === created.version ? true : undefined),
        `${name} acked v${created.version}`,
        30_000,
      );
    for (const s of [oldSlave, newSlave]) await assertServesEveryKind(s, created.cert.fingerprintSha256);
    const old = await statusOf("old");
    assert.equal(old.release, prev.version, "a slave that announces nothing is the previous release");
    assert.deepEqual(old.snapshotSchemas, [2]);
    assert.equal(old.schemaVersion, 2);
    assert.equal(old.compatibility, Compatibility.COMPATIBILITY_OK);
    const cur = await statusOf("new");
    assert.equal(cur.release, RELEASE);
    assert.equal(cur.schemaVersion, 3);
    assert.equal(cur.compatibility, Compatibility.COMPATIBILITY_OK);
  });

  it("a change the previous release cannot serve is withheld from that slave alone, naming the host", async () => {
    const before = await oldSlave.version();
    const r = await unary(
      master.config.updateProxyHost.bind(master.config),
      { proxyHost: { ...created.web, compression: true } },
      master.adminToken,
    );
    created.web = r.proxyHost!;
    // The current slave serves it: compressed.
    await waitFor(
      async () => ((await getGzip(newSlave, "web.upgrade.test")).encoding === "gzip" ? true : undefined),
      "the current slave compresses web.upgrade.test",
      30_000,
    );
    const old = await waitFor(
      async () => {
        const s = await statusOf("old");
        return s.compatibility === Compatibility.COMPATIBILITY_INCOMPATIBLE ? s : undefined;
      },
      "the old slave INCOMPATIBLE",
      30_000,
    );
    assert.deepEqual(
      old.compatibilityIssues.map((i) => [i.code, i.capability, i.resources]),
      [
        [
          CompatibilityIssueCode.COMPATIBILITY_ISSUE_CODE_MISSING_CAPABILITY,
          "proxy_host.compression",
          [`proxy_host ${created.web.id} (web)`],
        ],
      ],
    );
    assert.equal(old.ackedVersion, before);
    assert.equal(old.lag, r.configVersion - before);
    assert.equal((await statusOf("new")).ackedVersion, r.configVersion);
    // The old slave keeps serving its last good configuration: the host, uncompressed.
    assert.equal(await oldSlave.version(), before);
    const served = await getGzip(oldSlave, "web.upgrade.test");
    assert.deepEqual([served.status, served.encoding], [200, ""]);
  });

  it("the previous-release slave upgraded in place keeps its data and serves the newest version within 1 s", async () => {
    const localToken = await createLocalToken(oldSlave);
    const want = await master.version();
    await oldSlave.stop();
    const upgraded = await Instance.prepare({
      name: "old-slave-upgraded",
      mode: "slave",
      dataDir: oldSlave.dataDir,
      ports: oldSlave.ports,
      adminToken: oldSlave.adminToken,
      env: slaveEnv(TOKEN_OLD),
    });
    oldSlave = upgraded;
    // Reachable: the receiver accepts connections. Served: its Caddy compresses the host, as the master's newest version says.
    let reachableAt = 0;
    let servedAt = 0;
    const watch = (async () => {
      const end = Date.now() + 60_000;
      while (Date.now() < end && !servedAt) {
        if (!reachableAt && (await accepts(upgraded.ports.sync))) reachableAt = Date.now();
        if (reachableAt) {
          const r = await getGzip(upgraded, "web.upgrade.test").catch(() => undefined);
          if (r?.encoding === "gzip") servedAt = Date.now();
        }
        await new Promise((res) => setTimeout(res, 10));
      }
    })();
    await upgraded.launch();
    await watch;
    assert.ok(reachableAt && servedAt, "the upgraded slave became reachable and served the newest version");
    const ms = servedAt - reachableAt;
    console.log(`upgraded slave: reachable -> serves v${want}: ${ms} ms`);
    assert.ok(ms <= 1_000, `served ${ms} ms after it was reachable`);
    assert.equal(await upgraded.version(), want);
    // Its own data is kept: the API token made on it before the upgrade still authenticates.
    const info = await unary(upgraded.config.getInstanceInfo.bind(upgraded.config), {}, localToken);
    assert.equal(info.release, RELEASE);
    const s = await waitFor(
      async () => {
        const st = await statusOf("old");
        return st.compatibility === Compatibility.COMPATIBILITY_OK && st.ackedVersion === want ? st : undefined;
      },
      "the upgraded slave ok again",
      30_000,
    );
    assert.equal(s.release, RELEASE);
    assert.equal(s.schemaVersion, 3);
    assert.deepEqual(s.compatibilityIssues, []);
  });
});

describe("a previous-release master with a current slave, then the master upgraded in place", () => {
  let prev: PreviousRelease;
  let pki: TestPki;
  let dir: string;
  let up: TestServer;
  let master: Instance;
  let slave: Instance;
  let pem: { cert: string; key: string };
  let created: Awaited<ReturnType<typeof createEveryKind>>;

  before(async () => {
    prev = previousRelease();
    dir = mkdtempSync(path.join(os.tmpdir(), "cpm-upgrade-m-"));
    pki = makePki(dir);
    pem = selfSigned(dir, "web", ["DNS:web.upgrade.test"]);
    up = await serveHttp((_req, res) => {
      res.setHeader("content-type", "text/plain");
      res.end(BODY);
    });
    slave = await Instance.start({
      name: "slave",
      mode: "slave",
      env: { INSTANCE_SYNC_TOKEN: TOKEN_NEW, CPM_SYNC_TLS_CERT: pki.cert, CPM_SYNC_TLS_KEY: pki.key },
    });
    master = await Instance.start({ name: "old-master", mode: "master", root: prev.root, env: masterEnv() });
  });

  const masterEnv = () => ({
    INSTANCE_SLAVES: JSON.stringify([{ name: "s", url: `https://localhost:${slave.ports.sync}`, token: TOKEN_NEW }]),
    CPM_SYNC_TLS_CA: pki.caCert,
  });

  after(async () => {
    for (const i of [master, slave]) await i?.stop();
    await up?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("every synced kind from the previous-release master is served by the current slave", async () => {
    created = await createEveryKind(master, up.port, pem);
    await waitFor(
      async () => ((await slave.version()) === created.version ? true : undefined),
      "the slave on the old master's version",
      30_000,
    );
    await assertServesEveryKind(slave, created.cert.fingerprintSha256);
    const rc = slave.receiverClient(pki.caCert);
    const side = await unary(rc.getReceiverStatus.bind(rc), {}, TOKEN_NEW);
    rc.close();
    assert.equal(side.masterRelease, "", "a master that announces nothing");
  });

  it("the master upgraded in place keeps every row, and its slave converges after it", async () => {
    const version = await master.version();
    const hosts = await unary(
      master.config.listProxyHosts.bind(master.config),
      { pageSize: 0, pageToken: "", query: "" },
      master.adminToken,
    );
    await master.stop();
    master = await Instance.start({
      name: "master-upgraded",
      mode: "master",
      dataDir: master.dataDir,
      ports: master.ports,
      adminToken: master.adminToken,
      env: masterEnv(),
    });
    assert.equal(await master.version(), version, "the version did not move");
    const after = await unary(
      master.config.listProxyHosts.bind(master.config),
      { pageSize: 0, pageToken: "", query: "" },
      master.adminToken,
    );
    assert.deepEqual(
      after.proxyHosts.map((h) => [h.id, h.name, h.domains, h.certificateId, h.accessListId]),
      hosts.proxyHosts.map((h) => [h.id, h.name, h.domains, h.certificateId, h.accessListId]),
    );
    // A change on the upgraded master, with the new feature: the current slave serves it.
    const web = after.proxyHosts.find((h) => h.name === "web")!;
    const r = await unary(
      master.config.updateProxyHost.bind(master.config),
      { proxyHost: { ...web, compression: true } },
      master.adminToken,
    );
    const s = await waitFor(
      async () => {
        const st = (await unary(master.dispatcher.getSyncStatus.bind(master.dispatcher), {}, master.adminToken))
          .slaves[0]!;
        return st.ackedVersion === r.configVersion ? st : undefined;
      },
      "the slave acked the upgraded master's change",
      30_000,
    );
    assert.equal(s.release, RELEASE);
    assert.equal(s.compatibility, Compatibility.COMPATIBILITY_OK);
    await waitFor(
      async () => ((await getGzip(slave, "web.upgrade.test")).encoding === "gzip" ? true : undefined),
      "the slave compresses web.upgrade.test",
      30_000,
    );
    const rc = slave.receiverClient(pki.caCert);
    const side = await unary(rc.getReceiverStatus.bind(rc), {}, TOKEN_NEW);
    rc.close();
    assert.equal(side.masterRelease, RELEASE);
  });
});
