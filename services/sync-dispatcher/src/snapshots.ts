import { Snapshot } from "@cpm/proto";
import type { ConfigClient } from "@cpm/grpc-kit";

export interface EncodedSnapshot {
  snapshot: Snapshot;
  bytes: number;
}

/**
 * The newest snapshot, fetched once per committed change and shared by every slave link,
 * so N slaves cost one GetSnapshot per version, not N.
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
      return { snapshot, bytes: Snapshot.encode(snapshot).finish().length };
    });
    const entry = { key, value };
    this.current = entry;
    value.catch(() => {
      if (this.current === entry) this.current = undefined;
    });
    return value;
  }
}
