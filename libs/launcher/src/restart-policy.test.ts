import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CONFIG_ERROR_EXIT_CODE } from "@cpm/core";
import { decideRestart, DEFAULT_RESTART_POLICY, describeExit, type Run } from "./restart-policy.ts";

const S = 1_000;
const MIN = 60 * S;

/** Runs back to back from t=0, each `[seconds alive, exit code or signal]`, restarted 1 s after each death. */
function runs(...lives: [number, number | NodeJS.Signals][]): Run[] {
  let t = 0;
  return lives.map(([alive, how]) => {
    const run: Run = {
      startedAt: t,
      endedAt: t + alive * S,
      code: typeof how === "number" ? how : null,
      signal: typeof how === "string" ? how : null,
    };
    t = run.endedAt + S;
    return run;
  });
}

const delay = (r: Run[]) => {
  const d = decideRestart(r);
  assert.ok(d.restart, `expected a restart, got ${JSON.stringify(d)}`);
  return d.delayMs;
};

describe("decideRestart", () => {
  test("a first death after a healthy run restarts after the base delay", () => {
    assert.equal(delay(runs([10 * 60, 1])), DEFAULT_RESTART_POLICY.baseDelayMs);
  });

  test("the delay doubles with each short run in a row, up to the maximum", () => {
    const lives: [number, number][] = [];
    const seen: number[] = [];
    for (let i = 0; i < 10; i++) {
      lives.push([10, 1]);
      seen.push(delay(runs(...lives)));
    }
    assert.deepEqual(seen, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
  });

  test("the backoff starts over after a healthy run, however many crashes came before", () => {
    const crashes: [number, number][] = Array.from({ length: 8 }, () => [10, 1]);
    assert.equal(delay(runs(...crashes)), 30_000);
    assert.equal(
      delay(runs(...crashes, [(5 * MIN) / S, 1])),
      500,
      "healthy for minutes, then died: back at the base delay",
    );
    assert.equal(delay(runs(...crashes, [(5 * MIN) / S, 1], [10, 1])), 1000);
  });

  test("a death during start-up is restarted, not fatal, up to the bounded number in a row", () => {
    const boot: [number, number | NodeJS.Signals][] = [];
    for (let i = 1; i < DEFAULT_RESTART_POLICY.maxBootDeaths; i++) {
      boot.push([1, i % 2 ? "SIGKILL" : 1]);
      assert.ok(decideRestart(runs(...boot)).restart, `start-up death ${i} is restarted`);
    }
    boot.push([1, "SIGKILL"]);
    assert.deepEqual(decideRestart(runs(...boot)), {
      restart: false,
      reason: "died during start-up 5 times in a row (last: signal SIGKILL)",
    });
  });

  test("start-up deaths separated by a longer run do not add up", () => {
    const d = decideRestart(runs([1, 1], [1, 1], [1, 1], [1, 1], [20, 1], [1, 1]));
    assert.ok(d.restart);
  });

  test("a configuration error stops at once, at start-up or later", () => {
    const stop = { restart: false, reason: `configuration error (exit code ${CONFIG_ERROR_EXIT_CODE})` };
    assert.deepEqual(decideRestart(runs([0.2, CONFIG_ERROR_EXIT_CODE])), stop);
    assert.deepEqual(decideRestart(runs([10 * 60, 1], [0.2, CONFIG_ERROR_EXIT_CODE])), stop);
  });

  test("an exit that is not an error (code 0) is restarted as well", () => {
    assert.equal(delay(runs([10 * 60, 0])), 500);
  });

  test("describeExit names the code or the signal", () => {
    assert.equal(describeExit({ code: 1, signal: null }), "code 1");
    assert.equal(describeExit({ code: null, signal: "SIGKILL" }), "signal SIGKILL");
  });

  test("needs the run that ended", () => {
    assert.throws(() => decideRestart([]), /needs the run/);
  });
});
