import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Metadata } from "@grpc/grpc-js";
import {
  GetSyncStatusResponse,
  SyncDispatcherClient,
  SyncDispatcherService,
  type SyncDispatcherServer,
} from "@cpm/proto";
import { createLogger } from "@cpm/core";
import { sharedTokenAuthenticator, type Principal } from "./auth.ts";
import { channelCredentials } from "./client.ts";
import { definePolicy } from "./policy.ts";
import { GrpcServer, type AsyncService, type CallContext } from "./server.ts";

const TOKEN = "sync-token-0123456789abcdef";
const MASTER: Principal = { kind: "sync_master", name: "master", role: "admin" };
const POLICY = definePolicy("cpm.sync.v1.SyncDispatcher", {
  GetSyncStatus: ["sync_master"],
  TriggerFullSync: ["sync_master"],
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("a call's context (logger and abort signal made on first use)", () => {
  let server: GrpcServer;
  let client: SyncDispatcherClient;
  /** The context of the call in progress, and a promise the test resolves to let the handler go on. */
  let seen: { ctx: CallContext; release: () => void; done: Promise<void> } | undefined;
  let arrived: () => void = () => {};

  before(async () => {
    const impl: AsyncService<SyncDispatcherServer> = {
      getSyncStatus: async () => GetSyncStatusResponse.fromPartial({}),
      triggerFullSync: async (req, ctx) => {
        let release!: () => void;
        const done = new Promise<void>((r) => (release = r));
        seen = { ctx, release, done };
        if (req.slaveName === "signal-first") void ctx.signal;
        arrived();
        await done;
        return { version: 1 };
      },
    };
    server = new GrpcServer({
      log: createLogger("test", "silent"),
      authenticate: sharedTokenAuthenticator(TOKEN, MASTER, "sync token"),
    }).add(SyncDispatcherService, impl, POLICY);
    client = new SyncDispatcherClient(`127.0.0.1:${await server.listen("127.0.0.1:0")}`, channelCredentials({}));
  });
  after(async () => {
    client.close();
    await server.shutdown(1000);
  });

  /** Starts a call, waits until its handler runs, cancels it from the client, and waits for the server to hear it. */
  async function cancelledCall(slaveName: string): Promise<CallContext> {
    const handlerRuns = new Promise<void>((r) => (arrived = r));
    const md = new Metadata();
    md.set("authorization", `Bearer ${TOKEN}`);
    const call = client.triggerFullSync({ slaveName }, md, () => {});
    await handlerRuns;
    call.cancel();
    // Until the server has heard the cancel (its context's own flag, read without making the
    // signal), at most 5 s: a fixed wait is too short on a loaded machine.
    const heard = () => (seen!.ctx as unknown as { cancelled: boolean }).cancelled;
    for (let waited = 0; !heard() && waited < 5_000; waited += 20) await sleep(20);
    return seen!.ctx;
  }

  it("a signal first read after the client cancelled is aborted", async () => {
    const ctx = await cancelledCall("signal-later");
    assert.equal(ctx.signal.aborted, true);
    seen!.release();
  });

  it("a signal read before the client cancelled is aborted by the cancel", async () => {
    const ctx = await cancelledCall("signal-first");
    assert.equal(ctx.signal.aborted, true);
    seen!.release();
  });

  it("a call nobody cancelled has a live signal, its principal and peer, and a logger", async () => {
    const handlerRuns = new Promise<void>((r) => (arrived = r));
    const md = new Metadata();
    md.set("authorization", `Bearer ${TOKEN}`);
    const answered = new Promise((resolve, reject) =>
      client.triggerFullSync({ slaveName: "live" }, md, (err, res) => (err ? reject(err) : resolve(res))),
    );
    await handlerRuns;
    const ctx = seen!.ctx;
    assert.equal(ctx.signal.aborted, false);
    assert.deepEqual(ctx.principal, MASTER);
    assert.match(ctx.peer, /127\.0\.0\.1/);
    assert.equal(typeof ctx.log.info, "function");
    seen!.release();
    assert.deepEqual(await answered, { version: 1 });
  });
});
