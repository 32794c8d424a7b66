import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import net from "node:net";
import { describe, it } from "node:test";
import { Metadata, Server, ServerCredentials, type ServerDuplexStream } from "@grpc/grpc-js";
import { NackCode, Snapshot, SyncReceiverService, type SyncRequest, type SyncResponse } from "@cpm/proto";
import { createLogger, type SlaveTarget, SNAPSHOT_SCHEMA_VERSION } from "@cpm/core";
import type { ConfigClient } from "@cpm/grpc-kit";
import { encodeSnapshotFrame, readSnapshotFrame } from "@cpm/snapshot-wire";
import { SlaveLink, type MasterState } from "./slave-link.ts";
import { SnapshotCache } from "./snapshots.ts";

/** A receiver that opens the stream and records the versions pushed to it. */
async function receiver(
  port: number,
  answer?: (version: number) => SyncResponse | undefined,
): Promise<{ received: number[]; server: Server }> {
  const received: number[] = [];
  const server = new Server();
  server.addService(SyncReceiverService, {
    sync: (call: ServerDuplexStream<SyncRequest, SyncResponse>) => {
      call.sendMetadata(new Metadata());
      call.on("data", (req: SyncRequest) => {
        received.push(req.snapshot!.version);
        const res = answer?.(req.snapshot!.version);
        if (res) call.write(res);
      });
      call.on("end", () => call.end());
    },
    getReceiverStatus: (_c: unknown, cb: (e: null, r: object) => void) => cb(null, {}),
  });
  await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { received, server };
}

/** Accepts TCP connections and never writes a byte: the HTTP/2 (or TLS) handshake hangs, as across a cut link. */
async function silentServer(): Promise<{ server: net.Server; port: number; sockets: net.Socket[]; closed: number }> {
  const sockets: net.Socket[] = [];
  const counts = { closed: 0 };
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on("error", () => {});
    // Read (and drop) what the client sends, to see it close the connection.
    s.resume();
    s.on("end", () => {
      counts.closed++;
      s.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    sockets,
    get closed() {
      return counts.closed;
    },
  };
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

function linkTo(port: number, connectTimeoutMs: number): SlaveLink {
  const state: MasterState = { version: 1, contentSha256: "content-1" };
  const frame = readSnapshotFrame(
    encodeSnapshotFrame(
      Snapshot.fromPartial({
        schemaVersion: SNAPSHOT_SCHEMA_VERSION,
        masterInstanceId: "m",
        version: 1,
        contentSha256: "content-1",
      }),
    ),
  );
  const config = { getSnapshotFrame: () => Promise.resolve(frame) } as unknown as ConfigClient;
  const target: SlaveTarget = {
    name: "s",
    url: `http://127.0.0.1:${port}`,
    address: `127.0.0.1:${port}`,
    tls: false,
    token: "t".repeat(20),
  };
  return new SlaveLink(
    target,
    () => state,
    new SnapshotCache(config),
    {
      caFile: undefined,
      maxMessageBytes: 1 << 20,
      ackTimeoutMs: 30_000,
      connectTimeoutMs,
      keepalive: { timeMs: 10_000, timeoutMs: 5_000 },
    },
    createLogger("test", "silent"),
  );
}

/** The link's stop signal, to count the listeners attempts leave on it. */
const stopSignal = (link: SlaveLink): AbortSignal => (link as unknown as { stopped: AbortController }).stopped.signal;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

const until = async (what: string, f: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await pause(10);
  }
};

describe("SlaveLink: connecting with a deadline", () => {
  it("abandons an attempt that gets no answer within the bound, connects again on a fresh socket, and uses a receiver once one answers", async () => {
    const silent = await silentServer();
    const link = linkTo(silent.port, 300);
    let real: Awaited<ReturnType<typeof receiver>> | undefined;
    try {
      void link.run();
      await until("a first connection", () => silent.sockets.length >= 1);
      const first = Date.now();
      await until("a second connection", () => silent.sockets.length >= 2, 2_000);
      const gap = Date.now() - first;
      assert.ok(gap < 1_000, `the second attempt came ${gap} ms after the first (bound 300 ms)`);
      await until("a third connection", () => silent.sockets.length >= 3, 2_000);
      await until("the abandoned attempts closed their sockets", () => silent.closed >= 2, 1_000);
      const status = link.status();
      assert.equal(status.connected, false);
      assert.equal(status.lastError, "no answer from the slave within 0.3 s; connecting again");

      // The "network heals": a real receiver now listens on the slave's port.
      for (const s of silent.sockets) s.destroy();
      await new Promise((r) => silent.server.close(r));
      const healed = Date.now();
      real = await receiver(silent.port);
      const r = real;
      await until("the push to the receiver", () => r.received.length === 1, 3_000);
      const after = Date.now() - healed;
      assert.ok(after <= 1_500, `pushed ${after} ms after the receiver listened`);
      assert.equal(link.status().connected, true);
    } finally {
      link.stop();
      real?.server.forceShutdown();
      silent.server.close();
      for (const s of silent.sockets) s.destroy();
    }
  });
});

describe("SlaveLink: attempts leave nothing behind", () => {
  it("keeps the listeners on its stop signal bounded across many failing attempts", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    // Refused attempts (nothing listens) every 200 ms, then attempts that time out every 100 ms.
    const closed = linkTo(await freePort(), 100);
    const silent = await silentServer();
    const timingOut = linkTo(silent.port, 100);
    try {
      void closed.run();
      void timingOut.run();
      let most = 0;
      const end = Date.now() + 3_500;
      while (Date.now() < end) {
        most = Math.max(
          most,
          getEventListeners(stopSignal(closed), "abort").length,
          getEventListeners(stopSignal(timingOut), "abort").length,
        );
        await pause(5);
      }
      assert.ok(silent.sockets.length >= 12, `only ${silent.sockets.length} attempts timed out`);
      assert.ok(most <= 2, `${most} abort listeners on a link's stop signal`);
      assert.deepEqual(
        warnings.filter((w) => w.name === "MaxListenersExceededWarning").map((w) => w.message),
        [],
      );
    } finally {
      process.off("warning", onWarning);
      closed.stop();
      timingOut.stop();
      silent.server.close();
      for (const s of silent.sockets) s.destroy();
    }
  });
});

describe("SlaveLink: consecutive failures", () => {
  it("counts an outage once, however many attempts to connect it took, and every NACK", async () => {
    const port = await freePort();
    const link = linkTo(port, 2_000);
    let slave: Awaited<ReturnType<typeof receiver>> | undefined;
    try {
      void link.run();
      // Nothing listens yet: refused every 200 ms, about 5 attempts.
      await pause(1_000);
      assert.match(link.status().lastError, /ECONNREFUSED/);
      assert.equal(link.status().consecutiveFailures, 1, "one outage");
      let nacks = 0;
      slave = await receiver(port, (version) =>
        nacks++ < 3
          ? {
              ack: undefined,
              nack: {
                version,
                appliedVersion: 0,
                reason: "starting",
                code: NackCode.NACK_CODE_UNAVAILABLE,
                retryable: true,
              },
            }
          : undefined,
      );
      const s = slave;
      await until("the fourth push", () => s.received.length === 4, 10_000);
      assert.equal(link.status().consecutiveFailures, 4, "the outage and three NACKs");
      s.server.forceShutdown();
      await until("disconnected", () => !link.status().connected);
      await pause(1_000);
      assert.equal(link.status().consecutiveFailures, 5, "the lost stream, and not each refused attempt after it");
    } finally {
      link.stop();
      slave?.server.forceShutdown();
    }
  });
});
