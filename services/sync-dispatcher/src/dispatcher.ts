import type { CertificateSyncStatus, GetSyncStatusResponse } from "@cpm/proto";
import { certificateSyncStatus, IssuedVersions } from "./certificate-status.ts";
import { backoffDelay, sleep, ValidationError, type Logger, type SlaveTarget } from "@cpm/core";
import type { ConfigPort } from "@cpm/grpc-kit";
import type { DispatcherMetrics } from "./metrics.ts";
import { SlaveLink, type LinkOptions, type MasterState } from "./slave-link.ts";
import { SnapshotCache } from "./snapshots.ts";
import { CommitTraces } from "./push-trace.ts";

/** Links started per turn of the event loop when every slave is sent a new state (see eachLink). */
export const PUSH_BATCH = 32;

/**
 * How much of a snapshot each link hands its connection at a time, on a master with `links`
 * slaves. Up to PUSH_BATCH slaves, all of it: a push reaches every link in one turn of the event
 * loop, and pieces would each wait for a turn of their own, behind the master's own render of
 * the same change (one 1,000-host slave served a change about 10 ms later with 16 KiB pieces,
 * measured); what one whole write leaves in a TLS connection's buffers (about 64 KB) is then at
 * most 2 MB. Beyond, 16 KiB at a time: memory per link is what counts (a thousand slaves).
 */
export function writePieceBytes(links: number): number {
  return links > PUSH_BATCH ? 16 * 1024 : Infinity;
}

/** Master side of instance sync: follows config-service and drives one link per slave. */
export class Dispatcher {
  private state: MasterState = { version: 0, contentSha256: "" };
  private instanceId = "";
  private readonly commits = new CommitTraces();
  readonly links: SlaveLink[];
  private interval: NodeJS.Timeout | undefined;
  private readonly stopWatching = new AbortController();
  private readonly snapshots: SnapshotCache;
  private readonly issuedVersions = new IssuedVersions();

  constructor(
    private readonly config: ConfigPort,
    slaves: readonly SlaveTarget[],
    opts: LinkOptions,
    private readonly intervalSeconds: number,
    private readonly log: Logger,
    private readonly metrics?: DispatcherMetrics,
  ) {
    this.snapshots = new SnapshotCache(config, (s) =>
      this.issuedVersions.observe({ version: s.version, certificates: s.certificates() }),
    );
    const linkOpts: LinkOptions = { ...opts, pieceBytes: writePieceBytes(slaves.length) };
    this.links = slaves.map(
      (t) =>
        new SlaveLink(t, () => this.state, this.snapshots, linkOpts, log.child({ slave: t.name }), metrics?.link(t)),
    );
    metrics?.observe(() => this.links.map((l) => ({ target: l.target, status: l.status() })));
  }

  start(): void {
    void this.config.watch(
      (c) => {
        this.commits.record(c.version, c.traceContext);
        if (c.snapshotFrame) this.snapshots.put(`${c.version}:${c.contentSha256}`, c.snapshotFrame);
        this.state = { version: c.version, contentSha256: c.contentSha256, commits: this.commits };
        this.metrics?.committed(c.version, c.committedAt);
        this.eachLink((l) => l.notify());
      },
      this.log,
      this.stopWatching.signal,
      // The notice brings the snapshot: the links push without a GetSnapshot round trip.
      { withSnapshot: true },
    );
    void this.loadInstanceId();
    for (const l of this.links) void l.run();
    if (this.intervalSeconds > 0) {
      this.interval = setInterval(() => this.triggerFullSync(), this.intervalSeconds * 1000);
    }
  }

  /** The master's instance id, for status; config-service may still be starting, so retry. */
  private async loadInstanceId(): Promise<void> {
    for (let attempt = 0; !this.stopWatching.signal.aborted && !this.instanceId; attempt++) {
      try {
        this.instanceId = (await this.config.instanceInfo()).instanceId;
      } catch {
        await sleep(backoffDelay(attempt), this.stopWatching.signal);
      }
    }
  }

  /** Push the current snapshot to every slave (or the named one) now. */
  triggerFullSync(slaveName = ""): number {
    const targets = slaveName ? this.links.filter((l) => l.target.name === slaveName) : this.links;
    if (slaveName && targets.length === 0)
      throw new ValidationError("slave_name", `no slave named "${slaveName}" in INSTANCE_SLAVES`);
    if (slaveName) for (const l of targets) l.forceSync();
    else this.eachLink((l) => l.forceSync());
    return this.state.version;
  }

  /**
   * Every slave's link, and every master-issued certificate of the current snapshot with
   * whether each slave serves its current material (the snapshot comes from the cache the
   * links share; without one, e.g. config-service down, the certificates are left out).
   */
  async status(): Promise<GetSyncStatusResponse> {
    const slaves = this.links.map((l) => l.status());
    let certificates: CertificateSyncStatus[] = [];
    if (this.state.version > 0) {
      try {
        const snapshot = await this.snapshots.get(`${this.state.version}:${this.state.contentSha256}`);
        certificates = certificateSyncStatus({ certificates: snapshot.certificates() }, this.issuedVersions, slaves);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, "sync status: no snapshot for the certificates");
      }
    }
    return { masterInstanceId: this.instanceId, masterVersion: this.state.version, slaves, certificates };
  }

  /**
   * Calls `f` for every link, PUSH_BATCH links per turn of the event loop. A push frames and
   * encrypts the whole snapshot for its slave at once: a thousand links in one turn held the
   * node's event loop for over a second, while its API waited and its links' keepalive pings
   * went unanswered. Between batches the API, the ACKs and the pings are served, and the
   * buffers a push holds at once are bounded by the batch, not by the number of slaves.
   */
  private eachLink(f: (link: SlaveLink) => void): void {
    const links = this.links;
    let i = 0;
    const batch = () => {
      if (this.stopWatching.signal.aborted) return;
      for (const end = Math.min(i + PUSH_BATCH, links.length); i < end; i++) f(links[i]!);
      if (i < links.length) setImmediate(batch);
    };
    batch();
  }

  stop(): void {
    clearInterval(this.interval);
    this.stopWatching.abort();
    for (const l of this.links) l.stop();
  }
}
