import { SyncReceiverService, type SyncReceiverServer, type SyncRequest } from "@cpm/proto";
import type { Logger } from "@cpm/core";
import { bearerToken, GrpcServer, secretsEqual, unauthenticated, type AsyncService, type Authorize } from "@cpm/grpc-kit";
import { Metadata } from "@grpc/grpc-js";
import type { SnapshotApplier } from "./receiver.ts";
import { SyncSession } from "./session.ts";

export interface ReceiverDeps {
  applier: SnapshotApplier;
  /** INSTANCE_SYNC_TOKEN: what the master must present. */
  syncToken: string;
  log: Logger;
  maxMessageBytes: number;
}

/** The slave's SyncReceiver gRPC API. Does not listen. */
export function createServer(deps: ReceiverDeps): GrpcServer {
  let connectedMasters = 0;
  const authorize: Authorize = async (_method, md) => {
    const token = bearerToken(md);
    // Constant-time comparison; the token itself is never logged.
    if (!token || !secretsEqual(token, deps.syncToken)) throw unauthenticated("the sync token was missing or wrong");
    return { kind: "sync_master", name: "master", role: "admin" };
  };
  const impl: AsyncService<SyncReceiverServer> = {
    sync: async (call, ctx) => {
      connectedMasters++;
      ctx.log.info("master connected");
      // Headers go out at once so the master knows the stream is up before any snapshot.
      call.sendMetadata(new Metadata());
      const session = new SyncSession(
        deps.applier,
        (res) => {
          if (!call.writableEnded && !call.destroyed && !call.cancelled) call.write(res);
        },
        ctx.log,
      );
      try {
        await new Promise<void>((resolve) => {
          call.on("data", (req: SyncRequest) => session.receive(req.snapshot));
          call.on("end", () => resolve());
          call.on("error", () => resolve());
          if (ctx.signal.aborted) resolve();
          else ctx.signal.addEventListener("abort", () => resolve(), { once: true });
        });
      } finally {
        session.close();
        connectedMasters--;
        ctx.log.info("master disconnected");
      }
    },
    getReceiverStatus: async () => {
      const s = deps.applier.state;
      return {
        masterInstanceId: s.masterInstanceId,
        appliedVersion: s.appliedVersion,
        configSha256: s.configSha256,
        lastSyncTime: s.lastSyncTime,
        lastError: s.lastError,
        lastErrorTime: s.lastErrorTime,
        masterConnected: connectedMasters > 0,
      };
    },
  };
  return new GrpcServer({ log: deps.log, maxMessageBytes: deps.maxMessageBytes }).add("cpm.sync.v1.SyncReceiver", SyncReceiverService, impl, authorize);
}
