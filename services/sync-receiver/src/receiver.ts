import { NackCode, type Snapshot, type SyncResponse } from "@cpm/proto";
import { validateSnapshot, ValidationError, type Logger } from "@cpm/core";
import type { ConfigClient, RendererClient } from "@cpm/grpc-kit";
import { status as Status } from "@grpc/grpc-js";

export interface ReceiverState {
  masterInstanceId: string;
  appliedVersion: number;
  configSha256: string;
  lastSyncTime: Date | undefined;
  lastError: string;
  lastErrorTime: Date | undefined;
}

/**
 * Applies master snapshots on a slave, one at a time:
 * validate -> preload into Caddy through the renderer (a config Caddy refuses stops here,
 * nothing written) -> commit through config-service in one transaction -> wait until the
 * renderer reports Caddy on that version -> ACK(version, config hash). Any failure is a
 * NACK with the version the slave still runs.
 */
export class SnapshotApplier {
  private queue: Promise<unknown> = Promise.resolve();
  readonly state: ReceiverState = { masterInstanceId: "", appliedVersion: 0, configSha256: "", lastSyncTime: undefined, lastError: "", lastErrorTime: undefined };

  constructor(
    private readonly config: ConfigClient,
    private readonly renderer: RendererClient,
    private readonly log: Logger,
    private readonly ackTimeoutMs: number,
  ) {}

  /** At start: the slave's applied version, master and Caddy config hash, for status. */
  async load(): Promise<void> {
    await this.refresh();
    this.state.configSha256 = (await this.renderer.status()).configSha256;
  }

  /** The applied version and master, from the database (the one source for the stale check). */
  private async refresh(): Promise<void> {
    const info = await this.config.instanceInfo();
    this.state.masterInstanceId = info.masterInstanceId;
    this.state.appliedVersion = info.version;
  }

  apply(snapshot: Snapshot | undefined): Promise<SyncResponse> {
    const run = this.queue.then(() => this.applyOne(snapshot));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async applyOne(snapshot: Snapshot | undefined): Promise<SyncResponse> {
    const version = snapshot?.version ?? 0;
    const nack = (code: NackCode, reason: string): SyncResponse => {
      this.state.lastError = reason;
      this.state.lastErrorTime = new Date();
      this.log.warn({ version, code: NackCode[code], reason }, "snapshot refused (NACK)");
      return { ack: undefined, nack: { version, appliedVersion: this.state.appliedVersion, reason, code } };
    };
    try {
      await this.refresh();
    } catch (err) {
      return nack(NackCode.NACK_CODE_INTERNAL, `slave's config-service unavailable: ${(err as Error).message}`);
    }
    try {
      if (!snapshot) throw new ValidationError("snapshot", "is required");
      validateSnapshot(snapshot);
    } catch (err) {
      return nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, (err as Error).message);
    }
    const sameMaster = this.state.masterInstanceId === snapshot.masterInstanceId;
    if (sameMaster && version < this.state.appliedVersion) {
      return nack(NackCode.NACK_CODE_STALE_VERSION, `snapshot version ${version} is older than the applied version ${this.state.appliedVersion}`);
    }
    let configSha256: string;
    try {
      configSha256 = (await this.renderer.loadSnapshot(snapshot, this.ackTimeoutMs)).configSha256;
    } catch (err) {
      const e = err as { code?: number; details?: string; message: string };
      if (e.code === Status.FAILED_PRECONDITION) return nack(NackCode.NACK_CODE_CADDY_REJECTED, e.details ?? e.message);
      if (e.code === Status.INVALID_ARGUMENT) return nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, e.details ?? e.message);
      return nack(NackCode.NACK_CODE_INTERNAL, `renderer: ${e.details ?? e.message}`);
    }
    try {
      const r = await this.config.applySnapshot(snapshot, this.ackTimeoutMs);
      if (r.changed) this.log.info({ version }, "snapshot committed");
    } catch (err) {
      const e = err as { code?: number; details?: string; message: string };
      if (e.code === Status.FAILED_PRECONDITION) return nack(NackCode.NACK_CODE_STALE_VERSION, e.details ?? e.message);
      if (e.code === Status.INVALID_ARGUMENT) return nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, e.details ?? e.message);
      return nack(NackCode.NACK_CODE_INTERNAL, `config-service: ${e.details ?? e.message}`);
    }
    try {
      const s = await this.renderer.waitFor((s) => s.appliedVersion === version && s.configSha256 === configSha256, this.ackTimeoutMs);
      this.state.appliedVersion = version;
      this.state.masterInstanceId = snapshot.masterInstanceId;
      this.state.configSha256 = s.configSha256;
      this.state.lastSyncTime = new Date();
      this.state.lastError = "";
      return { ack: { version, configSha256: s.configSha256 }, nack: undefined };
    } catch (err) {
      return nack(NackCode.NACK_CODE_INTERNAL, `committed, but Caddy did not confirm: ${(err as Error).message}`);
    }
  }
}
