import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NackCode, type SyncResponse } from "@cpm/proto";
import { SyncSession } from "./session.ts";
import { fakes, gate, log, nackOf, snap } from "./test-support.ts";

const settle = () => new Promise((r) => setTimeout(r, 20));

describe("SyncSession: per stream, the snapshot being applied plus the newest pending one", () => {
  it("a master that sends 1,000 snapshots without waiting costs two applies; the rest are SUPERSEDED", async () => {
    const { applier, renderer } = fakes(1);
    const g = gate();
    renderer.gate = g.promise;
    const sent: SyncResponse[] = [];
    const session = new SyncSession(applier, (r) => sent.push(r), log);
    for (let v = 2; v <= 1001; v++) session.receive(snap(v));
    assert.equal(sent.length, 998, "every dropped one is answered at once");
    for (const [i, r] of sent.entries()) {
      const n = nackOf(r);
      assert.equal(n.version, i + 3);
      assert.equal(n.code, NackCode.NACK_CODE_SUPERSEDED);
      assert.equal(n.retryable, false);
      assert.match(n.reason, new RegExp(`snapshot version ${i + 3} was superseded by version ${i + 4}`));
    }
    g.open();
    await settle();
    assert.deepEqual(renderer.preloaded, [2, 1001], "only the one being applied and the newest");
    assert.deepEqual(
      sent.slice(998).map((r) => r.ack?.version),
      [2, 1001],
    );
  });

  it("an ended stream applies nothing more and writes nothing", async () => {
    const { applier, renderer, config } = fakes(1);
    const g = gate();
    renderer.gate = g.promise;
    const sent: SyncResponse[] = [];
    const session = new SyncSession(applier, (r) => sent.push(r), log);
    session.receive(snap(2));
    await settle(); // v2 is being applied (waits in the renderer)
    session.receive(snap(3)); // pending
    session.close();
    session.receive(snap(4)); // after the end: ignored
    g.open();
    await settle();
    assert.deepEqual(renderer.preloaded, [2], "the pending snapshot was dropped");
    assert.deepEqual(config.committed, [2], "the one already being applied finishes");
    assert.deepEqual(sent, [], "nothing is written to a closed stream");
  });

  it("a stream's pending snapshot waiting behind another stream's apply is dropped when its stream ends", async () => {
    const { applier, renderer } = fakes(1);
    const g = gate();
    renderer.gate = g.promise;
    const a: SyncResponse[] = [];
    const b: SyncResponse[] = [];
    const first = new SyncSession(applier, (r) => a.push(r), log);
    const second = new SyncSession(applier, (r) => b.push(r), log);
    first.receive(snap(2));
    second.receive(snap(3)); // queued in the applier behind v2
    second.close();
    g.open();
    await settle();
    assert.deepEqual(renderer.preloaded, [2]);
    assert.equal(a[0]?.ack?.version, 2);
    assert.deepEqual(b, []);
  });
});
