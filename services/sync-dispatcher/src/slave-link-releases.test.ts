import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Compatibility, CompatibilityIssueCode, ProxyHost, Snapshot, type SyncResponse } from "@cpm/proto";
import { createLogger, RELEASE, snapshotContentHash, SNAPSHOT_SCHEMA_VERSION, type SlaveTarget } from "@cpm/core";
import type { ConfigClient } from "@cpm/grpc-kit";
import { encodeSnapshotFrame, readSnapshotFrame } from "@cpm/snapshot-wire";
import { SlaveLink, type MasterState } from "./slave-link.ts";
import { SnapshotCache } from "./snapshots.ts";
import { testReceiver, until } from "./test-support.ts";

/** A master whose configuration the test sets: one proxy host, compressed or not. */
function master() {
  let snapshot = build(1, false);
  function build(version: number, compression: boolean): Snapshot {
    const s = Snapshot.fromPartial({
      schemaVersion: SNAPSHOT_SCHEMA_VERSION,
      masterInstanceId: "m",
      version,
      proxyHosts: [
        ProxyHost.fromPartial({
          id: "h1",
          name: "shop",
          domains: ["shop.example.com"],
          upstreams: ["127.0.0.1:9000"],
          compression,
        }),
      ],
    });
    s.contentSha256 = snapshotContentHash(s);
    return s;
  }
  const config = {
    getSnapshotFrame: () => Promise.resolve(readSnapshotFrame(encodeSnapshotFrame(snapshot))),
  } as unknown as ConfigClient;
  const cache = new SnapshotCache(config);
  const state = (): MasterState => ({ version: snapshot.version, contentSha256: snapshot.contentSha256 });
  return {
    state,
    cache,
    commit(version: number, compression: boolean) {
      snapshot = build(version, compression);
    },
    contentOf: () => snapshot.contentSha256,
  };
}

function linkTo(port: number, m: ReturnType<typeof master>): SlaveLink {
  const target: SlaveTarget = {
    name: "s",
    url: `http://127.0.0.1:${port}`,
    address: `127.0.0.1:${port}`,
    tls: false,
    token: "t".repeat(20),
  };
  return new SlaveLink(
    target,
    m.state,
    m.cache,
    {
      caFile: undefined,
      maxMessageBytes: 1 << 20,
      ackTimeoutMs: 30_000,
      connectTimeoutMs: 2_000,
      keepalive: { timeMs: 10_000, timeoutMs: 5_000 },
    },
    createLogger("test", "silent"),
  );
}

const ack = (version: number, snapshot: Snapshot): SyncResponse => ({
  ack: { version, configSha256: `k${version}`, contentSha256: snapshot.contentSha256 },
  nack: undefined,
});
/** Release 0.1.0's ACK: no content hash. */
const silentAck = (version: number): SyncResponse => ({
  ack: { version, configSha256: `k${version}`, contentSha256: "" },
  nack: undefined,
});

describe("SlaveLink across releases", () => {
  it("announces this release, and sends a current slave the newest schema as it is", async () => {
    const m = master();
    const slave = await testReceiver({ answer: ack });
    const link = linkTo(slave.port, m);
    void link.run();
    try {
      m.commit(2, true);
      link.notify();
      await until("v2 acked", () => link.status().ackedVersion === 2);
      assert.deepEqual(slave.masterReleases.slice(0, 1), [RELEASE]);
      assert.ok(slave.schemas.every((v) => v === SNAPSHOT_SCHEMA_VERSION));
      const s = link.status();
      assert.equal(s.release, RELEASE);
      assert.equal(s.compatibility, Compatibility.COMPATIBILITY_OK);
      assert.equal(s.schemaVersion, SNAPSHOT_SCHEMA_VERSION);
      assert.deepEqual(s.capabilities, ["proxy_host.compression"]);
    } finally {
      link.stop();
      slave.server.forceShutdown();
    }
  });

  it("sends a silent (0.1.0) slave schema 2, withholds what it cannot serve, and resumes once it can", async () => {
    const m = master();
    const slave = await testReceiver({ handshake: {}, answer: silentAck });
    const link = linkTo(slave.port, m);
    void link.run();
    try {
      await until("v1 acked", () => link.status().ackedVersion === 1);
      assert.deepEqual(slave.schemas, [2], "the older schema for the older slave");
      let s = link.status();
      assert.equal(s.release, "0.1.0");
      assert.deepEqual(s.snapshotSchemas, [2]);
      assert.equal(s.schemaVersion, 2);
      assert.equal(s.compatibility, Compatibility.COMPATIBILITY_OK);

      m.commit(2, true);
      link.notify();
      await until("INCOMPATIBLE", () => link.status().compatibility === Compatibility.COMPATIBILITY_INCOMPATIBLE);
      s = link.status();
      assert.deepEqual(slave.received, [1], "v2 is not sent: it would serve something else there");
      assert.equal(s.ackedVersion, 1);
      assert.equal(s.lag, 1);
      assert.deepEqual(
        s.compatibilityIssues.map((i) => [i.code, i.capability, i.resources]),
        [
          [
            CompatibilityIssueCode.COMPATIBILITY_ISSUE_CODE_MISSING_CAPABILITY,
            "proxy_host.compression",
            ["proxy_host h1 (shop)"],
          ],
        ],
      );
      assert.match(
        s.lastError,
        /INCOMPATIBLE at v2: the slave \(release 0\.1\.0\) does not serve proxy_host\.compression/,
      );
      link.forceSync();
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(slave.received, [1], "a forced push does not send it either");

      m.commit(3, false);
      link.notify();
      await until("v3 acked", () => link.status().ackedVersion === 3);
      assert.deepEqual(slave.received, [1, 3]);
      assert.deepEqual(slave.schemas, [2, 2]);
      assert.equal(link.status().compatibility, Compatibility.COMPATIBILITY_OK);
      assert.deepEqual(link.status().compatibilityIssues, []);
    } finally {
      link.stop();
      slave.server.forceShutdown();
    }
  });

  it("does not count an ACK naming other content than was sent", async () => {
    const m = master();
    const slave = await testReceiver({
      answer: (version) => ({
        ack: { version, configSha256: "k", contentSha256: "f".repeat(64) },
        nack: undefined,
      }),
    });
    const link = linkTo(slave.port, m);
    void link.run();
    try {
      await until("the ACK is refused", () => /ACK v1 names content ffffffffffff/.test(link.status().lastError));
      assert.equal(link.status().ackedVersion, 0);
      await until("sent again after a backoff", () => slave.received.length >= 2, 3_000);
    } finally {
      link.stop();
      slave.server.forceShutdown();
    }
  });
});
