import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import net from "node:net";
import { describe, it } from "node:test";
import { NackCode } from "@cpm/proto";
import type { SlaveLink } from "./slave-link.ts";
import { testLink, testReceiver, until } from "./test-support.ts";

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

/** The link's stop signal, to count the listeners attempts leave on it. */
const stopSignal = (link: SlaveLink): AbortSignal => (link as unknown as { stopped: AbortController }).stopped.signal;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("SlaveLink: connecting with a deadline", () => {
  it("abandons an attempt that gets no answer within the bound, connects again on a fresh socket, and uses a receiver once one answers", async () => {
    const silent = await silentServer();
    const link = testLink(silent.port, { connectTimeoutMs: 300 });
    let real: Awaited<ReturnType<typeof testReceiver>> | undefined;
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
      real = await testReceiver({ port: silent.port });
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
    const closed = testLink(await freePort(), { connectTimeoutMs: 100 });
    const silent = await silentServer();
    const timingOut = testLink(silent.port, { connectTimeoutMs: 100 });
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
    const link = testLink(port, { connectTimeoutMs: 2_000 });
    let slave: Awaited<ReturnType<typeof testReceiver>> | undefined;
    try {
      void link.run();
      // Nothing listens yet: refused every 200 ms, about 5 attempts.
      await pause(1_000);
      assert.match(link.status().lastError, /ECONNREFUSED/);
      assert.equal(link.status().consecutiveFailures, 1, "one outage");
      let nacks = 0;
      slave = await testReceiver({
        port,
        answer: (version) =>
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
      });
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
