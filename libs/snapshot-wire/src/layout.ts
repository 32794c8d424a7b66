// The field numbers of the snapshot's byte layout, taken from the generated code: each is read
// from what the generated encoder writes for a message with that one field set, once per process
// when this module loads (microseconds), never written here by hand. layout.test.ts holds them
// against the descriptor set by name and type, and fails when a message gains a field the framing
// would drop.
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import {
  AccessList,
  ApplySnapshotRequest,
  Certificate,
  GetSnapshotResponse,
  L4ProxyHost,
  LoadSnapshotRequest,
  ProxyHost,
  Settings,
  Snapshot,
  SyncRequest,
  WatchConfigResponse,
} from "@cpm/proto";

class LayoutError extends Error {
  constructor(what: string) {
    super(`snapshot wire layout: ${what}`);
  }
}

/** The number of the one field in `bytes` (a message encoded with one field set), which must have wire type `type`. */
function fieldOf(what: string, bytes: Uint8Array, type: WireType): number {
  const r = new BinaryReader(bytes);
  if (r.len === 0) throw new LayoutError(`${what}: the generated encoder wrote nothing`);
  const [field, wireType] = r.tag();
  if (wireType !== type)
    throw new LayoutError(`${what} has wire type ${WireType[wireType]}, the framing reads ${WireType[type]}`);
  r.skip(wireType, field);
  if (r.pos !== r.len) throw new LayoutError(`${what}: the generated encoder wrote more than that field`);
  return field;
}

const { LengthDelimited, Varint } = WireType;
const empty = Snapshot.fromPartial({});
const encodeSnapshot = (one: Partial<Snapshot>) => Snapshot.encode({ ...empty, ...one }).finish();

/** The fields of cpm.config.v1.Snapshot the framing reads or writes itself (the others go through the generated code). */
export const SNAPSHOT_FIELDS = {
  masterInstanceId: fieldOf("Snapshot.master_instance_id", encodeSnapshot({ masterInstanceId: "m" }), LengthDelimited),
  version: fieldOf("Snapshot.version", encodeSnapshot({ version: 1 }), Varint),
  contentSha256: fieldOf("Snapshot.content_sha256", encodeSnapshot({ contentSha256: "c" }), LengthDelimited),
  proxyHosts: fieldOf(
    "Snapshot.proxy_hosts",
    encodeSnapshot({ proxyHosts: [ProxyHost.fromPartial({})] }),
    LengthDelimited,
  ),
  l4ProxyHosts: fieldOf(
    "Snapshot.l4_proxy_hosts",
    encodeSnapshot({ l4ProxyHosts: [L4ProxyHost.fromPartial({})] }),
    LengthDelimited,
  ),
  certificates: fieldOf(
    "Snapshot.certificates",
    encodeSnapshot({ certificates: [Certificate.fromPartial({})] }),
    LengthDelimited,
  ),
  accessLists: fieldOf(
    "Snapshot.access_lists",
    encodeSnapshot({ accessLists: [AccessList.fromPartial({})] }),
    LengthDelimited,
  ),
  settings: fieldOf("Snapshot.settings", encodeSnapshot({ settings: Settings.fromPartial({}) }), LengthDelimited),
} as const;

/**
 * The messages that are a frame (a message whose only field is the snapshot, or, for SyncRequest,
 * the snapshot and the trace context): config-service encodes a version's snapshot once and the
 * very same bytes are each of them, so their snapshot fields must share one number.
 */
const frameFields: [string, number][] = [
  ["GetSnapshotResponse", GetSnapshotResponse.encode({ snapshot: empty }).finish()],
  ["SyncRequest", SyncRequest.encode({ snapshot: empty, traceContext: undefined }).finish()],
  ["LoadSnapshotRequest", LoadSnapshotRequest.encode({ snapshot: empty }).finish()],
  ["ApplySnapshotRequest", ApplySnapshotRequest.encode({ snapshot: empty }).finish()],
].map(([name, bytes]) => [name as string, fieldOf(`${name as string}.snapshot`, bytes as Uint8Array, LengthDelimited)]);
if (new Set(frameFields.map(([, n]) => n)).size !== 1)
  throw new LayoutError(
    `the snapshot fields of ${frameFields.map(([m, n]) => `${m} (${n})`).join(", ")} differ: one frame cannot be all of them`,
  );
/** The snapshot's field in a frame: GetSnapshotResponse, SyncRequest, LoadSnapshotRequest, ApplySnapshotRequest. */
export const FRAME_SNAPSHOT_FIELD = frameFields[0]![1];
/** SyncRequest.trace_context */
export const SYNC_TRACE_CONTEXT_FIELD = fieldOf(
  "SyncRequest.trace_context",
  SyncRequest.encode({ snapshot: undefined, traceContext: { traceparent: "", tracestate: "" } }).finish(),
  LengthDelimited,
);
/** WatchConfigResponse.snapshot: a notice carries its version's frame with this field's tag in place of the frame's. */
export const NOTICE_SNAPSHOT_FIELD = fieldOf(
  "WatchConfigResponse.snapshot",
  WatchConfigResponse.encode(WatchConfigResponse.fromPartial({ snapshot: empty })).finish(),
  LengthDelimited,
);
// A notice's frame is the frame with its first byte (the tag) replaced: both tags must be one byte.
for (const [name, n] of [
  ["frame snapshot", FRAME_SNAPSHOT_FIELD],
  ["WatchConfigResponse.snapshot", NOTICE_SNAPSHOT_FIELD],
] as const)
  if (n > 15)
    throw new LayoutError(`${name} is field ${n}: its tag is more than one byte, which the notice framing assumes`);
