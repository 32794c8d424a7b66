import type { Snapshot } from "@cpm/proto";
import { failedPrecondition, SnapshotCheckMemo, validateSnapshot, ValidationError } from "@cpm/core";
import { versionAttributes, withSpan } from "@cpm/grpc-kit";
import type { ConfigStore } from "./store.ts";

/** Per store, the resources of the last valid snapshot applied: an unchanged one is not normalized or hashed again. */
const checked = new WeakMap<ConfigStore, SnapshotCheckMemo>();

/**
 * Applies a master's snapshot on a slave, in one transaction.
 * - an older version of the same master is refused (FAILED_PRECONDITION);
 * - the same version is a no-op when the stored content matches, and a repair when the
 *   database was changed behind the service's back;
 * - a snapshot from another master (or the first one) is taken whatever its version.
 */
export async function applySnapshot(
  store: ConfigStore,
  s: Snapshot | undefined,
): Promise<{ version: number; changed: boolean }> {
  if (!s) throw new ValidationError("snapshot", "is required");
  let memo = checked.get(store);
  if (!memo) checked.set(store, (memo = new SnapshotCheckMemo()));
  const digests = validateSnapshot(s, "snapshot", memo);
  return store.serialize(() =>
    withSpan("config.apply", { attributes: versionAttributes(s.version, s.contentSha256) }, async (span) => {
      const { info, contentSha256 } = await store.state();
      if (info.masterInstanceId === s.masterInstanceId) {
        if (s.version < info.version) {
          throw failedPrecondition(`snapshot version ${s.version} is older than the applied version ${info.version}`);
        }
        if (s.version === info.version) {
          if (contentSha256 === s.contentSha256) {
            span.setAttribute("cpm.apply.changed", false);
            return { version: info.version, changed: false };
          }
        }
      }
      await store.replaceAll(s, digests);
      span.setAttribute("cpm.apply.changed", true);
      return { version: s.version, changed: true };
    }),
  );
}
