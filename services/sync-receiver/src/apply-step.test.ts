import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NackCode } from "@cpm/proto";
import { status as Status } from "@grpc/grpc-js";
import { applyStep, type ApplyAction, type ApplyEvent, type ApplyState, type AssessedFacts } from "./apply-step.ts";

const M = "master-1";
/** The slave's database on version 5 of master-1, Caddy in sync on it. */
const base: AssessedFacts = {
  snapshot: { version: 6, masterInstanceId: M, contentSha256: "c6" },
  database: { version: 5, masterInstanceId: M, contentSha256: "c5" },
  rendered: { inSync: true, appliedVersion: 5, configSha256: "k5" },
  check: { valid: true },
};
const facts = (over: Partial<AssessedFacts>): AssessedFacts => ({ ...base, ...over });
const snapshot = (version: number, contentSha256 = `c${version}`, masterInstanceId = M) => ({
  version,
  masterInstanceId,
  contentSha256,
});
const nack = (code: NackCode, reason: string | RegExp, retryable: boolean, release = false) => ({
  code,
  reason,
  retryable,
  release,
});
const failure = (code: number | undefined, reason: string) => ({ code, reason });

type Want = ApplyState["at"] | "done";
type Row = [string, ApplyState, ApplyEvent, Want, ApplyAction["do"], ReturnType<typeof nack>?];

const preloading: ApplyState = { at: "preloading", facts: base };
const committing: ApplyState = { at: "committing", facts: base, configSha256: "k6" };
const confirming: ApplyState = { at: "confirming", facts: base, configSha256: "k6" };

describe("applyStep: the slave's apply, state x event -> action", () => {
  const rows: Row[] = [
    [
      "no snapshot: refused, not retryable",
      { at: "received" },
      { type: "missing" },
      "done",
      "nack",
      nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, "snapshot: is required", false),
    ],
    [
      "the database cannot be read: retryable",
      { at: "received" },
      { type: "assessed", facts: { ...base, database: { unavailable: "connect ECONNREFUSED" } } },
      "done",
      "nack",
      nack(NackCode.NACK_CODE_UNAVAILABLE, "slave's config-service unavailable: connect ECONNREFUSED", true),
    ],
    [
      "what already runs: ACK at once, nothing checked or loaded",
      { at: "received" },
      { type: "assessed", facts: facts({ snapshot: snapshot(5), check: "unchecked" }) },
      "done",
      "ack",
    ],
    [
      "same version and content, but Caddy not in sync on it: checked first",
      { at: "received" },
      {
        type: "assessed",
        facts: facts({
          snapshot: snapshot(5),
          rendered: { inSync: false, appliedVersion: 5, configSha256: "k5" },
          check: "unchecked",
        }),
      },
      "checking",
      "check",
    ],
    [
      "same version and content from another master: checked first",
      { at: "received" },
      { type: "assessed", facts: facts({ snapshot: snapshot(5, "c5", "master-2"), check: "unchecked" }) },
      "checking",
      "check",
    ],
    [
      "a snapshot that fails its checks: refused, nothing loaded",
      { at: "received" },
      {
        type: "assessed",
        facts: facts({ check: { valid: false, reason: "snapshot.content_sha256: does not match" } }),
      },
      "done",
      "nack",
      nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, "snapshot.content_sha256: does not match", false),
    ],
    [
      "the check asked for fails",
      { at: "checking", facts: facts({ snapshot: snapshot(5), check: "unchecked" }) },
      { type: "checked", check: { valid: false, reason: "snapshot.version: bad" } },
      "done",
      "nack",
      nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, "snapshot.version: bad", false),
    ],
    [
      "the check asked for passes: preload",
      { at: "checking", facts: facts({ snapshot: snapshot(5, "c5b"), check: "unchecked" }) },
      { type: "checked", check: { valid: true } },
      "preloading",
      "preload",
    ],
    [
      "older than the database, same master: stale",
      { at: "received" },
      { type: "assessed", facts: facts({ snapshot: snapshot(4) }) },
      "done",
      "nack",
      nack(NackCode.NACK_CODE_STALE_VERSION, "snapshot version 4 is older than the applied version 5", false),
    ],
    [
      "older than the database from another master (a rebuilt master): preload",
      { at: "received" },
      { type: "assessed", facts: facts({ snapshot: snapshot(1, "cx", "master-2") }) },
      "preloading",
      "preload",
    ],
    [
      "older than a preload Caddy runs ahead of the database: stale",
      { at: "received" },
      {
        type: "assessed",
        facts: facts({ snapshot: snapshot(6), rendered: { inSync: false, appliedVersion: 7, configSha256: "k7" } }),
      },
      "done",
      "nack",
      nack(
        NackCode.NACK_CODE_STALE_VERSION,
        "snapshot version 6 is older than the preloaded version 7 Caddy runs",
        false,
      ),
    ],
    [
      "the preload's own version again (the master's resend): preload",
      { at: "received" },
      {
        type: "assessed",
        facts: facts({ snapshot: snapshot(7), rendered: { inSync: false, appliedVersion: 7, configSha256: "k7" } }),
      },
      "preloading",
      "preload",
    ],
    [
      "the renderer did not answer: preload anyway (it fails by itself)",
      { at: "received" },
      { type: "assessed", facts: facts({ rendered: undefined }) },
      "preloading",
      "preload",
    ],
    ["a newer valid snapshot: preload", { at: "received" }, { type: "assessed", facts: base }, "preloading", "preload"],
    ["preloaded: commit", preloading, { type: "preloaded", configSha256: "k6" }, "committing", "commit"],
    [
      "Caddy refuses it: not retryable, nothing written",
      preloading,
      { type: "preload-failed", failure: failure(Status.FAILED_PRECONDITION, "Caddy refused the config (HTTP 400)") },
      "done",
      "nack",
      nack(NackCode.NACK_CODE_CADDY_REJECTED, "Caddy refused the config (HTTP 400)", false),
    ],
    [
      "the renderer refuses the snapshot",
      preloading,
      { type: "preload-failed", failure: failure(Status.INVALID_ARGUMENT, "snapshot: is required") },
      "done",
      "nack",
      nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, "snapshot: is required", false),
    ],
    [
      "the renderer is down: retryable",
      preloading,
      { type: "preload-failed", failure: failure(Status.UNAVAILABLE, "No connection established") },
      "done",
      "nack",
      nack(NackCode.NACK_CODE_UNAVAILABLE, "renderer: No connection established", true),
    ],
    [
      "the renderer fails otherwise: retryable, internal",
      preloading,
      { type: "preload-failed", failure: failure(undefined, "boom") },
      "done",
      "nack",
      nack(NackCode.NACK_CODE_INTERNAL, "renderer: boom", true),
    ],
    ["committed: confirm", committing, { type: "committed" }, "confirming", "confirm"],
    [
      "the commit is refused as stale: release the preload",
      committing,
      { type: "commit-failed", failure: failure(Status.FAILED_PRECONDITION, "version 6 is older than 8") },
      "done",
      "nack",
      nack(NackCode.NACK_CODE_STALE_VERSION, "version 6 is older than 8", false, true),
    ],
    [
      "the commit is refused as invalid: release the preload",
      committing,
      { type: "commit-failed", failure: failure(Status.INVALID_ARGUMENT, "snapshot.x: bad") },
      "done",
      "nack",
      nack(NackCode.NACK_CODE_INVALID_SNAPSHOT, "snapshot.x: bad", false, true),
    ],
    [
      "config-service is down at the commit: keep the preload, retryable",
      committing,
      { type: "commit-failed", failure: failure(Status.DEADLINE_EXCEEDED, "Deadline exceeded") },
      "done",
      "nack",
      nack(NackCode.NACK_CODE_UNAVAILABLE, "config-service: Deadline exceeded", true),
    ],
    ["Caddy confirmed on the version: ACK", confirming, { type: "confirmed", configSha256: "k6" }, "done", "ack"],
    [
      "no confirmation in time: retryable",
      confirming,
      { type: "not-confirmed", reason: "renderer did not report the expected state within 60000 ms" },
      "done",
      "nack",
      nack(
        NackCode.NACK_CODE_UNAVAILABLE,
        "committed, but Caddy did not confirm: renderer did not report the expected state within 60000 ms",
        true,
      ),
    ],
    ["an event out of turn is a bug, named", preloading, { type: "committed" }, "preloading", "invalid"],
  ];
  for (const [what, state, event, next, action, want] of rows)
    it(what, () => {
      const step = applyStep(state, event);
      assert.equal(step.next.at, next);
      assert.equal(step.action.do, action);
      if (want && step.action.do === "nack") {
        const { code, reason, retryable, release } = step.action;
        assert.deepEqual(
          { code, retryable, release },
          { code: want.code, retryable: want.retryable, release: want.release },
        );
        if (typeof want.reason === "string") assert.equal(reason, want.reason);
        else assert.match(reason, want.reason);
      }
    });

  it("an ACK carries the version and the config hash Caddy confirmed (unchanged: the renderer's)", () => {
    assert.deepEqual(applyStep(confirming, { type: "confirmed", configSha256: "k6" }).action, {
      do: "ack",
      version: 6,
      configSha256: "k6",
      unchanged: false,
    });
    assert.deepEqual(
      applyStep({ at: "received" }, { type: "assessed", facts: facts({ snapshot: snapshot(5) }) }).action,
      { do: "ack", version: 5, configSha256: "k5", unchanged: true },
    );
  });

  it("the confirmation waited for is the preload's config hash", () => {
    assert.deepEqual(applyStep(committing, { type: "committed" }).action, {
      do: "confirm",
      version: 6,
      configSha256: "k6",
    });
  });
});
