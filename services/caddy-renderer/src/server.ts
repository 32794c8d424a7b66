import { CaddyRendererService, type CaddyRendererServer, type RenderStatus, type Snapshot } from "@cpm/proto";
import { DEFAULT_SYNC_MAX_MESSAGE_BYTES, ValidationError, validateSnapshot, type Logger } from "@cpm/core";
import { definePolicy, GrpcServer, snapshotReceiveLimit, type AsyncService, type Authenticate } from "@cpm/grpc-kit";
import { decodingSnapshotsWith, SnapshotDecoder } from "@cpm/snapshot-wire";
import { versionAttributes, withSpan } from "@cpm/grpc-kit";
import type { Reconciler } from "./reconciler.ts";
import { render, type RenderOptions } from "./render/index.ts";

export interface RendererDeps {
  reconciler: Reconciler;
  renderOptions: RenderOptions;
  authenticate: Authenticate;
  log: Logger;
  /** Largest snapshot sync carries (CPM_SYNC_MAX_MESSAGE_BYTES); bounds what this listener reads. */
  syncMaxMessageBytes?: number;
}

/** Who may call each CaddyRenderer method: LoadSnapshot is the sync-receiver's; status is for both. */
export const RENDERER_POLICY = definePolicy("cpm.render.v1.CaddyRenderer", {
  Render: ["viewer"],
  LoadSnapshot: ["internal"],
  ReleasePreload: ["internal"],
  GetRenderStatus: ["viewer", "internal"],
  WatchRenderStatus: ["viewer", "internal"],
});

/** A slave's preload of a snapshot not committed yet (LoadSnapshot), traced and logged. */
export async function preload(reconciler: Reconciler, snapshot: Snapshot, log: Logger) {
  const r = await withSpan(
    "renderer.preload",
    { attributes: versionAttributes(snapshot.version, snapshot.contentSha256) },
    async (span) => {
      const loaded = await reconciler.preflight(snapshot);
      span.setAttribute("cpm.config.config_sha256", loaded.configSha256.slice(0, 12));
      return loaded;
    },
  );
  log.info({ version: snapshot.version }, "snapshot preloaded into Caddy");
  return r;
}

/** The CaddyRenderer gRPC API. Does not listen. */
export function createServer(deps: RendererDeps): GrpcServer {
  const { reconciler } = deps;
  // A preload decodes only the resources whose bytes changed since the previous one: the others
  // are the objects the render already knows.
  const service = {
    ...CaddyRendererService,
    loadSnapshot: decodingSnapshotsWith(CaddyRendererService.loadSnapshot, new SnapshotDecoder()),
  };
  const impl: AsyncService<CaddyRendererServer> = {
    // GrpcServer calls a handler inside a promise chain, so what it throws still answers the call.
    render: (req) => {
      if (!req.snapshot) throw new ValidationError("snapshot", "is required");
      validateSnapshot(req.snapshot);
      const r = render(req.snapshot, deps.renderOptions);
      return Promise.resolve({ caddyJson: r.json, configSha256: r.sha256, warnings: r.warnings });
    },
    loadSnapshot: async (req, ctx) => {
      // Only the receiver of this instance may call this (internal token), and it sends the very
      // bytes it decoded and validated (the slave's one check: structure, references, content
      // hash); they are not checked again here. Caddy still refuses a config it cannot run.
      if (!req.snapshot) throw new ValidationError("snapshot", "is required");
      return preload(reconciler, req.snapshot, ctx.log);
    },
    releasePreload: (req, ctx) => {
      if (reconciler.releasePreload(req.version)) ctx.log.info({ version: req.version }, "preload released");
      return Promise.resolve({});
    },
    getRenderStatus: () => Promise.resolve({ status: reconciler.status() }),
    watchRenderStatus: async (_req, ctx, call) => {
      const send = (status: RenderStatus) => call.write({ status });
      const off = reconciler.onStatus(send);
      try {
        send(reconciler.status());
        await new Promise<void>((resolve) =>
          ctx.signal.aborted ? resolve() : ctx.signal.addEventListener("abort", () => resolve(), { once: true }),
        );
      } finally {
        off();
      }
    },
  };
  return new GrpcServer({
    log: deps.log,
    authenticate: deps.authenticate,
    maxReceiveBytes: snapshotReceiveLimit(deps.syncMaxMessageBytes ?? DEFAULT_SYNC_MAX_MESSAGE_BYTES),
    limitVariable: "CPM_SYNC_MAX_MESSAGE_BYTES",
  }).add(service, impl, RENDERER_POLICY);
}
