import { EventEmitter } from "node:events";
import type { RenderStatus, Snapshot } from "@cpm/proto";
import { backoffDelay, DomainError, type Logger } from "@cpm/core";
import {
  ConnectionLog,
  contextFromCarrier,
  versionAttributes,
  withSpan,
  type Span,
  type TraceCarrier,
} from "@cpm/grpc-kit";
import { CaddyRejectedError, CaddyUnreachableError, type CaddyAdmin } from "./caddy.ts";
import type { PreloadHoldStore, SavedHold } from "./reconciler-hold.ts";
import { reconcileStep, type VersionedContent } from "./reconcile-step.ts";
import { render, type RenderOptions } from "./render/index.ts";
import { ensureTlsFiles } from "./render/tls.ts";

/**
 * Caddy reloads under a stream of changes: after a load that took D ms, the next one starts no
 * sooner than LOAD_PACING x D ms after it ended, so Caddy spends at most half of the time
 * loading (a reload rebuilds every server, route and TLS policy and takes the CPU its traffic
 * needs) and the writes, the push to the slaves and the proxying keep the rest. A change after
 * a quiet spell loads at once; one during a stream waits at most that long, and the versions
 * committed meanwhile are loaded together (the newest). A preload (slave) is paced the same.
 */
const LOAD_PACING = 1;
/** A load that hung for long (Caddy stuck, then back) does not hold the next one longer than this. */
const MAX_PACING_MS = 1_000;

export interface SnapshotSource {
  getSnapshot(): Promise<Snapshot>;
}

/** The parts of Caddy's admin API the reconciler uses. */
export type CaddyAdminApi = Pick<CaddyAdmin, "load" | "currentConfigHash" | "currentConfig">;

interface Applied {
  version: number;
  contentSha256: string;
  configSha256: string;
  json: string;
  at: Date;
}

/**
 * Keeps Caddy on the configuration service's current version.
 * - every committed version (or content change) is rendered and loaded with POST /load;
 * - Caddy unreachable: retried with jittered backoff;
 * - Caddy refused a config: recorded with its version and not retried until the content changes;
 * - every `checkIntervalMs`, Caddy's running config is compared with the applied one and
 *   re-applied when Caddy restarted or someone changed it behind our back;
 * - a slave's preload (`preflight`) is held: until a commit of that version (or a newer one)
 *   is seen, the receiver releases it (`releasePreload`, the commit failed) or `preloadHoldMs`
 *   passes (the receiver died in between), nothing else is loaded, so Caddy never moves back
 *   to the database's older version in the gap. A release or the expiry reconciles at once.
 *   The hold is saved (`holdStore`) before Caddy is given the preload: a restarted renderer
 *   holds it again when Caddy still runs it, instead of loading the database's older version.
 * What to do is decided by `reconcileStep`; loads are serialized: one at a time, newest
 * desired state wins.
 */
export class Reconciler {
  private readonly events = new EventEmitter();
  private desired = { version: 0, contentSha256: "" };
  /** Trace context of the commit of the desired version: the load that moves Caddy to it joins that trace. */
  private desiredTrace: TraceCarrier | undefined;
  private applied: Applied | undefined;
  private rejected: { contentSha256: string; version: number } | undefined;
  private lastError: { version: number; message: string; at: Date } | undefined;
  private warnings: string[] = [];
  private caddyReachable = false;
  private caddyMatches = false;
  private busy: Promise<void> = Promise.resolve();
  private pending = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  /** The preloaded, uncommitted snapshot Caddy keeps running (slave), and its expiry timer. */
  private hold: (SavedHold & { timer: NodeJS.Timeout }) | undefined;
  /** A hold saved by the previous run of this renderer, not looked at yet. */
  private saved: SavedHold | undefined;
  /** No load starts before this (ms since the epoch): see LOAD_PACING. */
  private nextLoadAt = 0;

  /**
   * @param preloadHoldMs how long a preload is held without commit or release: a crash
   * fallback, set to the receiver's own commit deadline (CPM_SYNC_ACK_TIMEOUT).
   * @param holdStore keeps the hold across restarts; none: a restart forgets it.
   */
  private readonly fetchLog: ConnectionLog;
  private readonly caddyLog: ConnectionLog;

  constructor(
    private readonly source: SnapshotSource,
    private readonly caddy: CaddyAdminApi,
    private readonly opts: RenderOptions,
    private readonly log: Logger,
    private readonly checkIntervalMs = 2000,
    private readonly preloadHoldMs = 60_000,
    private readonly holdStore?: PreloadHoldStore,
  ) {
    this.events.setMaxListeners(0);
    this.saved = holdStore?.load();
    // Retried at most a second apart: said once per start or outage, not per attempt. The
    // config watch already says that it waits for config-service at start.
    this.fetchLog = new ConnectionLog(log, "config-service's snapshot", "cannot fetch snapshot", false);
    this.caddyLog = new ConnectionLog(log, "Caddy's admin API", "cannot reach Caddy; will retry");
  }

  start(): void {
    const tick = () => {
      this.checkTimer = setTimeout(() => void this.check().finally(tick), this.checkIntervalMs);
    };
    tick();
  }

  stop(): void {
    clearTimeout(this.checkTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.hold?.timer);
  }

  /** A committed version was announced by the configuration service. */
  onCommit(c: { version: number; contentSha256: string; traceContext?: TraceCarrier }): void {
    this.desired = { version: c.version, contentSha256: c.contentSha256 };
    this.desiredTrace = c.traceContext;
    if (this.hold && this.committed(this.hold)) this.endHold();
    this.emit();
    this.kick();
  }

  /**
   * The receiver will not commit the preloaded `version`: end its hold and put Caddy back on
   * the database's version now. A hold for another version is left alone. Returns whether a
   * hold was released.
   */
  releasePreload(version: number): boolean {
    const released = this.hold?.version === version;
    if (released) {
      this.endHold();
      this.log.warn({ version }, "preloaded snapshot not committed; back to the database's version");
    }
    this.kick();
    return released;
  }

  /** The database has the held version, or a newer one, or the same content. */
  private committed(h: VersionedContent): boolean {
    return this.desired.version >= h.version || this.desired.contentSha256 === h.contentSha256;
  }

  private endHold(): void {
    if (!this.hold) return;
    clearTimeout(this.hold.timer);
    this.hold = undefined;
    this.storeHold();
  }

  /** Saves the hold there is now (`next`: the one about to be loaded), or clears the saved one. */
  private storeHold(next?: SavedHold): void {
    const h = next ?? this.hold;
    try {
      if (h) this.holdStore?.save(h);
      else this.holdStore?.clear();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "cannot save the preload hold; a restart will not keep it");
    }
  }

  /**
   * After a restart, before anything is loaded: a hold the previous run saved is held again
   * when Caddy still runs its config (it was loaded, and Caddy kept or resumed it) and it is
   * neither expired nor committed. False when Caddy cannot be asked yet (retried later).
   */
  private async resumeSavedHold(): Promise<boolean> {
    const saved = this.saved;
    if (!saved) return true;
    let running: { json: string; sha256: string };
    try {
      running = await this.caddy.currentConfig();
    } catch {
      this.scheduleRetry();
      return false;
    }
    this.saved = undefined;
    if (running.sha256 !== saved.configSha256) {
      this.storeHold();
      return true;
    }
    this.applied = {
      version: saved.version,
      contentSha256: saved.contentSha256,
      configSha256: saved.configSha256,
      json: running.json,
      at: new Date(),
    };
    this.caddyReachable = true;
    this.caddyMatches = true;
    const left = saved.until - Date.now();
    if (left > 0 && !this.committed(saved)) {
      this.setHold(saved, left);
      this.log.info(
        { version: saved.version, holdMs: left },
        "Caddy runs a preload held before a restart; kept until commit, release or expiry",
      );
    } else this.storeHold();
    this.emit();
    return true;
  }

  /** Queue a reconcile; concurrent requests collapse into one run after the current one. */
  kick(): void {
    if (this.pending) return;
    this.pending = true;
    this.busy = this.busy.then(async () => {
      this.pending = false;
      await this.reconcile().catch(() => undefined);
    });
  }

  /**
   * Waits until a load may start (see LOAD_PACING); true when it waited. An isolated change
   * never waits: only one that follows a load closer than that load's own duration does.
   */
  private async pace(): Promise<boolean> {
    const wait = this.nextLoadAt - Date.now();
    if (wait <= 0) return false;
    await new Promise((r) => setTimeout(r, wait));
    return true;
  }

  private async reconcile(): Promise<void> {
    if (!(await this.resumeSavedHold())) return;
    const step = reconcileStep({
      desired: this.desired,
      applied: this.applied,
      caddyMatches: this.caddyMatches,
      rejectedContentSha256: this.rejected?.contentSha256,
      hold: this.hold,
    });
    if (step === "none" || step === "keep-held") return;
    if (step !== "bump-version" && (await this.pace())) return this.reconcile(); // newer commits may have come meanwhile
    // A re-apply of the version Caddy already had (a restart, drift) is not part of the commit's trace.
    const parent = contextFromCarrier(this.applied?.version !== this.desired.version ? this.desiredTrace : undefined);
    const attributes = {
      ...versionAttributes(this.desired.version, this.desired.contentSha256),
      "cpm.render.step": step,
    };
    await withSpan("renderer.load", { parent, attributes }, (span) => this.runStep(step, span));
  }

  private async runStep(step: ReturnType<typeof reconcileStep>, span: Span): Promise<void> {
    const a = this.applied;
    if (step === "bump-version" && a) {
      // Same content already running (a slave's preloaded snapshot, now committed): only the
      // version moves, no fetch, render or load needed.
      this.applied = { ...a, version: this.desired.version, at: new Date() };
      span.setAttribute("cpm.config.config_sha256", a.configSha256.slice(0, 12));
      this.emit();
      return;
    }
    if (step === "reload-held" && a) {
      await this.loadJson(a.version, a.json).catch(() => undefined);
      return;
    }
    let snapshot: Snapshot;
    try {
      snapshot = await this.source.getSnapshot();
      this.fetchLog.connected();
    } catch (err) {
      const message = `cannot read the snapshot from config-service: ${(err as { details?: string }).details ?? (err as Error).message}`;
      this.fetchLog.failed(message);
      this.lastError = { version: this.desired.version, message, at: new Date() };
      this.emit();
      this.scheduleRetry();
      throw err;
    }
    span.setAttributes(versionAttributes(snapshot.version, snapshot.contentSha256));
    span.setAttribute("cpm.config.config_sha256", (await this.apply(snapshot)).slice(0, 12));
  }

  /** Render and load one snapshot; records the outcome. Returns the rendered hash on success. */
  private async apply(snapshot: Snapshot, beforeLoad?: (configSha256: string) => void): Promise<string> {
    const full = render(snapshot, this.opts);
    try {
      return await this.applyRendered(snapshot, full, beforeLoad);
    } catch (err) {
      // A config Caddy refuses as a whole because of its layer4 app (typically a listener on a
      // port another process holds: not knowable at write time) must not stop the HTTP hosts:
      // load it again without the layer4 app, with a warning that quotes Caddy's reason.
      if (!(err instanceof CaddyRejectedError)) throw err;
      const without = render(snapshot, { ...this.opts, layer4RefusedBecause: err.message });
      if (without.sha256 === full.sha256) throw err;
      this.log.warn(
        { version: snapshot.version, reason: err.message },
        "Caddy refused the config; trying it without the layer4 app",
      );
      this.rejected = undefined;
      return this.applyRendered(snapshot, without, beforeLoad);
    }
  }

  private async applyRendered(
    snapshot: Snapshot,
    r: { json: string; sha256: string; warnings: string[] },
    beforeLoad?: (configSha256: string) => void,
  ): Promise<string> {
    this.warnings = r.warnings;
    if (this.applied?.configSha256 === r.sha256 && this.caddyMatches) {
      this.markApplied(snapshot, r.sha256, r.json);
      return r.sha256;
    }
    try {
      ensureTlsFiles(snapshot, this.opts); // files the config names (render/tls.ts)
    } catch (err) {
      this.lastError = { version: snapshot.version, message: (err as Error).message, at: new Date() };
      this.scheduleRetry();
      this.emit();
      throw err;
    }
    if (!this.applied && !beforeLoad && (await this.caddyRuns(r.sha256))) {
      // The first apply since this renderer started, and Caddy runs this very config already (it
      // resumes its last config after a restart): restarting the instance does not reload it.
      this.caddyReachable = true;
      this.caddyMatches = true;
      this.markApplied(snapshot, r.sha256, r.json);
      this.log.info(
        { version: snapshot.version, configSha256: r.sha256 },
        "Caddy already runs this config; not loaded again",
      );
      return r.sha256;
    }
    try {
      beforeLoad?.(r.sha256);
      await this.loadJson(snapshot.version, r.json);
    } catch (err) {
      if (err instanceof CaddyRejectedError)
        this.rejected = { contentSha256: snapshot.contentSha256, version: snapshot.version };
      this.emit();
      throw err;
    }
    this.markApplied(snapshot, r.sha256, r.json);
    this.log.info({ version: snapshot.version, configSha256: r.sha256 }, "Caddy config applied");
    return r.sha256;
  }

  /** Whether Caddy runs the config with this hash now (false when it cannot be asked). */
  private async caddyRuns(configSha256: string): Promise<boolean> {
    try {
      return (await this.caddy.currentConfigHash()) === configSha256;
    } catch {
      return false;
    }
  }

  /** POST /load; records reachability and errors, and retries later when Caddy is unreachable. */
  private async loadJson(version: number, json: string): Promise<void> {
    try {
      const started = Date.now();
      await this.caddy.load(json);
      const took = Math.min(Date.now() - started, MAX_PACING_MS);
      this.nextLoadAt = Date.now() + took * LOAD_PACING;
      this.caddyReachable = true;
      this.caddyMatches = true;
      this.attempt = 0;
      this.caddyLog.connected();
    } catch (err) {
      this.lastError = { version, message: (err as Error).message, at: new Date() };
      if (err instanceof CaddyRejectedError) {
        this.caddyReachable = true;
        this.log.error({ version, reason: err.message }, "Caddy refused the config; it keeps the last good one");
      } else {
        this.caddyReachable = false;
        this.caddyLog.failed(`version ${version}: ${(err as Error).message}`);
        this.scheduleRetry();
      }
      this.emit();
      throw err;
    }
  }

  private markApplied(snapshot: Snapshot, configSha256: string, json: string): void {
    this.applied = {
      version: snapshot.version,
      contentSha256: snapshot.contentSha256,
      configSha256,
      json,
      at: new Date(),
    };
    if (this.rejected && this.rejected.contentSha256 !== snapshot.contentSha256) this.rejected = undefined;
    if (this.lastError && this.lastError.version <= snapshot.version && !this.rejected) this.lastError = undefined;
    this.emit();
  }

  private scheduleRetry(): void {
    clearTimeout(this.retryTimer);
    // Caddy and config-service are local: at most a second apart, so a restarted one is
    // caught up within a second.
    this.retryTimer = setTimeout(() => this.kick(), backoffDelay(this.attempt++, 100, 1_000));
  }

  /** Periodic: is Caddy running what we applied, and are we on the desired version? */
  private async check(): Promise<void> {
    try {
      const hash = await this.caddy.currentConfigHash();
      const wasReachable = this.caddyReachable;
      this.caddyReachable = true;
      const matches = this.applied !== undefined && hash === this.applied.configSha256;
      if (matches !== this.caddyMatches || !wasReachable) {
        this.caddyMatches = matches;
        this.emit();
      }
      if (!matches && this.applied) {
        this.log.warn(
          { version: this.applied.version },
          "Caddy is not running the applied config (restarted or changed); re-applying",
        );
        this.kick();
        return;
      }
    } catch (err) {
      if (err instanceof CaddyUnreachableError && this.caddyReachable) {
        this.caddyReachable = false;
        this.caddyMatches = false;
        this.emit();
      }
      return;
    }
    const behind =
      !this.applied ||
      this.applied.version !== this.desired.version ||
      this.applied.contentSha256 !== this.desired.contentSha256;
    const refused = this.rejected?.contentSha256 === this.desired.contentSha256;
    if (behind && !refused) this.kick();
  }

  /**
   * Slave preflight: load a snapshot that is not committed yet, so a config Caddy refuses
   * never reaches the database. Throws FAILED_PRECONDITION with Caddy's reason.
   */
  preflight(snapshot: Snapshot): Promise<{ configSha256: string; warnings: string[] }> {
    const run = this.busy.then(async () => {
      try {
        await this.pace();
        await this.resumeSavedHold();
        const until = Date.now() + this.preloadHoldMs;
        const hold = (configSha256: string): SavedHold => ({
          version: snapshot.version,
          contentSha256: snapshot.contentSha256,
          configSha256,
          until,
        });
        // Saved before Caddy gets it: a restart in between finds Caddy on it, or not.
        const sha = await this.apply(snapshot, (configSha256) => this.storeHold(hold(configSha256)));
        this.holdPreload(hold(sha));
        return { configSha256: sha, warnings: this.warnings };
      } catch (err) {
        this.storeHold(); // back to the hold there is, if any
        if (err instanceof CaddyRejectedError) throw new DomainError("failed_precondition", err.message);
        throw new DomainError("unavailable", (err as Error).message);
      }
    });
    this.busy = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private holdPreload(h: SavedHold): void {
    clearTimeout(this.hold?.timer);
    this.hold = undefined;
    if (h.version === this.desired.version || h.contentSha256 === this.desired.contentSha256) {
      // The database has this version (or this content) already: nothing to wait for, and no
      // commit notice may come (committing content it has announces nothing). An older version
      // is held: the receiver preloads one only from another master.
      this.storeHold();
      return;
    }
    this.setHold(h, this.preloadHoldMs);
  }

  private setHold(h: SavedHold, ms: number): void {
    const { version } = h;
    const timer = setTimeout(() => {
      if (this.hold?.version !== version) return;
      this.endHold();
      this.log.warn(
        { version, holdMs: this.preloadHoldMs },
        "preloaded snapshot neither committed nor released in time; back to the database's version",
      );
      this.kick();
    }, ms);
    timer.unref();
    this.hold = { ...h, timer };
    this.storeHold();
  }

  status(): RenderStatus {
    const a = this.applied;
    return {
      appliedVersion: a?.version ?? 0,
      configSha256: a?.configSha256 ?? "",
      appliedAt: a?.at,
      desiredVersion: this.desired.version,
      lastErrorVersion: this.lastError?.version ?? 0,
      lastError: this.lastError?.message ?? "",
      lastErrorAt: this.lastError?.at,
      caddyReachable: this.caddyReachable,
      warnings: this.warnings,
      inSync:
        !!a &&
        a.version === this.desired.version &&
        a.contentSha256 === this.desired.contentSha256 &&
        this.caddyMatches &&
        this.caddyReachable,
    };
  }

  onStatus(listener: (s: RenderStatus) => void): () => void {
    this.events.on("status", listener);
    return () => this.events.off("status", listener);
  }

  private emit(): void {
    this.events.emit("status", this.status());
  }
}
