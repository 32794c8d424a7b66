import { readFileSync, readlinkSync, realpathSync } from "node:fs";
import path from "node:path";
// Only the admin request of @cpm/core (no proto or validation): the launcher stays a small process.
import { caddyAdminRequest } from "@cpm/core/caddy-admin-request";

/**
 * Caddy outlives a killed launcher: it runs in its own session (`detached`), so a SIGKILL to
 * the launcher and its services (an OOM kill of Node, the launcher killed alone) leaves it
 * serving the last config it loaded: the data plane outlives the control plane. Its pid is
 * recorded in `<data>/caddy/caddy.pid`. The next start must not start a second Caddy on ports
 * the first still holds (it could not bind, and would die and be restarted in a loop), so it
 * looks first and decides with `decideCaddyStart`:
 *
 * - the recorded pid is alive and is this instance's Caddy (its executable is the binary this
 *   launcher would start, and it runs this data dir's initial config), and the admin API at
 *   CADDY_API_URL answers: ADOPT it. No second Caddy; the launcher watches the pid, restarts
 *   Caddy by the restart policy when it dies, and stops it on SIGTERM/SIGINT as its own.
 * - it is ours but its admin API does not answer (hung, or still starting): it cannot be
 *   adopted safely and its admin API cannot stop it: SIGTERM to the pid (SIGKILL after a
 *   timeout), then start a new one.
 * - not ours (no pid file, a dead pid, a pid reused by another program, or a Caddy of another
 *   binary, e.g. after an upgrade) and something answers on this instance's admin address:
 *   `POST /stop` through the admin API, then start our own. That address is this instance's
 *   own, and the Caddy this launcher starts could not bind it while the other holds it.
 * - nothing: start.
 */
export type CaddyStart =
  { action: "adopt" } | { action: "stop-then-start"; via: "admin" | "signal" } | { action: "start" };

export interface CaddyFacts {
  /** The pid in the pid file is a live process. */
  pidAlive: boolean;
  /** That process is this instance's Caddy (same binary, this data dir's config). */
  ours: boolean;
  /** Caddy's admin API at CADDY_API_URL answers. */
  adminAnswers: boolean;
}

export function decideCaddyStart(f: CaddyFacts): CaddyStart {
  const ours = f.pidAlive && f.ours;
  if (ours) return f.adminAnswers ? { action: "adopt" } : { action: "stop-then-start", via: "signal" };
  return f.adminAnswers ? { action: "stop-then-start", via: "admin" } : { action: "start" };
}

export function caddyPidFile(caddyDir: string): string {
  return path.join(caddyDir, "caddy.pid");
}

export function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `pid` is a live process (a zombie is not). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: alive but another user's.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return true; // no /proc: kill(0) said alive
  }
}

/**
 * Whether `pid` runs `bin` with `configFile`: its executable is `bin` (a replaced binary reads
 * as "... (deleted)" and is not) and its command line names `configFile`. False where /proc
 * cannot tell (not Linux): such a Caddy is stopped, not adopted.
 */
export function isOurCaddy(pid: number, bin: string, configFile: string): boolean {
  try {
    const exe = readlinkSync(`/proc/${pid}/exe`);
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return exe === safeRealpath(bin) && args.includes(configFile);
  } catch {
    return false;
  }
}

function safeRealpath(p: string): string {
  try {
    return realpathSync(p); // /proc/<pid>/exe reads as the resolved path
  } catch {
    return p;
  }
}

export async function adminAnswers(apiUrl: string): Promise<boolean> {
  try {
    return (await caddyAdminRequest(new URL("/config/", apiUrl).href, { timeoutMs: 1_000 })).status === 200;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(f: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await f()) return true;
    if (Date.now() > end) return false;
    await sleep(50);
  }
}

export interface CaddyTarget {
  bin: string;
  configFile: string;
  pidFile: string;
  apiUrl: string;
}

/**
 * Looks for a Caddy left running by a launcher that was killed, acts as `decideCaddyStart`
 * says, and returns the pid to adopt, if any (else the launcher starts its own).
 */
export async function prepareCaddy(t: CaddyTarget, say: (msg: string) => void): Promise<number | undefined> {
  const pid = readPid(t.pidFile);
  const alive = pid !== undefined && pidAlive(pid);
  const facts: CaddyFacts = {
    pidAlive: alive,
    ours: alive && isOurCaddy(pid, t.bin, t.configFile),
    adminAnswers: await adminAnswers(t.apiUrl),
  };
  const d = decideCaddyStart(facts);
  if (d.action === "adopt") {
    say(`caddy: adopting the Caddy still running from the last start (pid ${pid}); it kept serving meanwhile`);
    return pid;
  }
  if (d.action === "stop-then-start" && d.via === "signal") {
    say(`caddy: the Caddy left running (pid ${pid}) does not answer at ${t.apiUrl}; stopping it to start a new one`);
    process.kill(pid!, "SIGTERM");
    if (!(await until(() => !pidAlive(pid!), 5_000))) process.kill(pid!, "SIGKILL");
    await until(() => !pidAlive(pid!), 2_000);
  }
  if (d.action === "stop-then-start" && d.via === "admin") {
    say(
      `caddy: a Caddy that is not this launcher's answers at ${t.apiUrl}; stopping it (POST /stop) to start this one`,
    );
    await caddyAdminRequest(new URL("/stop", t.apiUrl).href, { method: "POST", timeoutMs: 1_000 }).catch(
      () => undefined,
    );
    if (!(await until(async () => !(await adminAnswers(t.apiUrl)), 5_000)))
      say(`caddy: ${t.apiUrl} still answers after POST /stop; starting anyway`);
  }
  return undefined;
}
