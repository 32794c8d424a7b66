import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GetSnapshotResponse, Snapshot, SyncRequest, WatchConfigResponse } from "@cpm/proto";
import {
  decodeNotice,
  encodeNoticeWithFrame,
  encodeSnapshotFrame,
  frameCertificates,
  readSnapshotFrame,
  snapshotFrameOf,
} from "./frame.ts";
import { sampleHost, sampleSnapshot } from "./test-support.ts";

const snapshot = (version: number, hostNames: string[]) =>
  sampleSnapshot(
    version,
    hostNames.map((n) => sampleHost(n)),
  );

describe("snapshot frames", () => {
  it("are the bytes of GetSnapshotResponse and SyncRequest, with or without kept resource encodings", () => {
    const s = snapshot(7, ["a", "b"]);
    const expected = Buffer.from(GetSnapshotResponse.encode({ snapshot: s }).finish());
    assert.deepEqual(encodeSnapshotFrame(s), expected);
    const parts = new WeakMap<object, Uint8Array>();
    assert.deepEqual(encodeSnapshotFrame(s, parts), expected);
    // The next version shares host "a": its kept encoding is reused, the result still exact.
    const next = { ...s, version: 8, proxyHosts: [s.proxyHosts[0]!, snapshot(8, ["c"]).proxyHosts[0]!] };
    assert.deepEqual(
      encodeSnapshotFrame(next, parts),
      Buffer.from(GetSnapshotResponse.encode({ snapshot: next }).finish()),
    );
    assert.deepEqual(SyncRequest.decode(encodeSnapshotFrame(next, parts)).snapshot, next);
  });

  it("give their version, content hash and certificates without a full decode", () => {
    const s = snapshot(42, ["a"]);
    const f = readSnapshotFrame(encodeSnapshotFrame(s));
    assert.equal(f.version, 42);
    assert.equal(f.contentSha256, s.contentSha256);
    assert.deepEqual(frameCertificates(f.frame), s.certificates);
  });

  it("built from their own snapshot, say what reading them back says, the message included", () => {
    for (const hosts of [[], ["a"], Array.from({ length: 300 }, (_, i) => `h${i}`)]) {
      const s = { ...snapshot(1_000_000 + hosts.length, hosts), masterInstanceId: "m-7" };
      const frame = encodeSnapshotFrame(s);
      const built = snapshotFrameOf(s, frame);
      assert.deepEqual(built, readSnapshotFrame(frame), `${hosts.length} hosts`);
      assert.deepEqual(Snapshot.decode(built.message), s);
      assert.equal(built.frame, frame, "the same bytes, not a copy");
    }
  });

  it("refuse bytes that are not a snapshot frame", () => {
    assert.throws(() => readSnapshotFrame(Buffer.alloc(0), "GetSnapshot response"), /GetSnapshot response: empty/);
    const notice = Buffer.from(WatchConfigResponse.encode(WatchConfigResponse.fromPartial({ version: 3 })).finish());
    assert.throws(() => readSnapshotFrame(notice), /field 1 \(snapshot\) expected/);
  });

  it("ride in a WatchConfig notice and come out as the same frame", () => {
    const s = snapshot(9, ["a", "b", "c"]);
    const frame = encodeSnapshotFrame(s);
    const notice = WatchConfigResponse.fromPartial({
      version: 9,
      contentSha256: s.contentSha256,
      committedAt: new Date("2026-01-02T03:04:06Z"),
      traceContext: { traceparent: "00-abc-def-01", tracestate: "" },
    });
    const bytes = encodeNoticeWithFrame(notice, frame);
    // Any protobuf reader sees a notice with its snapshot.
    assert.deepEqual(WatchConfigResponse.decode(bytes), { ...notice, snapshot: s });
    const decoded = decodeNotice(bytes);
    assert.equal(decoded.version, 9);
    assert.equal(decoded.contentSha256, s.contentSha256);
    assert.deepEqual(decoded.committedAt, notice.committedAt);
    assert.deepEqual(decoded.traceContext, notice.traceContext);
    const { message, ...header } = decoded.snapshotFrame!;
    assert.deepEqual(header, { version: 9, contentSha256: s.contentSha256, masterInstanceId: "m-1", frame });
    assert.deepEqual(Snapshot.decode(message), s, "the snapshot's own bytes inside the frame");
    assert.equal(frame[0], 0x0a, "the sender's frame is left as it was");
    const plain = decodeNotice(Buffer.from(WatchConfigResponse.encode(notice).finish()));
    assert.equal(plain.snapshotFrame, undefined);
    assert.equal(plain.version, 9);
  });
});
