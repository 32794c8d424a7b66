import { NackCode, type Snapshot, type SyncResponse } from "@cpm/proto";
import { SnapshotCheckMemo, validateSnapshot, type Logger } from "@cpm/core";
import type { ConfigPort as ConfigService, RendererPort as RendererService } from "@cpm/grpc-kit";
import { IncomingSnapshot } from "@cpm/snapshot-wire";
import type { StatusStore } from "./status-store.ts";
import {
  applyStep,
  type ApplyAction,
  type ApplyFacts,
  type CallFailure,
  type CheckResult,
  type DatabaseFacts,
} from "./apply-step.ts";
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

/** A failed call to a service of this slave, as `applyStep` reads it. */
function failureOf(e: GrpcFailure): CallFailure {
  return { code: e.code, reason: e.details ?? e.message };
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

  /**
   * At start, after `load`: this slave's own snapshot (its database's, from `own`) is checked
   * with the memo and taught to `decoder`, so that the first snapshot after a restart is
   * decoded and checked in what changed since, as every later one is. In one process its
   * resources are the very objects config-service holds and the renderer rendered at its
   * start, so that render is reused too. It costs the check of the whole content at start
   * (about 0.4 s at 10,000 hosts) rather than at the first push. A slave that never applied a
   * snapshot primes nothing; a failure is logged and changes nothing.
   */
  async prime(decoder: { prime(s: Snapshot): void }, own: () => Promise<Snapshot>): Promise<void> {
    await this.enqueue(async () => {
      if (this.state.appliedVersion === 0) return;
      const s = await own();
      // A copy of the snapshot object (its resources are the same objects): config-service may
      // have checked that very object already, and a check of it would then not fill the memo.
      validateSnapshot({ ...s }, "snapshot", this.checked);
      decoder.prime(s);
      this.log.debug({ version: s.version }, "primed with this slave's own snapshot");
    }).catch((err: Error & { details?: string }) =>
      this.log.info(
        { err: err.details ?? err.message },
        "cannot prime with this slave's own snapshot; the first push is checked in full",
      ),
    );
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
   * Drives one snapshot through `applyStep` (apply-step.ts: every decision is there). Its header
   * (version, master, content hash) decides the unchanged short-cut without decoding anything;
   * otherwise it is decoded once (resources unchanged since the previous snapshot are not
   * decoded again, see SnapshotDecoder), validated, and goes to the renderer and to
   * config-service as it came (its frame over gRPC; in process, the very message decoded and
   * validated here).
   */
  private async applyOne(snapshot: IncomingSnapshot | undefined): Promise<SyncResponse> {
    if (!snapshot) {
      const { action } = applyStep({ at: "received" }, { type: "missing" });
      if (action.do === "nack") return this.answer(0, action);
      throw new Error(`a missing snapshot must be refused, not ${action.do}`);
    }
    let step = applyStep({ at: "received" }, { type: "assessed", facts: await this.assess(snapshot) });
    for (;;) {
      const { action } = step;
      switch (action.do) {
        case "ack":
        case "nack":
        case "invalid":
          return this.answer(snapshot.version, action, snapshot);
        case "check":
          step = applyStep(step.next, { type: "checked", check: this.check(snapshot) });
          break;
        case "preload":
          step = applyStep(
            step.next,
            await this.renderer.loadSnapshot(snapshot, this.ackTimeoutMs).then(
              (r) => ({ type: "preloaded", configSha256: r.configSha256 }) as const,
              (e: GrpcFailure) => ({ type: "preload-failed", failure: failureOf(e) }) as const,
            ),
          );
          break;
        case "commit":
          step = applyStep(
            step.next,
            await this.config.applySnapshot(snapshot, this.ackTimeoutMs).then(
              (r) => {
                if (r.changed) this.log.info({ version: snapshot.version }, "snapshot committed");
                return { type: "committed" } as const;
              },
              (e: GrpcFailure) => ({ type: "commit-failed", failure: failureOf(e) }) as const,
            ),
          );
          break;
        case "confirm":
          step = applyStep(
            step.next,
            await this.renderer
              .waitFor(
                (s) => s.appliedVersion === action.version && s.configSha256 === action.configSha256,
                this.ackTimeoutMs,
              )
              .then(
                (s) => ({ type: "confirmed", configSha256: s.configSha256 }) as const,
                (e: Error) => ({ type: "not-confirmed", reason: e.message }) as const,
              ),
          );
          break;
      }
    }
  }

  /**
   * The facts a snapshot is decided on: the database's state and the renderer's status, read
   * at the same time (only this applier makes preloads, one at a time, so the status cannot go
   * stale in between). A snapshot that is not what this receiver last saw run is checked while
   * they are read; one that looks unchanged is left unchecked (`applyStep` asks for the check
   * only when it is not unchanged after all).
   */
  private async assess(snapshot: IncomingSnapshot): Promise<ApplyFacts> {
    const rendered = this.renderer.status().then(
      (s) => s,
      () => undefined,
    );
    const database = this.refresh().then(
      (contentSha256): DatabaseFacts => ({
        version: this.state.appliedVersion,
        masterInstanceId: this.state.masterInstanceId,
        contentSha256,
      }),
      (e: GrpcFailure): DatabaseFacts => ({ unavailable: e.details ?? e.message }),
    );
    const looksUnchanged =
      snapshot.version === this.state.appliedVersion &&
      snapshot.masterInstanceId === this.state.masterInstanceId &&
      snapshot.contentSha256 === this.runningContentSha256;
    const check: CheckResult = looksUnchanged ? "unchecked" : this.check(snapshot);
    return {
      snapshot: {
        version: snapshot.version,
        masterInstanceId: snapshot.masterInstanceId,
        contentSha256: snapshot.contentSha256,
      },
      database: await database,
      rendered: await rendered,
      check,
    };
  }

  /** Answers the master, and keeps what the answer means: the last sync or the last error. */
  private async answer(
    version: number,
    action: Extract<ApplyAction, { do: "ack" | "nack" | "invalid" }>,
    snapshot?: IncomingSnapshot,
  ): Promise<SyncResponse> {
    if (action.do === "ack") {
      this.state.appliedVersion = version;
      if (snapshot) this.state.masterInstanceId = snapshot.masterInstanceId;
      this.state.configSha256 = action.configSha256;
      if (snapshot) this.runningContentSha256 = snapshot.contentSha256;
      this.state.lastSyncTime = new Date();
      this.state.lastError = "";
      if (action.unchanged) this.log.debug({ version }, "snapshot already applied and running (ACK, nothing to do)");
      else this.persist();
      // The content hash of what was applied: the master checks it against what it sent.
      const contentSha256 = snapshot?.contentSha256 ?? this.runningContentSha256;
      return { ack: { version, configSha256: action.configSha256, contentSha256 }, nack: undefined };
    }
    const { code, reason, retryable } =
      action.do === "nack"
        ? action
        : { code: NackCode.NACK_CODE_INTERNAL, reason: `internal error: ${action.why}`, retryable: true };
    if (action.do === "nack" && action.release) await this.releasePreload(version);
    this.state.lastError = reason;
    this.state.lastErrorTime = new Date();
    this.persist();
    this.log.warn({ version, code: NackCode[code], retryable, reason }, "snapshot refused (NACK)");
    return { ack: undefined, nack: { version, appliedVersion: this.state.appliedVersion, reason, code, retryable } };
  }

  /** Decodes and validates `snapshot` (the resources it already knows are neither decoded nor normalized again). */
  private check(snapshot: IncomingSnapshot): { valid: true } | { valid: false; reason: string } {
    try {
      validateSnapshot(snapshot.snapshot(), "snapshot", this.checked);
      return { valid: true };
    } catch (err) {
      return { valid: false, reason: (err as Error).message };
    }
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
