// The field numbers of the snapshot's byte layout, looked up by name in the descriptor set that
// `npm run generate` builds from proto/ (libs/proto/descriptors.binpb), never written here by hand.
// Read once per process, when this module loads; a field that is missing, changed its type, or
// a message that gained a field the framing would drop, fails the load with the field's name.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createFileRegistry, fromBinary, ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

/** Where the descriptor set is: resolved through @cpm/proto's exports, so from src/, dist/ and the image alike. */
export const DESCRIPTOR_SET_PATH = createRequire(import.meta.url).resolve("@cpm/proto/descriptors.binpb");

const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTOR_SET_PATH)));

class LayoutError extends Error {
  constructor(what: string) {
    super(`snapshot wire layout (${DESCRIPTOR_SET_PATH}): ${what}`);
  }
}

function message(typeName: string): DescMessage {
  const m = registry.getMessage(typeName);
  if (!m) throw new LayoutError(`message ${typeName} not found`);
  return m;
}

/** A field's type as the .proto spells it: `int64`, `cpm.config.v1.Settings`, `repeated cpm.config.v1.ProxyHost`. */
export function protoType(f: DescField): string {
  switch (f.fieldKind) {
    case "scalar":
      return ScalarType[f.scalar].toLowerCase();
    case "enum":
      return f.enum.typeName;
    case "message":
      return f.message.typeName;
    case "list":
      return `repeated ${f.listKind === "scalar" ? ScalarType[f.scalar].toLowerCase() : f.listKind === "enum" ? f.enum.typeName : f.message.typeName}`;
    case "map":
      return "map";
  }
}

/** The number of `typeName`'s field `name` (the .proto's name), which must have the type `type`. */
function field(typeName: string, name: string, type: string): number {
  const f = message(typeName).fields.find((x) => x.name === name);
  if (!f) throw new LayoutError(`${typeName}.${name} not found`);
  if (protoType(f) !== type) throw new LayoutError(`${typeName}.${name} is ${protoType(f)}, the framing reads ${type}`);
  return f.number;
}

/** Refuses a message with fields other than `names`: the framing reads those only and would drop the others. */
function onlyFields(typeName: string, names: string[]): void {
  const other = message(typeName).fields.filter((f) => !names.includes(f.name));
  if (other.length > 0)
    throw new LayoutError(
      `${typeName} has ${other.map((f) => `${f.name} = ${f.number}`).join(", ")}, which the framing does not carry`,
    );
}

const SNAPSHOT = "cpm.config.v1.Snapshot";
/** cpm.config.v1.Snapshot as the descriptor set describes it (for tests that compare it with the framing). */
export const SNAPSHOT_DESCRIPTOR = message(SNAPSHOT);

/** The fields of cpm.config.v1.Snapshot the framing reads or writes itself (the others go through the generated code). */
export const SNAPSHOT_FIELDS = {
  masterInstanceId: field(SNAPSHOT, "master_instance_id", "string"),
  version: field(SNAPSHOT, "version", "int64"),
  contentSha256: field(SNAPSHOT, "content_sha256", "string"),
  proxyHosts: field(SNAPSHOT, "proxy_hosts", "repeated cpm.config.v1.ProxyHost"),
  l4ProxyHosts: field(SNAPSHOT, "l4_proxy_hosts", "repeated cpm.config.v1.L4ProxyHost"),
  certificates: field(SNAPSHOT, "certificates", "repeated cpm.config.v1.Certificate"),
  accessLists: field(SNAPSHOT, "access_lists", "repeated cpm.config.v1.AccessList"),
  settings: field(SNAPSHOT, "settings", "cpm.config.v1.Settings"),
} as const;

/**
 * The messages that are a frame (a message whose only field is the snapshot, or, for SyncRequest,
 * the snapshot and the trace context): config-service encodes a version's snapshot once and the
 * very same bytes are each of them, so their snapshot fields must share one number.
 */
const FRAMES = [
  "cpm.config.v1.GetSnapshotResponse",
  "cpm.sync.v1.SyncRequest",
  "cpm.render.v1.LoadSnapshotRequest",
  "cpm.config.v1.ApplySnapshotRequest",
];
const frameFields = FRAMES.map((m) => field(m, "snapshot", SNAPSHOT));
if (new Set(frameFields).size !== 1)
  throw new LayoutError(
    `the snapshot fields of ${FRAMES.map((m, i) => `${m} (${frameFields[i]})`).join(", ")} differ: one frame cannot be all of them`,
  );
/** The snapshot's field in a frame: GetSnapshotResponse, SyncRequest, LoadSnapshotRequest, ApplySnapshotRequest. */
export const FRAME_SNAPSHOT_FIELD = frameFields[0]!;
/** SyncRequest.trace_context */
export const SYNC_TRACE_CONTEXT_FIELD = field("cpm.sync.v1.SyncRequest", "trace_context", "cpm.config.v1.TraceContext");
onlyFields("cpm.config.v1.GetSnapshotResponse", ["snapshot"]);
onlyFields("cpm.render.v1.LoadSnapshotRequest", ["snapshot"]);
onlyFields("cpm.config.v1.ApplySnapshotRequest", ["snapshot"]);
onlyFields("cpm.sync.v1.SyncRequest", ["snapshot", "trace_context"]);

const NOTICE = "cpm.config.v1.WatchConfigResponse";
/** WatchConfigResponse.snapshot: a notice carries its version's frame with this field's tag in place of the frame's. */
export const NOTICE_SNAPSHOT_FIELD = field(NOTICE, "snapshot", SNAPSHOT);
// decodeNotice hands these on (decoded by the generated code); a new field would be lost there.
onlyFields(NOTICE, ["version", "committed_at", "content_sha256", "trace_context", "snapshot"]);
// A notice's frame is the frame with its first byte (the tag) replaced: both tags must be one byte.
for (const [name, n] of [
  ["frame snapshot", FRAME_SNAPSHOT_FIELD],
  ["WatchConfigResponse.snapshot", NOTICE_SNAPSHOT_FIELD],
] as const)
  if (n > 15)
    throw new LayoutError(`${name} is field ${n}: its tag is more than one byte, which the notice framing assumes`);
