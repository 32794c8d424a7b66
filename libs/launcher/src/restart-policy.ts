import { CONFIG_ERROR_EXIT_CODE } from "@cpm/core/env";

/** One life of a supervised process: when it started and died, and how. */
export interface Run {
  startedAt: number;
  endedAt: number;
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  /** The signal's name (NodeJS.Signals, or any name a child reports). */
  signal: string | null;
}

export interface RestartPolicy {
  /** A run shorter than this died during start-up. */
  bootMs: number;
  /** A run at least this long was healthy: the backoff starts over after it. */
  healthyMs: number;
  /** Start-up deaths in a row after which the instance stops. */
  maxBootDeaths: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RESTART_POLICY: Readonly<RestartPolicy> = Object.freeze({
  bootMs: 5_000,
  healthyMs: 30_000,
  maxBootDeaths: 5,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
});

export type RestartDecision = { restart: true; delayMs: number } | { restart: false; reason: string };

/** "code 1", "signal SIGKILL": how a run ended, for messages. */
export function describeExit(run: Pick<Run, "code" | "signal">): string {
  return run.code === null ? `signal ${run.signal ?? "unknown"}` : `code ${run.code}`;
}

/**
 * What to do after a supervised process died, from its runs so far (oldest first, the last
 * one just ended): stop at once on a configuration error; stop after `maxBootDeaths`
 * start-up deaths in a row; otherwise restart after a delay that doubles with each short
 * run in a row and starts over after a healthy one.
 */
export function decideRestart(runs: readonly Run[], policy: RestartPolicy = DEFAULT_RESTART_POLICY): RestartDecision {
  const last = runs.at(-1);
  if (!last) throw new Error("decideRestart needs the run that just ended");
  if (last.code === CONFIG_ERROR_EXIT_CODE)
    return { restart: false, reason: `configuration error (exit code ${CONFIG_ERROR_EXIT_CODE})` };
  const duration = (r: Run) => r.endedAt - r.startedAt;
  const trailing = (short: (r: Run) => boolean) => {
    let n = 0;
    for (let i = runs.length - 1; i >= 0 && short(runs[i]!); i--) n++;
    return n;
  };
  const bootDeaths = trailing((r) => duration(r) < policy.bootMs);
  if (bootDeaths >= policy.maxBootDeaths) {
    return {
      restart: false,
      reason: `died during start-up ${bootDeaths} times in a row (last: ${describeExit(last)})`,
    };
  }
  // Deaths in a row: the short runs at the end, plus the death of the healthy run before them.
  const short = trailing((r) => duration(r) < policy.healthyMs);
  const deaths = short + (short < runs.length ? 1 : 0);
  return { restart: true, delayMs: Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(deaths - 1, 20)) };
}
