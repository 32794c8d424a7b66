import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApplySnapshotRequest, LoadSnapshotRequest, ProxyHost, Snapshot, SyncRequest } from "@cpm/proto";
import { ConfigServiceService } from "@cpm/proto";
import {
  decodingSnapshotsWith,
  IncomingSnapshot,
  readSyncRequest,
  SnapshotDecoder,
  snapshotOfFrame,
} from "./decoder.ts";
import { encodeSnapshotFrame } from "./frame.ts";
import { sampleHost, sampleSnapshot } from "./test-support.ts";

const host = sampleHost;
const snapshot = sampleSnapshot;

const bytesOf = (s: Snapshot) => Snapshot.encode(s).finish();

/** A deterministic pseudo-random sequence (the test's failures reproduce). */
function rng(seed: number) {
  let x = seed;
  return (n: number) => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x % n;
  };
}

describe("SnapshotDecoder", () => {
  it("decodes what Snapshot.decode decodes, over random edits, and keeps the objects of resources whose bytes did not change", () => {
    const decoder = new SnapshotDecoder();
    const next = rng(7);
    let hosts = Array.from({ length: 40 }, (_, i) => host(`h${i}`));
    let previous: Snapshot | undefined;
    for (let version = 1; version <= 200; version++) {
      const op = next(5);
      const i = next(hosts.length);
      if (op === 0) hosts = [...hosts.slice(0, i), host(`n${version}`), ...hosts.slice(i)];
      else if (op === 1 && hosts.length > 1) hosts = hosts.filter((_, j) => j !== i);
      else if (op === 2)
        hosts = hosts.map((h, j) => (j === i ? { ...h, upstreams: [`127.0.0.1:${9000 + version}`] } : h));
      else if (op === 3) hosts = hosts.map((h, j) => (j === i ? { ...h, compression: !h.compression } : h));
      const s = snapshot(version, hosts, next(10) === 0 ? `v${version}.example.com` : "example.com");
      const decoded = decoder.decode(bytesOf(s));
      assert.deepEqual(decoded, Snapshot.decode(bytesOf(s)), `version ${version}`);
      if (previous) {
        const before = new Map(previous.proxyHosts.map((h) => [h.id, h]));
        for (const h of decoded.proxyHosts) {
          const was = before.get(h.id);
          const same =
            was !== undefined && Buffer.compare(ProxyHost.encode(was).finish(), ProxyHost.encode(h).finish()) === 0;
          assert.equal(
            was === h,
            same,
            `version ${version}: host ${h.id} is the same object exactly when its bytes are the same`,
          );
        }
        assert.equal(decoded.certificates[0], previous.certificates[0], "an unchanged certificate is the same object");
        assert.equal(
          decoded.settings === previous.settings,
          decoded.settings!.general!.primaryDomain === previous.settings!.general!.primaryDomain,
        );
      }
      previous = decoded;
    }
  });

  it("primed with a snapshot of its own, gives that snapshot's objects for the resources whose bytes are the same", () => {
    const own = Snapshot.decode(bytesOf(snapshot(5, [host("a"), host("b"), host("c")])));
    const decoder = new SnapshotDecoder();
    decoder.prime(own);
    const changed = { ...own.proxyHosts[1]!, upstreams: ["127.0.0.1:9999"] };
    const pushed = bytesOf({ ...own, version: 6, proxyHosts: [own.proxyHosts[0]!, changed, own.proxyHosts[2]!] });
    const decoded = decoder.decode(pushed);
    assert.deepEqual(decoded, Snapshot.decode(pushed));
    assert.equal(decoded.proxyHosts[0], own.proxyHosts[0], "an unchanged host is the primed object");
    assert.equal(decoded.proxyHosts[2], own.proxyHosts[2]);
    assert.notEqual(decoded.proxyHosts[1], own.proxyHosts[1], "the changed host is decoded");
    assert.equal(decoded.settings, own.settings);
    assert.equal(decoded.certificates[0], own.certificates[0]);
  });

  it("is not misled by a caller that reorders the lists it was given", () => {
    const decoder = new SnapshotDecoder();
    const bytes = bytesOf(snapshot(1, [host("a"), host("b"), host("c")]));
    decoder.decode(bytes).proxyHosts.reverse();
    assert.deepEqual(decoder.decode(bytes), Snapshot.decode(bytes));
  });

  it("keeps protobuf's meaning for odd but valid bytes: a resource twice, unknown fields, no settings", () => {
    const decoder = new SnapshotDecoder();
    const s = snapshot(3, [host("a"), host("a")]);
    s.settings = undefined;
    const unknownField = Buffer.from([0xf8, 0x01, 0x05]); // field 31, varint 5
    const bytes = Buffer.concat([bytesOf(s), unknownField]);
    assert.deepEqual(decoder.decode(bytes), Snapshot.decode(bytes));
    assert.deepEqual(decoder.decode(new Uint8Array()), Snapshot.decode(new Uint8Array()));
  });
});

describe("IncomingSnapshot", () => {
  it("reads a SyncRequest's header and keeps its snapshot's bytes as a frame for the renderer and config-service", () => {
    const s = snapshot(12, [host("a"), host("b")]);
    const traceContext = { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "" };
    const wire = Buffer.from(SyncRequest.encode({ snapshot: s, traceContext }).finish());
    const req = readSyncRequest(wire, new SnapshotDecoder());
    assert.deepEqual(req.traceContext, traceContext);
    const incoming = req.snapshot!;
    assert.equal(incoming.version, 12);
    assert.equal(incoming.masterInstanceId, "m-1");
    assert.equal(incoming.contentSha256, s.contentSha256);
    assert.deepEqual(incoming.frame, encodeSnapshotFrame(s));
    assert.deepEqual(LoadSnapshotRequest.decode(incoming.frame).snapshot, s);
    assert.deepEqual(ApplySnapshotRequest.decode(incoming.frame).snapshot, s);
    assert.deepEqual(incoming.snapshot(), s);
    assert.equal(incoming.snapshot(), incoming.snapshot(), "decoded once");
    assert.equal(readSyncRequest(Buffer.alloc(0)).snapshot, undefined);
  });

  it("of a decoded snapshot carries the same frame", () => {
    const s = snapshot(5, [host("a")]);
    const incoming = IncomingSnapshot.of(s);
    assert.deepEqual(incoming.frame, encodeSnapshotFrame(s));
    assert.equal(incoming.snapshot(), s);
  });

  it("a server method taking frames decodes the snapshot, or none for an empty request", () => {
    const def = decodingSnapshotsWith(ConfigServiceService.applySnapshot, new SnapshotDecoder());
    const s = snapshot(8, [host("a")]);
    assert.deepEqual(def.requestDeserialize(Buffer.from(ApplySnapshotRequest.encode({ snapshot: s }).finish())), {
      snapshot: s,
    });
    assert.deepEqual(def.requestDeserialize(Buffer.alloc(0)), { snapshot: undefined });
    assert.deepEqual(Buffer.from(snapshotOfFrame(encodeSnapshotFrame(s))!), Buffer.from(bytesOf(s)));
  });
});
