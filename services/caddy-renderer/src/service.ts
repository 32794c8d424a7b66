import path from "node:path";
import { caddyAdminBlock, METRICS_LISTEN_VARIABLES, reservedAddresses, type Service } from "@cpm/core";
import { authenticator, CONFIG_PORT, configPort, initTracing, RENDERER_PORT, startMetrics } from "@cpm/grpc-kit";
import { CaddyAdmin } from "./caddy.ts";
import { IssuanceRecorder } from "./issuance.ts";
import { rendererMetrics } from "./metrics.ts";
import { IssuanceLog, issuanceLogPath } from "./issuance-log.ts";
import { LocalRendererPort } from "./local-port.ts";
import { probeLayer4 } from "./probe.ts";
import { Reconciler } from "./reconciler.ts";
import { FilePreloadHoldStore } from "./reconciler-hold.ts";
import { createServer } from "./server.ts";

/**
 * config -> dependencies -> server -> listen; signals, stop and exit codes: runServices.
 * config-service is called in place when it runs in this process (configPort); the receiver of
 * the same process calls this renderer in place (RENDERER_PORT).
 */
export const caddyRenderer: Service = {
  name: "caddy-renderer",
  async start(ctx) {
    const { config: cfg, log } = ctx;
    const tracing = await initTracing("caddy-renderer", { "cpm.instance.mode": cfg.mode });
    const config = configPort(ctx);
    const caddy = new CaddyAdmin(cfg.caddyApiUrl);
    const layer4 = await probeLayer4({ configured: cfg.caddyHasLayer4, caddyBin: cfg.caddyBin });
    log.info({ layer4: layer4.layer4, reason: layer4.reason }, "layer4 (caddy-l4) support");
    const renderOptions = {
      httpPort: cfg.httpPort,
      httpsPort: cfg.httpsPort,
      bindAddress: cfg.caddyBind,
      adminListen: cfg.caddyAdminListen,
      adminOrigins: caddyAdminBlock(cfg).origins,
      layer4: layer4.layer4,
      tlsFilesDir: path.join(cfg.dataDir, "caddy", "tls"),
      reservedUpstreams: reservedAddresses(cfg),
      servesMasterIssued: cfg.mode === "slave",
      masterHttpAddress: cfg.mode === "slave" ? cfg.masterHttpAddress : undefined,
      issuanceLogFile: cfg.mode === "slave" ? undefined : issuanceLogPath(cfg.caddyStorageDir),
    };
    const metrics = rendererMetrics();
    const reconciler = new Reconciler(
      config,
      metrics.instrument(caddy),
      renderOptions,
      log,
      cfg.reconcileIntervalMs,
      cfg.syncAckTimeoutSeconds * 1000,
      new FilePreloadHoldStore(path.join(cfg.dataDir, "caddy-renderer-preload.json")),
    );
    const auth = authenticator(ctx);
    ctx.ports.provide(RENDERER_PORT, new LocalRendererPort(reconciler, log.child({ caller: "in-process" })));
    const server = createServer({
      reconciler,
      renderOptions,
      authenticate: auth.authenticate,
      log,
      syncMaxMessageBytes: cfg.syncMaxMessageBytes,
    });
    metrics.observe(() => reconciler.status());
    const metricsServer = await startMetrics(cfg.metricsListen.renderer, METRICS_LISTEN_VARIABLES.renderer, log);
    const port = await server.listen(cfg.rendererListen);
    log.info(
      {
        listen: cfg.rendererListen,
        port,
        caddy: cfg.caddyApiUrl,
        config: ctx.ports.get(CONFIG_PORT) ? "in process" : cfg.configAddr,
      },
      "caddy-renderer ready",
    );

    // The master (or a standalone instance) records what its Caddy obtained for master-issued certificates.
    const recorder =
      cfg.mode === "slave"
        ? undefined
        : new IssuanceRecorder(
            config,
            renderOptions,
            cfg.caddyStorageDir,
            log,
            2000,
            new IssuanceLog(issuanceLogPath(cfg.caddyStorageDir)),
          );
    const stopWatching = new AbortController();
    reconciler.start();
    recorder?.start();
    void config.watch(
      (c) => {
        reconciler.onCommit(c);
        recorder?.onCommit(c);
      },
      log,
      stopWatching.signal,
    );
    return {
      async stop() {
        stopWatching.abort();
        reconciler.stop();
        recorder?.stop();
        await server.shutdown();
        await metricsServer?.close();
        config.close();
        auth.close();
        await tracing.shutdown();
      },
    };
  },
};
