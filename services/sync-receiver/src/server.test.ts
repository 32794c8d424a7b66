import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SyncReceiverService } from "@cpm/proto";
import { createLogger } from "@cpm/core";
import { policyGaps, status, type GrpcServer } from "@cpm/grpc-kit";
import { rawGrpcCall } from "@cpm/grpc-kit/testing";
import type { SnapshotApplier } from "./receiver.ts";
import { createServer, RECEIVER_POLICY } from "./server.ts";

const TOKEN = "receiver-test-sync-token-0123456";

describe("sync-receiver access", () => {
  let server: GrpcServer;
  let address: string;
  before(async () => {
    server = createServer({
      applier: {} as SnapshotApplier,
      syncToken: TOKEN,
      log: createLogger("test", "silent"),
      maxMessageBytes: 64 * 1024,
      keepalive: { timeMs: 20_000, timeoutMs: 10_000 },
    });
    address = `127.0.0.1:${await server.listen("127.0.0.1:0")}`;
  });
  after(() => server.shutdown(1000));

  it("every SyncReceiver method has exactly one entry: the sync token only", () => {
    assert.deepEqual(policyGaps(SyncReceiverService, RECEIVER_POLICY), { missing: [], unknown: [] });
    assert.ok(
      Object.values(RECEIVER_POLICY.methods).every((callers) => callers.length === 1 && callers[0] === "sync_master"),
    );
  });

  it("an anonymous 70 MB snapshot gets UNAUTHENTICATED before it is read", async () => {
    const r = await rawGrpcCall(address, "/cpm.sync.v1.SyncReceiver/Sync", {
      announcedBytes: 70 * 1024 * 1024,
      sentBytes: 32 * 1024,
    });
    assert.equal(r.code, status.UNAUTHENTICATED, r.details);
    assert.equal(r.requestEnded, false);
  });

  it("an oversized snapshot from the master gets RESOURCE_EXHAUSTED naming CPM_SYNC_MAX_MESSAGE_BYTES", async () => {
    const r = await rawGrpcCall(address, "/cpm.sync.v1.SyncReceiver/Sync", {
      token: TOKEN,
      announcedBytes: 70 * 1024 * 1024,
      sentBytes: 32 * 1024,
    });
    assert.equal(r.code, status.RESOURCE_EXHAUSTED, r.details);
    assert.match(r.details, /over the limit of 65536 bytes \(CPM_SYNC_MAX_MESSAGE_BYTES\)$/);
  });

  it("health is open; reflection needs the sync token", async () => {
    assert.equal((await rawGrpcCall(address, "/grpc.health.v1.Health/Check", { announcedBytes: 0 })).code, status.OK);
    const reflection = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
    assert.equal((await rawGrpcCall(address, reflection, { announcedBytes: 0 })).code, status.UNAUTHENTICATED);
    assert.equal((await rawGrpcCall(address, reflection, { token: TOKEN, announcedBytes: 0 })).code, status.OK);
  });
});
