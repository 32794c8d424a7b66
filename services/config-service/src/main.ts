import {
  CONFIG_ERROR_EXIT_CODE,
  ConfigError,
  createLogger,
  instancePorts,
  loadConfig,
  METRICS_LISTEN_VARIABLES,
  reservedAddresses,
} from "@cpm/core";
import { initTracing, startMetrics } from "@cpm/grpc-kit";
import { openDatabase } from "./db.ts";
import { configMetrics } from "./metrics.ts";
import { createServer } from "./server.ts";
import { ConfigStore } from "./store.ts";
import { ApiTokens } from "./tokens.ts";

// config -> logger -> dependencies -> server -> listen -> signals
async function main() {
  const cfg = loadConfig();
  const log = createLogger("config-service", cfg.logLevel);
  const tracing = await initTracing("config-service", { "cpm.instance.mode": cfg.mode });
  const { db, applied, dialect } = await openDatabase(cfg.databaseUrl);
  if (applied.length) log.info({ applied, dialect }, "database migrated");
  const store = new ConfigStore(db, log, { dialect });
  const info = await store.init();
  configMetrics().observe(store);
  const metrics = await startMetrics(cfg.metricsListen.config, METRICS_LISTEN_VARIABLES.config, log);
  const tokens = new ApiTokens(db, { dialect });
  if (cfg.adminToken) await tokens.ensure(cfg.adminToken);
  const server = createServer({
    store,
    tokens,
    mode: cfg.mode,
    internalToken: cfg.internalToken,
    log,
    reservedUpstreams: reservedAddresses(cfg),
    ownPorts: instancePorts({
      httpPort: cfg.httpPort,
      httpsPort: cfg.httpsPort,
      bindAddress: cfg.caddyBind,
      adminListen: cfg.caddyAdminListen,
    }),
    apiMaxMessageBytes: cfg.apiMaxMessageBytes,
    syncMaxMessageBytes: cfg.syncMaxMessageBytes,
  });
  const internalPort = await server.internal.listen(cfg.configInternalListen);
  const port = await server.api.listen(cfg.apiListen);
  log.info(
    {
      listen: cfg.apiListen,
      port,
      internalListen: cfg.configInternalListen,
      internalPort,
      mode: cfg.mode,
      instanceId: info.instanceId,
      version: info.version,
      dialect,
    },
    "config-service ready",
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    await server.shutdown();
    await metrics?.close();
    await db.$disconnect();
    await tracing.shutdown();
    log.flush();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

main().catch((err) => {
  if (err instanceof ConfigError) console.error(`config-service: configuration error: ${err.message}`);
  else console.error(`config-service: cannot start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(err instanceof ConfigError ? CONFIG_ERROR_EXIT_CODE : 1);
});
