import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { AccessList, Certificate, L4ProxyHost, ProxyHost, Settings, Snapshot, WatchConfigResponse } from "@cpm/proto";
import type { CommitNotice } from "./clients.ts";

/**
 * A snapshot as bytes: the encoding of a message whose field 1 is the snapshot. That is both
 * a GetSnapshotResponse and a SyncRequest without trace context, so config-service encodes a
 * version's snapshot once and the very same bytes go to every slave, never decoded and
 * encoded again on the way.
 */
export interface SnapshotFrame {
  version: number;
  contentSha256: string;
  masterInstanceId: string;
  /** GetSnapshotResponse / SyncRequest bytes: tag of field 1, length, the Snapshot message. */
  frame: Buffer;
}

const SNAPSHOT_FIELD_1 = (1 << 3) | WireType.LengthDelimited;
/** WatchConfigResponse.snapshot */
const SNAPSHOT_FIELD_5 = (5 << 3) | WireType.LengthDelimited;


const tag = (field: number) => (field << 3) | WireType.LengthDelimited;

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
  // The scalar fields (1-5) as the generated encoder writes them, then the lists in field order.
  const chunks: Uint8Array[] = [Snapshot.encode({ ...snapshot, proxyHosts: [], l4ProxyHosts: [], certificates: [], accessLists: [], settings: undefined }).finish()];
  for (const h of snapshot.proxyHosts) chunks.push(part(h, 10, (x) => ProxyHost.encode(x).finish()));
  for (const h of snapshot.l4ProxyHosts) chunks.push(part(h, 11, (x) => L4ProxyHost.encode(x).finish()));
  for (const c of snapshot.certificates) chunks.push(part(c, 12, (x) => Certificate.encode(x).finish()));
  for (const a of snapshot.accessLists) chunks.push(part(a, 13, (x) => AccessList.encode(x).finish()));
  if (snapshot.settings !== undefined) chunks.push(fieldBytes(tag(14), Settings.encode(snapshot.settings).finish()));
  const length = chunks.reduce((n, c) => n + c.byteLength, 0);
  const head = new BinaryWriter().uint32(tag(1)).uint32(length).finish();
  return Buffer.concat([head, ...chunks], head.byteLength + length);
}

/** The Snapshot message inside a frame, without its tag and length. */
function snapshotBytes(frame: Uint8Array, what: string): Uint8Array {
  const r = new BinaryReader(frame);
  if (r.len === 0) throw new Error(`${what}: empty (no snapshot)`);
  const [field, type] = r.tag();
  if (field !== 1 || type !== WireType.LengthDelimited) throw new Error(`${what}: field 1 (snapshot) expected first`);
  const bytes = r.bytes();
  if (r.pos !== r.len) throw new Error(`${what}: bytes after the snapshot`);
  return bytes;
}

/**
 * A frame's version and content hash, read without decoding the resources (they are
 * skipped), so a 1,000-host snapshot costs a few microseconds here, not a decode.
 */
export function readSnapshotFrame(frame: Buffer, what = "snapshot frame"): SnapshotFrame {
  const r = new BinaryReader(snapshotBytes(frame, what));
  let version = 0;
  let contentSha256 = "";
  let masterInstanceId = "";
  while (r.pos < r.len) {
    const [field, type] = r.tag();
    if (field === 3 && type === WireType.Varint) version = Number(r.int64());
    else if (field === 5 && type === WireType.LengthDelimited) contentSha256 = r.string();
    else if (field === 2 && type === WireType.LengthDelimited) masterInstanceId = r.string();
    else r.skip(type, field);
  }
  return { version, contentSha256, masterInstanceId, frame };
}

/** The certificates of a frame's snapshot (only those are decoded). */
export function frameCertificates(frame: Buffer): Certificate[] {
  const r = new BinaryReader(snapshotBytes(frame, "snapshot frame"));
  const out: Certificate[] = [];
  while (r.pos < r.len) {
    const [field, type] = r.tag();
    if (field === 12 && type === WireType.LengthDelimited) out.push(Certificate.decode(r.bytes()));
    else r.skip(type, field);
  }
  return out;
}

/**
 * A WatchConfig notice with a snapshot, from the notice's fields and the version's frame: the
 * frame's first byte (tag of field 1) becomes the tag of field 5, the rest is copied as is.
 */
export function encodeNoticeWithFrame(notice: WatchConfigResponse, frame: Buffer): Buffer {
  const head = WatchConfigResponse.encode({ ...notice, snapshot: undefined }).finish();
  const out = Buffer.allocUnsafe(head.length + frame.length);
  out.set(head, 0);
  frame.copy(out, head.length);
  out[head.length] = SNAPSHOT_FIELD_5;
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
    if (field === 5 && type === WireType.LengthDelimited) {
      frame = Buffer.from(bytes.subarray(start, r.pos));
      frame[0] = SNAPSHOT_FIELD_1;
    } else {
      head.push(bytes.subarray(start, r.pos));
    }
  }
  const n = WatchConfigResponse.decode(Buffer.concat(head));
  return { version: n.version, contentSha256: n.contentSha256, committedAt: n.committedAt, traceContext: n.traceContext, snapshotFrame: frame && readSnapshotFrame(frame, "WatchConfig notice") };
}
