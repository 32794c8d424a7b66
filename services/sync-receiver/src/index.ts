export { createServer } from "./server.ts";
export { SnapshotApplier } from "./receiver.ts";
