import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { RenderStatus } from "@cpm/proto";
import { FileStatusStore } from "./status-store.ts";
import { fakes, nackOf, snap } from "./test-support.ts";

const dir = mkdtempSync(path.join(tmpdir(), "cpm-receiver-status-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const storeFile = () => path.join(dir, `${++n}`, "sync-receiver-status.json");

describe("receiver status after a restart", () => {
  it("a receiver that died between preload and commit: the restarted one keeps the preload (Caddy never moves back) until the master sends it again", async () => {
    // The database is on v41; Caddy still runs the v42 the previous receiver preloaded.
    const { applier, renderer } = fakes(41);
    renderer.current = RenderStatus.fromPartial({ appliedVersion: 42, configSha256: "sha-42", inSync: false });
    await applier.load();
    assert.deepEqual(renderer.released, [], "Caddy stays on v42");
    const ack = await applier.apply(snap(42));
    assert.equal(ack.ack?.version, 42, "the master's resend of v42 commits it");
    assert.deepEqual(renderer.released, []);
  });

  it("while Caddy runs another version than the database's, the hash is not reported as that version's", async () => {
    const { applier, renderer } = fakes(41);
    renderer.current = RenderStatus.fromPartial({ appliedVersion: 42, configSha256: "sha-42", inSync: false });
    await applier.load();
    assert.deepEqual(renderer.released, []);
    for (const s of [applier.state, await applier.status()]) {
      assert.equal(s.appliedVersion, 41);
      assert.equal(s.configSha256, "", "no hash rather than v42's next to v41");
    }
  });

  it("reads version and hash from the database and the renderer at each request", async () => {
    const { applier, config, renderer } = fakes(3);
    await applier.load();
    config.version = 4; // committed behind the receiver's back (e.g. by an interval push restored)
    renderer.current = RenderStatus.fromPartial({ appliedVersion: 4, configSha256: "sha-4", inSync: true });
    const s = await applier.status();
    assert.deepEqual([s.appliedVersion, s.configSha256], [4, "sha-4"]);
  });

  it("the last error and the last sync survive a restart", async () => {
    const file = storeFile();
    const first = fakes(1, new FileStatusStore(file));
    const n1 = nackOf(await first.applier.apply({ ...snap(2), contentSha256: "0".repeat(64) }));
    const errorAt = first.applier.state.lastErrorTime!;
    const again = fakes(1, new FileStatusStore(file)).applier.state;
    assert.equal(again.lastError, n1.reason);
    assert.equal(again.lastErrorTime?.getTime(), errorAt.getTime());
    assert.equal(again.lastSyncTime, undefined);

    assert.ok((await first.applier.apply(snap(2))).ack);
    const syncedAt = first.applier.state.lastSyncTime!;
    const restarted = fakes(2, new FileStatusStore(file)).applier;
    assert.equal(restarted.state.lastSyncTime?.getTime(), syncedAt.getTime());
    assert.equal(restarted.state.lastError, "", "an ACK clears the last error");
    assert.equal((await restarted.status()).lastSyncTime?.getTime(), syncedAt.getTime());
  });

  it("the file is replaced whole (no temporary file left) and a missing or broken one starts empty", () => {
    const file = storeFile();
    const store = new FileStatusStore(file);
    assert.equal(store.load(), undefined);
    const at = new Date("2026-01-02T03:04:05.000Z");
    store.save({ lastSyncTime: at, lastError: "x", lastErrorTime: undefined });
    assert.deepEqual(readdirSync(path.dirname(file)), ["sync-receiver-status.json"]);
    assert.deepEqual(store.load(), { lastSyncTime: at, lastError: "x", lastErrorTime: undefined });
    writeFileSync(file, "{not json");
    assert.equal(store.load(), undefined);
    assert.ok(existsSync(file));
  });

  it("a status that cannot be saved is kept in memory and the snapshot still applies", async () => {
    const { applier } = fakes(1, {
      load: () => undefined,
      save: () => {
        throw new Error("read-only file system");
      },
    });
    assert.ok((await applier.apply(snap(2))).ack);
    assert.ok(applier.state.lastSyncTime);
  });
});
