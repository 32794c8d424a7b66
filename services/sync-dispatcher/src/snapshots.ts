import { SyncRequest, type Certificate, type Snapshot } from "@cpm/proto";
import { knowsAllOf, planSend, SNAPSHOT_SCHEMA_VERSION, type CompatibilityIssue, type PeerInfo } from "@cpm/core";
import { type ConfigPort, type TraceCarrier } from "@cpm/grpc-kit";
import { frameCertificates, type SnapshotFrame } from "@cpm/snapshot-wire";

/**
 * One version's snapshot as every link writes it: config-service's bytes, which are already
 * a SyncRequest carrying the snapshot (see SnapshotFrame); the same bytes go to every slave,
 * never decoded and encoded again here. Only the certificates are decoded, when asked for
 * (for the certificate status in GetSyncStatus).
 */
export interface EncodedSnapshot {
  version: number;
  contentSha256: string;
  /** The serialized SyncRequest carrying the snapshot (written as is by SyncLinkClient). */
  frame: Buffer;
  bytes: number;
  certificates(): Certificate[];
  /** What a slave that announced `peer` is sent of this version (see planSend in @cpm/core). */
  planFor(peer: PeerInfo): LinkPlan;
}

/** One slave's push of a version: the bytes in the schema it reads, or why it gets none. */
export type LinkPlan =
  { ok: true; schema: number; frame: Buffer } | { ok: false; schema: number; issues: CompatibilityIssue[] };

function encoded(f: SnapshotFrame): EncodedSnapshot {
  let certificates: Certificate[] | undefined;
  // Decoded only for a slave of another release, once per version whatever the number of slaves.
  let decoded: Snapshot | undefined;
  const snapshot = () => (decoded ??= SyncRequest.decode(f.frame).snapshot!);
  const frames = new Map<number, Buffer>([[SNAPSHOT_SCHEMA_VERSION, f.frame]]);
  return {
    version: f.version,
    contentSha256: f.contentSha256,
    frame: f.frame,
    bytes: f.frame.length,
    certificates: () => (certificates ??= frameCertificates(f.frame)),
    planFor(peer) {
      // A slave of this release or a newer one: the bytes as they are, nothing decoded.
      if (knowsAllOf(peer)) return { ok: true, schema: SNAPSHOT_SCHEMA_VERSION, frame: f.frame };
      const plan = planSend(peer, snapshot());
      if (!plan.ok) return plan;
      let frame = frames.get(plan.schema);
      if (!frame) {
        // The same content in the older schema: what it cannot carry is unused (planSend), so
        // the content hash, and what the slave serves, are the same.
        frame = Buffer.from(
          SyncRequest.encode({
            snapshot: { ...snapshot(), schemaVersion: plan.schema },
            traceContext: undefined,
          }).finish(),
        );
        frames.set(plan.schema, frame);
      }
      return { ok: true, schema: plan.schema, frame };
    },
  };
}

/**
 * The newest snapshot, shared by every slave link: it comes with the WatchConfig notice of
 * its version (`put`), or else from one GetSnapshot, so N slaves cost at most one fetch per
 * version, not N.
 */
export class SnapshotCache {
  private current: { key: string; value: Promise<EncodedSnapshot> } | undefined;

  constructor(
    private readonly config: Pick<ConfigPort, "getSnapshotFrame">,
    private readonly onFetched: (snapshot: EncodedSnapshot) => void = () => undefined,
  ) {}

  /** The snapshot of `key` (`version:contentSha256`) arrived with its notice. */
  put(key: string, frame: SnapshotFrame): void {
    const value = encoded(frame);
    this.current = { key, value: Promise.resolve(value) };
    // After the links have started their pushes (they only wait for microtasks).
    setImmediate(() => this.onFetched(value));
  }

  /** `key` identifies the committed state (version and content hash) the caller wants. */
  get(key: string): Promise<EncodedSnapshot> {
    if (this.current?.key === key) return this.current.value;
    const value = this.config.getSnapshotFrame().then((f) => {
      const s = encoded(f);
      this.onFetched(s);
      return s;
    });
    const entry = { key, value };
    this.current = entry;
    value.catch(() => {
      if (this.current === entry) this.current = undefined;
    });
    return value;
  }
}

/**
 * The frame with a push's own trace context added. Protobuf merges a message's fields across
 * concatenated encodings, so the snapshot's bytes (encoded once per version) are sent as they
 * are, followed by this push's `trace_context` field; without a trace context, the frame alone.
 */
export function withTraceContext(frame: Buffer, carrier: TraceCarrier | undefined): Buffer {
  if (!carrier?.traceparent) return frame;
  return Buffer.concat([frame, SyncRequest.encode({ snapshot: undefined, traceContext: carrier }).finish()]);
}
