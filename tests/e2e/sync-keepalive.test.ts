// A silent sync link (packets dropped both ways, no reset) between a real master link and a
// real receiver, through a TCP proxy that stops forwarding: each end notices it through its
// HTTP/2 keepalive within its bound and says so in its status.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { GetReceiverStatusRequest, SyncReceiverClient, type GetReceiverStatusResponse } from "@cpm/proto";
import { createLogger } from "@cpm/core";
import type { GrpcServer } from "@cpm/grpc-kit";
import { silentLinkBoundMs, type SlaveLink } from "@cpm/sync-dispatcher";
import { testLink } from "@cpm/sync-dispatcher/testing";
import { createServer, receiverSilentLinkBoundMs, type SnapshotApplier } from "@cpm/sync-receiver";
import { TcpFaultInjector } from "../support/tcp-fault-injector.ts";

const TOKEN = "keepalive-test-sync-token-012345";
const log = createLogger("test", "silent");
/** Short enough to see within a test, long enough for a loaded 2-core machine to answer in time. */
const SHORT = { timeMs: 300, timeoutMs: 300 };
/** An end that does not notice within the test: the other end's keepalive is what is tested. */
const LONG = { timeMs: 60_000, timeoutMs: 60_000 };
/** Timers, sampling and scheduling on a loaded machine, on top of a bound. */
const SLACK_MS = 700;

/** A receiver whose applications ACK at once. */
async function receiver(keepalive: {
  timeMs: number;
  timeoutMs: number;
}): Promise<{ server: GrpcServer; port: number }> {
  const applier = {
    apply: (s: { version: number }) =>
      Promise.resolve({ ack: { version: s.version, configSha256: "sha", contentSha256: "" } }),
    superseded: (s: { version: number }) => ({ nack: { version: s.version } }),
    status: () =>
      Promise.resolve({
        masterInstanceId: "m",
        appliedVersion: 1,
        configSha256: "sha",
        lastSyncTime: undefined,
        lastError: "",
        lastErrorTime: undefined,
      }),
  } as unknown as SnapshotApplier;
  const server = createServer({ applier, syncToken: TOKEN, log, maxMessageBytes: 1 << 20, keepalive });
  return { server, port: await server.listen("127.0.0.1:0") };
}

/** A master's link to the receiver on `port`, with `keepalive`'s HTTP/2 pings. */
const link = (port: number, keepalive: { timeMs: number; timeoutMs: number }): SlaveLink =>
  testLink(port, { token: TOKEN, keepalive });

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, f: () => boolean | Promise<boolean>, ms: number): Promise<number> {
  const start = Date.now();
  while (!(await f())) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await pause(10);
  }
  return Date.now() - start;
}

/** The receiver's status, asked on its own port (not through the stalled proxy). */
function receiverStatus(client: SyncReceiverClient): Promise<GetReceiverStatusResponse> {
  const md = new Metadata();
  md.set("authorization", `Bearer ${TOKEN}`);
  return new Promise((resolve, reject) =>
    client.getReceiverStatus(GetReceiverStatusRequest.fromPartial({}), md, (err: ServiceError | null, res) =>
      err ? reject(err) : resolve(res),
    ),
  );
}

describe("a silent sync link", () => {
  let slave: Awaited<ReturnType<typeof receiver>> | undefined;
  let proxy: TcpFaultInjector | undefined;
  let master: SlaveLink | undefined;
  let client: SyncReceiverClient | undefined;
  const close = async () => {
    master?.stop();
    client?.close();
    await proxy?.close();
    await slave?.server.shutdown(500);
  };
  after(close);

  it("is noticed by the master within its keepalive bound, and its status says so", async () => {
    slave = await receiver(LONG);
    proxy = new TcpFaultInjector(slave.port);
    master = link(await proxy.start(), SHORT);
    void master.run();
    const m = master;
    await until("the ACK", () => m.status().ackedVersion === 1, 5_000);
    await pause(2 * SHORT.timeMs); // pings answered across the proxy meanwhile: nothing is dropped
    assert.equal(m.status().connected, true, m.status().lastError);

    proxy.stall(10_000);
    const took = await until("the master to drop the link", () => !m.status().connected, 5_000);
    const bound = silentLinkBoundMs(SHORT);
    assert.ok(took <= bound + SLACK_MS, `noticed after ${took} ms (bound ${bound} ms)`);
    // Read at once: attempts to connect through the stalled proxy time out 2 s later and say so.
    assert.match(m.status().lastError, /^no keepalive answer from the slave for 0\.6 s; the link is silent/);
    await close();
  });

  it("is noticed by the slave within its keepalive bound: master connected turns false, and why", async () => {
    slave = await receiver(SHORT);
    client = new SyncReceiverClient(`127.0.0.1:${slave.port}`, credentials.createInsecure());
    proxy = new TcpFaultInjector(slave.port);
    master = link(await proxy.start(), LONG);
    void master.run();
    const m = master;
    const c = client;
    await until("the ACK", () => m.status().ackedVersion === 1, 5_000);
    await pause(2 * SHORT.timeMs);
    assert.equal((await receiverStatus(c)).masterConnected, true);

    proxy.stall(10_000);
    let last: GetReceiverStatusResponse | undefined;
    const took = await until(
      "the receiver to drop the master",
      async () => !(last = await receiverStatus(c)).masterConnected,
      5_000,
    );
    const bound = receiverSilentLinkBoundMs(SHORT);
    assert.ok(took <= bound + SLACK_MS, `noticed after ${took} ms (bound ${bound} ms)`);
    assert.match(last!.lastError, /^no keepalive answer from the master for 0\.6 s; the link is silent/);
  });
});
