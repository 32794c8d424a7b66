import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
// Only the parts of @cpm/core it needs (no proto, validation or logger): the launcher stays a small process.
import { CONFIG_ERROR_EXIT_CODE, ConfigError, loadConfig, logFormat, type InstanceConfig } from "@cpm/core/env";
import type { ModuleName } from "@cpm/core";
import { caddyProcess, findCaddy } from "./caddy-module.ts";
import { nodeServiceArgs, nodeServiceEnv } from "./node-runtime.ts";
import { Supervisor, type ProcessSpec } from "./supervisor.ts";

/**
 * `npm start`: runs the modules of CPM_TARGET (by default the whole instance of the configured
 * mode). By default in this one Node process (one-process.ts), with Caddy as a child it
 * supervises; with CPM_SPLIT_PROCESSES=true, each service as its own process, talking gRPC
 * (below). Either way a process that dies is restarted with a backoff that starts over after
 * a healthy run; a configuration error, or repeated deaths during start-up, stop the node
 * with a message naming the process (restart-policy.ts).
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

function say(msg: string) {
  process.stderr.write(`[cpm] ${msg}\n`);
}

/** The token the services of this instance present to each other; kept in the data dir. */
function internalToken(cfg: InstanceConfig): string {
  if (cfg.internalToken) return cfg.internalToken;
  const file = path.join(cfg.dataDir, "internal-token");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const token = randomBytes(32).toString("base64url");
  writeFileSync(file, token, { mode: 0o600 });
  return token;
}

async function main() {
  const cfg = loadConfig();
  mkdirSync(cfg.dataDir, { recursive: true });
  const caddy = findCaddy(cfg);
  if (!cfg.splitProcesses) {
    const { runOneProcess } = await import("./one-process.ts");
    return runOneProcess(cfg, caddy, say);
  }
  await runSplit(cfg, caddy);
}

/** CPM_SPLIT_PROCESSES=true: each service of the target in a process of its own, all supervised here. */
async function runSplit(cfg: InstanceConfig, caddy: string | undefined) {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CPM_INTERNAL_TOKEN: internalToken(cfg),
    CPM_DATA_DIR: cfg.dataDir,
    // Decided from the launcher's stdout (a terminal or not), the one the operator looks at.
    LOG_FORMAT: logFormat(process.env, process.stdout.isTTY === true),
  };
  // CPM_TARGET: every module of the mode ("all", the default) or the ones named, in start order.
  const services = cfg.target.filter((m): m is Exclude<ModuleName, "caddy"> => m !== "caddy");
  const runsCaddy = cfg.target.includes("caddy");

  const procs: ProcessSpec[] = [];
  // The renderer probes this same binary for the layer4 module.
  if (caddy) env.CPM_CADDY_BIN = caddy;
  if (caddy && runsCaddy) procs.push(await caddyProcess(cfg, caddy, say));
  else if (!runsCaddy) say(`caddy is not in CPM_TARGET: expecting Caddy's admin API at ${cfg.caddyApiUrl}`);
  else
    say(
      `no caddy binary found (CPM_CADDY_BIN, npm run caddy:build, or PATH): expecting Caddy's admin API at ${cfg.caddyApiUrl}`,
    );
  for (const s of services) {
    const entry = path.join(root, "services", s, "dist", "main.js");
    if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` first`);
    procs.push({
      name: s,
      command: process.execPath,
      args: () => nodeServiceArgs(entry, env),
      // Each service process runs its own module only.
      env: nodeServiceEnv({ ...env, CPM_TARGET: s }),
    });
  }

  const supervisor = new Supervisor(procs, { say, onStopped: (code) => process.exit(code) });
  process.on("SIGINT", () => void supervisor.stop(0));
  process.on("SIGTERM", () => void supervisor.stop(0));
  say(
    `starting a ${cfg.mode} node split over processes: ${procs.map((p) => p.name).join(", ")} (data in ${cfg.dataDir}${caddy ? `; Caddy's log: ${path.join(cfg.dataDir, "caddy", "caddy.log")}` : ""})`,
  );
  supervisor.start();
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) say(`configuration error: ${err.message}`);
  else say(`cannot start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(err instanceof ConfigError ? CONFIG_ERROR_EXIT_CODE : 1);
});
