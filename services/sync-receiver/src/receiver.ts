import { NackCode, type RenderStatus, type Snapshot, type SyncResponse } from "@cpm/proto";
import { SnapshotCheckMemo, validateSnapshot, ValidationError, type Logger } from "@cpm/core";
import type { ConfigPort as ConfigService, RendererPort as RendererService } from "@cpm/grpc-kit";
import { IncomingSnapshot } from "@cpm/snapshot-wire";
import { status as Status } from "@grpc/grpc-js";
import type { StatusStore } from "./status-store.ts";
import { traceApply } from "./apply-trace.ts";

export interface ReceiverState {
  masterInstanceId: string;
  appliedVersion: number;
  configSha256: string;
  lastSyncTime: Date | undefined;
  lastError: string;
  lastErrorTime: Date | undefined;
}

/** What the applier needs from this slave's config-service. */
export type ConfigPort = Pick<ConfigService, "instanceInfo" | "applySnapshot">;
/** What the applier needs from this slave's renderer. */
export type RendererPort = Pick<RendererService, "loadSnapshot" | "releasePreload" | "status" | "waitFor">;

/** A snapshot as the stream gave it (a frame read by its header), or a decoded one (tests, tools). */
export type ReceivedSnapshot = IncomingSnapshot | Snapshot | undefined;

const incoming = (s: ReceivedSnapshot): IncomingSnapshot | undefined =>
  s === undefined || s instanceof IncomingSnapshot ? s : IncomingSnapshot.of(s);

/** Between attempts to read the slave's state at start: its services are local, a try costs nothing. */
const LOAD_RETRY_MS = 100;

/** The stream a snapshot came on ended before its turn: it was dropped, not applied. */
export class StreamClosedError extends Error {
  constructor() {
    super("the sync stream ended before this snapshot's turn; dropped");
    this.name = "StreamClosedError";
  }
}

interface GrpcFailure {
  code?: number;
  details?: string;
  message: string;
}

/**
 * How a failed call to a service of this slave is answered: the snapshot was not at fault,
 * so a retry can help. UNAVAILABLE when the service was down or timed out, INTERNAL otherwise.
 */
function dependencyFailure(e: GrpcFailure): NackCode {
  const unavailable =
    e.code === Status.UNAVAILABLE || e.code === Status.DEADLINE_EXCEEDED || e.code === Status.CANCELLED;
  return unavailable ? NackCode.NACK_CODE_UNAVAILABLE : NackCode.NACK_CODE_INTERNAL;
}

/**
 * Applies master snapshots on a slave, one at a time:
 * validate -> preload into Caddy through the renderer (a config Caddy refuses stops here,
 * nothing written) -> commit through config-service in one transaction -> wait until the
 * renderer reports Caddy on that version -> ACK(version, config hash). Any failure is a
 * NACK with the version the slave still runs, retryable exactly when the slave and not the
 * snapshot was at fault. A commit refused for the snapshot's sake releases the preload, so
 * Caddy goes back to the database's version at once; one that failed because the slave's
 * config-service was down keeps it: Caddy stays on the master's newer version (never moving
 * back) until the master's retry of it, or a newer one, commits (or the renderer's hold expires).
 */
export class SnapshotApplier {
  private queue: Promise<unknown> = Promise.resolve();
  /** Resources of the last valid snapshot: an unchanged one is not normalized or hashed again. */
  private readonly checked = new SnapshotCheckMemo();
  /** The content hash of the last snapshot this receiver saw run (ACKed); a guess only, the database decides. */
  private runningContentSha256 = "";
  readonly state: ReceiverState = {
    masterInstanceId: "",
    appliedVersion: 0,
    configSha256: "",
    lastSyncTime: undefined,
    lastError: "",
    lastErrorTime: undefined,
  };

  constructor(
    private readonly config: ConfigPort,
    private readonly renderer: RendererPort,
    private readonly log: Logger,
    private readonly ackTimeoutMs: number,
    /** Keeps the last sync and the last error across restarts; none: they start empty. */
    private readonly store?: StatusStore,
  ) {
    const saved = store?.load();
    if (saved) Object.assign(this.state, saved);
  }

  /**
   * At start, before any snapshot (each attempt takes its turn in the queue): the slave's
   * applied version and master from the database, and Caddy's config hash for that version.
   * A preload newer than the database is one this receiver made before it died, between
   * preload and commit: it is kept (Caddy does not move back a version); the master pushes
   * that version or a newer one as soon as its stream reconnects, and the renderer's hold
   * expires by itself otherwise. Until then the status reports no hash for the database's
   * version. Retried while the slave's other services start, for `timeoutMs` (by default the
   * ACK timeout); rejects with the last failure after that.
   */
  async load(timeoutMs = this.ackTimeoutMs): Promise<void> {
    const giveUpAt = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await this.enqueue(() => this.loadOnce());
      } catch (err) {
        if (Date.now() + LOAD_RETRY_MS > giveUpAt) throw err;
        await new Promise((r) => setTimeout(r, LOAD_RETRY_MS));
      }
    }
  }

  private async loadOnce(): Promise<void> {
    await this.refresh();
    const committed = this.state.appliedVersion;
    const rendered = await this.renderer.status();
    if (rendered.appliedVersion > committed) {
      this.log.warn(
        { preloaded: rendered.appliedVersion, committed },
        "Caddy runs a preload that was never committed; kept until the master sends it again",
      );
    }
    this.state.configSha256 = rendered.appliedVersion === committed ? rendered.configSha256 : "";
  }

  private enqueue<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * The status as GetReceiverStatus reports it: version and master from the database and the
   * config hash the renderer reports for that same version (empty while Caddy runs another
   * one); the last known state when a service of this slave does not answer.
   */
  async status(): Promise<ReceiverState> {
    const view = { ...this.state };
    try {
      const [info, rendered] = await Promise.all([this.config.instanceInfo(), this.renderer.status()]);
      view.masterInstanceId = info.masterInstanceId;
      view.appliedVersion = info.version;
      view.configSha256 = rendered.appliedVersion === info.version ? rendered.configSha256 : "";
    } catch {
      /* the last known state */
    }
    return view;
  }

  private persist(): void {
    if (!this.store) return;
    try {
      this.store.save({
        lastSyncTime: this.state.lastSyncTime,
        lastError: this.state.lastError,
        lastErrorTime: this.state.lastErrorTime,
      });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "cannot save the receiver's status; it is kept in memory");
    }
  }

  /** The applied version and master, from the database (the one source for the stale check). */
  private async refresh(): Promise<string> {
    const info = await this.config.instanceInfo();
    this.state.masterInstanceId = info.masterInstanceId;
    this.state.appliedVersion = info.version;
    return info.contentSha256;
  }

  /**
   * A snapshot of what already runs (a periodic push with nothing changed): same master, same
   * version, the content hash the slave's database holds (config-service reads the database
   * again when it was changed behind its back), and the renderer in sync on that version. It
   * is answered at once with an ACK: no validation, no preload, no commit, no Caddy load.
   * Anything else returns undefined and takes the full path.
   */
  private unchanged(
    snapshot: IncomingSnapshot,
    contentSha256: string,
    status: RenderStatus | undefined,
  ): SyncResponse | undefined {
    if (!contentSha256 || snapshot.contentSha256 !== contentSha256) return undefined;
    if (snapshot.masterInstanceId !== this.state.masterInstanceId || snapshot.version !== this.state.appliedVersion)
      return undefined;
    if (!status || !status.inSync || status.appliedVersion !== snapshot.version) return undefined;
    this.state.configSha256 = status.configSha256;
    this.runningContentSha256 = snapshot.contentSha256;
    this.state.lastSyncTime = new Date();
    this.state.lastError = "";
    this.log.debug({ version: snapshot.version }, "snapshot already applied and running (ACK, nothing to do)");
    return { ack: { version: snapshot.version, configSha256: status.configSha256 }, nack: undefined };
  }

  /**
   * Applies `snapshot` after the ones before it. When `signal` (the stream's) is aborted before
   * its turn, it is dropped unapplied and the promise rejects with StreamClosedError.
   */
  apply(received: ReceivedSnapshot, signal?: AbortSignal): Promise<SyncResponse> {
    const snapshot = incoming(received);
    return this.enqueue(() => {
      if (signal?.aborted) throw new StreamClosedError();
      return traceApply(snapshot, () => this.applyOne(snapshot));
    });
  }

  /** The answer to a snapshot dropped unapplied because a newer one arrived on its stream. */
  superseded(dropped: ReceivedSnapshot, by: ReceivedSnapshot): SyncResponse {
    const version = dropped?.version ?? 0;
    this.log.warn({ version, by: by?.version ?? 0 }, "snapshot superseded before it was applied (NACK)");
    const reason = `snapshot version ${version} was superseded by version ${by?.version ?? 0} on the same stream before it was applied`;
    return {
      ack: undefined,
      nack: {
        version,
        appliedVersion: this.state.appliedVersion,
        reason,
        code: NackCode.NACK_CODE_SUPERSEDED,
        retryable: false,
      },
    };
  }

  /**
   * `received`'s header (version, master, content hash) decides the unchanged short-cut
   * without decoding anything; otherwise it is decoded once (resources unchanged since the
   * previous snapshot are not decoded again, see SnapshotDecoder), validated, and its frame
   * goes as it came to the renderer and to config-service.
   */
  private async applyOne(snapshot: IncomingSnapshot | undefined): Promise<SyncResponse> {
    const version = snapshot?.version ?? 0;
    const nack = (code: NackCode, reason: string, retryable: boolean): SyncResponse => {
      this.state.lastError = reason;
      this.state.lastErrorTime = new Date();
      this.persist();
      this.log.warn({ version, code: NackCode[code], retryable, reason }, "snapshot refused (NACK)");
      return { ack: undefined, nack: { version, appliedVersion: this.state.appliedVersion, reason, code, retryable } };
    };
    if (!snapshot)
      return nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, new ValidationError("snapshot", "is required").message, false);
    // The renderer's status is asked at the same time as the database's state: both steps below
    // that need it (the unchanged short-cut, the preload check) read this one answer. Only this
    // applier makes preloads, one at a time, so it cannot go stale in between.
    const rendered = this.renderer.status().then(
      (s) => s,
      () => undefined,
    );
    const refreshed = this.refresh().then(
      (contentSha256) => ({ contentSha256, failure: undefined }),
      (failure: GrpcFailure) => ({ contentSha256: "", failure }),
    );
    // A snapshot that is not what this receiver last saw run is checked while the database's
    // state is read (the two overlap); one that looks unchanged waits for that state first, and
    // is not checked at all when it is.
    const looksUnchanged =
      snapshot.version === this.state.appliedVersion &&
      snapshot.masterInstanceId === this.state.masterInstanceId &&
      snapshot.contentSha256 === this.runningContentSha256;
    let refusal = looksUnchanged ? undefined : this.check(snapshot);
    const { contentSha256, failure } = await refreshed;
    if (failure)
      return nack(
        NackCode.NACK_CODE_UNAVAILABLE,
        `slave's config-service unavailable: ${failure.details ?? failure.message}`,
        true,
      );
    const unchanged = this.unchanged(snapshot, contentSha256, await rendered);
    if (unchanged) return unchanged;
    if (looksUnchanged) refusal = this.check(snapshot);
    if (refusal !== undefined) return nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, refusal, false);
    const sameMaster = this.state.masterInstanceId === snapshot.masterInstanceId;
    if (sameMaster && version < this.state.appliedVersion) {
      return nack(
        NackCode.NACK_CODE_STALE_VERSION,
        `snapshot version ${version} is older than the applied version ${this.state.appliedVersion}`,
        false,
      );
    }
    const preloaded = sameMaster ? this.preloadedVersion(await rendered) : 0;
    if (version < preloaded) {
      // A late snapshot (an old stream's, delivered after a stall) must not replace a newer
      // preload whose commit is still to come: Caddy would move back a version.
      return nack(
        NackCode.NACK_CODE_STALE_VERSION,
        `snapshot version ${version} is older than the preloaded version ${preloaded} Caddy runs`,
        false,
      );
    }
    let configSha256: string;
    try {
      configSha256 = (await this.renderer.loadSnapshot(snapshot, this.ackTimeoutMs)).configSha256;
    } catch (err) {
      const e = err as GrpcFailure;
      if (e.code === Status.FAILED_PRECONDITION)
        return nack(NackCode.NACK_CODE_CADDY_REJECTED, e.details ?? e.message, false);
      if (e.code === Status.INVALID_ARGUMENT)
        return nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, e.details ?? e.message, false);
      return nack(dependencyFailure(e), `renderer: ${e.details ?? e.message}`, true);
    }
    try {
      const r = await this.config.applySnapshot(snapshot, this.ackTimeoutMs);
      if (r.changed) this.log.info({ version }, "snapshot committed");
    } catch (err) {
      const e = err as GrpcFailure;
      if (e.code === Status.FAILED_PRECONDITION || e.code === Status.INVALID_ARGUMENT) {
        await this.releasePreload(version);
        return nack(
          e.code === Status.FAILED_PRECONDITION
            ? NackCode.NACK_CODE_STALE_VERSION
            : NackCode.NACK_CODE_INVALID_SNAPSHOT,
          e.details ?? e.message,
          false,
        );
      }
      // The master retries this version (or sends a newer one): Caddy stays on it meanwhile.
      return nack(dependencyFailure(e), `config-service: ${e.details ?? e.message}`, true);
    }
    try {
      const s = await this.renderer.waitFor(
        (s) => s.appliedVersion === version && s.configSha256 === configSha256,
        this.ackTimeoutMs,
      );
      this.state.appliedVersion = version;
      this.state.masterInstanceId = snapshot.masterInstanceId;
      this.state.configSha256 = s.configSha256;
      this.runningContentSha256 = snapshot.contentSha256;
      this.state.lastSyncTime = new Date();
      this.state.lastError = "";
      this.persist();
      return { ack: { version, configSha256: s.configSha256 }, nack: undefined };
    } catch (err) {
      return nack(
        NackCode.NACK_CODE_UNAVAILABLE,
        `committed, but Caddy did not confirm: ${(err as Error).message}`,
        true,
      );
    }
  }

  /**
   * Decodes and validates `snapshot` (the resources it already knows are neither decoded nor
   * normalized again); the reason it is refused, or undefined when it is valid.
   */
  private check(snapshot: IncomingSnapshot): string | undefined {
    try {
      validateSnapshot(snapshot.snapshot(), "snapshot", this.checked);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /** The version of a preload Caddy runs ahead of the database (held for its commit); 0: none, or unknown (the renderer did not answer: the preload fails anyway). */
  private preloadedVersion(status: RenderStatus | undefined): number {
    return status && status.appliedVersion > this.state.appliedVersion ? status.appliedVersion : 0;
  }

  /** The commit was refused: Caddy goes back to the database's version now, not when a hold expires. */
  private async releasePreload(version: number): Promise<void> {
    try {
      await this.renderer.releasePreload(version);
    } catch (err) {
      const e = err as GrpcFailure;
      this.log.warn(
        { version, err: e.details ?? e.message },
        "cannot release the preload; the renderer's hold expires by itself",
      );
    }
  }
}
