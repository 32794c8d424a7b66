import { constants } from "node:os";
import { CONFIG_ERROR_EXIT_CODE, ConfigError, loadConfig, type InstanceConfig, type LogFormat } from "./env.ts";
import { createLogger, type Logger } from "./logger.ts";
import { PortRegistry } from "./ports.ts";
import { RELEASE } from "./release.ts";

/**
 * One lifecycle for every service: a service is a name and a `start` that returns something
 * to `stop`; `runServices` owns what is around it, once per process: the configuration, one
 * logger per service, SIGINT/SIGTERM, the stop deadline and the exit code. It runs a list so
 * that several services can share one process; stopped in the reverse order of their start.
 *
 * Exit codes: 0 after a stop on a signal; 78 (CONFIG_ERROR_EXIT_CODE) for a configuration
 * error at start, with a message naming the variable; 1 for any other failure to start, a
 * failure to stop, or a stop that outlasts its deadline; 128 + the signal's number when a
 * second signal arrives during the stop (as a shell reports a process that signal killed).
 */
export interface Service {
  readonly name: string;
  start(ctx: StartContext): Promise<Running>;
}

export interface StartContext {
  readonly config: InstanceConfig;
  /** This service's logger (its name on every line, the configured level and format). */
  readonly log: Logger;
  /** The names of the services this process runs (`runServices`' list): who calls whom in place. */
  readonly inProcess: readonly string[];
  /** What the services of this process offer each other (see ports.ts); one registry per process. */
  readonly ports: PortRegistry;
  /**
   * A service that can no longer run (Caddy that keeps dying, say) stops the whole process:
   * every service is stopped and the process exits with 1, `reason` on stderr.
   */
  readonly fail: (reason: string) => void;
}

export interface Running {
  /** Stops serving and releases what `start` opened; the process exits once every service has stopped. */
  stop(): Promise<void> | void;
}

/** How long the services have, together, to stop after a signal before the process exits anyway. */
export const STOP_DEADLINE_MS = 8_000;

/** At most this long, the last lines of the logs are waited for before the process exits. */
const FLUSH_WAIT_MS = 1_000;

export type LifecycleState = "starting" | "stop-pending" | "running" | "stopping" | "done";

export type LifecycleEvent =
  | { type: "started" }
  | { type: "start-failed"; error: unknown }
  | { type: "signal"; signal: NodeJS.Signals }
  | { type: "stopped" }
  | { type: "stop-failed"; error: unknown }
  | { type: "deadline" }
  /** A running service gave up (StartContext.fail). */
  | { type: "failed"; reason: string };

export type LifecycleAction =
  | { do: "nothing" }
  /** Arm the stop deadline (a signal arrived while the services still start; they are stopped once started). */
  | { do: "arm-deadline" }
  /** Arm the stop deadline (unless armed) and stop the services. */
  | { do: "stop" }
  /** Stop what has started (bounded by the deadline), then exit with `code`, printing `message` to stderr. */
  | { do: "abandon-start"; code: number; message: string }
  /** Exit now with `code`; `message`, when given, says why (printed to stderr). */
  | { do: "exit"; code: number; message?: string };

/** The exit code of a start that failed with `error`. */
export function startFailureCode(error: unknown): number {
  return error instanceof ConfigError ? CONFIG_ERROR_EXIT_CODE : 1;
}

/** What a start that failed with `error` prints, prefixed with the service's name. */
export function startFailureMessage(name: string, error: unknown): string {
  if (error instanceof ConfigError) return `${name}: configuration error: ${error.message}`;
  return `${name}: cannot start: ${describe(error)}`;
}

/** The code a shell reports for a process ended by `signal`: 130 for SIGINT, 143 for SIGTERM. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + constants.signals[signal];
}

/**
 * The lifecycle's decisions, one (state, event) at a time: `runServices` only carries them
 * out. `name` prefixes the messages; `deadlineMs` is quoted when the deadline passes.
 */
export function decide(
  state: LifecycleState,
  event: LifecycleEvent,
  name: string,
  deadlineMs: number,
): { next: LifecycleState; action: LifecycleAction } {
  const exit = (code: number, message?: string) => ({
    next: "done" as const,
    action: { do: "exit" as const, code, message },
  });
  if (state === "done") return { next: state, action: { do: "nothing" } };
  switch (event.type) {
    case "started":
      if (state === "starting") return { next: "running", action: { do: "nothing" } };
      if (state === "stop-pending") return { next: "stopping", action: { do: "stop" } };
      break;
    case "start-failed":
      if (state === "starting" || state === "stop-pending")
        return {
          next: "done",
          action: {
            do: "abandon-start",
            code: startFailureCode(event.error),
            message: startFailureMessage(name, event.error),
          },
        };
      break;
    case "signal":
      if (state === "starting") return { next: "stop-pending", action: { do: "arm-deadline" } };
      if (state === "running") return { next: "stopping", action: { do: "stop" } };
      return exit(signalExitCode(event.signal), `${name}: ${event.signal} again while stopping; exiting now`);
    case "stopped":
      if (state === "stopping") return exit(0);
      break;
    case "stop-failed":
      if (state === "stopping") return exit(1, `${name}: cannot stop cleanly: ${describe(event.error)}`);
      break;
    case "deadline":
      return exit(1, `${name}: did not stop within ${deadlineMs} ms; exiting anyway`);
    case "failed":
      if (state === "starting" || state === "stop-pending" || state === "running")
        return { next: "done", action: { do: "abandon-start", code: 1, message: event.reason } };
      break;
  }
  return { next: state, action: { do: "nothing" } };
}

/** What `runServices` needs from the process: replaced in tests. */
export interface ProcessPort {
  onSignal(signal: NodeJS.Signals, handler: () => void): void;
  exit(code: number): void;
  /** One line for an operator, on stderr: why the process exits other than after a clean stop. */
  stderr(line: string): void;
}

const REAL_PROCESS: ProcessPort = {
  onSignal: (signal, handler) => process.on(signal, handler),
  exit: (code) => process.exit(code),
  stderr: (line) => process.stderr.write(`${line}\n`),
};

export interface RunOptions {
  /** Names the process in messages that concern no one service (a configuration that does not load). Default: the first service's name. */
  name?: string;
  stopDeadlineMs?: number;
  process?: ProcessPort;
  loadConfig?: () => InstanceConfig;
  createLogger?: (service: string | undefined, level: string, format: LogFormat) => Logger;
}

/**
 * Loads the configuration, starts `services` in order, and stops them in reverse order on
 * SIGINT or SIGTERM (see `decide`). Resolves with the exit code once it has asked the
 * process to exit (with the real process, it does not resolve).
 */
export function runServices(services: readonly Service[], opts: RunOptions = {}): Promise<number> {
  const proc = opts.process ?? REAL_PROCESS;
  const deadlineMs = opts.stopDeadlineMs ?? STOP_DEADLINE_MS;
  const processName = opts.name ?? services[0]?.name ?? "cpm";
  const started: { service: Service; log: Logger; running: Running }[] = [];
  const ports = new PortRegistry();
  const inProcess = Object.freeze(services.map((s) => s.name));
  let state: LifecycleState = "starting";
  let failedName = processName;
  let deadline: NodeJS.Timeout | undefined;
  let lastSignal: NodeJS.Signals | undefined;
  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => (finish = resolve));

  let exiting = false;
  const exit = (code: number) => {
    if (exiting) return;
    exiting = true;
    clearTimeout(deadline);
    // The last lines (a stop's) are still being written: wait for them, at most a second.
    void Promise.race([
      Promise.all(started.map((s) => new Promise<void>((resolve) => s.log.flush(() => resolve())))),
      new Promise((resolve) => setTimeout(resolve, FLUSH_WAIT_MS).unref()),
    ]).then(() => {
      proc.exit(code);
      finish(code);
    });
  };
  const armDeadline = () => {
    deadline ??= setTimeout(() => dispatch({ type: "deadline" }), deadlineMs);
  };
  const stopAll = async () => {
    for (const s of [...started].reverse()) {
      s.log.info({ signal: lastSignal }, "shutting down");
      await s.running.stop();
    }
  };
  const dispatch = (event: LifecycleEvent) => {
    const name = event.type === "start-failed" ? failedName : processName;
    const { next, action } = decide(state, event, name, deadlineMs);
    state = next;
    switch (action.do) {
      case "nothing":
        return;
      case "arm-deadline":
        return armDeadline();
      case "stop":
        armDeadline();
        stopAll().then(
          () => dispatch({ type: "stopped" }),
          (error: unknown) => dispatch({ type: "stop-failed", error }),
        );
        return;
      case "abandon-start":
        proc.stderr(action.message);
        armDeadline();
        stopAll().then(
          () => exit(action.code),
          () => exit(action.code),
        );
        return;
      case "exit":
        if (action.message) proc.stderr(action.message);
        return exit(action.code);
    }
  };

  for (const signal of ["SIGINT", "SIGTERM"] as const)
    proc.onSignal(signal, () => {
      lastSignal = signal;
      dispatch({ type: "signal", signal });
    });

  void (async () => {
    try {
      const config = (opts.loadConfig ?? loadConfig)();
      // One root logger per process (a pretty one is a worker thread); each service logs through a child with its name.
      const root =
        services.length === 1
          ? undefined
          : (opts.createLogger ?? createLogger)(undefined, config.logLevel, config.logFormat);
      for (const service of services) {
        failedName = service.name;
        const log = root
          ? root.child({ name: service.name })
          : (opts.createLogger ?? createLogger)(service.name, config.logLevel, config.logFormat);
        const fail = (reason: string) => dispatch({ type: "failed", reason: `${service.name}: ${reason}` });
        log.info({ release: RELEASE, mode: config.mode }, `${service.name} ${RELEASE} starting`);
        const running = await service.start({ config, log, ports, fail, inProcess });
        started.push({ service, log, running });
      }
    } catch (error) {
      dispatch({ type: "start-failed", error });
      return;
    }
    dispatch({ type: "started" });
  })();
  return finished;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
