import type { ServiceDefinition } from "@grpc/grpc-js";
import { ConfigServiceService } from "@cpm/proto";
import { decodingSnapshotsWith, SnapshotDecoder } from "@cpm/snapshot-wire";

/** A method whose handler may answer with bytes already encoded (written as they are). */
function servingBytes<D extends ServiceDefinition[string]>(def: D): D {
  const serialize = def.responseSerialize;
  return { ...def, responseSerialize: (value: unknown) => (Buffer.isBuffer(value) ? value : serialize(value)) };
}

/**
 * ConfigService as config-service serves it: GetSnapshot and WatchConfig write a version's
 * snapshot as the bytes encoded once for that version (see `snapshotFrame` in snapshots.ts).
 * ApplySnapshot (a slave's receiver, one snapshot after the other) decodes only the resources
 * whose bytes changed since the previous one (SnapshotDecoder: a cache by bytes, so one per
 * process serves every listener).
 */
export const CONFIG_SERVICE = {
  ...ConfigServiceService,
  getSnapshot: servingBytes(ConfigServiceService.getSnapshot),
  watchConfig: servingBytes(ConfigServiceService.watchConfig),
  applySnapshot: decodingSnapshotsWith(ConfigServiceService.applySnapshot, new SnapshotDecoder()),
} satisfies ServiceDefinition;
