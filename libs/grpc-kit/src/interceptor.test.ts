import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Server, ServerCredentials, status } from "@grpc/grpc-js";
import {
  GetSyncStatusResponse,
  SyncDispatcherClient,
  SyncDispatcherService,
  type SyncDispatcherServer,
} from "@cpm/proto";
import { createLogger } from "@cpm/core";
import { sharedTokenAuthenticator, type Principal } from "./auth.ts";
import { channelCredentials, unary } from "./client.ts";
import { accessInterceptor, oversizeDetails } from "./interceptor.ts";
import { definePolicy } from "./policy.ts";
import { GrpcServer, type AsyncService } from "./server.ts";
import { rawGrpcCall } from "./testing.ts";

const log = createLogger("test", "silent");
const TOKEN = "sync-token-0123456789abcdef";
const MASTER: Principal = { kind: "sync_master", name: "master", role: "admin" };
const POLICY = definePolicy("cpm.sync.v1.SyncDispatcher", {
  GetSyncStatus: ["sync_master"],
  TriggerFullSync: ["sync_master"],
});
const LIMIT = 64 * 1024;
const TRIGGER = "/cpm.sync.v1.SyncDispatcher/TriggerFullSync";

describe("oversizeDetails", () => {
  it("rewrites grpc-js's text to name the variable", () => {
    assert.equal(
      oversizeDetails("Received message larger than max (73400320 vs 4194304)", "CPM_API_MAX_MESSAGE_BYTES"),
      "request message of 73400320 bytes is over the limit of 4194304 bytes (CPM_API_MAX_MESSAGE_BYTES)",
    );
    assert.equal(
      oversizeDetails("Received message that decompresses to a size larger than 65536", "CPM_SYNC_MAX_MESSAGE_BYTES"),
      "request message decompresses to more than the limit of 65536 bytes (CPM_SYNC_MAX_MESSAGE_BYTES)",
    );
  });
  it("leaves other texts alone", () => assert.equal(oversizeDetails("snapshot too large", "X"), "snapshot too large"));
});

describe("GrpcServer access interceptor", () => {
  let server: GrpcServer;
  let address: string;
  let client: SyncDispatcherClient;
  const seen: Principal[] = [];

  before(async () => {
    const impl: AsyncService<SyncDispatcherServer> = {
      getSyncStatus: async (_req, ctx) => {
        seen.push(ctx.principal);
        return GetSyncStatusResponse.fromPartial({});
      },
      triggerFullSync: async (_req, ctx) => {
        seen.push(ctx.principal);
        return { version: 7 };
      },
    };
    server = new GrpcServer({
      log,
      authenticate: sharedTokenAuthenticator(TOKEN, MASTER, "sync token"),
      maxReceiveBytes: LIMIT,
      limitVariable: "CPM_SYNC_MAX_MESSAGE_BYTES",
      reflection: ["sync_master"],
    }).add(SyncDispatcherService, impl, POLICY);
    address = `127.0.0.1:${await server.listen("127.0.0.1:0")}`;
    client = new SyncDispatcherClient(address, channelCredentials({}));
  });
  after(async () => {
    client.close();
    await server.shutdown(1000);
  });

  it("hands the admitted principal to the handler", async () => {
    seen.length = 0;
    assert.deepEqual(await unary(client.triggerFullSync.bind(client), { slaveName: "" }, TOKEN), { version: 7 });
    assert.deepEqual(seen, [MASTER]);
  });

  it("refuses a call without a token with UNAUTHENTICATED, and the handler never runs", async () => {
    seen.length = 0;
    await assert.rejects(
      unary(client.triggerFullSync.bind(client), { slaveName: "" }, undefined),
      (e: { code: status }) => e.code === status.UNAUTHENTICATED,
    );
    assert.deepEqual(seen, []);
  });

  it("answers an anonymous 70 MB request with UNAUTHENTICATED before its body has arrived", async () => {
    const r = await rawGrpcCall(address, TRIGGER, { announcedBytes: 70 * 1024 * 1024, sentBytes: 16 * 1024 });
    assert.equal(r.code, status.UNAUTHENTICATED, r.details);
    assert.equal(r.requestEnded, false, "the status came while the request body was still incomplete");
    assert.match(r.details, /sync token was missing or wrong/);
  });

  it("answers an authenticated oversized request with RESOURCE_EXHAUSTED naming the variable, from the frame header", async () => {
    const r = await rawGrpcCall(address, TRIGGER, {
      token: TOKEN,
      announcedBytes: 70 * 1024 * 1024,
      sentBytes: 16 * 1024,
    });
    assert.equal(r.code, status.RESOURCE_EXHAUSTED, r.details);
    assert.equal(r.requestEnded, false);
    assert.equal(
      r.details,
      `request message of ${70 * 1024 * 1024} bytes is over the limit of ${LIMIT} bytes (CPM_SYNC_MAX_MESSAGE_BYTES)`,
    );
  });

  it("reads a message within the limit", async () => {
    const r = await rawGrpcCall(address, TRIGGER, { token: TOKEN, announcedBytes: 0 });
    assert.equal(r.code, status.OK, r.details);
  });

  it("serves health without a token", async () => {
    const r = await rawGrpcCall(address, "/grpc.health.v1.Health/Check", { announcedBytes: 0 });
    assert.equal(r.code, status.OK, r.details);
  });

  it("covers server reflection: here it needs the token", async () => {
    const path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
    const anon = await rawGrpcCall(address, path, { announcedBytes: 0 });
    assert.equal(anon.code, status.UNAUTHENTICATED, anon.details);
    const withToken = await rawGrpcCall(address, path, { token: TOKEN, announcedBytes: 0 });
    assert.equal(withToken.code, status.OK, withToken.details);
  });

  it("refuses at start-up a table that misses a method", () => {
    const partial = definePolicy("cpm.sync.v1.SyncDispatcher", { GetSyncStatus: ["viewer"] });
    assert.throws(
      () => new GrpcServer({ log, authenticate: async () => MASTER }).add(SyncDispatcherService, {}, partial),
      /no entry for TriggerFullSync/,
    );
  });
});

describe("accessInterceptor on a plain server", () => {
  it("fails closed: a method missing from the table is refused, even with a valid token", async () => {
    let ran = 0;
    const server = new Server({
      interceptors: [
        accessInterceptor({
          policies: new Map([["/cpm.sync.v1.SyncDispatcher/GetSyncStatus", ["public"]]]),
          authenticate: async () => MASTER,
          log,
        }),
      ],
    });
    server.addService(SyncDispatcherService, {
      getSyncStatus: (_c: unknown, cb: (e: null, r: unknown) => void) =>
        cb(null, GetSyncStatusResponse.fromPartial({})),
      triggerFullSync: (_c: unknown, cb: (e: null, r: unknown) => void) => {
        ran++;
        cb(null, { version: 1 });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    try {
      const r = await rawGrpcCall(`127.0.0.1:${port}`, TRIGGER, { token: TOKEN, announcedBytes: 0 });
      assert.equal(r.code, status.PERMISSION_DENIED);
      assert.equal(r.details, "TriggerFullSync has no access policy on this server");
      assert.equal(ran, 0);
      const open = await rawGrpcCall(`127.0.0.1:${port}`, "/cpm.sync.v1.SyncDispatcher/GetSyncStatus", {
        announcedBytes: 0,
      });
      assert.equal(open.code, status.OK, open.details);
    } finally {
      server.forceShutdown();
    }
  });
});
