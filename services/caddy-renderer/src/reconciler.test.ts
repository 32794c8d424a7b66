import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { ProxyHost, Snapshot } from "@cpm/proto";
import { canonicalJson, createLogger, sha256Hex } from "@cpm/core";
import { CaddyRejectedError } from "./caddy.ts";
import { Reconciler, type CaddyAdminApi, type SnapshotSource } from "./reconciler.ts";
import { OPTS } from "./render/test-support.ts";

/** Version n serves the domain `v<n>.example.com`, so a loaded config tells its version. */
const snap = (version: number) =>
  Snapshot.fromPartial({
    schemaVersion: 1,
    masterInstanceId: "m",
    version,
    contentSha256: `content-${version}`,
    proxyHosts: [ProxyHost.fromPartial({ id: "h", name: "h", domains: [`v${version}.example.com`], upstreams: ["127.0.0.1:9000"] })],
  });

/** FAKE Caddy admin API: keeps the running config in memory and records every load. */
class FakeCaddyAdmin implements CaddyAdminApi {
  running: string | undefined;
  readonly loads: number[] = [];
  refuse = false;

  async load(json: string): Promise<void> {
    if (this.refuse) throw new CaddyRejectedError(400, "refused by the fake");
    this.running = json;
    this.loads.push(this.version());
  }

  async currentConfigHash(): Promise<string> {
    return this.running === undefined ? "" : sha256Hex(canonicalJson(JSON.parse(this.running)));
  }

  /** The version whose config runs now (0: none). */
  version(): number {
    return Number(/"v(\d+)\.example\.com"/.exec(this.running ?? "")?.[1] ?? 0);
  }
}

/** FAKE config-service: serves the database's current snapshot. */
class FakeSource implements SnapshotSource {
  constructor(public db: Snapshot) {}
  async getSnapshot(): Promise<Snapshot> {
    return this.db;
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (what: string, f: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await pause(5);
  }
};

describe("Reconciler: a slave's preload is held until commit, release or expiry", () => {
  let reconciler: Reconciler;
  let caddy: FakeCaddyAdmin;
  let source: FakeSource;

  /** A reconciler with v1 committed and running in Caddy. */
  const start = async (checkIntervalMs: number, preloadHoldMs = 60_000) => {
    caddy = new FakeCaddyAdmin();
    source = new FakeSource(snap(1));
    reconciler = new Reconciler(source, caddy, OPTS, createLogger("test", "silent"), checkIntervalMs, preloadHoldMs);
    reconciler.start();
    reconciler.onCommit({ version: 1, contentSha256: "content-1" });
    await until("v1 in Caddy", () => reconciler.status().inSync && caddy.version() === 1);
    caddy.loads.length = 0;
  };

  afterEach(() => reconciler.stop());

  it("a failed commit after a preload: released, Caddy is back on the database's version at once", async () => {
    await start(60_000); // no periodic check can help
    await reconciler.preflight(snap(2));
    assert.equal(caddy.version(), 2, "the preload runs");
    assert.equal(reconciler.status().inSync, false, "status says Caddy is ahead of the database");
    const released = Date.now();
    assert.equal(reconciler.releasePreload(2), true);
    await until("v1 back in Caddy", () => caddy.version() === 1, 1000);
    assert.ok(Date.now() - released < 1000);
    await until("in sync on v1", () => reconciler.status().inSync && reconciler.status().appliedVersion === 1);
    assert.deepEqual(caddy.loads, [2, 1]);
  });

  it("a release for another version leaves the hold alone", async () => {
    await start(20);
    await reconciler.preflight(snap(3));
    assert.equal(reconciler.releasePreload(2), false);
    await pause(150);
    assert.equal(caddy.version(), 3);
  });

  it("never moves Caddy back to the older version between preload and commit", async () => {
    await start(20); // periodic checks run all through the gap
    await reconciler.preflight(snap(2));
    reconciler.onCommit({ version: 1, contentSha256: "content-1" }); // a late notice of the older version
    await pause(200);
    assert.deepEqual(caddy.loads, [2], "nothing but the preload was loaded in the gap");
    source.db = snap(2);
    reconciler.onCommit({ version: 2, contentSha256: "content-2" });
    await until("in sync on v2", () => reconciler.status().inSync && reconciler.status().appliedVersion === 2);
    await pause(100);
    assert.deepEqual(caddy.loads, [2], "the commit only moves the version: no second load");
  });

  it("reloads the held preload, not the older version, when Caddy loses it in the gap", async () => {
    await start(20);
    await reconciler.preflight(snap(2));
    caddy.running = undefined; // Caddy restarted
    await until("the preload back in Caddy", () => caddy.version() === 2);
    await pause(100);
    assert.deepEqual(caddy.loads, [2, 2]);
  });

  it("ends the hold by itself when neither commit nor release comes (the receiver died)", async () => {
    await start(60_000, 300);
    await reconciler.preflight(snap(2));
    await pause(150);
    assert.equal(caddy.version(), 2, "held before the bound");
    await until("v1 back after the bound", () => caddy.version() === 1, 1500);
    assert.deepEqual(caddy.loads, [2, 1]);
  });

  it("a preload Caddy refuses holds nothing: Caddy keeps the database's version", async () => {
    await start(20);
    caddy.refuse = true;
    await assert.rejects(reconciler.preflight(snap(2)), /refused by the fake/);
    caddy.refuse = false;
    await pause(100);
    assert.equal(caddy.version(), 1);
    assert.deepEqual(caddy.loads, []);
  });
});
