import { SyncRequest } from "@cpm/proto";
import type { ConfigClient } from "@cpm/grpc-kit";

/**
 * One version's snapshot, encoded once as the SyncRequest every link writes: the same bytes
 * go to every slave, and the decoded message is not kept.
 */
export interface EncodedSnapshot {
  version: number;
  contentSha256: string;
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

  constructor(private readonly config: ConfigClient) {}

  /** `key` identifies the committed state (version and content hash) the caller wants. */
  get(key: string): Promise<EncodedSnapshot> {
    if (this.current?.key === key) return this.current.value;
    const value = this.config.getSnapshot().then((snapshot) => {
      const frame = Buffer.from(SyncRequest.encode({ snapshot }).finish());
      return { version: snapshot.version, contentSha256: snapshot.contentSha256, frame, bytes: frame.length };
    });
    const entry = { key, value };
    this.current = entry;
    value.catch(() => {
      if (this.current === entry) this.current = undefined;
    });
    return value;
  }
}
