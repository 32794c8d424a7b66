import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Settings, Snapshot, TraceContext, type MessageFns } from "@cpm/proto";
import {
  encodeSnapshotFrame,
  readSnapshotFrame,
  SNAPSHOT_RESOURCE_FIELDS,
  SNAPSHOT_SETTINGS_FIELD,
  type SnapshotFrame,
} from "./frame.ts";
import { FRAME_SNAPSHOT_FIELD, SYNC_TRACE_CONTEXT_FIELD } from "./layout.ts";

type ResourceField = (typeof SNAPSHOT_RESOURCE_FIELDS)[number];
const RESOURCE_FIELDS = new Map<number, ResourceField>(SNAPSHOT_RESOURCE_FIELDS.map((f) => [f.field, f]));

/**
 * Decodes snapshots one after the other, each resource (and the settings) whose encoding is
 * byte for byte one it decoded in the previous snapshot given the very object it decoded then.
 * A version that changed one host of 1,000 decodes one host; the rest is a comparison of
 * bytes. Everything downstream that keeps what it learned by object (SnapshotCheckMemo, the
 * renderer's per-host memo, config-service's index) then finds the unchanged resources at
 * once. The result equals `Snapshot.decode` of the same bytes. Decoded objects are shared
 * between snapshots: callers never change them (they never did: decoded messages are read
 * only throughout). Holds the previous snapshot's encoded resources (about its size).
 */
export class SnapshotDecoder {
  /** Per field, the previous snapshot's encodings and objects in wire order. */
  private known = new Map<number, Decoded>();

  /** `bytes`: a Snapshot message (without a tag and length before it). */
  decode(bytes: Uint8Array): Snapshot {
    const r = new BinaryReader(bytes);
    const head: Uint8Array[] = [];
    const next = new Map<number, Decoded>();
    let settings: Settings | undefined;
    while (r.pos < r.len) {
      const start = r.pos;
      const [field, type] = r.tag();
      const resource = RESOURCE_FIELDS.get(field);
      if (type !== WireType.LengthDelimited || (!resource && field !== SNAPSHOT_SETTINGS_FIELD)) {
        r.skip(type, field);
        head.push(bytes.subarray(start, r.pos));
        continue;
      }
      const body = r.bytes();
      let now = next.get(field);
      if (!now) next.set(field, (now = new Decoded()));
      const value =
        this.known.get(field)?.find(body, now.values.length) ??
        (resource ? resource.codec.decode(body) : Settings.decode(body));
      now.add(body, value);
      // A repeated singular field (settings): the last one wins, as the generated decoder does.
      if (!resource) settings = value as Settings;
    }
    const s = Snapshot.decode(head.length === 1 ? head[0]! : Buffer.concat(head));
    // Copies: a caller may reorder its lists; the decoder's own order must stay the wire's.
    for (const { field, list } of SNAPSHOT_RESOURCE_FIELDS)
      (s[list] as object[]) = [...(next.get(field)?.values ?? [])];
    if (settings !== undefined) s.settings = settings;
    this.known = next;
    return s;
  }

  /**
   * Learns `s`'s resources as if it had decoded them last: a resource of the next snapshot
   * whose encoding is byte for byte one of these is given that very object. For a receiver
   * that starts with a snapshot of its own (its database's), so that the first snapshot after
   * a restart decodes only what changed since. The resources are encoded here as a master
   * encodes them; one whose bytes differ from the master's is decoded again, as without this.
   */
  prime(s: Snapshot): void {
    const next = new Map<number, Decoded>();
    for (const { field, list, codec } of SNAPSHOT_RESOURCE_FIELDS) {
      const fns = codec as MessageFns<object>;
      const known = new Decoded();
      for (const x of s[list] as object[]) known.add(fns.encode(x).finish(), x);
      next.set(field, known);
    }
    if (s.settings !== undefined) {
      const known = new Decoded();
      known.add(Settings.encode(s.settings).finish(), s.settings);
      next.set(SNAPSHOT_SETTINGS_FIELD, known);
    }
    this.known = next;
  }
}

const latin1 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1");

/** One field's decoded values of a snapshot, in wire order, with their encodings. */
class Decoded {
  readonly bytes: Uint8Array[] = [];
  readonly values: object[] = [];
  /** Where the next snapshot's resources stand against these: +1 after a removal, -1 after an insertion. */
  private shift = 0;
  private misses = 0;
  private byBytes: Map<string, object> | undefined;

  add(bytes: Uint8Array, value: object): void {
    this.bytes.push(bytes);
    this.values.push(value);
  }

  private at(i: number, bytes: Uint8Array): boolean {
    const b = this.bytes[i];
    return b !== undefined && b.byteLength === bytes.byteLength && Buffer.compare(b, bytes) === 0;
  }

  /**
   * The value decoded from `bytes` if these encodings hold them. A snapshot after a change holds
   * its other resources where they were, or one place further or back after an insertion or a
   * removal: one comparison of bytes each. After more than a few misses in one snapshot (many
   * insertions), a map by bytes answers instead.
   */
  find(bytes: Uint8Array, position: number): object | undefined {
    if (this.byBytes) return this.byBytes.get(latin1(bytes));
    const p = position + this.shift;
    if (this.at(p, bytes)) return this.values[p];
    for (const d of [1, -1]) {
      if (this.at(p + d, bytes)) {
        this.shift += d;
        return this.values[p + d];
      }
    }
    if (++this.misses <= MISSES_BEFORE_MAP) return undefined;
    this.byBytes = new Map();
    this.bytes.forEach((b, i) => this.byBytes!.set(latin1(b), this.values[i]!));
    return this.byBytes.get(latin1(bytes));
  }
}

/** Resources not found near their place before a map by bytes is built (changed ones miss too). */
const MISSES_BEFORE_MAP = 8;

/** The Snapshot message of a frame (a message whose snapshot field is FRAME_SNAPSHOT_FIELD), or undefined when it has none. Other fields are skipped. */
export function snapshotOfFrame(frame: Uint8Array): Uint8Array | undefined {
  const r = new BinaryReader(frame);
  let snapshot: Uint8Array | undefined;
  while (r.pos < r.len) {
    const [field, type] = r.tag();
    if (field === FRAME_SNAPSHOT_FIELD && type === WireType.LengthDelimited) snapshot = r.bytes();
    else r.skip(type, field);
  }
  return snapshot;
}

/**
 * A snapshot as it arrived: the frame's bytes (forwarded as they are to this instance's
 * renderer and config-service: a LoadSnapshotRequest and an ApplySnapshotRequest are frames
 * too), its header read without decoding the resources, the message decoded only when asked
 * (once).
 */
export class IncomingSnapshot {
  private decoded: Snapshot | undefined;

  private constructor(
    private readonly header: SnapshotFrame,
    private readonly decoder: SnapshotDecoder | undefined,
    decoded?: Snapshot,
  ) {
    this.decoded = decoded;
  }

  /** From a frame (the snapshot field of a SyncRequest, as sent); `decoder` keeps what the previous snapshot decoded. */
  static fromFrame(frame: Buffer, decoder?: SnapshotDecoder): IncomingSnapshot {
    return new IncomingSnapshot(readSnapshotFrame(frame, "snapshot"), decoder);
  }

  /** From a decoded message (its frame encoded here). */
  static of(snapshot: Snapshot): IncomingSnapshot {
    return new IncomingSnapshot(readSnapshotFrame(encodeSnapshotFrame(snapshot)), undefined, snapshot);
  }

  /** A message whose only field is the snapshot: tag, length, Snapshot. */
  get frame(): Buffer {
    return this.header.frame;
  }
  get version(): number {
    return this.header.version;
  }
  get masterInstanceId(): string {
    return this.header.masterInstanceId;
  }
  get contentSha256(): string {
    return this.header.contentSha256;
  }

  /** The decoded message; throws when the bytes are not a Snapshot. */
  snapshot(): Snapshot {
    this.decoded ??= this.decoder ? this.decoder.decode(this.header.message) : Snapshot.decode(this.header.message);
    return this.decoded;
  }
}

/** A SyncRequest with its snapshot kept as a frame (see IncomingSnapshot). */
export interface IncomingSyncRequest {
  snapshot: IncomingSnapshot | undefined;
  traceContext: TraceContext | undefined;
}

/**
 * A SyncRequest's bytes read without decoding its snapshot: the snapshot field is kept as
 * the frame it is (tag, length, message), the trace context decoded. Throws on bytes that are
 * not a SyncRequest.
 */
export function readSyncRequest(bytes: Buffer, decoder?: SnapshotDecoder): IncomingSyncRequest {
  const r = new BinaryReader(bytes);
  let frame: Buffer | undefined;
  let traceContext: TraceContext | undefined;
  while (r.pos < r.len) {
    const start = r.pos;
    const [field, type] = r.tag();
    if (field === FRAME_SNAPSHOT_FIELD && type === WireType.LengthDelimited) {
      r.skip(type, field);
      frame = bytes.subarray(start, r.pos);
    } else if (field === SYNC_TRACE_CONTEXT_FIELD && type === WireType.LengthDelimited) {
      traceContext = TraceContext.decode(r.bytes());
    } else {
      r.skip(type, field);
    }
  }
  return { snapshot: frame && IncomingSnapshot.fromFrame(frame, decoder), traceContext };
}

/**
 * A server method whose request is a frame (LoadSnapshotRequest, ApplySnapshotRequest: the
 * snapshot is their only field, with the frame's number), its snapshot decoded with `decoder`.
 */
export function decodingSnapshotsWith<D extends { requestDeserialize: (b: Buffer) => unknown }>(
  def: D,
  decoder: SnapshotDecoder,
): D {
  return {
    ...def,
    requestDeserialize: (b: Buffer) => {
      const bytes = snapshotOfFrame(b);
      return { snapshot: bytes && decoder.decode(bytes) };
    },
  };
}
