import assert from "node:assert/strict";
import { existsSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, it } from "node:test";
import { ProxyHost, Snapshot } from "@cpm/proto";
import { canonicalJson, createLogger, sha256Hex, SNAPSHOT_SCHEMA_VERSION } from "@cpm/core";
import { CaddyRejectedError } from "./caddy.ts";
import { Reconciler, type CaddyAdminApi, type SnapshotSource } from "./reconciler.ts";
import { FilePreloadHoldStore } from "./reconciler-hold.ts";
import { OPTS } from "./render/test-support.ts";

/** Version n serves the domain `v<n>.example.com`, so a loaded config tells its version. */
const snap = (version: number) =>
  Snapshot.fromPartial({
    schemaVersion: SNAPSHOT_SCHEMA_VERSION,
    masterInstanceId: "m",
    version,
    contentSha256: `content-${version}`,
    proxyHosts: [
      ProxyHost.fromPartial({
        id: "h",
        name: "h",
        domains: [`v${version}.example.com`],
        upstreams: ["127.0.0.1:9000"],
      }),
    ],
  });

/** FAKE Caddy admin API: keeps the running config in memory and records every load. */
class FakeCaddyAdmin implements CaddyAdminApi {
  running: string | undefined;
  readonly loads: number[] = [];
  refuse = false;

  /** How long each load takes, and when each started (ms since the epoch). */
  loadMs = 0;
  readonly startedAt: number[] = [];

  async load(json: string): Promise<void> {
    this.startedAt.push(Date.now());
    if (this.loadMs > 0) await new Promise((r) => setTimeout(r, this.loadMs));
    if (this.refuse) throw new CaddyRejectedError(400, "refused by the fake");
    this.running = json;
    this.loads.push(this.version());
  }

  unreachable = false;

  async currentConfigHash(): Promise<string> {
    return (await this.currentConfig()).sha256;
  }

  currentConfig(): Promise<{ json: string; sha256: string }> {
    if (this.unreachable) return Promise.reject(new Error("the fake is down"));
    if (this.running === undefined) return Promise.resolve({ json: "null", sha256: "" });
    return Promise.resolve({ json: this.running, sha256: sha256Hex(canonicalJson(JSON.parse(this.running))) });
  }

  /** The version whose config runs now (0: none). */
  version(): number {
    return Number(/"v(\d+)\.example\.com"/.exec(this.running ?? "")?.[1] ?? 0);
  }
}

/** FAKE config-service: serves the database's current snapshot. */
class FakeSource implements SnapshotSource {
  constructor(public db: Snapshot) {}
  getSnapshot(): Promise<Snapshot> {
    return Promise.resolve(this.db);
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

  it("a preload of the version the database has holds nothing: no commit notice will come", async () => {
    await start(20);
    // The same version again, its content hash declared otherwise: committing it changes no
    // stored content, so WatchConfig announces nothing new.
    await reconciler.preflight({ ...snap(1), contentSha256: "content-1-declared-otherwise" });
    await until("in sync on v1", () => reconciler.status().inSync && reconciler.status().appliedVersion === 1, 1000);
    assert.equal(caddy.version(), 1);
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

describe("Reconciler: a preload hold outlives a restart of the renderer", () => {
  const running: Reconciler[] = [];
  afterEach(() => running.splice(0).forEach((r) => r.stop()));

  /** One run of the renderer (a process): a reconciler on the saved hold, the database announced. */
  const boot = (caddy: FakeCaddyAdmin, source: FakeSource, store: FilePreloadHoldStore, preloadHoldMs = 60_000) => {
    const r = new Reconciler(source, caddy, OPTS, createLogger("test", "silent"), 20, preloadHoldMs, store);
    running.push(r);
    r.start();
    r.onCommit({ version: source.db.version, contentSha256: source.db.contentSha256 });
    return r;
  };
  const setup = async () => {
    const caddy = new FakeCaddyAdmin();
    const source = new FakeSource(snap(1));
    const store = new FilePreloadHoldStore(path.join(mkdtempSync(path.join(os.tmpdir(), "cpm-hold-")), "hold.json"));
    const first = boot(caddy, source, store);
    await until("v1 in Caddy", () => first.status().inSync && caddy.version() === 1);
    await first.preflight(snap(2));
    first.stop(); // SIGKILL: nothing more from this run
    running.length = 0;
    caddy.loads.length = 0;
    return { caddy, source, store };
  };

  it("a restart between preload and commit keeps Caddy on the preload, not the database's older version", async () => {
    const { caddy, source, store } = await setup();
    const seen: number[] = [];
    const second = boot(caddy, source, store);
    second.onStatus((s) => seen.push(s.appliedVersion));
    await until("the restarted renderer decided", () => second.status().appliedVersion !== 0);
    await pause(150); // periodic checks and the database's announcement run meanwhile
    assert.equal(second.status().appliedVersion, 2, "the held preload is reported, not v1");
    assert.equal(caddy.version(), 2);
    assert.deepEqual(caddy.loads, [], "nothing loaded over the preload");
    source.db = snap(2);
    second.onCommit({ version: 2, contentSha256: "content-2" });
    await until("in sync on v2", () => second.status().inSync && second.status().appliedVersion === 2);
    assert.deepEqual(caddy.loads, [], "the commit only moves the version");
    assert.ok(
      seen.every((v) => v === 0 || v === 2),
      `versions reported: ${seen.join(",")}`,
    );
    assert.equal(existsSync(store.file), false, "the committed hold is no longer saved");
  });

  it("a restart waits for Caddy before it decides, then keeps the preload Caddy resumed", async () => {
    const { caddy, source, store } = await setup();
    caddy.unreachable = true; // the whole slave restarts: Caddy is not up yet
    const second = boot(caddy, source, store);
    await pause(100);
    assert.deepEqual(caddy.loads, []);
    caddy.unreachable = false; // Caddy back with its autosaved (preloaded) config
    await until("the preload adopted", () => second.status().appliedVersion === 2);
    await pause(100);
    assert.equal(caddy.version(), 2);
    assert.deepEqual(caddy.loads, []);
  });

  it("a saved hold Caddy does not run is dropped: the database's version is loaded", async () => {
    const { caddy, source, store } = await setup();
    caddy.running = undefined; // Caddy restarted without the preload
    const second = boot(caddy, source, store);
    await until("v1 in Caddy", () => second.status().inSync && caddy.version() === 1);
    assert.equal(existsSync(store.file), false);
  });

  it("the hold's expiry counts from the preload, across the restart", async () => {
    const caddy = new FakeCaddyAdmin();
    const source = new FakeSource(snap(1));
    const store = new FilePreloadHoldStore(path.join(mkdtempSync(path.join(os.tmpdir(), "cpm-hold-")), "hold.json"));
    const first = boot(caddy, source, store, 400);
    await until("v1 in Caddy", () => first.status().inSync && caddy.version() === 1);
    await first.preflight(snap(2));
    first.stop();
    const second = boot(caddy, source, store, 400);
    await until("v2 held", () => second.status().appliedVersion === 2);
    await until("v1 back after the bound", () => caddy.version() === 1 && second.status().inSync, 2000);
    assert.equal(existsSync(store.file), false);
  });
});

describe("Reconciler: a restarted renderer and the config Caddy resumed", () => {
  const running: Reconciler[] = [];
  afterEach(() => running.splice(0).forEach((r) => r.stop()));
  const boot = (caddy: FakeCaddyAdmin, source: FakeSource) => {
    const r = new Reconciler(source, caddy, OPTS, createLogger("test", "silent"), 20, 60_000);
    running.push(r);
    r.start();
    r.onCommit({ version: source.db.version, contentSha256: source.db.contentSha256 });
    return r;
  };

  it("does not load Caddy again when it already runs the database's config, and reports it in sync", async () => {
    const caddy = new FakeCaddyAdmin();
    const source = new FakeSource(snap(3));
    const first = boot(caddy, source);
    await until("v3 in Caddy", () => first.status().inSync && caddy.version() === 3);
    first.stop();
    running.length = 0;
    caddy.loads.length = 0;
    const second = boot(caddy, source);
    await until("the restarted renderer in sync", () => second.status().inSync && second.status().appliedVersion === 3);
    await pause(100); // periodic checks run meanwhile
    assert.deepEqual(caddy.loads, [], "Caddy kept its config, not reloaded");
    source.db = snap(4);
    second.onCommit({ version: 4, contentSha256: "content-4" });
    await until("v4 in Caddy", () => second.status().inSync && caddy.version() === 4);
    assert.deepEqual(caddy.loads, [4], "the next change loads as usual");
  });

  it("loads the database's config when Caddy resumed another one", async () => {
    const caddy = new FakeCaddyAdmin();
    const first = boot(caddy, new FakeSource(snap(5)));
    await until("v5 in Caddy", () => first.status().inSync && caddy.version() === 5);
    first.stop();
    running.length = 0;
    caddy.loads.length = 0;
    const second = boot(caddy, new FakeSource(snap(6)));
    await until("v6 in Caddy", () => second.status().inSync && caddy.version() === 6);
    assert.deepEqual(caddy.loads, [6]);
  });
});

describe("Reconciler: loads under a stream of commits are paced", () => {
  it("spends at most about half of the time loading, ends on the newest version, and loads an isolated change at once", async () => {
    const caddy = new FakeCaddyAdmin();
    caddy.loadMs = 40;
    const source = new FakeSource(snap(1));
    const reconciler = new Reconciler(source, caddy, OPTS, createLogger("test", "silent"), 60_000);
    try {
      reconciler.onCommit({ version: 1, contentSha256: snap(1).contentSha256 });
      await until("v1 loaded", () => caddy.version() === 1);
      // A commit every 3 ms for 800 ms: back-to-back loads would be about 20.
      const streamStart = Date.now();
      let v = 1;
      while (Date.now() - streamStart < 800) {
        v++;
        source.db = snap(v);
        reconciler.onCommit({ version: v, contentSha256: snap(v).contentSha256 });
        await pause(3);
      }
      await until(`v${v} loaded`, () => caddy.version() === v && reconciler.status().inSync);
      const during = caddy.startedAt.filter((t) => t >= streamStart).length;
      assert.ok(
        during <= 13,
        `at most about one load per 80 ms (40 ms load + 40 ms pause), got ${during} in ${Date.now() - streamStart} ms`,
      );
      assert.ok(during >= 5, `loads still happen during the stream, got ${during}`);
      // Quiet, then one change: no wait.
      await pause(200);
      v++;
      source.db = snap(v);
      const committedAt = Date.now();
      reconciler.onCommit({ version: v, contentSha256: snap(v).contentSha256 });
      await until(`v${v} loaded`, () => caddy.version() === v);
      assert.ok(
        caddy.startedAt.at(-1)! - committedAt < 30,
        `an isolated change loads at once, it waited ${caddy.startedAt.at(-1)! - committedAt} ms`,
      );
    } finally {
      reconciler.stop();
    }
  });
});
