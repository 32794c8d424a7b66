import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { afterFailure, signInAllowed, SignInLimiter, type FailureRecord, type SignInLimit } from "./sign-in-limit.ts";

const LIMIT: SignInLimit = { maxFailures: 3, windowMs: 1000, lockMs: 500 };
const rec = (failures: number, first: number, last: number): FailureRecord => ({ failures, first, last });

describe("signInAllowed", () => {
  const cases: [string, FailureRecord | undefined, number, { ok: true } | { ok: false; retryAfterMs: number }][] = [
    ["no failure yet", undefined, 0, { ok: true }],
    ["below the limit", rec(2, 0, 100), 150, { ok: true }],
    ["at the limit, just after", rec(3, 0, 100), 150, { ok: false, retryAfterMs: 450 }],
    ["at the limit, lock almost over", rec(3, 0, 100), 599, { ok: false, retryAfterMs: 1 }],
    ["at the limit, lock over", rec(3, 0, 100), 600, { ok: true }],
    ["at the limit past the window but still locked", rec(3, 0, 900), 1200, { ok: false, retryAfterMs: 200 }],
    ["below the limit, window over", rec(2, 0, 900), 1000, { ok: true }],
  ];
  for (const [name, r, now, want] of cases) it(name, () => assert.deepEqual(signInAllowed(r, now, LIMIT), want));
});

describe("afterFailure", () => {
  const cases: [string, FailureRecord | undefined, number, FailureRecord][] = [
    ["first failure", undefined, 10, rec(1, 10, 10)],
    ["counts within the window", rec(1, 10, 10), 500, rec(2, 10, 500)],
    ["reaches the limit", rec(2, 10, 500), 900, rec(3, 10, 900)],
    ["window over: starts again", rec(2, 10, 500), 1010, rec(1, 1010, 1010)],
    ["lock over: starts again", rec(3, 0, 100), 600, rec(1, 600, 600)],
  ];
  for (const [name, r, now, want] of cases) it(name, () => assert.deepEqual(afterFailure(r, now, LIMIT), want));
});

describe("SignInLimiter", () => {
  it("locks a key after the limit, not the others, and a success forgets it", () => {
    const l = new SignInLimiter(LIMIT);
    for (let t = 0; t < 3; t++) {
      assert.deepEqual(l.check("a", t), { ok: true });
      l.fail("a", t);
    }
    assert.deepEqual(l.check("a", 10), { ok: false, retryAfterMs: 492 });
    assert.deepEqual(l.check("b", 10), { ok: true });
    l.succeed("a");
    assert.deepEqual(l.check("a", 11), { ok: true });
  });

  it("keeps at most maxKeys records", () => {
    const l = new SignInLimiter(LIMIT, 2);
    l.fail("a", 0);
    l.fail("a", 0);
    l.fail("a", 0);
    l.fail("b", 0);
    l.fail("c", 0);
    // "a" was the oldest and went first, so it is no longer locked.
    assert.deepEqual(l.check("a", 1), { ok: true });
  });
});
