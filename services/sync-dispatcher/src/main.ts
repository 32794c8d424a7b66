import { CONFIG_ERROR_EXIT_CODE, ConfigError, createLogger, loadConfig, METRICS_LISTEN_VARIABLES } from "@cpm/core";
import { ConfigClient, initTracing, RemoteAuthenticator, startMetrics } from "@cpm/grpc-kit";
import { Dispatcher } from "./dispatcher.ts";
import { dispatcherMetrics } from "./metrics.ts";
import { createServer } from "./server.ts";

// config -> logger -> dependencies -> server -> listen -> signals
async function main() {
  const cfg = loadConfig();
  if (cfg.mode !== "master")
    throw new ConfigError(
      "INSTANCE_MODE",
      `sync-dispatcher runs only on a master (INSTANCE_MODE=master), not "${cfg.mode}"`,
    );
  const log = createLogger("sync-dispatcher", cfg.logLevel);
  const tracing = await initTracing("sync-dispatcher", { "cpm.instance.mode": cfg.mode });
  const config = new ConfigClient(cfg.configAddr, cfg.internalToken);
  const dispatcher = new Dispatcher(
    config,
    cfg.slaves,
    { caFile: cfg.syncTlsCa, maxMessageBytes: cfg.syncMaxMessageBytes, ackTimeoutMs: cfg.syncAckTimeoutSeconds * 1000 },
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

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    dispatcher.stop();
    await server.shutdown();
    await metrics?.close();
    config.close();
    auth.close();
    await tracing.shutdown();
    log.flush();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

main().catch((err) => {
  if (err instanceof ConfigError) console.error(`sync-dispatcher: configuration error: ${err.message}`);
  else console.error(`sync-dispatcher: cannot start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(err instanceof ConfigError ? CONFIG_ERROR_EXIT_CODE : 1);
});
