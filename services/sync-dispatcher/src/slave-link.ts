import { Compatibility, CompatibilityIssueCode, NackCode, type SlaveStatus, type SyncResponse } from "@cpm/proto";
import { backoffDelay, type CompatibilityIssue, type Logger, type PeerInfo, type SlaveTarget } from "@cpm/core";
import { handshakeMetadata, peerFromMetadata, withBearer } from "@cpm/grpc-kit";
import { status, type Metadata } from "@grpc/grpc-js";
import { endPush, startPush, type CommitTraces, type PushSpan } from "./push-trace.ts";
import { NO_LINK_METRICS, type LinkMetrics } from "./metrics.ts";
import { decideSend, type StateKey } from "./send-decision.ts";
import { isConnectionRefused, nextReconnect, type StreamOutcome } from "./reconnect.ts";
import { withTraceContext, type SnapshotCache } from "./snapshots.ts";
import { SlaveConnection, type StreamError, type SyncStream } from "./sync-stream.ts";
import { describeStreamError, seconds, type LinkKeepalive } from "./link-loss.ts";

/**
 * Resending a state the slave NACKed as retryable (one of its services down, starting or
 * busy): first after a fifth of a second, then at most a second apart, so a slave whose
 * service is back converges within a second; a refused push costs the slave next to nothing.
 */
const RETRY_BASE_MS = 200;
const RETRY_MAX_MS = 1_000;

export interface MasterState {
  version: number;
  contentSha256: string;
  /** Trace contexts of recent commits: the push's parent and the versions it coalesces. */
  commits?: CommitTraces;
}

export interface LinkOptions {
  caFile: string | undefined;
  maxMessageBytes: number;
  ackTimeoutMs: number;
  /**
   * How long an attempt may take to open its stream (CPM_SYNC_CONNECT_TIMEOUT_MS). grpc-js has
   * no connect timeout: without this, a link whose packets were dropped is used again only at
   * the kernel's next SYN retry (up to about a minute after the network healed).
   */
  connectTimeoutMs: number;
  /** HTTP/2 pings on the link (CPM_SYNC_KEEPALIVE_TIME_MS / _TIMEOUT_MS): how soon a silent link is dropped. */
  keepalive: LinkKeepalive;
  /** How much of a snapshot is handed to the connection at a time (writePieceBytes); all of it when unset. */
  pieceBytes?: number;
}

/**
 * One slave: a long-lived bidirectional stream, at most one snapshot in flight, newest
 * state wins. While the slave refuses connections it is tried again every REFUSED_RETRY_MS;
 * after any other failure, with jittered backoff bounded at a second (reconnect.ts); either
 * way as soon as the channel is ready again. Pushes the current snapshot as soon as the
 * stream is up. What to send is decided by `decideSend`: a state the slave NACKed as not
 * retryable is not resent until the configuration changes or a push is forced; a retryable
 * one is resent after a jittered backoff that grows until the next ACK.
 */
export class SlaveLink {
  /** The HTTP/2 connection the link's stream runs on (see SlaveConnection). */
  private readonly connection: SlaveConnection;
  private stream: SyncStream | undefined;
  private connected = false;
  private inFlight: { version: number; contentSha256: string; timer: NodeJS.Timeout; span: PushSpan } | undefined;
  private acked: (StateKey & { configSha256: string; at: Date }) | undefined;
  /** A state the slave refused for good (not retryable): not resent until it changes or a push is forced. */
  private refused: StateKey | undefined;
  /** A state the slave NACKed as retryable, and when it may be sent again. */
  private retry: (StateKey & { notBefore: number }) | undefined;
  /** Retryable NACKs since the last ACK: the backoff exponent. */
  private retryAttempt = 0;
  private lastNackedVersion = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** A state too large to send (here or at the slave): not retried, even on reconnect, until it changes. */
  private tooLarge: StateKey | undefined;
  private force = false;
  private lastError: { message: string; at: Date } | undefined;
  /**
   * Failures since the last ACK, as the status shows them: a NACK, a broken stream, a snapshot
   * that cannot be sent, and an outage, counted once however many attempts to connect it took.
   * A slave that restarts is refused every REFUSED_RETRY_MS, and a cut link times out every
   * CPM_SYNC_CONNECT_TIMEOUT_MS: counting each attempt would say more about the retry interval
   * than about the slave (22 "failures" for a restart and 6 NACKs).
   */
  private consecutiveFailures = 0;
  /** The link is down: failed attempts to connect are not counted again until a stream opens. */
  private outage = false;
  private snapshotsSent = 0;
  /** What the slave announced when its stream last opened (undefined: not yet since start). */
  private peer: PeerInfo | undefined;
  /** The schema of the last snapshot planned for the slave. */
  private schema = 0;
  /** A state the slave cannot serve (see planSend): not sent until it changes or the slave reconnects. */
  private incompatible: (StateKey & { issues: CompatibilityIssue[] }) | undefined;
  private stopped = new AbortController();

  constructor(
    readonly target: SlaveTarget,
    private readonly master: () => MasterState,
    private readonly snapshots: SnapshotCache,
    private readonly opts: LinkOptions,
    private readonly log: Logger,
    private readonly metrics: LinkMetrics = NO_LINK_METRICS,
  ) {
    this.connection = new SlaveConnection(
      {
        address: target.address,
        host: new URL(target.url).hostname.replace(/^\[(.*)\]$/, "$1"),
        tls: target.tls ? { caFile: opts.caFile } : undefined,
      },
      { maxMessageBytes: opts.maxMessageBytes, keepalive: opts.keepalive, pieceBytes: opts.pieceBytes ?? Infinity },
    );
  }

  /**
   * Runs the connect/reconnect loop until `stop`. Every attempt after a stream ended starts on
   * a fresh connection (a fresh socket, a fresh SYN): what ended the last one (a restart, a cut
   * link, a deadline) leaves nothing worth keeping.
   */
  async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped.signal.aborted) {
      const outcome = await this.connectOnce();
      this.connection.close();
      if (this.stopped.signal.aborted) break;
      const next = nextReconnect(outcome, failures);
      failures = next.failures;
      this.log.debug({ delay: next.delayMs, outcome }, "reconnecting");
      await this.sleep(next.delayMs);
    }
  }

  /** Waits `ms`, or less when the link is stopped. */
  private sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        // Removed whatever happened: the signal lives as long as the link, a wait does not.
        this.stopped.signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.stopped.signal.addEventListener("abort", done, { once: true });
    });
  }

  /** One stream's life. Resolves when it ends, with how it went. */
  private connectOnce(): Promise<StreamOutcome> {
    return new Promise((resolve) => {
      let answered = false;
      let timedOut = false;
      const stream = this.connection.open(handshakeMetadata(undefined, withBearer(this.target.token)));
      this.stream = stream;
      // Both end with the attempt (`finish`): the signal lives as long as the link.
      const onStop = () => stream.cancel();
      this.stopped.signal.addEventListener("abort", onStop, { once: true });
      const connectTimer = setTimeout(() => {
        timedOut = true;
        stream.cancel();
      }, this.opts.connectTimeoutMs);
      stream.on("metadata", (headers: Metadata) => {
        clearTimeout(connectTimer);
        this.connected = true;
        this.outage = false;
        // The slave's handshake: what it reads and serves decides what it is sent (a slave
        // upgraded or rolled back in place announces anew; what it could not serve is tried again).
        this.peer = peerFromMetadata(headers);
        this.incompatible = undefined;
        this.log.info(
          { release: this.peer.release, schemas: this.peer.schemas, capabilities: this.peer.capabilities },
          "connected",
        );
        // A slave that was away converges now, not at the next interval.
        this.force = true;
        void this.pump();
      });
      stream.on("data", (res: SyncResponse) => {
        answered = true;
        this.onResponse(res);
      });
      const finish = (err?: StreamError) => {
        if (this.stream !== stream) return;
        this.stream = undefined;
        clearTimeout(connectTimer);
        this.stopped.signal.removeEventListener("abort", onStop);
        const wasConnected = this.connected;
        this.connected = false;
        const sent = this.inFlight;
        if (sent) clearTimeout(sent.timer);
        if (sent)
          endPush(sent.span, { error: err ?? Object.assign(new Error("stream closed"), { name: "StreamClosed" }) });
        this.inFlight = undefined;
        if (sent && err?.code === status.RESOURCE_EXHAUSTED) {
          // The slave's limit is below this snapshot.
          this.tooLarge = { version: sent.version, contentSha256: sent.contentSha256 };
          this.refused = this.tooLarge;
          this.lastNackedVersion = sent.version;
        }
        if (!this.stopped.signal.aborted) {
          const message = timedOut
            ? `no answer from the slave within ${seconds(this.opts.connectTimeoutMs)}; connecting again`
            : err
              ? describeStreamError(err, this.opts.keepalive)
              : "stream closed by the slave";
          // A lost stream counts and starts an outage; failed attempts to connect count once per outage.
          this.fail(message, { count: wasConnected || !this.outage });
          this.outage = true;
          if (wasConnected) this.log.warn({ reason: message }, "disconnected");
          else if (timedOut) this.log.warn({ reason: message }, "cannot connect");
          else this.log.debug({ reason: message }, "cannot connect");
        }
        resolve(
          answered
            ? "answered"
            : timedOut
              ? "timeout"
              : !wasConnected && isConnectionRefused(err)
                ? "refused"
                : "failed",
        );
      };
      stream.on("error", (err) => finish(err));
      stream.on("end", () => finish());
    });
  }

  private onResponse(res: SyncResponse): void {
    const version = res.ack?.version ?? res.nack?.version;
    const sent = this.inFlight;
    if (!sent || sent.version !== version) {
      // Not the answer to what is in flight (one snapshot at a time): nothing to correlate.
      this.log.warn({ version, inFlight: sent?.version }, "answer for a snapshot that is not in flight; ignored");
      return;
    }
    clearTimeout(sent.timer);
    endPush(sent.span, { response: res });
    this.inFlight = undefined;
    const key: StateKey = { version: sent.version, contentSha256: sent.contentSha256 };
    if (res.ack?.contentSha256 && res.ack.contentSha256 !== sent.contentSha256) {
      // Not what was sent: never counted as this version applied. Sent again after a backoff.
      this.fail(
        `ACK v${res.ack.version} names content ${res.ack.contentSha256.slice(0, 12)}, but the snapshot sent had ${sent.contentSha256.slice(0, 12)}`,
      );
      const delay = backoffDelay(this.retryAttempt++, RETRY_BASE_MS, RETRY_MAX_MS);
      this.retry = { ...key, notBefore: Date.now() + delay };
      this.log.error({ version: res.ack.version, retryInMs: delay }, "ACK for other content than was sent; resending");
    } else if (res.ack) {
      this.acked = { ...key, configSha256: res.ack.configSha256, at: new Date() };
      this.refused = undefined;
      this.retry = undefined;
      this.retryAttempt = 0;
      clearTimeout(this.retryTimer);
      this.lastError = undefined;
      this.consecutiveFailures = 0;
      this.log.info({ version: res.ack.version, configSha256: res.ack.configSha256 }, "ACK");
      this.metrics.acked(res.ack.version);
    } else if (res.nack) {
      const { nack } = res;
      this.lastNackedVersion = nack.version;
      this.metrics.nacked(nack.code);
      this.fail(
        `NACK v${nack.version} (${NackCode[nack.code] ?? nack.code}${nack.retryable ? ", retryable" : ""}): ${nack.reason}`,
      );
      if (nack.retryable) {
        const delay = backoffDelay(this.retryAttempt++, RETRY_BASE_MS, RETRY_MAX_MS);
        this.retry = { ...key, notBefore: Date.now() + delay };
        this.log.warn(
          { version: nack.version, appliedVersion: nack.appliedVersion, reason: nack.reason, retryInMs: delay },
          "NACK (retryable); resending after backoff",
        );
      } else {
        this.refused = key;
        this.log.warn(
          { version: nack.version, appliedVersion: nack.appliedVersion, reason: nack.reason },
          "NACK; the slave keeps its last good configuration",
        );
      }
    }
    void this.pump();
  }

  private fail(message: string, { count = true } = {}): void {
    this.lastError = { message, at: new Date() };
    if (count) this.consecutiveFailures++;
  }

  /** The configuration changed: push if nothing is in flight (else the ACK triggers it). */
  notify(): void {
    void this.pump();
  }

  /** Push the current snapshot even if the slave acked it (periodic or on request). */
  forceSync(): void {
    this.force = true;
    void this.pump();
  }

  private pumping = false;

  /** Sends the newest snapshot when the link is idle and the slave needs it. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    const want = this.master();
    const decision = decideSend({
      connected: this.connected && this.stream !== undefined,
      inFlight: this.inFlight !== undefined,
      want,
      acked: this.acked,
      refused: this.refused,
      tooLarge: this.tooLarge,
      incompatible: this.incompatible,
      retry: this.retry,
      force: this.force,
      now: Date.now(),
    });
    if (!decision.send) {
      if (decision.reason === "backoff") {
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => void this.pump(), decision.retryInMs);
      }
      return;
    }
    this.pumping = true;
    try {
      const snapshot = await this.snapshots.get(`${want.version}:${want.contentSha256}`);
      if (!this.connected || !this.stream || this.inFlight || !this.peer) return;
      const plan = snapshot.planFor(this.peer);
      this.schema = plan.schema;
      this.force = false;
      if (!plan.ok) {
        // Sending it would serve something else there: the slave keeps its last good configuration.
        this.incompatible = { version: snapshot.version, contentSha256: snapshot.contentSha256, issues: plan.issues };
        this.fail(`INCOMPATIBLE at v${snapshot.version}: ${plan.issues.map((i) => i.message).join("; ")}`);
        this.log.warn(
          { version: snapshot.version, release: this.peer.release, issues: plan.issues.map((i) => i.message) },
          "the slave cannot serve this configuration; not sent, it keeps its last good one",
        );
        return;
      }
      this.incompatible = undefined;
      const frame = plan.frame;
      const bytes = frame.length;
      if (bytes > this.opts.maxMessageBytes) {
        this.tooLarge = { version: snapshot.version, contentSha256: snapshot.contentSha256 };
        this.refused = this.tooLarge;
        this.lastNackedVersion = snapshot.version;
        this.fail(
          `snapshot v${snapshot.version} is ${bytes} bytes, over the limit of ${this.opts.maxMessageBytes} (CPM_SYNC_MAX_MESSAGE_BYTES)`,
        );
        this.log.error({ version: snapshot.version, bytes }, "snapshot too large to send");
        return;
      }
      const stream = this.stream;
      const timer = setTimeout(() => {
        this.log.warn({ version: snapshot.version }, "no ACK/NACK in time; reconnecting");
        stream.cancel();
      }, this.opts.ackTimeoutMs);
      // The push belongs to the trace of the commit that produced the version it carries (the
      // newest one when several versions were coalesced into this push).
      const span = startPush(snapshot, this.master().commits, this.target, this.acked?.version ?? 0);
      this.inFlight = { version: snapshot.version, contentSha256: snapshot.contentSha256, timer, span };
      this.snapshotsSent++;
      stream.write(withTraceContext(frame, span.carrier));
      this.metrics.pushed(bytes);
      this.log.debug({ version: snapshot.version, bytes }, "snapshot sent");
    } catch (err) {
      this.fail(`cannot read the snapshot from config-service: ${(err as Error).message}`);
      setTimeout(() => void this.pump(), 1000);
    } finally {
      this.pumping = false;
      // Something may have changed while the snapshot was being fetched (every exit path).
      const now = this.master();
      if (!this.inFlight && (now.version !== want.version || now.contentSha256 !== want.contentSha256 || this.force))
        void this.pump();
    }
  }

  status(): SlaveStatus {
    const m = this.master();
    return {
      name: this.target.name,
      url: this.target.url,
      connected: this.connected,
      masterVersion: m.version,
      ackedVersion: this.acked?.version ?? 0,
      configSha256: this.acked?.configSha256 ?? "",
      lastSyncTime: this.acked?.at,
      lastError: this.lastError?.message ?? "",
      lastErrorTime: this.lastError?.at,
      consecutiveFailures: this.consecutiveFailures,
      lag: Math.max(0, m.version - (this.acked?.version ?? 0)),
      inFlightVersion: this.inFlight?.version ?? 0,
      lastNackedVersion: this.lastNackedVersion,
      snapshotsSent: this.snapshotsSent,
      release: this.peer?.release ?? "",
      snapshotSchemas: this.peer?.schemas ?? [],
      capabilities: this.peer?.capabilities ?? [],
      schemaVersion: this.schema,
      compatibility: !this.peer
        ? Compatibility.COMPATIBILITY_UNSPECIFIED
        : this.incompatible
          ? Compatibility.COMPATIBILITY_INCOMPATIBLE
          : Compatibility.COMPATIBILITY_OK,
      compatibilityIssues: (this.incompatible?.issues ?? []).map((i) => ({
        code: CompatibilityIssueCode[`COMPATIBILITY_ISSUE_CODE_${i.code}`],
        capability: i.capability,
        resources: i.resources,
        message: i.message,
      })),
    };
  }

  stop(): void {
    clearTimeout(this.retryTimer);
    this.stopped.abort();
    this.connection.close();
  }
}
