import { SyncDispatcherService, type SyncDispatcherServer } from "@cpm/proto";
import type { Logger } from "@cpm/core";
import { GrpcServer, permissionDenied, type AsyncService, type Authorize, type Principal } from "@cpm/grpc-kit";
import type { Metadata } from "@grpc/grpc-js";
import type { Dispatcher } from "./dispatcher.ts";

export interface DispatcherDeps {
  dispatcher: Dispatcher;
  authenticate: (md: Metadata) => Promise<Principal>;
  log: Logger;
}

/** The SyncDispatcher gRPC API (status and manual full sync). Does not listen. */
export function createServer(deps: DispatcherDeps): GrpcServer {
  const authorize: Authorize = async (method, md) => {
    const p = await deps.authenticate(md);
    if (method.endsWith("/TriggerFullSync") && p.role !== "admin") throw permissionDenied("TriggerFullSync needs an admin token");
    return p;
  };
  const impl: AsyncService<SyncDispatcherServer> = {
    getSyncStatus: async () => deps.dispatcher.status(),
    triggerFullSync: async (req) => ({ version: deps.dispatcher.triggerFullSync(req.slaveName.trim()) }),
  };
  return new GrpcServer({ log: deps.log }).add("cpm.sync.v1.SyncDispatcher", SyncDispatcherService, impl, authorize);
}
