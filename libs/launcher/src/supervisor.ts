import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pidAlive } from "./caddy-adopt.ts";
import { decideRestart, DEFAULT_RESTART_POLICY, describeExit, type RestartPolicy, type Run } from "./restart-policy.ts";

/** One process the launcher keeps running. */
export interface ProcessSpec {
  name: string;
  command: string;
  /** Read at every start: what a process is started with may depend on what it left behind. */
  args: () => string[];
  env: NodeJS.ProcessEnv;
  /** Its stdout and stderr go to this file (appended) instead of the launcher's. */
  logFile?: string;
  /** Stopped after the others (Caddy: nothing is left without its proxy mid-request). */
  stopLast?: boolean;
  /**
   * In its own session and process group, so it outlives a launcher that is killed (Caddy: the
   * data plane keeps serving while the control plane is down). The launcher still stops it.
   */
  detached?: boolean;
  /** Where its pid is written at every start (removed after a clean stop). */
  pidFile?: string;
  /** A pid left running by an earlier start to watch instead of starting a new process (caddy-adopt.ts). */
  adopt?: number;
}

/** A running process: a child of the launcher, or one adopted from an earlier start. */
interface Running {
  readonly pid: number | undefined;
  alive(): boolean;
  kill(signal: NodeJS.Signals): void;
  onExit(listener: (code: number | null, signal: string | null) => void): void;
}

function childRunning(child: ChildProcess): Running {
  return {
    pid: child.pid,
    alive: () => child.exitCode === null && child.signalCode === null,
    kill: (signal) => void child.kill(signal),
    onExit: (listener) => void child.once("exit", listener),
  };
}

/** How often an adopted process, which is not the launcher's child, is looked at. */
const ADOPTED_POLL_MS = 100;

/** A process that is not the launcher's child: watched by polling its pid. */
function adoptedRunning(pid: number): Running {
  const listeners: ((code: number | null, signal: string | null) => void)[] = [];
  let dead = false;
  const timer = setInterval(() => {
    if (pidAlive(pid)) return;
    dead = true;
    clearInterval(timer);
    // Not its parent: how it ended is not known.
    for (const l of listeners) l(null, null);
  }, ADOPTED_POLL_MS);
  return {
    pid,
    alive: () => !dead,
    kill: (signal) => {
      try {
        process.kill(pid, signal);
      } catch {
        /* gone already: the poll reports it */
      }
    },
    onExit: (listener) => void listeners.push(listener),
  };
}

export interface SupervisorOptions {
  say: (message: string) => void;
  /** Called once everything is stopped, with the instance's exit code. */
  onStopped: (exitCode: number) => void;
  policy?: RestartPolicy;
  /** How long a process has to stop on SIGTERM before it is killed. */
  stopTimeoutMs?: number;
}

/** Enough history for any policy: decisions look at the runs in a row at the end. */
const MAX_RUNS_KEPT = 100;

interface Supervised {
  spec: ProcessSpec;
  child?: Running;
  startedAt: number;
  runs: Run[];
  restartTimer?: NodeJS.Timeout;
}

/**
 * Runs processes and restarts each one that dies as `decideRestart` says; when it says
 * stop (a configuration error, or too many deaths during start-up), stops them all and
 * reports exit code 1.
 */
export class Supervisor {
  private readonly procs: Supervised[];
  private stopping = false;

  constructor(
    specs: readonly ProcessSpec[],
    private readonly opts: SupervisorOptions,
  ) {
    this.procs = specs.map((spec) => ({ spec, startedAt: 0, runs: [] }));
  }

  start(): void {
    for (const p of this.procs) this.launch(p);
  }

  /**
   * Stops every process (SIGTERM, then SIGKILL after the timeout), all at once, then those
   * marked stopLast; then calls onStopped. A process that already exited (Ctrl-C signals the
   * whole process group) is not waited for.
   */
  async stop(exitCode: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const p of this.procs) clearTimeout(p.restartTimer);
    const alive = this.procs.filter((p) => p.child?.alive());
    const stopOne = (c: Running) =>
      new Promise<void>((resolve) => {
        if (!c.alive()) return resolve();
        const timer = setTimeout(() => c.kill("SIGKILL"), this.opts.stopTimeoutMs ?? 10_000);
        c.onExit(() => {
          clearTimeout(timer);
          resolve();
        });
        c.kill("SIGTERM");
      });
    await Promise.all(alive.filter((p) => !p.spec.stopLast).map((p) => stopOne(p.child!)));
    await Promise.all(alive.filter((p) => p.spec.stopLast).map((p) => stopOne(p.child!)));
    for (const p of this.procs) if (p.spec.pidFile) rmSync(p.spec.pidFile, { force: true });
    this.opts.onStopped(exitCode);
  }

  private launch(p: Supervised): void {
    const { spec } = p;
    p.startedAt = Date.now();
    if (spec.adopt !== undefined && p.runs.length === 0) {
      this.watch(p, adoptedRunning(spec.adopt));
      return;
    }
    let out: number | "inherit" = "inherit";
    if (spec.logFile) {
      mkdirSync(path.dirname(spec.logFile), { recursive: true });
      out = openSync(spec.logFile, "a");
    }
    const child = spawn(spec.command, spec.args(), {
      env: spec.env,
      stdio: ["ignore", out, out],
      detached: spec.detached === true,
    });
    if (typeof out === "number") closeSync(out); // the child has its own copy
    child.on("error", (err) => this.opts.say(`${spec.name}: ${err.message}`));
    if (spec.pidFile && child.pid !== undefined) writeFileSync(spec.pidFile, `${child.pid}\n`);
    this.watch(p, childRunning(child));
  }

  private watch(p: Supervised, child: Running): void {
    const { spec } = p;
    p.child = child;
    child.onExit((code, signal) => {
      if (this.stopping) return;
      p.runs.push({ startedAt: p.startedAt, endedAt: Date.now(), code, signal });
      if (p.runs.length > MAX_RUNS_KEPT) p.runs.shift();
      const decision = decideRestart(p.runs, this.opts.policy ?? DEFAULT_RESTART_POLICY);
      const how = describeExit({ code, signal });
      if (!decision.restart) {
        this.opts.say(`${spec.name} exited (${how}): ${decision.reason}; stopping the instance`);
        void this.stop(1);
        return;
      }
      this.opts.say(`${spec.name} exited (${how}); restarting in ${decision.delayMs} ms`);
      p.restartTimer = setTimeout(() => !this.stopping && this.launch(p), decision.delayMs);
    });
  }
}
