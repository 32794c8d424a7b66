import path from "node:path";
import {
  ConfigError,
  instancePorts,
  METRICS_LISTEN_VARIABLES,
  remoteCallers,
  reservedAddresses,
  type Service,
} from "@cpm/core";
import { API_TOKENS_PORT, CONFIG_PORT, initTracing, startMetrics } from "@cpm/grpc-kit";
import { apiTokenAuthenticator } from "./authentication.ts";
import { openDatabase } from "./db.ts";
import { SchemaNewerError } from "./migrate.ts";
import { configMetrics } from "./metrics.ts";
import { createServer } from "./server.ts";
import { ConfigStore } from "./store.ts";
import { ApiTokens } from "./tokens.ts";

/**
 * config -> dependencies -> server -> listen; signals, stop and exit codes: runServices. The
 * other services of the same process call it in place (CONFIG_PORT, API_TOKENS_PORT); its
 * internal listener opens only for those that run in other processes.
 */
export const configService: Service = {
  name: "config-service",
  async start({ config: cfg, log, ports, inProcess }) {
    const tracing = await initTracing("config-service", { "cpm.instance.mode": cfg.mode });
    const { db, applied, dialect } = await openDatabase(cfg.databaseUrl).catch((e: unknown) => {
      // A database of a newer release: the operator runs that release on it (or this one on
      // another database). A configuration error: the launcher stops at once, no restarts.
      if (!(e instanceof SchemaNewerError)) throw e;
      const byDataDir = cfg.databaseUrl === `file:${path.join(cfg.dataDir, "cpm.db")}`;
      throw new ConfigError(byDataDir ? "CPM_DATA_DIR" : "DATABASE_URL", e.message);
    });
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
    ports.provide(CONFIG_PORT, server.local);
    ports.provide(API_TOKENS_PORT, apiTokenAuthenticator(tokens));
    const internalCallers = remoteCallers("config-service", inProcess, cfg.mode);
    const internalPort = internalCallers.length ? await server.internal.listen(cfg.configInternalListen) : undefined;
    const port = await server.api.listen(cfg.apiListen);
    log.info(
      {
        listen: cfg.apiListen,
        port,
        internalListen: internalPort === undefined ? undefined : cfg.configInternalListen,
        internalPort,
        mode: cfg.mode,
        instanceId: info.instanceId,
        version: info.version,
        dialect,
      },
      "config-service ready",
    );
    return {
      async stop() {
        await server.shutdown();
        await metrics?.close();
        await db.$disconnect();
        await tracing.shutdown();
      },
    };
  },
};
