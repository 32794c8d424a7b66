import { accessSync, constants, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { findBuiltCaddy } from "@cpm/core/caddy-build";
import { caddyAdminBlock, ConfigError, type InstanceConfig } from "@cpm/core/env";
import type { Service } from "@cpm/core";
import { caddyPidFile, prepareCaddy } from "./caddy-adopt.ts";
import { caddyEnvironment } from "./caddy-env.ts";
import { caddyRunArgs } from "./caddy-run.ts";
import type { ProcessSpec } from "./supervisor.ts";
import { Supervisor } from "./supervisor.ts";

/** The Caddy binary this node runs: CPM_CADDY_BIN, the project's build, or `caddy` on PATH; undefined: none. */
export function findCaddy(cfg: InstanceConfig): string | undefined {
  if (cfg.caddyBin) {
    try {
      accessSync(cfg.caddyBin, constants.X_OK);
      return cfg.caddyBin;
    } catch {
      throw new ConfigError("CPM_CADDY_BIN", `"${cfg.caddyBin}" is not an executable file`);
    }
  }
  // The project's own build (npm run caddy:build) has caddy-l4; a caddy on PATH may not.
  const built = findBuiltCaddy();
  if (built) return built;
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const p = path.join(dir, "caddy");
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/**
 * How this node runs Caddy: started with only its admin API (the renderer loads the real
 * config as soon as it is up), detached in a process group of its own so that it outlives a
 * killed node and keeps serving; a Caddy left serving that way is adopted, or stopped, by
 * the next start (caddy-adopt.ts). `say` prints an operator's line.
 */
export async function caddyProcess(
  cfg: InstanceConfig,
  bin: string,
  say: (line: string) => void,
): Promise<ProcessSpec> {
  const caddyDir = path.join(cfg.dataDir, "caddy");
  mkdirSync(caddyDir, { recursive: true });
  const initial = path.join(caddyDir, "initial.json");
  const admin = caddyAdminBlock(cfg);
  const pidFile = caddyPidFile(caddyDir);
  const adopt = await prepareCaddy({ bin, configFile: initial, pidFile, apiUrl: cfg.caddyApiUrl }, say);
  writeFileSync(initial, JSON.stringify({ admin }));
  return {
    name: "caddy",
    command: bin,
    args: () => caddyRunArgs(caddyDir, initial, admin),
    env: caddyEnvironment(process.env, caddyDir),
    logFile: path.join(caddyDir, "caddy.log"),
    stopLast: true,
    detached: true,
    pidFile,
    adopt,
  };
}

/**
 * The `caddy` module of a one-process node: Caddy supervised by this process with the
 * launcher's restart policy (restart-policy.ts). When the policy gives up (Caddy keeps dying
 * during start-up), the whole node stops and exits 1, saying why.
 */
export function caddyModule(bin: string | undefined, say: (line: string) => void): Service {
  return {
    name: "caddy",
    async start({ config: cfg, fail }) {
      if (!bin) {
        say(
          `no caddy binary found (CPM_CADDY_BIN, npm run caddy:build, or PATH): expecting Caddy's admin API at ${cfg.caddyApiUrl}`,
        );
        return { stop: () => undefined };
      }
      let stopping = false;
      const supervisor = new Supervisor([await caddyProcess(cfg, bin, say)], {
        say,
        onStopped: (code) => {
          if (!stopping && code !== 0) fail("Caddy cannot be kept running (see the line above)");
        },
      });
      supervisor.start();
      return {
        async stop() {
          stopping = true;
          await supervisor.stop(0);
        },
      };
    },
  };
}
