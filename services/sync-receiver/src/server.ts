import { SyncReceiverService, type SyncReceiverServer } from "@cpm/proto";
import { SILENT_PEER, type Logger } from "@cpm/core";
import {
  contextFromCarrier,
  definePolicy,
  GrpcServer,
  handshakeMetadata,
  peerFromMetadata,
  sharedTokenAuthenticator,
  type AsyncService,
} from "@cpm/grpc-kit";
import { readSyncRequest, SnapshotDecoder, type IncomingSyncRequest } from "@cpm/snapshot-wire";
import type { ReceiverMetrics } from "./metrics.ts";
import type { SnapshotApplier } from "./receiver.ts";
import { describeMasterLoss, rstCodeOf, type ReceiverKeepalive, type StreamEnd } from "./master-link.ts";
import { SyncSession } from "./session.ts";

export interface ReceiverDeps {
  applier: SnapshotApplier;
  /** INSTANCE_SYNC_TOKEN: what the master must present. */
  syncToken: string;
  log: Logger;
  maxMessageBytes: number;
  metrics?: ReceiverMetrics;
  /** HTTP/2 pings toward the master (CPM_RECEIVER_KEEPALIVE_*): how soon a silent link ends its stream. */
  keepalive: ReceiverKeepalive;
  /** Decodes the snapshots of every stream; one the applier primed at start, or a new one. */
  decoder?: SnapshotDecoder;
}

/**
 * The shortest interval between a master's pings this receiver accepts: the floor of
 * CPM_SYNC_KEEPALIVE_TIME_MS, so no master setting is answered with GOAWAY too_many_pings
 * (grpc-js 1.14 does not enforce it on a server; an HTTP/2 stack that does reads it here).
 */
const MIN_MASTER_PING_INTERVAL_MS = 100;

/**
 * Who may call each SyncReceiver method: only the master, with this slave's sync token.
 * Server reflection on this port is behind the same token (health stays open: it tells
 * only SERVING or not).
 */
export const RECEIVER_POLICY = definePolicy("cpm.sync.v1.SyncReceiver", {
  Sync: ["sync_master"],
  GetReceiverStatus: ["sync_master"],
});

/** The slave's SyncReceiver gRPC API. Does not listen. */
export function createServer(deps: ReceiverDeps): GrpcServer {
  // A SyncRequest is read by its header: the snapshot is decoded only when it must be applied
  // (never for the unchanged periodic push), then only in the resources that changed.
  const decoder = deps.decoder ?? new SnapshotDecoder();
  const service = {
    ...SyncReceiverService,
    sync: { ...SyncReceiverService.sync, requestDeserialize: (b: Buffer) => readSyncRequest(b, decoder) },
  };
  let connectedMasters = 0;
  /** Why the last master's stream ended, shown while no master is connected. */
  let lastLoss: { message: string; at: Date } | undefined;
  /** What the last master announced ("" for a master that announces nothing: release 0.1.0). */
  let masterRelease = "";
  const impl: AsyncService<SyncReceiverServer> = {
    sync: async (call, ctx) => {
      connectedMasters++;
      lastLoss = undefined;
      ctx.log.info("master connected");
      let end: StreamEnd = { how: "shutdown" };
      // Headers go out at once so the master knows the stream is up, and what this slave
      // reads and serves (the handshake, see compat.ts), before any snapshot.
      call.sendMetadata(handshakeMetadata());
      const master = peerFromMetadata(call.metadata);
      masterRelease = master === SILENT_PEER ? "" : master.release;
      ctx.log.info({ masterRelease: master.release }, "master announced");
      const session = new SyncSession(
        deps.applier,
        (res) => {
          if (call.writableEnded || call.destroyed || call.cancelled) return;
          call.write(res);
          deps.metrics?.answered(res);
        },
        ctx.log,
      );
      try {
        await new Promise<void>((resolve) => {
          call.on("data", (req: IncomingSyncRequest) => {
            deps.metrics?.receivedSnapshot();
            session.receive(req.snapshot, contextFromCarrier(req.traceContext));
          });
          call.on("end", () => {
            end = { how: "ended" };
            resolve();
          });
          call.on("error", () => resolve());
          // The stream has closed by then: its RST code says who ended it (see describeMasterLoss).
          call.on("cancelled", () => {
            end = { how: "cancelled", rstCode: rstCodeOf(call) };
            resolve();
          });
          if (ctx.signal.aborted) resolve();
          else ctx.signal.addEventListener("abort", () => resolve(), { once: true });
        });
      } finally {
        session.close();
        connectedMasters--;
        const reason = describeMasterLoss(end, deps.keepalive);
        lastLoss = { message: reason, at: new Date() };
        ctx.log.info({ reason }, "master disconnected");
      }
    },
    getReceiverStatus: async () => {
      const s = await deps.applier.status();
      return {
        masterInstanceId: s.masterInstanceId,
        appliedVersion: s.appliedVersion,
        configSha256: s.configSha256,
        lastSyncTime: s.lastSyncTime,
        // While no master is connected, why the last one's stream ended, unless an apply failed since.
        ...(connectedMasters === 0 && lastLoss && !(s.lastErrorTime && s.lastErrorTime > lastLoss.at)
          ? { lastError: lastLoss.message, lastErrorTime: lastLoss.at }
          : { lastError: s.lastError, lastErrorTime: s.lastErrorTime }),
        masterConnected: connectedMasters > 0,
        masterRelease,
      };
    },
  };
  return new GrpcServer({
    log: deps.log,
    authenticate: sharedTokenAuthenticator(
      deps.syncToken,
      { kind: "sync_master", name: "master", role: "admin" },
      "sync token",
    ),
    maxReceiveBytes: deps.maxMessageBytes,
    limitVariable: "CPM_SYNC_MAX_MESSAGE_BYTES",
    reflection: ["sync_master"],
    keepalive: {
      timeMs: deps.keepalive.timeMs,
      timeoutMs: deps.keepalive.timeoutMs,
      minPingIntervalMs: MIN_MASTER_PING_INTERVAL_MS,
    },
  }).add(service, impl, RECEIVER_POLICY);
}
