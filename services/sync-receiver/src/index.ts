export { createServer } from "./server.ts";
export { SnapshotApplier } from "./receiver.ts";
export { SyncSession } from "./session.ts";
export { silentLinkBoundMs as receiverSilentLinkBoundMs } from "./master-link.ts";
export { syncReceiver } from "./service.ts";
