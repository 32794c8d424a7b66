import { caddyAdminBlock, ConfigError, createLogger, loadConfig } from "@cpm/core";
import { ConfigClient, remoteAuthenticator } from "@cpm/grpc-kit";
import { CaddyAdmin } from "./caddy.ts";
import { Reconciler } from "./reconciler.ts";
import { createServer } from "./server.ts";

// config -> logger -> dependencies -> server -> listen -> signals
async function main() {
  const cfg = loadConfig();
  const log = createLogger("caddy-renderer", cfg.logLevel);
  const config = new ConfigClient(cfg.configAddr, cfg.internalToken, cfg.syncMaxMessageBytes);
  const caddy = new CaddyAdmin(cfg.caddyApiUrl);
  const renderOptions = { httpPort: cfg.httpPort, httpsPort: cfg.httpsPort, adminListen: cfg.caddyAdminListen, adminOrigins: caddyAdminBlock(cfg).origins, layer4: cfg.caddyHasLayer4 ?? false };
  const reconciler = new Reconciler(config, caddy, renderOptions, log, cfg.reconcileIntervalMs);
  const server = createServer({ reconciler, renderOptions, authenticate: remoteAuthenticator(config, cfg.internalToken), log, maxMessageBytes: cfg.syncMaxMessageBytes });
  const port = await server.listen(cfg.rendererListen);
  log.info({ listen: cfg.rendererListen, port, caddy: cfg.caddyApiUrl, config: cfg.configAddr }, "caddy-renderer ready");

  const stopWatching = new AbortController();
  reconciler.start();
  void config.watch((c) => reconciler.onCommit(c), log, stopWatching.signal);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    stopWatching.abort();
    reconciler.stop();
    await server.shutdown();
    config.close();
    log.flush();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

main().catch((err) => {
  if (err instanceof ConfigError) console.error(`caddy-renderer: configuration error: ${err.message}`);
  else console.error(`caddy-renderer: cannot start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
