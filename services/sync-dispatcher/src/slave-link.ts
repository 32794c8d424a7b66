import {
  Compatibility,
  CompatibilityIssueCode,
  NackCode,
  SyncReceiverService,
  SyncRequest,
  type SlaveStatus,
  type SyncResponse,
} from "@cpm/proto";
import { backoffDelay, type CompatibilityIssue, type Logger, type PeerInfo, type SlaveTarget } from "@cpm/core";
import { clientOptions, handshakeMetadata, peerFromMetadata, withBearer } from "@cpm/grpc-kit";
import {
  connectivityState,
  makeGenericClientConstructor,
  type Client,
  type ClientDuplexStream,
  type Metadata,
  status,
} from "@grpc/grpc-js";
import { endPush, startPush, type CommitTraces, type PushSpan } from "./push-trace.ts";
import { NO_LINK_METRICS, type LinkMetrics } from "./metrics.ts";
import { decideSend, type StateKey } from "./send-decision.ts";
import { isConnectionRefused, nextReconnect, REFUSED_RETRY_MS, type StreamOutcome } from "./reconnect.ts";
import { withTraceContext, type SnapshotCache } from "./snapshots.ts";
import { SlaveCredentials } from "./slave-credentials.ts";
import { describeStreamError, seconds, type LinkKeepalive } from "./link-loss.ts";

/**
 * The SyncReceiver client the links use: a request that is already a Buffer (a snapshot
 * encoded once per version, see SnapshotCache) is written as is, so every slave gets the
 * same bytes without encoding them again.
 */
const SyncLinkClient = makeGenericClientConstructor(
  {
    sync: {
      ...SyncReceiverService.sync,
      requestSerialize: (value: SyncRequest | Buffer): Buffer =>
        Buffer.isBuffer(value) ? value : Buffer.from(SyncRequest.encode(value).finish()),
    },
  },
  "cpm.sync.v1.SyncReceiver",
) as unknown as new (...args: ConstructorParameters<typeof Client>) => Client & {
  sync(metadata: Metadata): ClientDuplexStream<SyncRequest | Buffer, SyncResponse>;
};

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
  private client: InstanceType<typeof SyncLinkClient>;
  /** The current channel's credentials, which hold its connections (see SlaveCredentials). */
  private credentials!: SlaveCredentials;
  private stream: ClientDuplexStream<SyncRequest | Buffer, SyncResponse> | undefined;
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
    this.client = this.newClient();
  }

  /**
   * A channel that reconnects by itself every REFUSED_RETRY_MS while it cannot connect (the
   * link's own loop decides how long to wait for it; see `run`).
   */
  private newClient(): InstanceType<typeof SyncLinkClient> {
    const host = new URL(this.target.url).hostname.replace(/^\[(.*)\]$/, "$1");
    this.credentials = new SlaveCredentials(host, this.target.tls ? { caFile: this.opts.caFile } : undefined);
    return new SyncLinkClient(this.target.address, this.credentials, {
      ...clientOptions({ maxMessageBytes: this.opts.maxMessageBytes }),
      "grpc.initial_reconnect_backoff_ms": REFUSED_RETRY_MS,
      "grpc.max_reconnect_backoff_ms": REFUSED_RETRY_MS,
      // A channel of its own, never one shared with an earlier client of the same slave: an
      // attempt abandoned for its deadline takes its socket with it (see `run`).
      "grpc.use_local_subchannel_pool": 1,
      // No channelz: its trace of every channel, subchannel and socket event is kept per link
      // (about a hundred objects each), and nothing here reads it.
      "grpc.enable_channelz": 0,
      "grpc.keepalive_time_ms": this.opts.keepalive.timeMs,
      "grpc.keepalive_timeout_ms": this.opts.keepalive.timeoutMs,
      "grpc.keepalive_permit_without_calls": 1,
    });
  }

  /** Runs the connect/reconnect loop until `stop`. */
  async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped.signal.aborted) {
      const outcome = await this.connectOnce();
      if (this.stopped.signal.aborted) break;
      const next = nextReconnect(outcome, failures);
      failures = next.failures;
      if (
        outcome === "timeout" ||
        (outcome === "failed" && this.client.getChannel().getConnectivityState(false) !== connectivityState.READY)
      ) {
        // Cannot connect for another reason than a refusal (a TLS handshake, say): the channel
        // would try again every REFUSED_RETRY_MS by itself; a fresh one waits for the backoff.
        // An attempt that got no answer within its deadline leaves its socket with its channel:
        // the next one starts on a fresh socket (a fresh SYN), not on the kernel's retry.
        this.credentials.destroyConnections();
        this.client.close();
        this.client = this.newClient();
      }
      this.log.debug({ delay: next.delayMs, outcome }, "reconnecting");
      await this.channelReadyOr(next.delayMs);
    }
  }

  /** Waits `ms`, or less when the channel reconnects by itself before. */
  private async channelReadyOr(ms: number): Promise<void> {
    const channel = this.client.getChannel();
    const deadline = Date.now() + ms;
    while (!this.stopped.signal.aborted && Date.now() < deadline) {
      const state = channel.getConnectivityState(false);
      if (state === connectivityState.READY) return;
      const changed = await new Promise<boolean>((resolve) => {
        const onAbort = () => resolve(false);
        this.stopped.signal.addEventListener("abort", onAbort, { once: true });
        channel.watchConnectivityState(state, deadline, (err) => {
          // Removed whatever happened: the signal lives as long as the link, a wait does not.
          this.stopped.signal.removeEventListener("abort", onAbort);
          resolve(!err);
        });
      });
      if (!changed) return;
    }
  }

  /** One stream's life. Resolves when it ends, with how it went. */
  private connectOnce(): Promise<StreamOutcome> {
    return new Promise((resolve) => {
      let answered = false;
      let timedOut = false;
      const stream = this.client.sync(handshakeMetadata(undefined, withBearer(this.target.token)));
      this.stream = stream;
      // Both end with the attempt (`finish`): the signal lives as long as the link.
      const onStop = () => stream.cancel();
      this.stopped.signal.addEventListener("abort", onStop, { once: true });
      const connectTimer = setTimeout(() => {
        timedOut = true;
        stream.cancel();
      }, this.opts.connectTimeoutMs);
      // Watches the link's sockets while the stream lives: a dropped connection is named a
      // keepalive timeout only when a ping went unanswered (see describeStreamError).
      const watch = this.credentials.watchSilence(Math.min(1_000, Math.max(25, this.opts.keepalive.timeoutMs / 4)));
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
      const finish = (err?: Error & { code?: number; details?: string }) => {
        if (this.stream !== stream) return;
        this.stream = undefined;
        clearTimeout(connectTimer);
        const silence = watch.stop();
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
              ? describeStreamError(err, silence, this.opts.keepalive)
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
      stream.on("error", (err: Error) => finish(err as Error & { code?: number }));
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
    this.client.close();
    this.credentials.destroyConnections();
  }
}
