import { readFileSync } from "node:fs";
import path from "node:path";
import { ServerCredentials } from "@grpc/grpc-js";
import { ConfigError, METRICS_LISTEN_VARIABLES, required, type Service } from "@cpm/core";
import { configPort, initTracing, rendererPort, startMetrics } from "@cpm/grpc-kit";
import { SnapshotDecoder } from "@cpm/snapshot-wire";
import { receiverMetrics } from "./metrics.ts";
import { SnapshotApplier } from "./receiver.ts";
import { createServer } from "./server.ts";
import { FileStatusStore } from "./status-store.ts";

/** How long the receiver waits at start for this slave's config-service and renderer before it listens anyway. */
const STARTUP_WAIT_MS = 10_000;

// config -> dependencies -> (wait for them, bounded) -> server -> listen; signals, stop and exit codes: runServices.
export const syncReceiver: Service = {
  name: "sync-receiver",
  async start(ctx) {
    const { config: cfg, log } = ctx;
    if (cfg.mode !== "slave")
      throw new ConfigError(
        "INSTANCE_MODE",
        `sync-receiver runs only on a slave (INSTANCE_MODE=slave), not "${cfg.mode}"`,
      );
    const syncToken = required(cfg.syncToken, "INSTANCE_SYNC_TOKEN", "on a slave");
    let credentials: ServerCredentials;
    if (cfg.syncTlsCert && cfg.syncTlsKey) {
      credentials = ServerCredentials.createSsl(
        null,
        [{ cert_chain: readFileSync(cfg.syncTlsCert), private_key: readFileSync(cfg.syncTlsKey) }],
        false,
      );
    } else if (cfg.syncAllowHttp) {
      credentials = ServerCredentials.createInsecure();
    } else {
      throw new ConfigError(
        "CPM_SYNC_TLS_CERT",
        "a slave serves sync over TLS: set CPM_SYNC_TLS_CERT and CPM_SYNC_TLS_KEY (or INSTANCE_SYNC_ALLOW_HTTP=true on an isolated network)",
      );
    }
    const tracing = await initTracing("sync-receiver", { "cpm.instance.mode": cfg.mode });
    const config = configPort(ctx);
    const renderer = rendererPort(ctx);
    const applier = new SnapshotApplier(
      config,
      renderer,
      log,
      cfg.syncAckTimeoutSeconds * 1000,
      new FileStatusStore(path.join(cfg.dataDir, "sync-receiver-status.json")),
    );
    // Listen only once this slave can apply: a master whose stream is up pushes at once, and a
    // snapshot taken while config-service or the renderer still start would only be NACKed.
    // Bounded: after STARTUP_WAIT_MS it listens anyway, NACKs say which service is missing, and
    // each apply reads the version again.
    log.debug("waiting for this slave's config-service and renderer before listening");
    await applier.load(STARTUP_WAIT_MS).catch((err: Error & { details?: string }) => {
      log.warn(
        { waitedMs: STARTUP_WAIT_MS, err: err.details ?? err.message },
        "this slave's config-service or renderer is not answering yet; listening anyway (snapshots are NACKed until they do)",
      );
    });
    const decoder = new SnapshotDecoder();
    await applier.prime(decoder, () => config.getSnapshot(cfg.syncAckTimeoutSeconds * 1000));
    const metrics = receiverMetrics();
    metrics.observe(() => applier.state);
    const metricsServer = await startMetrics(cfg.metricsListen.receiver, METRICS_LISTEN_VARIABLES.receiver, log);
    const server = createServer({
      applier,
      syncToken,
      log,
      maxMessageBytes: cfg.syncMaxMessageBytes,
      metrics,
      keepalive: { timeMs: cfg.receiverKeepaliveTimeMs, timeoutMs: cfg.receiverKeepaliveTimeoutMs },
      decoder,
    });
    const port = await server.listen(cfg.syncListen, credentials);
    log.info(
      { listen: cfg.syncListen, port, tls: !!cfg.syncTlsCert },
      cfg.syncTlsCert ? "sync-receiver ready (TLS)" : "sync-receiver ready (PLAINTEXT: INSTANCE_SYNC_ALLOW_HTTP=true)",
    );
    return {
      async stop() {
        await server.shutdown();
        await metricsServer?.close();
        config.close();
        renderer.close();
        await tracing.shutdown();
      },
    };
  },
};
