import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NackCode, RenderStatus, Snapshot } from "@cpm/proto";
import { SNAPSHOT_SCHEMA_VERSION, snapshotContentHash } from "@cpm/core";
import { status as Status } from "@grpc/grpc-js";
import { encodeSnapshotFrame, IncomingSnapshot, SnapshotDecoder } from "@cpm/snapshot-wire";
import { StreamClosedError } from "./receiver.ts";

/** A real SnapshotDecoder that counts its decodes. */
class CountingDecoder extends SnapshotDecoder {
  decodes = 0;
  override decode(bytes: Uint8Array) {
    this.decodes++;
    return super.decode(bytes);
  }
}
import { fakes, gate, grpcError, nackOf, snap } from "./test-support.ts";

describe("SnapshotApplier: validate, preload, commit, confirm; NACKs say whether a retry can help", () => {
  it("applies a newer snapshot and ACKs its version and Caddy's config hash", async () => {
    const { applier, config, renderer } = fakes(1);
    const r = await applier.apply(snap(2));
    assert.deepEqual(r, {
      ack: { version: 2, configSha256: "sha-2", contentSha256: snap(2).contentSha256 },
      nack: undefined,
    });
    assert.deepEqual(renderer.preloaded, [2]);
    assert.deepEqual(config.committed, [2]);
    assert.equal(applier.state.appliedVersion, 2);
  });

  it("refuses an older version of the same master, not retryable, touching nothing", async () => {
    const { applier, config, renderer } = fakes(5);
    const n = nackOf(await applier.apply(snap(3)));
    assert.equal(n.code, NackCode.NACK_CODE_STALE_VERSION);
    assert.equal(n.retryable, false);
    assert.equal(n.appliedVersion, 5);
    assert.match(n.reason, /snapshot version 3 is older than the applied version 5/);
    assert.deepEqual(renderer.preloaded, []);
    assert.deepEqual(config.committed, []);
  });

  it("refuses a version older than the preload Caddy runs ahead of the database, touching nothing", async () => {
    const { applier, config, renderer } = fakes(5);
    // v7 preloaded, its commit still to come (config-service was down, or this receiver restarted).
    renderer.current = RenderStatus.fromPartial({ appliedVersion: 7, configSha256: "sha-7", inSync: false });
    const n = nackOf(await applier.apply(snap(6)));
    assert.equal(n.code, NackCode.NACK_CODE_STALE_VERSION);
    assert.equal(n.retryable, false);
    assert.match(n.reason, /snapshot version 6 is older than the preloaded version 7 Caddy runs/);
    assert.deepEqual([renderer.preloaded, config.committed], [[], []]);
    assert.equal((await applier.apply(snap(7))).ack?.version, 7, "the preloaded version itself goes through");
    assert.equal(
      (await applier.apply(snap(6, "master-2"))).ack?.version,
      6,
      "another master's is taken whatever its version",
    );
  });

  it("ACKs an equal version again (idempotent)", async () => {
    const { applier } = fakes(4);
    assert.deepEqual(await applier.apply(snap(4)), {
      ack: { version: 4, configSha256: "sha-4", contentSha256: snap(4).contentSha256 },
      nack: undefined,
    });
    assert.deepEqual(await applier.apply(snap(4)), {
      ack: { version: 4, configSha256: "sha-4", contentSha256: snap(4).contentSha256 },
      nack: undefined,
    });
  });

  it("answers a snapshot of what already runs at once: no preload, no commit, no Caddy load", async () => {
    const { applier, config, renderer } = fakes(1);
    await applier.apply(snap(2));
    assert.deepEqual([renderer.preloaded, config.committed], [[2], [2]]);
    assert.deepEqual(await applier.apply(snap(2)), {
      ack: { version: 2, configSha256: "sha-2", contentSha256: snap(2).contentSha256 },
      nack: undefined,
    });
    assert.deepEqual([renderer.preloaded, config.committed], [[2], [2]], "the unchanged push touched nothing");

    // The database no longer holds that content (changed behind its back): the full path repairs it.
    config.contentSha256 = "tampered";
    assert.deepEqual(await applier.apply(snap(2)), {
      ack: { version: 2, configSha256: "sha-2", contentSha256: snap(2).contentSha256 },
      nack: undefined,
    });
    assert.deepEqual(
      [renderer.preloaded, config.committed],
      [
        [2, 2],
        [2, 2],
      ],
    );

    // Caddy not in sync on that version: the full path as well.
    renderer.current = { ...renderer.current, inSync: false };
    await applier.apply(snap(2));
    assert.deepEqual(renderer.preloaded, [2, 2, 2]);
  });

  it("decodes a snapshot it must apply once, and the unchanged push not at all; the renderer and config-service get what came", async () => {
    const { applier, renderer } = fakes(1);
    const decoder = new CountingDecoder();
    const arrived = (v: number) => IncomingSnapshot.fromFrame(encodeSnapshotFrame(snap(v)), decoder);
    const frame = arrived(2);
    assert.equal((await applier.apply(frame)).ack?.version, 2);
    assert.equal(decoder.decodes, 1);
    // The IncomingSnapshot itself: its frame as it came over gRPC, its one decoding in process.
    assert.equal(renderer.payloads[0], frame, "handed on as it came, not encoded again");
    for (let i = 0; i < 3; i++) assert.equal((await applier.apply(arrived(2))).ack?.version, 2);
    assert.equal(decoder.decodes, 1, "an unchanged push is answered from its header");
    assert.equal((await applier.apply(arrived(3))).ack?.version, 3);
    assert.equal(decoder.decodes, 2);
  });

  it("refuses an invalid snapshot naming the field, not retryable, before Caddy sees it", async () => {
    const { applier, renderer } = fakes(1);
    const bad = { ...snap(2), contentSha256: "0".repeat(64) };
    const n = nackOf(await applier.apply(bad));
    assert.equal(n.code, NackCode.NACK_CODE_INVALID_SNAPSHOT);
    assert.equal(n.retryable, false);
    assert.match(n.reason, /^snapshot\.content_sha256: /);
    const missing = nackOf(await applier.apply(undefined));
    assert.equal(missing.reason, "snapshot: is required");
    assert.deepEqual(renderer.preloaded, []);
  });

  it("a config Caddy refuses is not committed and not retryable", async () => {
    const { applier, config, renderer } = fakes(1);
    renderer.failLoad = grpcError(Status.FAILED_PRECONDITION, "Caddy refused the config (HTTP 400): bad");
    const n = nackOf(await applier.apply(snap(2)));
    assert.equal(n.code, NackCode.NACK_CODE_CADDY_REJECTED);
    assert.equal(n.retryable, false);
    assert.match(n.reason, /Caddy refused the config/);
    assert.deepEqual(config.committed, []);
    assert.deepEqual(renderer.released, [], "nothing was preloaded");
    assert.equal(applier.state.lastError, n.reason);
  });

  it("a commit that fails after the preload: refused, it releases it; the slave at fault, Caddy stays on the newer version for the retry", async () => {
    const cases = [
      {
        err: grpcError(Status.INTERNAL, "disk I/O error"),
        code: NackCode.NACK_CODE_INTERNAL,
        retryable: true,
        released: [],
      },
      {
        err: grpcError(Status.UNAVAILABLE, "connection refused"),
        code: NackCode.NACK_CODE_UNAVAILABLE,
        retryable: true,
        released: [],
      },
      {
        err: grpcError(Status.DEADLINE_EXCEEDED, "deadline"),
        code: NackCode.NACK_CODE_UNAVAILABLE,
        retryable: true,
        released: [],
      },
      {
        err: grpcError(Status.FAILED_PRECONDITION, "snapshot version 2 is older than the applied version 3"),
        code: NackCode.NACK_CODE_STALE_VERSION,
        retryable: false,
        released: [2],
      },
    ];
    for (const c of cases) {
      const { applier, config, renderer } = fakes(1);
      config.failApply = c.err;
      const n = nackOf(await applier.apply(snap(2)));
      assert.equal(NackCode[n.code], NackCode[c.code], c.err.message);
      assert.equal(n.retryable, c.retryable, c.err.message);
      assert.equal(n.appliedVersion, 1);
      assert.deepEqual(renderer.preloaded, [2]);
      assert.deepEqual(
        renderer.released,
        c.released,
        c.released.length ? "Caddy goes back to the database's version now" : "Caddy never moves back a version",
      );
    }
  });

  it("an unavailable dependency is a retryable UNAVAILABLE NACK", async () => {
    const down = fakes(1);
    down.config.failInfo = grpcError(Status.UNAVAILABLE, "No connection established");
    const a = nackOf(await down.applier.apply(snap(2)));
    assert.deepEqual([a.code, a.retryable], [NackCode.NACK_CODE_UNAVAILABLE, true]);
    assert.match(a.reason, /config-service unavailable: No connection established/);

    const renderer = fakes(1);
    renderer.renderer.failLoad = grpcError(Status.UNAVAILABLE, "Caddy admin API unreachable");
    const b = nackOf(await renderer.applier.apply(snap(2)));
    assert.deepEqual([b.code, b.retryable], [NackCode.NACK_CODE_UNAVAILABLE, true]);
    assert.deepEqual(renderer.config.committed, []);
  });

  it("committed but not confirmed by Caddy in time: retryable, no release", async () => {
    const { applier, renderer } = fakes(1);
    renderer.waitFor = () => Promise.reject(new Error("renderer did not report the expected state within 50 ms"));
    const n = nackOf(await applier.apply(snap(2)));
    assert.deepEqual([n.code, n.retryable], [NackCode.NACK_CODE_UNAVAILABLE, true]);
    assert.match(n.reason, /^committed, but Caddy did not confirm/);
    assert.deepEqual(renderer.released, []);
  });

  it("drops a snapshot whose stream ended before its turn, unapplied", async () => {
    const { applier, renderer } = fakes(1);
    const g = gate();
    renderer.gate = g.promise;
    const first = applier.apply(snap(2));
    const ended = new AbortController();
    const second = applier.apply(snap(3), ended.signal);
    ended.abort();
    g.open();
    assert.ok((await first).ack);
    await assert.rejects(second, StreamClosedError);
    assert.deepEqual(renderer.preloaded, [2]);
  });
});

describe("SnapshotApplier.load: the receiver's wait for its own services at start", () => {
  it("resolves once config-service answers, retrying while it does not", async () => {
    const { applier, config } = fakes(3);
    config.failInfo = grpcError(Status.UNAVAILABLE, "connect ECONNREFUSED");
    let loaded = false;
    const load = applier.load(5_000).then(() => (loaded = true));
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(loaded, false, "not before config-service answers");
    config.failInfo = undefined;
    await load;
    assert.equal(applier.state.appliedVersion, 3);
  });

  it("rejects with the last failure once its bound has passed", async () => {
    const { applier, config } = fakes(3);
    config.failInfo = grpcError(Status.UNAVAILABLE, "connect ECONNREFUSED");
    await assert.rejects(applier.load(300), /ECONNREFUSED/);
  });
});

describe("SnapshotApplier.prime: a restarted slave starts from its own snapshot", () => {
  /** Version `v` of two hosts; host b's upstream port is `port`. */
  const two = (v: number, port: number) => {
    const s = Snapshot.fromPartial({
      schemaVersion: SNAPSHOT_SCHEMA_VERSION,
      masterInstanceId: "master-1",
      version: v,
      proxyHosts: [
        { id: "a", name: "a", domains: ["a.example.com"], upstreams: ["127.0.0.1:9000"] },
        { id: "b", name: "b", domains: ["b.example.com"], upstreams: [`127.0.0.1:${port}`] },
      ],
    });
    s.contentSha256 = snapshotContentHash(s);
    return Snapshot.decode(Snapshot.encode(s).finish());
  };

  it("teaches the decoder its own snapshot: the next push's unchanged hosts are those objects, and it applies", async () => {
    const { applier } = fakes(3);
    await applier.load(1_000);
    const own = two(3, 9001);
    const decoder = new SnapshotDecoder();
    await applier.prime(decoder, () => Promise.resolve(own));
    const pushed = IncomingSnapshot.fromFrame(encodeSnapshotFrame(two(4, 9002)), decoder);
    assert.equal((await applier.apply(pushed)).ack?.version, 4);
    assert.equal(pushed.snapshot().proxyHosts[0], own.proxyHosts[0], "host a, unchanged: the slave's own object");
    assert.notEqual(pushed.snapshot().proxyHosts[1], own.proxyHosts[1], "host b changed: decoded");
  });

  it("primes nothing on a slave that never applied a snapshot", async () => {
    const { applier } = fakes(0);
    await applier.load(1_000);
    let asked = 0;
    await applier.prime(new SnapshotDecoder(), () => (asked++, Promise.resolve(two(3, 9001))));
    assert.equal(asked, 0);
  });

  it("a failure to read its own snapshot changes nothing: the next push is checked in full and applies", async () => {
    const { applier } = fakes(3);
    await applier.load(1_000);
    const decoder = new SnapshotDecoder();
    await applier.prime(decoder, () => Promise.reject(grpcError(Status.UNAVAILABLE, "connect ECONNREFUSED")));
    const pushed = IncomingSnapshot.fromFrame(encodeSnapshotFrame(two(4, 9002)), decoder);
    assert.equal((await applier.apply(pushed)).ack?.version, 4);
  });
});
