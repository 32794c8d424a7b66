import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { status } from "@grpc/grpc-js";
import { AccessList, L4ProxyHost, ProxyHost, Role, Settings, SyncReceiverClient, type SlaveStatus } from "@cpm/proto";
import { channelCredentials, unary, withBearer } from "@cpm/grpc-kit";
import { FakeCaddyAdminProxy } from "../support/fake-caddy-admin-proxy.ts";
import { expectStatus } from "../support/grpc.ts";
import { allocatePorts, Instance, runLauncher } from "../support/instance.ts";
import { startUpstream } from "../support/net.ts";
import { makePki, type TestPki } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";

const TOKEN1 = "slave-one-sync-token-0123456789";
const TOKEN2 = "slave-two-sync-token-9876543210";

describe("instance sync: a master and two slaves over TLS, each with its own Caddy", () => {
  let pki: TestPki;
  let master: Instance;
  let slave1: Instance;
  let slave2: Instance;
  let fault: FakeCaddyAdminProxy;
  let up: Awaited<ReturnType<typeof startUpstream>>;
  const others: Instance[] = [];

  const slaveEnv = (token: string) => ({
    INSTANCE_SYNC_TOKEN: token,
    CPM_SYNC_TLS_CERT: pki.cert,
    CPM_SYNC_TLS_KEY: pki.key,
  });

  before(async () => {
    pki = makePki(mkdtempSync(path.join(os.tmpdir(), "cpm-pki-")));
    up = await startUpstream("U");
    slave1 = await Instance.start({ name: "slave1", mode: "slave", env: slaveEnv(TOKEN1) });
    // slave2's renderer talks to Caddy through a fault-injecting proxy; Caddy's admin API listens behind it.
    const ports2 = await allocatePorts();
    fault = new FakeCaddyAdminProxy(ports2.caddyAdmin);
    const proxyPort = await fault.start();
    slave2 = await Instance.start({
      name: "slave2",
      mode: "slave",
      ports: ports2,
      env: {
        ...slaveEnv(TOKEN2),
        CADDY_API_URL: `http://127.0.0.1:${proxyPort}`,
        CPM_CADDY_ADMIN_LISTEN: `127.0.0.1:${ports2.caddyAdmin}`,
      },
    });
    master = await Instance.start({
      name: "master",
      mode: "master",
      env: {
        INSTANCE_SLAVES: JSON.stringify([
          { name: "slave1", url: `https://localhost:${slave1.ports.sync}`, token: TOKEN1 },
          { name: "slave2", url: `https://localhost:${slave2.ports.sync}`, token: TOKEN2 },
        ]),
        CPM_SYNC_TLS_CA: pki.caCert,
      },
    });
  });

  after(async () => {
    for (const i of [master, slave1, slave2, ...others]) await i?.stop();
    await fault?.close();
    await up?.close();
  });

  const create = (name: string, domain: string) =>
    unary(
      master.config.createProxyHost.bind(master.config),
      { proxyHost: ProxyHost.fromPartial({ name, domains: [domain], upstreams: [`127.0.0.1:${up.port}`] }) },
      master.adminToken,
    );

  const syncStatus = async () => unary(master.dispatcher.getSyncStatus.bind(master.dispatcher), {}, master.adminToken);
  const slaveStatus = async (name: string): Promise<SlaveStatus> =>
    (await syncStatus()).slaves.find((s) => s.name === name)!;
  const waitAcked = (name: string, version: number, timeoutMs = 30_000) =>
    waitFor(
      async () => {
        const s = await slaveStatus(name);
        return s.ackedVersion === version ? s : undefined;
      },
      `${name} acked v${version}`,
      timeoutMs,
    );

  it("create, update and delete on the master are served by both slaves' Caddy", async () => {
    const c = await create("web", "web.sync.test");
    const v = c.configVersion;
    for (const s of [master, slave1, slave2]) await s.waitServes("web.sync.test", /upstream=U/);
    const st1 = await waitAcked("slave1", v);
    const st2 = await waitAcked("slave2", v);
    // The ACK carries the hash of the Caddy config the slave runs; it is the slave's own renderer's hash.
    assert.equal(st1.configSha256, (await slave1.renderStatus()).configSha256);
    assert.equal(st2.configSha256, (await slave2.renderStatus()).configSha256);
    assert.ok(st1.connected && st2.connected);
    assert.equal(await slave1.version(), v, "the slave's database is on the master's version");

    const upd = await unary(
      master.config.updateProxyHost.bind(master.config),
      { proxyHost: { ...c.proxyHost!, domains: ["web2.sync.test"] } },
      master.adminToken,
    );
    for (const s of [slave1, slave2]) {
      await s.waitServes("web2.sync.test", /upstream=U/);
      await s.waitServes("web.sync.test", 404);
    }
    await unary(master.config.deleteProxyHost.bind(master.config), { id: c.proxyHost!.id }, master.adminToken);
    for (const s of [slave1, slave2]) await s.waitServes("web2.sync.test", 404);
    await waitAcked("slave1", upd.configVersion + 1);
    await waitAcked("slave2", upd.configVersion + 1);
    const rc = slave1.receiverClient(pki.caCert);
    const slaveSide = await unary(rc.getReceiverStatus.bind(rc), {}, TOKEN1);
    rc.close();
    assert.equal(slaveSide.appliedVersion, upd.configVersion + 1);
    assert.ok(slaveSide.masterConnected);
  });

  it("syncs every synced kind (hosts, L4 hosts, access lists, settings) to a real slave", async () => {
    const acl = await unary(
      master.config.createAccessList.bind(master.config),
      {
        accessList: AccessList.fromPartial({
          name: "office",
          allow: ["10.0.0.0/8"],
          users: [{ username: "ops", password: "a long passphrase" }],
        }),
      },
      master.adminToken,
    );
    await unary(
      master.config.createL4ProxyHost.bind(master.config),
      { l4ProxyHost: L4ProxyHost.fromPartial({ name: "pg", listenAddress: ":15432", upstreams: ["10.0.0.9:5432"] }) },
      master.adminToken,
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
      master.adminToken,
    );
    const gated = await unary(
      master.config.createProxyHost.bind(master.config),
      {
        proxyHost: ProxyHost.fromPartial({
          name: "gated",
          domains: ["gated.sync.test"],
          upstreams: [`127.0.0.1:${up.port}`],
          accessListId: acl.accessList!.id,
        }),
      },
      master.adminToken,
    );
    await waitAcked("slave1", gated.configVersion);
    const onSlave = async <T>(f: (c: typeof slave1.config) => Promise<T>) => f(slave1.config);
    const acls = await onSlave((c) => unary(c.listAccessLists.bind(c), {}, slave1.adminToken));
    assert.deepEqual(
      acls.accessLists.map((a) => [a.name, a.allow, a.users.map((u) => u.username)]),
      [["office", ["10.0.0.0/8"], ["ops"]]],
    );
    const l4 = await onSlave((c) => unary(c.listL4ProxyHosts.bind(c), {}, slave1.adminToken));
    assert.deepEqual(
      l4.l4ProxyHosts.map((h) => [h.name, h.listenAddress]),
      [["pg", ":15432"]],
    );
    const settings = await onSlave((c) => unary(c.getSettings.bind(c), {}, slave1.adminToken));
    assert.equal(settings.settings!.general!.primaryDomain, "example.com");
    assert.equal(settings.settings!.http!.upstreamDialTimeoutSeconds, 7);
    // The slave's Caddy enforces the synced access list: 401 without credentials from 127.0.0.1.
    await slave1.waitServes("gated.sync.test", 401);
    const ok = await slave1.get("gated.sync.test", "/", {
      Authorization: `Basic ${Buffer.from("ops:a long passphrase").toString("base64")}`,
    });
    assert.equal(ok.status, 200);
    await unary(master.config.deleteProxyHost.bind(master.config), { id: gated.proxyHost!.id }, master.adminToken);
  });

  it("syncs configuration but never users or API tokens: each instance keeps its own", async () => {
    await create("keep", "keep.sync.test");
    const minted = await unary(
      master.account.createApiToken.bind(master.account),
      { name: "ci-bot", role: Role.ROLE_ADMIN, expiresAt: undefined, userId: "" },
      master.adminToken,
    );
    await waitFor(async () => (await slave1.version()) === (await master.version()), "slave1 caught up");
    // The master's tokens do not open the slave's API, and the slave does not list them.
    await expectStatus(
      unary(
        slave1.config.listProxyHosts.bind(slave1.config),
        { pageSize: 0, pageToken: "", query: "" },
        master.adminToken,
      ),
      status.UNAUTHENTICATED,
    );
    await expectStatus(
      unary(slave1.config.listProxyHosts.bind(slave1.config), { pageSize: 0, pageToken: "", query: "" }, minted.secret),
      status.UNAUTHENTICATED,
    );
    const slaveTokens = await unary(slave1.account.listApiTokens.bind(slave1.account), {}, slave1.adminToken);
    assert.ok(!slaveTokens.apiTokens.some((t) => t.name === "ci-bot"));
    // The slave's own token reads the synced configuration; the snapshots are identical.
    const hosts = await unary(
      slave1.config.listProxyHosts.bind(slave1.config),
      { pageSize: 0, pageToken: "", query: "" },
      slave1.adminToken,
    );
    assert.ok(hosts.proxyHosts.some((h) => h.name === "keep"));
    const [ms, ss] = await Promise.all(
      [master, slave1].map((i) => unary(i.config.getSnapshot.bind(i.config), {}, i.adminToken)),
    );
    assert.equal(ss!.snapshot!.contentSha256, ms!.snapshot!.contentSha256);
    // The slave refuses writes to synced resources but manages its own tokens.
    const refused = await expectStatus(
      unary(
        slave1.config.createProxyHost.bind(slave1.config),
        { proxyHost: ProxyHost.fromPartial({ name: "x", domains: ["x.test"], upstreams: ["127.0.0.1:1"] }) },
        slave1.adminToken,
      ),
      status.FAILED_PRECONDITION,
    );
    assert.match(refused, /master/);
    await unary(
      slave1.account.createApiToken.bind(slave1.account),
      { name: "slave-local", role: Role.ROLE_VIEWER, expiresAt: undefined, userId: "" },
      slave1.adminToken,
    );
    const masterTokens = await unary(master.account.listApiTokens.bind(master.account), {}, master.adminToken);
    assert.ok(!masterTokens.apiTokens.some((t) => t.name === "slave-local"));
  });

  it("refuses a wrong or missing sync token with UNAUTHENTICATED and changes nothing", async () => {
    const before = await slave1.version();
    const client = new SyncReceiverClient(
      `localhost:${slave1.ports.sync}`,
      channelCredentials({ tls: true, caFile: pki.caCert }),
    );
    const snap = (await unary(master.config.getSnapshot.bind(master.config), {}, master.adminToken)).snapshot!;
    for (const token of ["wrong-token-wrong-token-wrong", ""]) {
      const code = await new Promise<number>((resolve) => {
        const call = client.sync(withBearer(token));
        call.on("data", () => resolve(-1));
        call.on("error", (e: { code: number }) => resolve(e.code));
        call.write({ snapshot: { ...snap, version: snap.version + 100 }, traceContext: undefined });
      });
      assert.equal(code, status.UNAUTHENTICATED);
    }
    client.close();
    assert.equal(await slave1.version(), before);
    assert.ok(!slave1.log().includes("wrong-token-wrong-token-wrong"), "tokens are never logged");
    assert.ok(!master.log().includes(TOKEN1) && !slave1.log().includes(TOKEN1), "the sync token is never logged");
  });

  it("a slave that was down converges on restart without any periodic interval", async () => {
    const nackedBefore = (await slaveStatus("slave1")).lastNackedVersion;
    await slave1.kill();
    const names = ["down-a", "down-b", "down-c"];
    let last = 0;
    for (const n of names) last = (await create(n, `${n}.sync.test`)).configVersion;
    await waitFor(async () => !(await slaveStatus("slave1")).connected, "master sees slave1 disconnected");
    assert.ok((await slaveStatus("slave1")).lastError !== "");
    const logBefore = slave1.log().length;
    await slave1.restart();
    for (const n of names) await slave1.waitServes(`${n}.sync.test`, /upstream=U/);
    await waitAcked("slave1", last);
    assert.equal(await slave1.version(), last);
    // The receiver listens only once its config-service and renderer answer: the master's
    // first push after the restart is applied, not NACKed because a service was still starting.
    const restarted = slave1.log().slice(logBefore);
    const at = (msg: string) => restarted.indexOf(`"msg":"${msg}`);
    assert.ok(
      at("config-service ready") >= 0 && at("caddy-renderer ready") >= 0 && at("sync-receiver ready") >= 0,
      "every service logged its start",
    );
    assert.ok(
      at("sync-receiver ready") > at("config-service ready"),
      "the receiver listens after config-service is up",
    );
    assert.ok(at("sync-receiver ready") > at("caddy-renderer ready"), "the receiver listens after the renderer is up");
    assert.ok(
      !restarted.includes("NACK_CODE_UNAVAILABLE"),
      "no snapshot NACKed as UNAVAILABLE while the slave started",
    );
    assert.equal(
      (await slaveStatus("slave1")).lastNackedVersion,
      nackedBefore,
      "the master got no NACK from the returning slave",
    );
  });

  it("a slave whose Caddy refuses the config NACKs, keeps serving the old one, and the master shows why", async () => {
    const before = await create("before-fault", "before-fault.sync.test");
    // Caddy serves a snapshot before the slave's database commits it (preload, then commit):
    // the good version is the one the master saw acknowledged, not a read racing that commit.
    await slave2.waitServes("before-fault.sync.test", /upstream=U/);
    await waitAcked("slave2", before.configVersion);
    const goodVersion = before.configVersion;
    assert.equal(await slave2.version(), goodVersion);
    fault.rejectLoads = true;
    let bad: { configVersion: number };
    try {
      bad = await create("during-fault", "during-fault.sync.test");
      await slave1.waitServes("during-fault.sync.test", /upstream=U/);
      const st = await waitFor(async () => {
        const s = await slaveStatus("slave2");
        return s.lastNackedVersion === bad.configVersion ? s : undefined;
      }, "slave2 NACKs the version its Caddy refused");
      assert.match(st.lastError, /injected fault/);
      assert.equal(st.ackedVersion, goodVersion);
      // Last good configuration: database and Caddy.
      assert.equal(await slave2.version(), goodVersion);
      assert.equal((await slave2.get("during-fault.sync.test")).status, 404);
      assert.match((await slave2.get("before-fault.sync.test")).body, /upstream=U/);
      const sent = st.snapshotsSent;
      const rejected = fault.rejected;
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal((await slaveStatus("slave2")).snapshotsSent, sent, "a NACKed version is not resent in a loop");
      assert.ok(fault.rejected <= rejected + 1, "no retry storm against Caddy");
    } finally {
      // A failed assertion above must not leave slave2's Caddy refusing the next tests' loads.
      fault.rejectLoads = false;
    }
    await unary(master.dispatcher.triggerFullSync.bind(master.dispatcher), { slaveName: "slave2" }, master.adminToken);
    await slave2.waitServes("during-fault.sync.test", /upstream=U/);
    const ok = await waitAcked("slave2", bad.configVersion);
    assert.equal(ok.lastError, "");
  });

  it("a burst of 200 writes ends with every slave on the final version, in far fewer snapshots", async () => {
    const sentBefore = await Promise.all(["slave1", "slave2"].map(async (n) => (await slaveStatus(n)).snapshotsSent));
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => create(`burst-${i}`, `burst-${i}.sync.test`)),
    );
    const final = Math.max(...results.map((r) => r.configVersion));
    assert.equal(final, await master.version());
    for (const [i, name] of ["slave1", "slave2"].entries()) {
      const s = await waitAcked(name, final, 120_000);
      const sent = s.snapshotsSent - sentBefore[i]!;
      assert.ok(sent < 100, `${name} got ${sent} snapshots for 200 writes (coalescing)`);
    }
    for (const s of [slave1, slave2]) {
      assert.equal(await s.version(), final);
      await s.waitServes("burst-199.sync.test", /upstream=U/);
      await s.waitServes("burst-0.sync.test", /upstream=U/);
    }
  });

  it("bounds snapshot size on both ends with an error naming CPM_SYNC_MAX_MESSAGE_BYTES, without a retry loop", async () => {
    const plain = { INSTANCE_SYNC_ALLOW_HTTP: "true", INSTANCE_SYNC_TOKEN: TOKEN2 };
    const small = await Instance.start({
      name: "small-slave",
      mode: "slave",
      env: { ...plain, CPM_SYNC_MAX_MESSAGE_BYTES: String(64 * 1024) },
    });
    others.push(small);
    const big = await Instance.start({ name: "big-slave", mode: "slave", env: plain });
    others.push(big);
    const m = await Instance.start({
      name: "size-master",
      mode: "master",
      env: {
        INSTANCE_SYNC_ALLOW_HTTP: "true",
        CPM_SYNC_MAX_MESSAGE_BYTES: String(128 * 1024),
        INSTANCE_SLAVES: JSON.stringify([
          { name: "small", url: `http://127.0.0.1:${small.ports.sync}`, token: TOKEN2 },
          { name: "big", url: `http://127.0.0.1:${big.ports.sync}`, token: TOKEN2 },
        ]),
      },
    });
    others.push(m);
    const status = async (name: string) =>
      (await unary(m.dispatcher.getSyncStatus.bind(m.dispatcher), {}, m.adminToken)).slaves.find(
        (s) => s.name === name,
      )!;
    // Each host carries 100 long domain names (about 7 KB in the snapshot).
    const addHost = (i: number) =>
      unary(
        m.config.createProxyHost.bind(m.config),
        {
          proxyHost: ProxyHost.fromPartial({
            name: `wide-${i}`,
            domains: Array.from({ length: 100 }, (_, j) => `${"x".repeat(50)}-${j}.wide-${i}.test`),
            upstreams: [`127.0.0.1:${up.port}`],
          }),
        },
        m.adminToken,
      );
    let v = 0;
    for (let i = 0; i < 12; i++) v = (await addHost(i)).configVersion; // ~85 KB: over the small slave's limit only
    await waitFor(async () => (await status("big")).ackedVersion === v, "big slave acked");
    // The refusal of the last version (each version before it may have been sent once, too).
    const s1 = await waitFor(async () => {
      const st = await status("small");
      return st.lastNackedVersion === v && /RESOURCE_EXHAUSTED/.test(st.lastError) ? st : undefined;
    }, "the small slave refuses the oversized snapshot");
    assert.match(s1.lastError, /CPM_SYNC_MAX_MESSAGE_BYTES/);
    assert.notEqual(await small.version(), v, "the small slave did not apply it");
    const sent = s1.snapshotsSent;
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal((await status("small")).snapshotsSent, sent, "an oversized snapshot is not resent in a loop");

    for (let i = 12; i < 24; i++) v = (await addHost(i)).configVersion; // ~170 KB: over the master's own limit
    const s2 = await waitFor(async () => {
      const st = await status("big");
      return st.lastNackedVersion === v ? st : undefined;
    }, "the master refuses to send a snapshot over its limit");
    assert.match(s2.lastError, /over the limit of 131072 \(CPM_SYNC_MAX_MESSAGE_BYTES\)/);
    assert.notEqual(await big.version(), v);
  });

  it("refuses an http:// slave unless INSTANCE_SYNC_ALLOW_HTTP=true, and syncs over plaintext with it", async () => {
    const slaves = JSON.stringify([{ name: "plain", url: "http://127.0.0.1:1", token: TOKEN1 }]);
    const refused = await runLauncher({
      INSTANCE_MODE: "master",
      INSTANCE_SLAVES: slaves,
      CPM_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), "cpm-refused-")),
    });
    assert.notEqual(refused.code, 0);
    assert.match(refused.output, /INSTANCE_SLAVES\[0\]\.url/);
    assert.match(refused.output, /INSTANCE_SYNC_ALLOW_HTTP/);
    const noTls = await runLauncher({
      INSTANCE_MODE: "slave",
      INSTANCE_SYNC_TOKEN: TOKEN1,
      CPM_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), "cpm-refused-")),
    });
    assert.notEqual(noTls.code, 0);
    assert.match(noTls.output, /CPM_SYNC_TLS_CERT/);

    // With the flag on both sides, and a periodic interval that repairs a slave's database.
    const plainSlave = await Instance.start({
      name: "plain-slave",
      mode: "slave",
      env: { INSTANCE_SYNC_TOKEN: TOKEN1, INSTANCE_SYNC_ALLOW_HTTP: "true" },
    });
    others.push(plainSlave);
    const plainMaster = await Instance.start({
      name: "plain-master",
      mode: "master",
      env: {
        INSTANCE_SYNC_ALLOW_HTTP: "true",
        INSTANCE_SYNC_INTERVAL: "1",
        INSTANCE_SLAVES: JSON.stringify([
          { name: "plain", url: `http://127.0.0.1:${plainSlave.ports.sync}`, token: TOKEN1 },
        ]),
      },
    });
    others.push(plainMaster);
    await unary(
      plainMaster.config.createProxyHost.bind(plainMaster.config),
      {
        proxyHost: ProxyHost.fromPartial({
          name: "plain",
          domains: ["plain.sync.test"],
          upstreams: [`127.0.0.1:${up.port}`],
        }),
      },
      plainMaster.adminToken,
    );
    await plainSlave.waitServes("plain.sync.test", /upstream=U/);
    // Caddy serves a snapshot from its preload, a moment before the slave commits it.
    const list = () =>
      unary(
        plainSlave.config.listProxyHosts.bind(plainSlave.config),
        { pageSize: 0, pageToken: "", query: "" },
        plainSlave.adminToken,
      );
    await waitFor(async () => (await list()).proxyHosts.length === 1, "the slave committed the snapshot", 15_000);

    // Someone edits the slave's database directly; the next periodic push restores it.
    const db = new Database(path.join(plainSlave.dataDir, "cpm.db"));
    const removed = db.prepare(`DELETE FROM "ProxyHost"`).run().changes;
    db.close();
    assert.equal(removed, 1, "the slave's database was changed behind its back");
    await waitFor(
      async () => (await list()).proxyHosts.length === 1,
      "the periodic push restores the slave's database",
      15_000,
    );
    await plainSlave.waitServes("plain.sync.test", /upstream=U/);
  });
});
