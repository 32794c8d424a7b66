import { ConfigError, METRICS_LISTEN_VARIABLES, type Service } from "@cpm/core";
import { authenticator, configPort, initTracing, startMetrics } from "@cpm/grpc-kit";
import { Dispatcher } from "./dispatcher.ts";
import { dispatcherMetrics } from "./metrics.ts";
import { createServer } from "./server.ts";

// config -> dependencies -> server -> listen; signals, stop and exit codes: runServices.
export const syncDispatcher: Service = {
  name: "sync-dispatcher",
  async start(ctx) {
    const { config: cfg, log } = ctx;
    if (cfg.mode !== "master")
      throw new ConfigError(
        "INSTANCE_MODE",
        `sync-dispatcher runs only on a master (INSTANCE_MODE=master), not "${cfg.mode}"`,
      );
    const tracing = await initTracing("sync-dispatcher", { "cpm.instance.mode": cfg.mode });
    const config = configPort(ctx);
    const dispatcher = new Dispatcher(
      config,
      cfg.slaves,
      {
        caFile: cfg.syncTlsCa,
        maxMessageBytes: cfg.syncMaxMessageBytes,
        ackTimeoutMs: cfg.syncAckTimeoutSeconds * 1000,
        connectTimeoutMs: cfg.syncConnectTimeoutMs,
        keepalive: { timeMs: cfg.syncKeepaliveTimeMs, timeoutMs: cfg.syncKeepaliveTimeoutMs },
      },
      cfg.syncIntervalSeconds,
      log,
      dispatcherMetrics(),
    );
    const metrics = await startMetrics(cfg.metricsListen.dispatcher, METRICS_LISTEN_VARIABLES.dispatcher, log);
    const auth = authenticator(ctx);
    const server = createServer({
      dispatcher,
      authenticate: auth.authenticate,
      log,
      maxMessageBytes: cfg.apiMaxMessageBytes,
    });
    const port = await server.listen(cfg.dispatcherListen);
    dispatcher.start();
    log.info(
      {
        listen: cfg.dispatcherListen,
        port,
        slaves: cfg.slaves.map((s) => ({ name: s.name, url: s.url })),
        intervalSeconds: cfg.syncIntervalSeconds,
      },
      "sync-dispatcher ready",
    );
    return {
      async stop() {
        dispatcher.stop();
        await server.shutdown();
        await metrics?.close();
        config.close();
        auth.close();
        await tracing.shutdown();
      },
    };
  },
};
