import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { ProxyHost } from "@cpm/proto";
import { caddyAdminRequest } from "@cpm/core";
import { unary } from "@cpm/grpc-kit";
import { expectStatus } from "../support/grpc.ts";
import { Instance, ROOT, SPLIT, stopCleanly } from "../support/instance.ts";
import { launcherChildren } from "../support/procs.ts";
import { startUpstream } from "../support/net.ts";
import { waitFor } from "../support/wait.ts";

describe("standalone instance: gRPC API -> config-service -> renderer -> real Caddy", () => {
  let inst: Instance;
  let a: Awaited<ReturnType<typeof startUpstream>>;
  let b: Awaited<ReturnType<typeof startUpstream>>;

  before(async () => {
    a = await startUpstream("A");
    b = await startUpstream("B");
    inst = await Instance.start({ name: "standalone" });
  });
  after(async () => {
    await stopCleanly(inst);
    await a?.close();
    await b?.close();
  });

  const create = (h: Partial<ProxyHost>, token = inst.adminToken) =>
    unary(inst.config.createProxyHost.bind(inst.config), { proxyHost: ProxyHost.fromPartial(h) }, token);

  it("serves a created host, follows updates, and stops serving it after delete", async () => {
    const before = await inst.version();
    const created = await create({ name: "app", domains: ["app.test"], upstreams: [`127.0.0.1:${a.port}`] });
    assert.equal(created.configVersion, before + 1);
    const r = await inst.waitServes("app.test", /upstream=A/);
    assert.match(
      r.body,
      new RegExp(`host=127.0.0.1:${a.port}`),
      "without preserve_host_header the upstream sees its own address",
    );
    assert.equal((await inst.get("other.test")).status, 404, "an unknown host gets 404");

    const updated = await unary(
      inst.config.updateProxyHost.bind(inst.config),
      { proxyHost: { ...created.proxyHost!, upstreams: [`127.0.0.1:${b.port}`], preserveHostHeader: true } },
      inst.adminToken,
    );
    assert.equal(updated.configVersion, before + 2);
    const r2 = await inst.waitServes("app.test", /upstream=B/);
    assert.match(r2.body, /host=app\.test/, "preserve_host_header passes the client's Host through");

    const del = await unary(
      inst.config.deleteProxyHost.bind(inst.config),
      { id: created.proxyHost!.id },
      inst.adminToken,
    );
    assert.equal(del.configVersion, before + 3);
    await inst.waitServes("app.test", 404);
    const s = await inst.waitInSync();
    assert.equal(s.appliedVersion, before + 3);
  });

  it("puts the config back when Caddy restarts or is changed behind its back", async () => {
    await create({ name: "back", domains: ["back.test"], upstreams: [`127.0.0.1:${a.port}`] });
    await inst.waitServes("back.test", /upstream=A/);
    const applied = (await inst.waitInSync()).configSha256;

    // Caddy stops (crash or operator); the launcher starts it again with an empty config.
    await caddyAdminRequest(`http://127.0.0.1:${inst.ports.caddyAdmin}/stop`, { method: "POST" }).catch(
      () => undefined,
    );
    await inst.waitServes("back.test", /upstream=A/, 30_000);

    // Someone loads another config straight into Caddy's admin API.
    const res = await caddyAdminRequest(`http://127.0.0.1:${inst.ports.caddyAdmin}/load`, {
      method: "POST",
      body: JSON.stringify({ admin: { listen: `127.0.0.1:${inst.ports.caddyAdmin}` } }),
    });
    assert.equal(res.status, 200);
    await inst.waitServes("back.test", /upstream=A/, 30_000);
    assert.equal((await inst.waitInSync()).configSha256, applied, "the same config (same hash) is back");
  });

  it("answers bad input with INVALID_ARGUMENT naming the field, and the version does not move", async () => {
    const v = await inst.version();
    const cases: [Partial<ProxyHost>, string][] = [
      [{ name: "x", domains: ["ok.test", "exa mple.com"], upstreams: ["127.0.0.1:1"] }, "proxy_host.domains[1]"],
      [{ name: "x", domains: ["ok.test"], upstreams: ["no-port"] }, "proxy_host.upstreams[0]"],
      [{ name: "", domains: ["ok.test"], upstreams: ["127.0.0.1:1"] }, "proxy_host.name"],
      [{ name: "x", domains: [], upstreams: ["127.0.0.1:1"] }, "proxy_host.domains"],
      [
        { name: "x", domains: ["ok.test"], upstreams: ["127.0.0.1:1"], certificateId: "missing" },
        "proxy_host.certificate_id",
      ],
    ];
    for (const [host, field] of cases) {
      const details = await expectStatus(create(host), status.INVALID_ARGUMENT);
      assert.ok(details.startsWith(`${field}:`), `"${details}" should name ${field}`);
    }
    await create({ name: "taken", domains: ["taken.test"], upstreams: ["127.0.0.1:1"] });
    const v2 = await inst.version();
    assert.equal(v2, v + 1);
    const dup = await expectStatus(
      create({ name: "other", domains: ["TAKEN.test"], upstreams: ["127.0.0.1:1"] }),
      status.ALREADY_EXISTS,
    );
    assert.match(dup, /taken\.test/);
    assert.equal(await inst.version(), v2, "refused writes do not move the version");
  });

  it("lists proxy hosts in pages with a search, and refuses a bad page token naming it", async () => {
    const list = (pageSize: number, query: string, pageToken = "") =>
      unary(inst.config.listProxyHosts.bind(inst.config), { pageSize, pageToken, query }, inst.adminToken);
    const names: string[] = [];
    for (let i = 0; i < 25; i++) {
      const name = `page-${String(i).padStart(2, "0")}`;
      await create({ name, domains: [`p${i}.paging.test`], upstreams: [`127.0.0.1:${a.port}`] });
      names.push(name);
    }
    const seen: string[] = [];
    const sizes: number[] = [];
    let token = "";
    do {
      const r = await list(10, "PAGING.test", token);
      assert.equal(r.totalSize, 25);
      sizes.push(r.proxyHosts.length);
      seen.push(...r.proxyHosts.map((x) => x.name));
      token = r.nextPageToken;
    } while (token);
    assert.deepEqual(sizes, [10, 10, 5]);
    assert.equal(new Set(seen).size, 25, "no host twice");
    assert.deepEqual(seen, names);
    const one = await list(10, "p17.paging.test");
    assert.deepEqual(
      one.proxyHosts.map((x) => x.name),
      ["page-17"],
    );
    assert.equal(one.totalSize, 1);
    const all = await list(0, "");
    assert.ok(all.proxyHosts.length >= 25 && all.nextPageToken === "", "page_size 0 answers every host");
    const bad = await expectStatus(list(10, "paging.test", "bm90IGEgdG9rZW4"), status.INVALID_ARGUMENT);
    assert.match(bad, /^page_token: /);
    const first = await list(10, "paging.test");
    const other = await expectStatus(list(10, "page-1", first.nextPageToken), status.INVALID_ARGUMENT);
    assert.match(other, /^page_token: /);
  });

  it("refuses a missing or wrong token with UNAUTHENTICATED and writes nothing", async () => {
    const v = await inst.version();
    await expectStatus(
      create({ name: "n", domains: ["n.test"], upstreams: ["127.0.0.1:1"] }, ""),
      status.UNAUTHENTICATED,
    );
    await expectStatus(
      create({ name: "n", domains: ["n.test"], upstreams: ["127.0.0.1:1"] }, "wrong-token-0123456789"),
      status.UNAUTHENTICATED,
    );
    await expectStatus(
      unary(
        inst.config.listProxyHosts.bind(inst.config),
        { pageSize: 0, pageToken: "", query: "" },
        "wrong-token-0123456789",
      ),
      status.UNAUTHENTICATED,
    );
    await expectStatus(
      unary(inst.renderer.getRenderStatus.bind(inst.renderer), {}, "wrong-token-0123456789"),
      status.UNAUTHENTICATED,
    );
    assert.equal(await inst.version(), v);
    assert.equal((await inst.get("n.test")).status, 404);
  });

  it("reports its release (the root package.json's version) in GetInstanceInfo, and logs it at start", async () => {
    const { version } = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string };
    assert.match(version, /^\d+\.\d+\.\d+/);
    assert.equal((await inst.info()).release, version);
    const log = await waitFor(() => (/caddy-renderer ready/.test(inst.log()) ? inst.log() : undefined), "service logs");
    for (const service of ["config-service", "caddy-renderer"])
      assert.ok(log.includes(`${service} ${version} starting`), `${service} logs its release at start`);
  });

  it("never writes tokens to its logs", async () => {
    // The services' logs are captured (so the check below sees what they wrote)...
    const log = await waitFor(
      () =>
        /config-service ready/.test(inst.log()) && /caddy-renderer ready/.test(inst.log()) ? inst.log() : undefined,
      "service logs",
    );
    // ...and hold neither the admin token nor the token the services use between themselves
    // (split over processes; in one process there is none).
    assert.ok(!log.includes(inst.adminToken), "the admin token appears in the log");
    if (!inst.split) return;
    const internal = readFileSync(path.join(inst.dataDir, "internal-token"), "utf8").trim();
    assert.ok(internal.length >= 16);
    assert.ok(!log.includes(internal), "the internal token appears in the log");
  });

  it("in one process: no internal token and nothing on the internal listener's port", { skip: SPLIT }, async () => {
    assert.equal(existsSync(path.join(inst.dataDir, "internal-token")), false, "an internal token was made");
    await assert.rejects(
      connectOnce(inst.ports.configInternal),
      /ECONNREFUSED/,
      "something listens on CPM_CONFIG_INTERNAL_LISTEN",
    );
    // One Node process, whose only child is Caddy.
    assert.deepEqual([...launcherChildren(inst.child!.pid!).keys()], ["caddy"]);
  });
});

/** Resolves once a TCP connection to 127.0.0.1:`port` opens (and closes it); rejects with the socket's error. */
function connectOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.destroy();
      resolve();
    });
    socket.on("error", reject);
  });
}
