import { SyncDispatcherService, type SyncDispatcherServer } from "@cpm/proto";
import { DEFAULT_API_MAX_MESSAGE_BYTES, type Logger } from "@cpm/core";
import { definePolicy, GrpcServer, type AsyncService, type Authenticate } from "@cpm/grpc-kit";
import type { Dispatcher } from "./dispatcher.ts";

export interface DispatcherDeps {
  dispatcher: Dispatcher;
  authenticate: Authenticate;
  log: Logger;
  /** Its requests are small, like the public API's (CPM_API_MAX_MESSAGE_BYTES). */
  maxMessageBytes?: number;
}

/** Who may call each SyncDispatcher method: an operator's API tokens; no service of the instance calls it. */
export const DISPATCHER_POLICY = definePolicy("cpm.sync.v1.SyncDispatcher", {
  GetSyncStatus: ["viewer"],
  TriggerFullSync: ["admin"],
});

/** The SyncDispatcher gRPC API (status and manual full sync). Does not listen. */
export function createServer(deps: DispatcherDeps): GrpcServer {
  const impl: AsyncService<SyncDispatcherServer> = {
    getSyncStatus: async () => deps.dispatcher.status(),
    triggerFullSync: async (req) => ({ version: deps.dispatcher.triggerFullSync(req.slaveName.trim()) }),
  };
  return new GrpcServer({
    log: deps.log,
    authenticate: deps.authenticate,
    maxReceiveBytes: deps.maxMessageBytes ?? DEFAULT_API_MAX_MESSAGE_BYTES,
    limitVariable: "CPM_API_MAX_MESSAGE_BYTES",
  }).add(SyncDispatcherService, impl, DISPATCHER_POLICY);
}
