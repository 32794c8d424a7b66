// Fakes of the slave's config-service and renderer for the receiver's tests. Not exported.
import { GetInstanceInfoResponse, ProxyHost, RenderStatus, Snapshot, type SyncResponse } from "@cpm/proto";
import { createLogger, snapshotContentHash, type Logger, SNAPSHOT_SCHEMA_VERSION } from "@cpm/core";
import { status as Status } from "@grpc/grpc-js";
import { payloadSnapshot, type SnapshotPayload } from "@cpm/grpc-kit";
import { SnapshotApplier, type ConfigPort, type RendererPort } from "./receiver.ts";

/** The snapshot a fake service was sent. */
const sent = payloadSnapshot;
import type { StatusStore } from "./status-store.ts";

export const log: Logger = createLogger("test", "silent");

/** A valid snapshot of `master` at `version` (one proxy host naming the version). */
export function snap(version: number, master = "master-1"): Snapshot {
  const s = Snapshot.fromPartial({
    schemaVersion: SNAPSHOT_SCHEMA_VERSION,
    masterInstanceId: master,
    version,
    proxyHosts: [
      ProxyHost.fromPartial({
        id: "h",
        name: "h",
        domains: [`v${version}.example.com`],
        upstreams: ["127.0.0.1:9000"],
      }),
    ],
  });
  s.contentSha256 = snapshotContentHash(s);
  return s;
}

/** A gRPC failure as the clients reject with. */
export const grpcError = (code: Status, details: string) =>
  Object.assign(new Error(`${code} ${Status[code]}: ${details}`), { code, details });

/** FAKE renderer: records preloads and releases; Caddy follows the fake config-service's commits. */
export class FakeRendererClient implements RendererPort {
  readonly preloaded: number[] = [];
  readonly released: number[] = [];
  failLoad: Error | undefined;
  /** When set, every preload waits for it: a snapshot stays "being applied". */
  gate: Promise<void> | undefined;
  current = RenderStatus.fromPartial({ appliedVersion: 1, configSha256: "sha-1", inSync: true });

  /** The payloads it was sent, as they came. */
  readonly payloads: SnapshotPayload[] = [];

  async loadSnapshot(payload: SnapshotPayload) {
    this.payloads.push(payload);
    const snapshot = sent(payload);
    await this.gate;
    if (this.failLoad) throw this.failLoad;
    this.preloaded.push(snapshot.version);
    return { configSha256: `sha-${snapshot.version}`, warnings: [] };
  }
  /** What Caddy runs once a preload is released (the database's version); unset: unchanged. */
  afterRelease: RenderStatus | undefined;

  releasePreload(version: number): Promise<void> {
    this.released.push(version);
    if (this.afterRelease && this.current.appliedVersion === version) this.current = this.afterRelease;
    return Promise.resolve();
  }
  status(): Promise<RenderStatus> {
    return Promise.resolve(this.current);
  }
  waitFor(done: (s: RenderStatus) => boolean): Promise<RenderStatus> {
    if (done(this.current)) return Promise.resolve(this.current);
    return Promise.reject(new Error("renderer did not report the expected state within 50 ms"));
  }
}

/** FAKE config-service: the slave's database (version and master), with injectable failures. */
export class FakeConfigClient implements ConfigPort {
  readonly committed: number[] = [];
  failApply: Error | undefined;
  failInfo: Error | undefined;
  /** The content hash of what the fake database holds ("" until a snapshot is committed). */
  contentSha256 = "";

  constructor(
    private readonly renderer: FakeRendererClient,
    public version = 1,
    public master = "master-1",
  ) {}

  instanceInfo(): Promise<GetInstanceInfoResponse> {
    if (this.failInfo) return Promise.reject(this.failInfo);
    return Promise.resolve(
      GetInstanceInfoResponse.fromPartial({
        version: this.version,
        masterInstanceId: this.master,
        contentSha256: this.contentSha256,
      }),
    );
  }
  applySnapshot(payload: SnapshotPayload): Promise<{ version: number; changed: boolean }> {
    const snapshot = sent(payload);
    if (this.failApply) return Promise.reject(this.failApply);
    const changed = snapshot.version !== this.version || snapshot.masterInstanceId !== this.master;
    this.committed.push(snapshot.version);
    this.version = snapshot.version;
    this.master = snapshot.masterInstanceId;
    this.contentSha256 = snapshot.contentSha256;
    this.renderer.current = RenderStatus.fromPartial({
      appliedVersion: snapshot.version,
      configSha256: `sha-${snapshot.version}`,
      inSync: true,
    });
    return Promise.resolve({ version: snapshot.version, changed });
  }
}

export function fakes(appliedVersion = 1, store?: StatusStore) {
  const renderer = new FakeRendererClient();
  renderer.current = RenderStatus.fromPartial({ appliedVersion, configSha256: `sha-${appliedVersion}`, inSync: true });
  const config = new FakeConfigClient(renderer, appliedVersion);
  const applier = new SnapshotApplier(config, renderer, log, 50, store);
  return { renderer, config, applier };
}

/** A gate the test opens. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

export const nackOf = (r: SyncResponse) => {
  if (!r.nack) throw new Error(`expected a NACK, got ${JSON.stringify(r)}`);
  return r.nack;
};
