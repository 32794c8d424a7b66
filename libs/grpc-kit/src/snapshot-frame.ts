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
  /** GetSnapshotResponse / SyncRequest bytes: tag of field 1, length, the Snapshot message. */
  frame: Buffer;
}

const SNAPSHOT_FIELD_1 = (1 << 3) | WireType.LengthDelimited;
/** WatchConfigResponse.snapshot */
const SNAPSHOT_FIELD_5 = (5 << 3) | WireType.LengthDelimited;


const tag = (field: number) => (field << 3) | WireType.LengthDelimited;

/**
 * Encodes a snapshot as a frame (config-service does this once per version). The same bytes
 * as `GetSnapshotResponse.encode({ snapshot })`. With `parts`, each resource's encoding is
 * kept by object, so the next version (which shares every unchanged resource object) is
 * mostly copied, not encoded: only for objects that are never changed once made.
 */
export function encodeSnapshotFrame(snapshot: Snapshot, parts?: WeakMap<object, Uint8Array>): Buffer {
  const part = <T extends object>(m: T, encode: (m: T) => Uint8Array): Uint8Array => {
    let b = parts?.get(m);
    if (!b) {
      b = encode(m);
      parts?.set(m, b);
    }
    return b;
  };
  const w = new BinaryWriter();
  // The scalar fields (1-5) as the generated encoder writes them, then the lists in field order.
  Snapshot.encode({ ...snapshot, proxyHosts: [], l4ProxyHosts: [], certificates: [], accessLists: [], settings: undefined }, w);
  for (const h of snapshot.proxyHosts) w.uint32(tag(10)).bytes(part(h, (x) => ProxyHost.encode(x).finish()));
  for (const h of snapshot.l4ProxyHosts) w.uint32(tag(11)).bytes(part(h, (x) => L4ProxyHost.encode(x).finish()));
  for (const c of snapshot.certificates) w.uint32(tag(12)).bytes(part(c, (x) => Certificate.encode(x).finish()));
  for (const a of snapshot.accessLists) w.uint32(tag(13)).bytes(part(a, (x) => AccessList.encode(x).finish()));
  if (snapshot.settings !== undefined) Settings.encode(snapshot.settings, w.uint32(tag(14)).fork()).join();
  const b = new BinaryWriter().uint32(tag(1)).bytes(w.finish()).finish();
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
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
  while (r.pos < r.len) {
    const [field, type] = r.tag();
    if (field === 3 && type === WireType.Varint) version = Number(r.int64());
    else if (field === 5 && type === WireType.LengthDelimited) contentSha256 = r.string();
    else r.skip(type, field);
  }
  return { version, contentSha256, frame };
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
