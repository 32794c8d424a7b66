import type { SyncResponse } from "@cpm/proto";
import type { Logger } from "@cpm/core";
import { activeContext, runInContext, type Context } from "@cpm/grpc-kit";
import { StreamClosedError, type ReceivedSnapshot, type SnapshotApplier } from "./receiver.ts";

/**
 * One master's stream on the slave. Holds at most the snapshot being applied and the newest
 * pending one: a pending snapshot replaced by a newer one is answered at once with a
 * SUPERSEDED NACK and never applied. Once the stream ends (`close`), its pending snapshot is
 * dropped unapplied and nothing more is sent.
 */
export class SyncSession {
  /** `trace`: the push's trace context, active while this snapshot is applied. */
  private pending: { snapshot: ReceivedSnapshot; trace: Context } | undefined;
  private applying = false;
  private readonly closed = new AbortController();

  constructor(
    private readonly applier: Pick<SnapshotApplier, "apply" | "superseded">,
    private readonly send: (res: SyncResponse) => void,
    private readonly log: Logger,
  ) {}

  /** A snapshot arrived on the stream; `trace` is its push's trace context (the active one by default). */
  receive(snapshot: ReceivedSnapshot, trace: Context = activeContext()): void {
    if (this.closed.signal.aborted) return;
    if (this.pending) this.reply(this.applier.superseded(this.pending.snapshot, snapshot));
    this.pending = { snapshot, trace };
    if (!this.applying) void this.drain();
  }

  /** The stream ended or was cancelled. */
  close(): void {
    this.closed.abort();
    if (this.pending)
      this.log.info({ version: this.pending.snapshot?.version ?? 0 }, "stream ended; pending snapshot dropped");
    this.pending = undefined;
  }

  private reply(res: SyncResponse): void {
    if (!this.closed.signal.aborted) this.send(res);
  }

  private async drain(): Promise<void> {
    this.applying = true;
    try {
      while (this.pending && !this.closed.signal.aborted) {
        const { snapshot, trace } = this.pending;
        this.pending = undefined;
        try {
          this.reply(await runInContext(trace, () => this.applier.apply(snapshot, this.closed.signal)));
        } catch (err) {
          if (!(err instanceof StreamClosedError)) this.log.error({ err }, "snapshot apply failed unexpectedly");
        }
      }
    } finally {
      this.applying = false;
    }
  }
}
