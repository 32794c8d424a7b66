import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { Server, ServerCredentials, type ServerDuplexStream } from "@grpc/grpc-js";
import { NackCode, Snapshot, SyncReceiverService, SyncRequest, type SyncResponse } from "@cpm/proto";
import { createLogger, type SlaveTarget, SNAPSHOT_SCHEMA_VERSION } from "@cpm/core";
import { handshakeMetadata, type ConfigClient } from "@cpm/grpc-kit";
import { encodeSnapshotFrame, readSnapshotFrame } from "@cpm/snapshot-wire";
import { SlaveLink, type MasterState } from "./slave-link.ts";
import { SnapshotCache } from "./snapshots.ts";

/**
 * FAKE slave: a real gRPC SyncReceiver that records what it receives and answers only when
 * the test says so, to observe coalescing and NACK handling deterministically.
 */
class FakeSlave {
  readonly received: number[] = [];
  private call: ServerDuplexStream<SyncRequest, SyncResponse> | undefined;
  private server = new Server();
  port = 0;

  /** Listens on `port` (0: any free port), e.g. the port of a stopped fake to stand in for a restarted receiver. */
  async start(port = 0): Promise<void> {
    this.server.addService(SyncReceiverService, {
      sync: (call: ServerDuplexStream<SyncRequest, SyncResponse>) => {
        this.call = call;
        // "connected", with the handshake of this release, as the real receiver does.
        call.sendMetadata(handshakeMetadata());
        call.on("data", (req: SyncRequest) => this.received.push(req.snapshot!.version));
        call.on("end", () => call.end());
      },
      getReceiverStatus: (_c: unknown, cb: (e: null, r: object) => void) => cb(null, {}),
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
  }

  ack(version: number) {
    this.call!.write({ ack: { version, configSha256: `sha-${version}`, contentSha256: "" }, nack: undefined });
  }

  nack(version: number, code: NackCode, retryable = false) {
    this.call!.write({
      ack: undefined,
      nack: { version, appliedVersion: 1, reason: "refused by the fake", code, retryable },
    });
  }

  stop() {
    this.server.forceShutdown();
  }
}

describe("SlaveLink: a restarted receiver", () => {
  it("is pushed within about a second of being reachable again, however long it was down", async () => {
    const first = new FakeSlave();
    await first.start();
    const port = first.port;
    let state: MasterState = { version: 1, contentSha256: "content-1" };
    const snapshotOf = (s: MasterState) =>
      Snapshot.fromPartial({
        schemaVersion: SNAPSHOT_SCHEMA_VERSION,
        masterInstanceId: "m",
        version: s.version,
        contentSha256: s.contentSha256,
      });
    const fakeConfig = {
      getSnapshotFrame: () => Promise.resolve(readSnapshotFrame(encodeSnapshotFrame(snapshotOf(state)))),
    } as unknown as ConfigClient;
    const target: SlaveTarget = {
      name: "s",
      url: `http://127.0.0.1:${port}`,
      address: `127.0.0.1:${port}`,
      tls: false,
      token: "t".repeat(20),
    };
    const link = new SlaveLink(
      target,
      () => state,
      new SnapshotCache(fakeConfig),
      {
        caFile: undefined,
        maxMessageBytes: 1 << 20,
        ackTimeoutMs: 30_000,
        connectTimeoutMs: 2_000,
        keepalive: { timeMs: 10_000, timeoutMs: 5_000 },
      },
      createLogger("test", "silent"),
    );
    void link.run();
    const second = new FakeSlave();
    try {
      await until("the first push", () => first.received.length === 1);
      first.ack(1);
      await until("ack", () => link.status().ackedVersion === 1);
      first.stop();
      await until("disconnected", () => !link.status().connected);
      state = { version: 2, contentSha256: "content-2" };
      link.notify();
      // Long enough for any exponential reconnect backoff to grow well past a second.
      await pause(6_000);
      await second.start(port);
      const back = Date.now();
      await until("the push to the restarted receiver", () => second.received.length === 1, 5_000);
      const after = Date.now() - back;
      assert.deepEqual(second.received, [2]);
      assert.ok(after <= 1_000, `pushed ${after} ms after the receiver was reachable again`);
    } finally {
      link.stop();
      second.stop();
    }
  });
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

const until = async (what: string, f: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe("SlaveLink: one stream per slave, latest wins, one snapshot in flight", () => {
  let slave: FakeSlave;
  let link: SlaveLink;
  let state: MasterState;

  const snapshotOf = (s: MasterState) =>
    Snapshot.fromPartial({
      schemaVersion: SNAPSHOT_SCHEMA_VERSION,
      masterInstanceId: "m",
      version: s.version,
      contentSha256: s.contentSha256,
    });
  const commit = (version: number) => {
    state = { version, contentSha256: `content-${version}` };
    link.notify();
  };

  beforeEach(async () => {
    slave = new FakeSlave();
    await slave.start();
    state = { version: 1, contentSha256: "content-1" };
    // Stands in for config-service: always answers with the current state's snapshot.
    const fakeConfig = {
      getSnapshotFrame: () => Promise.resolve(readSnapshotFrame(encodeSnapshotFrame(snapshotOf(state)))),
    } as unknown as ConfigClient;
    const target: SlaveTarget = {
      name: "s",
      url: `http://127.0.0.1:${slave.port}`,
      address: `127.0.0.1:${slave.port}`,
      tls: false,
      token: "t".repeat(20),
    };
    link = new SlaveLink(
      target,
      () => state,
      new SnapshotCache(fakeConfig),
      {
        caFile: undefined,
        maxMessageBytes: 1 << 20,
        ackTimeoutMs: 30_000,
        connectTimeoutMs: 2_000,
        keepalive: { timeMs: 10_000, timeoutMs: 5_000 },
      },
      createLogger("test", "silent"),
    );
    void link.run();
    await until("the first push on connect", () => slave.received.length === 1);
  });

  afterEach(() => {
    link.stop();
    slave.stop();
  });

  it("collapses a burst into the newest version while one is in flight", async () => {
    for (let v = 2; v <= 11; v++) commit(v);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(slave.received, [1], "nothing else is sent while v1 is unanswered");
    assert.equal(link.status().inFlightVersion, 1);
    slave.ack(1);
    await until("the newest version", () => slave.received.length === 2);
    assert.deepEqual(slave.received, [1, 11]);
    slave.ack(11);
    await until("ack recorded", () => link.status().ackedVersion === 11);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(slave.received, [1, 11], "an acked state is not sent again");
    assert.equal(link.status().lag, 0);
    assert.equal(link.status().configSha256, "sha-11");
  });

  it("does not resend a version the slave refused, until it changes or a push is forced", async () => {
    slave.nack(1, NackCode.NACK_CODE_CADDY_REJECTED);
    await until("nack recorded", () => link.status().lastNackedVersion === 1);
    link.notify();
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(slave.received, [1]);
    assert.match(link.status().lastError, /NACK v1 \(NACK_CODE_CADDY_REJECTED\): refused by the fake/);
    link.forceSync();
    await until("forced resend", () => slave.received.length === 2);
    slave.ack(1);
    commit(2);
    await until("the next version", () => slave.received.length === 3);
    assert.deepEqual(slave.received, [1, 1, 2]);
  });

  it("retries a retryable NACK by itself, after its backoff and not in a loop", async () => {
    const nackedAt = Date.now();
    slave.nack(1, NackCode.NACK_CODE_UNAVAILABLE, true);
    await pause(150);
    assert.deepEqual(slave.received, [1], "no resend before the first backoff (at least 200 ms)");
    await until("retry after backoff", () => slave.received.length === 2, 5_000);
    assert.ok(Date.now() - nackedAt >= 200, "resent only after the backoff");
    slave.nack(1, NackCode.NACK_CODE_UNAVAILABLE, true);
    await pause(1_500);
    assert.ok(slave.received.length <= 3, `one resend per backoff, got ${slave.received.length} snapshots`);
    await until("second retry", () => slave.received.length === 3, 5_000);
    assert.deepEqual(slave.received, [1, 1, 1]);
    assert.equal(link.status().consecutiveFailures, 2);
    assert.match(link.status().lastError, /NACK v1 \(NACK_CODE_UNAVAILABLE, retryable\)/);
    slave.ack(1);
    await until("ack recorded", () => link.status().ackedVersion === 1);
    await pause(300);
    assert.equal(slave.received.length, 3, "an ACK ends the retries");
  });

  it("does not resend a non-retryable INTERNAL NACK at all", async () => {
    slave.nack(1, NackCode.NACK_CODE_INTERNAL, false);
    await until("nack recorded", () => link.status().lastNackedVersion === 1);
    link.notify();
    await pause(1_500);
    assert.deepEqual(slave.received, [1], "no snapshot resent in 1.5 s");
    commit(2);
    await until("the changed state", () => slave.received.length === 2);
    assert.deepEqual(slave.received, [1, 2]);
  });

  it("ignores an answer for a snapshot that is not in flight", async () => {
    slave.nack(7, NackCode.NACK_CODE_SUPERSEDED);
    await pause(200);
    assert.equal(link.status().inFlightVersion, 1, "v1 is still awaited");
    assert.equal(link.status().lastNackedVersion, 0);
    slave.ack(1);
    await until("ack recorded", () => link.status().ackedVersion === 1);
    assert.deepEqual(slave.received, [1]);
  });
});

describe("SlaveLink: several slaves", () => {
  it("get the same snapshot, fetched once per version and never encoded again", async () => {
    const slaves = [new FakeSlave(), new FakeSlave(), new FakeSlave()];
    for (const s of slaves) await s.start();
    let state: MasterState = { version: 1, contentSha256: "content-1" };
    let fetched = 0;
    const fakeConfig = {
      getSnapshotFrame: () => {
        fetched++;
        return Promise.resolve(
          readSnapshotFrame(
            encodeSnapshotFrame(
              Snapshot.fromPartial({
                schemaVersion: SNAPSHOT_SCHEMA_VERSION,
                masterInstanceId: "m",
                version: state.version,
                contentSha256: state.contentSha256,
              }),
            ),
          ),
        );
      },
    } as unknown as ConfigClient;
    const encode = SyncRequest.encode.bind(SyncRequest);
    let encoded = 0;
    SyncRequest.encode = (m, w) => {
      encoded++;
      return encode(m, w);
    };
    const cache = new SnapshotCache(fakeConfig);
    const links = slaves.map((s, i) => {
      const target: SlaveTarget = {
        name: `s${i}`,
        url: `http://127.0.0.1:${s.port}`,
        address: `127.0.0.1:${s.port}`,
        tls: false,
        token: "t".repeat(20),
      };
      return new SlaveLink(
        target,
        () => state,
        cache,
        {
          caFile: undefined,
          maxMessageBytes: 1 << 20,
          ackTimeoutMs: 30_000,
          connectTimeoutMs: 2_000,
          keepalive: { timeMs: 10_000, timeoutMs: 5_000 },
        },
        createLogger("test", "silent"),
      );
    });
    try {
      for (const l of links) void l.run();
      await until("every slave got version 1", () => slaves.every((s) => s.received.length === 1));
      for (const s of slaves) s.ack(1);
      await until("acks", () => links.every((l) => l.status().ackedVersion === 1));
      state = { version: 2, contentSha256: "content-2" };
      for (const l of links) l.notify();
      await until("every slave got version 2", () => slaves.every((s) => s.received.length === 2));
      assert.deepEqual(
        slaves.map((s) => s.received),
        slaves.map(() => [1, 2]),
      );
      assert.equal(fetched, 2, "one GetSnapshot per version");
      assert.equal(encoded, 0, "config-service's bytes are sent as they are, whatever the number of slaves");
    } finally {
      SyncRequest.encode = encode;
      for (const l of links) l.stop();
      for (const s of slaves) s.stop();
    }
  });
});

describe("SlaveLink: a snapshot that came with its commit notice", () => {
  it("is pushed without a GetSnapshot, as the bytes config-service encoded, certificates readable for the status", async () => {
    const slave = new FakeSlave();
    await slave.start();
    let fetched = 0;
    const fakeConfig = {
      getSnapshotFrame: () => {
        fetched++;
        return Promise.reject(new Error("not expected: the notice carried the snapshot"));
      },
    } as unknown as ConfigClient;
    const observed: number[] = [];
    const cache = new SnapshotCache(fakeConfig, (s) => observed.push(s.certificates().length));
    const snapshot = Snapshot.fromPartial({
      schemaVersion: SNAPSHOT_SCHEMA_VERSION,
      masterInstanceId: "m",
      version: 5,
      contentSha256: "content-5",
      certificates: [{ id: "c", name: "cert" }],
    });
    const frame = readSnapshotFrame(encodeSnapshotFrame(snapshot));
    cache.put("5:content-5", frame);
    const state: MasterState = { version: 5, contentSha256: "content-5" };
    const target: SlaveTarget = {
      name: "s",
      url: `http://127.0.0.1:${slave.port}`,
      address: `127.0.0.1:${slave.port}`,
      tls: false,
      token: "t".repeat(20),
    };
    const link = new SlaveLink(
      target,
      () => state,
      cache,
      {
        caFile: undefined,
        maxMessageBytes: 1 << 20,
        ackTimeoutMs: 30_000,
        connectTimeoutMs: 2_000,
        keepalive: { timeMs: 10_000, timeoutMs: 5_000 },
      },
      createLogger("test", "silent"),
    );
    try {
      void link.run();
      await until("the push", () => slave.received.length === 1);
      assert.deepEqual(slave.received, [5]);
      assert.equal(fetched, 0);
      assert.deepEqual(observed, [1], "the certificates of the pushed version were observed once");
      assert.equal((await cache.get("5:content-5")).frame, frame.frame, "the very bytes that arrived");
    } finally {
      link.stop();
      slave.stop();
    }
  });
});
