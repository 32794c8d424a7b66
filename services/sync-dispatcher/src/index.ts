export { Dispatcher } from "./dispatcher.ts";
export { createServer } from "./server.ts";
export { SlaveLink, type LinkOptions, type MasterState } from "./slave-link.ts";
export { SnapshotCache } from "./snapshots.ts";
export { silentLinkBoundMs } from "./link-loss.ts";
export { syncDispatcher } from "./service.ts";
