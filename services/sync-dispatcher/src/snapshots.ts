import { SyncRequest, type Certificate, type Snapshot } from "@cpm/proto";
import type { ConfigClient, TraceCarrier } from "@cpm/grpc-kit";

/**
 * One version's snapshot, encoded once as the SyncRequest every link writes: the same bytes
 * go to every slave; of the decoded message only the certificates are kept (for the
 * certificate status in GetSyncStatus).
 */
export interface EncodedSnapshot {
  version: number;
  contentSha256: string;
  certificates: Certificate[];
  /** The serialized SyncRequest carrying the snapshot (written as is by SyncLinkClient). */
  frame: Buffer;
  bytes: number;
}

/**
 * The newest snapshot, fetched and encoded once per committed change and shared by every
 * slave link, so N slaves cost one GetSnapshot and one encoding per version, not N.
 */
export class SnapshotCache {
  private current: { key: string; value: Promise<EncodedSnapshot> } | undefined;

  constructor(
    private readonly config: ConfigClient,
    private readonly onFetched: (snapshot: Snapshot) => void = () => undefined,
  ) {}

  /** `key` identifies the committed state (version and content hash) the caller wants. */
  get(key: string): Promise<EncodedSnapshot> {
    if (this.current?.key === key) return this.current.value;
    const value = this.config.getSnapshot().then((snapshot) => {
      this.onFetched(snapshot);
      const frame = Buffer.from(SyncRequest.encode({ snapshot, traceContext: undefined }).finish());
      return { version: snapshot.version, contentSha256: snapshot.contentSha256, certificates: snapshot.certificates, frame, bytes: frame.length };
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
