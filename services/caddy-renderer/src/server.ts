import { CaddyRendererService, type CaddyRendererServer, type RenderStatus } from "@cpm/proto";
import { ValidationError, validateSnapshot, type Logger } from "@cpm/core";
import { GrpcServer, permissionDenied, type AsyncService, type Authorize, type Principal } from "@cpm/grpc-kit";
import type { Metadata } from "@grpc/grpc-js";
import type { Reconciler } from "./reconciler.ts";
import { render, type RenderOptions } from "./render/index.ts";

export interface RendererDeps {
  reconciler: Reconciler;
  renderOptions: RenderOptions;
  authenticate: (md: Metadata) => Promise<Principal>;
  log: Logger;
  maxMessageBytes?: number;
}

/** The CaddyRenderer gRPC API. Does not listen. */
export function createServer(deps: RendererDeps): GrpcServer {
  const { reconciler } = deps;
  const authorize: Authorize = async (method, md) => {
    const p = await deps.authenticate(md);
    if (method.endsWith("/LoadSnapshot") && p.kind !== "internal") throw permissionDenied("LoadSnapshot is internal to an instance");
    return p;
  };
  const impl: AsyncService<CaddyRendererServer> = {
    render: async (req) => {
      if (!req.snapshot) throw new ValidationError("snapshot", "is required");
      validateSnapshot(req.snapshot);
      const r = render(req.snapshot, deps.renderOptions);
      return { caddyJson: r.json, configSha256: r.sha256, warnings: r.warnings };
    },
    loadSnapshot: async (req, ctx) => {
      if (!req.snapshot) throw new ValidationError("snapshot", "is required");
      validateSnapshot(req.snapshot);
      const r = await reconciler.preflight(req.snapshot);
      ctx.log.info({ version: req.snapshot.version }, "snapshot preloaded into Caddy");
      return r;
    },
    releasePreload: async (req, ctx) => {
      if (ctx.principal.kind !== "internal") throw permissionDenied("ReleasePreload is internal to an instance");
      if (reconciler.releasePreload(req.version)) ctx.log.info({ version: req.version }, "preload released");
      return {};
    },
    getRenderStatus: async () => ({ status: reconciler.status() }),
    watchRenderStatus: async (_req, ctx, call) => {
      const send = (status: RenderStatus) => call.write({ status });
      const off = reconciler.onStatus(send);
      try {
        send(reconciler.status());
        await new Promise<void>((resolve) => (ctx.signal.aborted ? resolve() : ctx.signal.addEventListener("abort", () => resolve(), { once: true })));
      } finally {
        off();
      }
    },
  };
  return new GrpcServer({ log: deps.log, maxMessageBytes: deps.maxMessageBytes }).add("cpm.render.v1.CaddyRenderer", CaddyRendererService, impl, authorize);
}
