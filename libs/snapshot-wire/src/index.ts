export * from "./frame.ts";
export * from "./decoder.ts";
export { FRAME_SNAPSHOT_FIELD, NOTICE_SNAPSHOT_FIELD, SNAPSHOT_FIELDS, SYNC_TRACE_CONTEXT_FIELD } from "./layout.ts";
