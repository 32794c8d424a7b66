import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  AccessList,
  Certificate,
  L4ProxyHost,
  ProxyHost,
  Settings,
  Snapshot,
  WatchConfigResponse,
  type MessageFns,
  type TraceContext,
} from "@cpm/proto";
import { FRAME_SNAPSHOT_FIELD, NOTICE_SNAPSHOT_FIELD, SNAPSHOT_FIELDS } from "./layout.ts";

/**
 * A snapshot as bytes: the encoding of a message whose only field is the snapshot. That is both
 * a GetSnapshotResponse and a SyncRequest without trace context, so config-service encodes a
 * version's snapshot once and the very same bytes go to every slave, never decoded and
 * encoded again on the way.
 */
export interface SnapshotFrame {
  version: number;
  contentSha256: string;
  masterInstanceId: string;
  /** GetSnapshotResponse / SyncRequest bytes: tag of the snapshot field, length, the Snapshot message. */
  frame: Buffer;
  /** The Snapshot message inside `frame` (a view of the same bytes), for a decoder. */
  message: Uint8Array;
}

/** A committed version as config-service's WatchConfig announces it, with the trace context of its commit (empty when unknown). */
export interface CommitNotice {
  version: number;
  contentSha256: string;
  /** When that version was committed (config-service's clock). */
  committedAt?: Date;
  traceContext?: TraceContext;
  /** The version's snapshot as a frame, when a watch over gRPC asked for it (`withSnapshot`) and it was still current. */
  snapshotFrame?: SnapshotFrame;
}

/**
 * The Snapshot fields that hold resources, in field order, with their codecs: the one
 * description of the message's layout that the encoder, the decoder and the certificates'
 * reader share. The numbers come from the descriptor set (layout.ts).
 */
export const SNAPSHOT_RESOURCE_FIELDS = [
  { field: SNAPSHOT_FIELDS.proxyHosts, list: "proxyHosts", codec: ProxyHost },
  { field: SNAPSHOT_FIELDS.l4ProxyHosts, list: "l4ProxyHosts", codec: L4ProxyHost },
  { field: SNAPSHOT_FIELDS.certificates, list: "certificates", codec: Certificate },
  { field: SNAPSHOT_FIELDS.accessLists, list: "accessLists", codec: AccessList },
] as const;
/** Snapshot.settings */
export const SNAPSHOT_SETTINGS_FIELD = SNAPSHOT_FIELDS.settings;

const tag = (field: number) => (field << 3) | WireType.LengthDelimited;
/** The first byte of a frame: the tag of its snapshot field (one byte, layout.ts checks). */
const FRAME_TAG = tag(FRAME_SNAPSHOT_FIELD);
/** The same, of WatchConfigResponse.snapshot. */
const NOTICE_TAG = tag(NOTICE_SNAPSHOT_FIELD);

/** One length-delimited field as it appears in a message: tag, length, body. */
function fieldBytes(t: number, body: Uint8Array): Uint8Array {
  return new BinaryWriter().uint32(t).bytes(body).finish();
}

/**
 * Encodes a snapshot as a frame (config-service does this once per version). The same bytes
 * as `GetSnapshotResponse.encode({ snapshot })`. With `parts`, each resource's field (tag,
 * length and encoding) is kept by object, so the next version (which shares every unchanged
 * resource object) is one copy of the kept bytes, not an encoding: only for objects that are
 * never changed once made.
 */
export function encodeSnapshotFrame(snapshot: Snapshot, parts?: WeakMap<object, Uint8Array>): Buffer {
  const part = <T extends object>(m: T, field: number, encode: (m: T) => Uint8Array): Uint8Array => {
    let b = parts?.get(m);
    if (!b) {
      b = fieldBytes(tag(field), encode(m));
      parts?.set(m, b);
    }
    return b;
  };
  // The other fields (scalars, timestamp) as the generated encoder writes them, then the lists in field order.
  const chunks: Uint8Array[] = [
    Snapshot.encode({
      ...snapshot,
      proxyHosts: [],
      l4ProxyHosts: [],
      certificates: [],
      accessLists: [],
      settings: undefined,
    }).finish(),
  ];
  for (const { field, list, codec } of SNAPSHOT_RESOURCE_FIELDS) {
    const fns = codec as MessageFns<object>;
    for (const x of snapshot[list] as object[]) chunks.push(part(x, field, (m) => fns.encode(m).finish()));
  }
  if (snapshot.settings !== undefined)
    chunks.push(fieldBytes(tag(SNAPSHOT_SETTINGS_FIELD), Settings.encode(snapshot.settings).finish()));
  const length = chunks.reduce((n, c) => n + c.byteLength, 0);
  const head = new BinaryWriter().uint32(FRAME_TAG).uint32(length).finish();
  return Buffer.concat([head, ...chunks], head.byteLength + length);
}

/**
 * `frame`, encoded from `snapshot` by encodeSnapshotFrame, with its header taken from that very
 * snapshot instead of read back from the bytes: what a service of the same process gets, where
 * readSnapshotFrame would walk every resource of the frame to find the fields after them.
 */
export function snapshotFrameOf(snapshot: Snapshot, frame: Buffer): SnapshotFrame {
  const r = new BinaryReader(frame);
  r.tag();
  const length = r.uint32();
  return {
    version: snapshot.version,
    contentSha256: snapshot.contentSha256,
    masterInstanceId: snapshot.masterInstanceId,
    frame,
    message: frame.subarray(r.pos, r.pos + length),
  };
}

/** The Snapshot message inside a frame, without its tag and length. */
function snapshotBytes(frame: Uint8Array, what: string): Uint8Array {
  const r = new BinaryReader(frame);
  if (r.len === 0) throw new Error(`${what}: empty (no snapshot)`);
  const [field, type] = r.tag();
  if (field !== FRAME_SNAPSHOT_FIELD || type !== WireType.LengthDelimited)
    throw new Error(`${what}: field ${FRAME_SNAPSHOT_FIELD} (snapshot) expected first`);
  const bytes = r.bytes();
  if (r.pos !== r.len) throw new Error(`${what}: bytes after the snapshot`);
  return bytes;
}

/**
 * A frame's version and content hash, read without decoding the resources (they are
 * skipped), so a 1,000-host snapshot costs a few microseconds here, not a decode.
 */
export function readSnapshotFrame(frame: Buffer, what = "snapshot frame"): SnapshotFrame {
  const message = snapshotBytes(frame, what);
  const r = new BinaryReader(message);
  let version = 0;
  let contentSha256 = "";
  let masterInstanceId = "";
  while (r.pos < r.len) {
    const [field, type] = r.tag();
    if (field === SNAPSHOT_FIELDS.version && type === WireType.Varint) version = Number(r.int64());
    else if (field === SNAPSHOT_FIELDS.contentSha256 && type === WireType.LengthDelimited) contentSha256 = r.string();
    else if (field === SNAPSHOT_FIELDS.masterInstanceId && type === WireType.LengthDelimited)
      masterInstanceId = r.string();
    else r.skip(type, field);
  }
  return { version, contentSha256, masterInstanceId, frame, message };
}

/** The certificates of a frame's snapshot (only those are decoded). */
export function frameCertificates(frame: Buffer): Certificate[] {
  const r = new BinaryReader(snapshotBytes(frame, "snapshot frame"));
  const out: Certificate[] = [];
  while (r.pos < r.len) {
    const [field, type] = r.tag();
    if (field === SNAPSHOT_FIELDS.certificates && type === WireType.LengthDelimited)
      out.push(Certificate.decode(r.bytes()));
    else r.skip(type, field);
  }
  return out;
}

/**
 * A WatchConfig notice with a snapshot, from the notice's fields and the version's frame: the
 * frame's first byte (the tag of its snapshot field) becomes the tag of the notice's, the rest is copied as is.
 */
export function encodeNoticeWithFrame(notice: WatchConfigResponse, frame: Buffer): Buffer {
  const head = WatchConfigResponse.encode({ ...notice, snapshot: undefined }).finish();
  const out = Buffer.allocUnsafe(head.length + frame.length);
  out.set(head, 0);
  frame.copy(out, head.length);
  out[head.length] = NOTICE_TAG;
  return out;
}

/** A WatchConfig notice decoded, its snapshot (if any) kept as a frame instead of decoded. */
export function decodeNotice(bytes: Buffer): CommitNotice {
  const r = new BinaryReader(bytes);
  const head: Uint8Array[] = [];
  let frame: Buffer | undefined;
  while (r.pos < r.len) {
    const start = r.pos;
    const [field, type] = r.tag();
    r.skip(type, field);
    if (field === NOTICE_SNAPSHOT_FIELD && type === WireType.LengthDelimited) {
      frame = Buffer.from(bytes.subarray(start, r.pos));
      frame[0] = FRAME_TAG;
    } else {
      head.push(bytes.subarray(start, r.pos));
    }
  }
  const n = WatchConfigResponse.decode(Buffer.concat(head));
  return {
    version: n.version,
    contentSha256: n.contentSha256,
    committedAt: n.committedAt,
    traceContext: n.traceContext,
    snapshotFrame: frame && readSnapshotFrame(frame, "WatchConfig notice"),
  };
}
