import path from "node:path";
import { runServices, type ModuleName, type Service } from "@cpm/core";
import type { InstanceConfig } from "@cpm/core/env";
import { initTracing } from "@cpm/grpc-kit";
import { caddyModule } from "./caddy-module.ts";

/** The services a node can run in its process, loaded only when it runs them. */
const SERVICES: Record<Exclude<ModuleName, "caddy">, () => Promise<Service>> = {
  "config-service": async () => (await import("@cpm/config-service")).configService,
  "caddy-renderer": async () => (await import("@cpm/caddy-renderer")).caddyRenderer,
  "sync-dispatcher": async () => (await import("@cpm/sync-dispatcher")).syncDispatcher,
  "sync-receiver": async () => (await import("@cpm/sync-receiver")).syncReceiver,
  "web-console": async () => (await import("@cpm/web-console")).webConsole,
};

/**
 * The process's tracing, started first and flushed last: one tracer provider for the node
 * (`service.name` cpm); the services' own initTracing calls share it.
 */
const tracing: Service = {
  name: "tracing",
  async start({ config: cfg }) {
    const t = await initTracing("cpm", { "cpm.instance.mode": cfg.mode, "cpm.target": cfg.target.join(",") });
    return { stop: () => t.shutdown() };
  },
};

/**
 * CPM_TARGET's modules in this one Node process, in start order: each calls the others of
 * the process in place through its ports (config-service's CONFIG_PORT and API_TOKENS_PORT,
 * the renderer's RENDERER_PORT) and the ones elsewhere over gRPC; Caddy is a child process
 * this one supervises. No internal token and no internal listener unless a module of the
 * mode runs in another process. Signals, stop order and exit codes: runServices.
 */
export async function runOneProcess(
  cfg: InstanceConfig,
  caddy: string | undefined,
  say: (line: string) => void,
): Promise<void> {
  // The renderer probes the same binary for the layer4 module.
  if (caddy) process.env.CPM_CADDY_BIN = caddy;
  const modules: Service[] = [tracing];
  // A service's code is loaded when its turn to start comes: Caddy (first in start order) is up,
  // serving its saved config, while the services still load.
  for (const name of cfg.target)
    modules.push(
      name === "caddy" ? caddyModule(caddy, say) : { name, start: async (ctx) => (await SERVICES[name]()).start(ctx) },
    );
  if (!cfg.target.includes("caddy"))
    say(`caddy is not in CPM_TARGET: expecting Caddy's admin API at ${cfg.caddyApiUrl}`);
  say(
    `starting a ${cfg.mode} node in one process: ${cfg.target.join(", ")} (data in ${cfg.dataDir}${caddy && cfg.target.includes("caddy") ? `; Caddy's log: ${path.join(cfg.dataDir, "caddy", "caddy.log")}` : ""})`,
  );
  await runServices(modules, { name: "cpm" });
}
