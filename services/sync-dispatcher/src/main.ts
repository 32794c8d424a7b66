import { ConfigError, METRICS_LISTEN_VARIABLES, runServices, type Service } from "@cpm/core";
import { ConfigClient, initTracing, RemoteAuthenticator, startMetrics } from "@cpm/grpc-kit";
import { Dispatcher } from "./dispatcher.ts";
import { dispatcherMetrics } from "./metrics.ts";
import { createServer } from "./server.ts";

// config -> dependencies -> server -> listen; signals, stop and exit codes: runServices.
const syncDispatcher: Service = {
  name: "sync-dispatcher",
  async start({ config: cfg, log }) {
    if (cfg.mode !== "master")
      throw new ConfigError(
        "INSTANCE_MODE",
        `sync-dispatcher runs only on a master (INSTANCE_MODE=master), not "${cfg.mode}"`,
      );
    const tracing = await initTracing("sync-dispatcher", { "cpm.instance.mode": cfg.mode });
    const config = new ConfigClient(cfg.configAddr, cfg.internalToken);
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
    const auth = new RemoteAuthenticator(cfg.apiAddr, cfg.internalToken);
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

void runServices([syncDispatcher]);
