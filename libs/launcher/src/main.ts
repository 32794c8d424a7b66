import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { caddyAdminBlock, ConfigError, findBuiltCaddy, loadConfig, type InstanceConfig } from "@cpm/core";
import { caddyEnvironment } from "./caddy-env.ts";

/**
 * `npm start`: runs one whole instance of the configured mode, each service as its own
 * process (and Caddy, when a caddy binary is available), and stops them all on
 * SIGINT/SIGTERM. A service that dies in its first seconds stops the instance (it is
 * misconfigured); one that dies later is restarted with backoff.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const STARTUP_GRACE_MS = 5_000;

interface Supervised {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  child?: ChildProcess;
  startedAt: number;
  restarts: number;
}

function say(msg: string) {
  process.stderr.write(`[cpm] ${msg}\n`);
}

function findCaddy(cfg: InstanceConfig): string | undefined {
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

/** The token the services of this instance present to each other; kept in the data dir. */
function internalToken(cfg: InstanceConfig): string {
  if (cfg.internalToken) return cfg.internalToken;
  const file = path.join(cfg.dataDir, "internal-token");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const token = randomBytes(32).toString("base64url");
  writeFileSync(file, token, { mode: 0o600 });
  return token;
}

function main() {
  const cfg = loadConfig();
  mkdirSync(cfg.dataDir, { recursive: true });
  const env: NodeJS.ProcessEnv = { ...process.env, CPM_INTERNAL_TOKEN: internalToken(cfg), CPM_DATA_DIR: cfg.dataDir };
  const services = ["config-service", "caddy-renderer"];
  if (cfg.mode === "master") services.push("sync-dispatcher");
  if (cfg.mode === "slave") services.push("sync-receiver");

  const procs: Supervised[] = [];
  const caddy = findCaddy(cfg);
  // The renderer probes this same binary for the layer4 module.
  if (caddy) env.CPM_CADDY_BIN = caddy;
  if (caddy) {
    const caddyDir = path.join(cfg.dataDir, "caddy");
    mkdirSync(caddyDir, { recursive: true });
    const initial = path.join(caddyDir, "initial.json");
    // Only the admin API: the renderer loads the real config as soon as it is up.
    writeFileSync(initial, JSON.stringify({ admin: caddyAdminBlock(cfg) }));
    procs.push({ name: "caddy", command: caddy, args: ["run", "--config", initial], env: caddyEnvironment(process.env, caddyDir), startedAt: 0, restarts: 0 });
  } else {
    say(`no caddy binary found (CPM_CADDY_BIN, npm run caddy:build, or PATH): expecting Caddy's admin API at ${cfg.caddyApiUrl}`);
  }
  for (const s of services) {
    const entry = path.join(root, "services", s, "dist", "main.js");
    if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` first`);
    procs.push({ name: s, command: process.execPath, args: [entry], env, startedAt: 0, restarts: 0 });
  }

  let stopping = false;
  const start = (p: Supervised) => {
    p.startedAt = Date.now();
    const child = spawn(p.command, p.args, { env: p.env, stdio: ["ignore", "inherit", "inherit"] });
    p.child = child;
    child.on("exit", (code, signal) => {
      if (stopping) return;
      // A non-zero exit right after the first start is a misconfiguration: stop and say so.
      const early = Date.now() - p.startedAt < STARTUP_GRACE_MS;
      if (early && p.restarts === 0 && code !== 0) {
        say(`${p.name} exited during start-up (code ${code ?? signal}); stopping the instance`);
        void stopAll(1);
        return;
      }
      const delay = Math.min(30_000, 500 * 2 ** Math.min(p.restarts, 6));
      p.restarts++;
      say(`${p.name} exited (code ${code ?? signal}); restarting in ${delay} ms`);
      setTimeout(() => !stopping && start(p), delay);
    });
  };

  const stopAll = async (exitCode: number) => {
    if (stopping) return;
    stopping = true;
    const alive = procs.filter((p) => p.child && p.child.exitCode === null && p.child.signalCode === null);
    // Services first, Caddy last, so nothing is left without its proxy mid-request.
    const order = [...alive.filter((p) => p.name !== "caddy"), ...alive.filter((p) => p.name === "caddy")];
    for (const p of order) {
      await new Promise<void>((resolve) => {
        const c = p.child!;
        const timer = setTimeout(() => c.kill("SIGKILL"), 10_000);
        c.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        c.kill("SIGTERM");
      });
    }
    process.exit(exitCode);
  };

  process.on("SIGINT", () => void stopAll(0));
  process.on("SIGTERM", () => void stopAll(0));
  say(`starting a ${cfg.mode} instance: ${procs.map((p) => p.name).join(", ")} (data in ${cfg.dataDir})`);
  for (const p of procs) start(p);
}

try {
  main();
} catch (err) {
  if (err instanceof ConfigError) say(`configuration error: ${err.message}`);
  else say(`cannot start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
