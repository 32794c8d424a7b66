import {
  ApplySnapshotResponse,
  CaddyRendererClient,
  CaddyRendererService,
  ConfigServiceClient,
  ConfigServiceService,
  LoadSnapshotResponse,
  WatchConfigRequest,
  type RecordCertificateIssuanceRequest,
  type RenderStatus,
  type Snapshot,
} from "@cpm/proto";
import {
  decodeNotice,
  IncomingSnapshot,
  readSnapshotFrame,
  SnapshotDecoder,
  type CommitNotice,
  type SnapshotFrame,
} from "@cpm/snapshot-wire";
import { backoffDelay, sleep, type Logger } from "@cpm/core";
import { status, type Client, type ClientReadableStream } from "@grpc/grpc-js";
import { channelCredentials, clientOptions, unary, withBearer } from "./client.ts";
import { ConnectionLog } from "./connection-log.ts";
import type { ConfigPort, RendererPort, SnapshotPayload } from "./ports.ts";
import { injectTraceContext } from "./tracing.ts";

/** HTTP/2 receive window of the internal ConfigClient: a snapshot of about 10,000 hosts. */
const SNAPSHOT_FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;

const { getSnapshot: GET_SNAPSHOT, watchConfig: WATCH_CONFIG, applySnapshot: APPLY_SNAPSHOT } = ConfigServiceService;
const { loadSnapshot: LOAD_SNAPSHOT } = CaddyRendererService;
const asBuffer = (b: Buffer) => b;

interface SnapshotMethod<Res> {
  path: string;
  requestSerialize: (r: never) => Buffer;
  responseDeserialize: (b: Buffer) => Res;
}

/** One unary call whose request is a SnapshotPayload; bearer, trace context and deadline as `unary`. */
function sendSnapshot<Res>(
  client: Client,
  def: SnapshotMethod<Res>,
  payload: SnapshotPayload,
  token: string | undefined,
  deadlineMs: number,
): Promise<Res> {
  const serialize = def.requestSerialize as (r: unknown) => Buffer;
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      def.path,
      (v: SnapshotPayload) => (v instanceof IncomingSnapshot ? v.frame : Buffer.isBuffer(v) ? v : serialize(v)),
      def.responseDeserialize,
      payload,
      injectTraceContext(withBearer(token)),
      { deadline: Date.now() + deadlineMs },
      (err, res) => (err ? reject(err) : resolve(res!)),
    );
  });
}

/** What another service of this instance needs from config-service's internal listener, with the internal token. */
export class ConfigClient implements ConfigPort {
  readonly raw: ConfigServiceClient;
  private readonly decoder = new SnapshotDecoder();

  constructor(
    private readonly address: string,
    private readonly internalToken: string | undefined,
    maxMessageBytes?: number,
  ) {
    this.raw = new ConfigServiceClient(address, channelCredentials({}), {
      ...clientOptions({ maxMessageBytes }),
      // Snapshots come whole from this machine: a window that holds one lets config-service
      // write it at once instead of waiting for window updates (64 KiB by default).
      "grpc-node.flow_control_window": SNAPSHOT_FLOW_CONTROL_WINDOW,
    });
  }

  /** The current snapshot, decoded with this client's SnapshotDecoder (resources unchanged since the last call are the same objects). */
  async getSnapshot(deadlineMs = 30_000): Promise<Snapshot> {
    return this.decoder.decode((await this.getSnapshotFrame(deadlineMs)).message);
  }

  /** The current snapshot as config-service encoded it (not decoded here: see SnapshotFrame). */
  async getSnapshotFrame(deadlineMs = 30_000): Promise<SnapshotFrame> {
    const frame = await new Promise<Buffer>((resolve, reject) => {
      this.raw.makeUnaryRequest(
        GET_SNAPSHOT.path,
        GET_SNAPSHOT.requestSerialize,
        asBuffer,
        {},
        injectTraceContext(withBearer(this.internalToken)),
        { deadline: Date.now() + deadlineMs },
        (err, res) => (err ? reject(err) : resolve(res!)),
      );
    });
    return readSnapshotFrame(frame, "GetSnapshot response");
  }

  applySnapshot(payload: SnapshotPayload, deadlineMs = 60_000): Promise<ApplySnapshotResponse> {
    return sendSnapshot(this.raw, APPLY_SNAPSHOT, payload, this.internalToken, deadlineMs);
  }

  /** Reports what this instance's Caddy obtained for a master-issued certificate (master or standalone). */
  recordCertificateIssuance(req: RecordCertificateIssuanceRequest, deadlineMs = 30_000) {
    return unary(this.raw.recordCertificateIssuance.bind(this.raw), req, this.internalToken, deadlineMs);
  }

  instanceInfo() {
    return unary(this.raw.getInstanceInfo.bind(this.raw), {}, this.internalToken);
  }

  /**
   * Follows committed versions for as long as `signal` is not aborted, reconnecting with
   * jittered backoff. `onCommit` gets the current version at once on every (re)connect.
   * While config-service still starts, says once that it waits for it (see ConnectionLog).
   * With `withSnapshot`, a notice of the then current version carries its snapshot frame.
   */
  async watch(
    onCommit: (c: CommitNotice) => void,
    log: Logger,
    signal: AbortSignal,
    opts: { withSnapshot?: boolean } = {},
  ): Promise<void> {
    let attempt = 0;
    const said = new ConnectionLog(log, `config-service at ${this.address}`, "config watch interrupted; reconnecting");
    const request = WatchConfigRequest.fromPartial({ includeSnapshot: opts.withSnapshot ?? false });
    while (!signal.aborted) {
      const stream: ClientReadableStream<CommitNotice> = this.raw.makeServerStreamRequest(
        WATCH_CONFIG.path,
        WATCH_CONFIG.requestSerialize,
        decodeNotice,
        request,
        withBearer(this.internalToken),
      );
      const onAbort = () => stream.cancel();
      signal.addEventListener("abort", onAbort, { once: true });
      await new Promise<void>((resolve) => {
        stream.on("data", (m: CommitNotice) => {
          said.connected();
          attempt = 0;
          onCommit(m);
        });
        stream.on("error", (err: Error) => {
          if (!signal.aborted) said.failed(err.message);
          resolve();
        });
        stream.on("end", () => resolve());
      });
      signal.removeEventListener("abort", onAbort);
      // config-service is on this machine: retrying at most a second apart costs nothing, and a
      // restarted config-service is followed again within a second (not after a grown backoff).
      if (!signal.aborted) await sleep(backoffDelay(attempt++, 100, 1_000), signal);
    }
  }

  close(): void {
    this.raw.close();
  }
}

/** What the sync-receiver needs from the renderer of its instance. */
export class RendererClient implements RendererPort {
  readonly raw: CaddyRendererClient;

  constructor(
    address: string,
    private readonly internalToken: string | undefined,
    maxMessageBytes?: number,
  ) {
    this.raw = new CaddyRendererClient(address, channelCredentials({}), clientOptions({ maxMessageBytes }));
  }

  loadSnapshot(payload: SnapshotPayload, deadlineMs = 60_000): Promise<LoadSnapshotResponse> {
    return sendSnapshot(this.raw, LOAD_SNAPSHOT, payload, this.internalToken, deadlineMs);
  }

  /** The preloaded `version` will not be committed: the renderer puts Caddy back on the database's version. */
  async releasePreload(version: number, deadlineMs = 10_000): Promise<void> {
    await unary(this.raw.releasePreload.bind(this.raw), { version }, this.internalToken, deadlineMs);
  }

  async status(): Promise<RenderStatus> {
    const r = await unary(this.raw.getRenderStatus.bind(this.raw), {}, this.internalToken);
    if (!r.status) throw new Error("renderer returned no status");
    return r.status;
  }

  /** Resolves with the first status that satisfies `done`, or rejects after `timeoutMs`. */
  waitFor(done: (s: RenderStatus) => boolean, timeoutMs: number): Promise<RenderStatus> {
    return new Promise((resolve, reject) => {
      const stream = this.raw.watchRenderStatus({}, withBearer(this.internalToken));
      let last: RenderStatus | undefined;
      const timer = setTimeout(() => {
        stream.cancel();
        reject(
          new Error(
            `renderer did not report the expected state within ${timeoutMs} ms${last?.lastError ? ` (last error: ${last.lastError})` : ""}`,
          ),
        );
      }, timeoutMs);
      stream.on("data", (m: { status?: RenderStatus }) => {
        if (!m.status) return;
        last = m.status;
        if (done(m.status)) {
          clearTimeout(timer);
          stream.cancel();
          resolve(m.status);
        }
      });
      stream.on("error", (err: Error & { code?: number }) => {
        if (err.code === status.CANCELLED) return; // our own cancel
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  close(): void {
    this.raw.close();
  }
}
