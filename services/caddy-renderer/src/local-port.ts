import type { RenderStatus } from "@cpm/proto";
import type { Logger } from "@cpm/core";
import { callInProcess, payloadSnapshot, type RendererPort, type SnapshotPayload } from "@cpm/grpc-kit";
import type { Reconciler } from "./reconciler.ts";
import { preload } from "./server.ts";

/**
 * The renderer as the sync-receiver of the same process calls it: the reconciler itself, with
 * errors carrying the gRPC codes LoadSnapshot would answer with. The receiver's snapshot is
 * the object it decoded and validated: nothing is encoded or decoded on the way.
 */
export class LocalRendererPort implements RendererPort {
  constructor(
    private readonly reconciler: Reconciler,
    private readonly log: Logger,
  ) {}

  loadSnapshot(payload: SnapshotPayload) {
    return callInProcess(this.log, () => preload(this.reconciler, payloadSnapshot(payload), this.log));
  }

  releasePreload(version: number): Promise<void> {
    if (this.reconciler.releasePreload(version)) this.log.info({ version }, "preload released");
    return Promise.resolve();
  }

  status(): Promise<RenderStatus> {
    return Promise.resolve(this.reconciler.status());
  }

  waitFor(done: (s: RenderStatus) => boolean, timeoutMs: number): Promise<RenderStatus> {
    return new Promise((resolve, reject) => {
      let last: RenderStatus | undefined;
      const finish = (s: RenderStatus) => {
        clearTimeout(timer);
        off();
        resolve(s);
      };
      const timer = setTimeout(() => {
        off();
        reject(
          new Error(
            `renderer did not report the expected state within ${timeoutMs} ms${last?.lastError ? ` (last error: ${last.lastError})` : ""}`,
          ),
        );
      }, timeoutMs);
      const off = this.reconciler.onStatus((s) => {
        last = s;
        if (done(s)) finish(s);
      });
      const now = this.reconciler.status();
      last = now;
      if (done(now)) finish(now);
    });
  }

  close(): void {}
}
