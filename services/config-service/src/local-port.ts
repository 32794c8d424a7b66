import type { ConfigServiceServer } from "@cpm/proto";
import { sleep, type Logger } from "@cpm/core";
import {
  callInProcess,
  inProcessContext,
  payloadSnapshot,
  type AsyncService,
  type ConfigPort,
  type SnapshotPayload,
} from "@cpm/grpc-kit";
import type { CommitNotice } from "@cpm/snapshot-wire";
import type { SnapshotFeed } from "./snapshots.ts";

/**
 * config-service as the other services of the same process call it: the very handlers its
 * listeners serve (the same checks, errors with the same gRPC codes), with no encoding, no
 * socket and no token in between. The snapshot is the store's own object; a notice's frame is
 * the one encoded for the slaves.
 */
export class LocalConfigPort implements ConfigPort {
  constructor(
    private readonly handlers: Required<AsyncService<ConfigServiceServer>>,
    private readonly feed: SnapshotFeed,
    private readonly log: Logger,
  ) {}

  getSnapshot() {
    return callInProcess(this.log, () => this.feed.snapshot());
  }

  getSnapshotFrame() {
    return callInProcess(this.log, async () => (await this.feed.snapshotFrame()).encoded);
  }

  applySnapshot(payload: SnapshotPayload) {
    return callInProcess(this.log, () =>
      this.handlers.applySnapshot({ snapshot: payloadSnapshot(payload) }, inProcessContext(this.log)),
    );
  }

  recordCertificateIssuance(req: Parameters<ConfigPort["recordCertificateIssuance"]>[0]) {
    return callInProcess(this.log, () => this.handlers.recordCertificateIssuance(req, inProcessContext(this.log)));
  }

  instanceInfo() {
    return callInProcess(this.log, () => this.handlers.getInstanceInfo({}, inProcessContext(this.log)));
  }

  async watch(
    onCommit: (c: CommitNotice) => void,
    log: Logger,
    signal: AbortSignal,
    opts: { withSnapshot?: boolean } = {},
  ): Promise<void> {
    while (!signal.aborted) {
      try {
        // The dispatcher (withSnapshot) hears of a commit first, without its frame: a link that
        // writes a version asks getSnapshotFrame, so a commit no link sends is never encoded.
        await this.feed.watch(opts.withSnapshot ? "pushes" : "follows", signal, (n) =>
          onCommit({
            version: n.version,
            contentSha256: n.contentSha256,
            committedAt: n.committedAt,
            traceContext: n.traceContext,
          }),
        );
      } catch (err) {
        log.warn({ err: (err as Error).message }, "config watch interrupted; following again in 1 s");
        await sleep(1_000, signal);
      }
    }
  }

  close(): void {}
}
