import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { loadConfig } from "@cpm/core";
import { describeStreamError, silentLinkBoundMs, type Silence } from "./link-loss.ts";

const cfg = loadConfig({});
const DEFAULTS = { timeMs: cfg.syncKeepaliveTimeMs, timeoutMs: cfg.syncKeepaliveTimeoutMs };
const err = (code: number, details: string) => Object.assign(new Error(details), { code, details });
const KEEPALIVE = /^no keepalive answer from the slave for 2 s; the link is silent/;

describe("describeStreamError", () => {
  const cases: Array<[string, Error & { code: number; details: string }, Silence | undefined, string | RegExp]> = [
    [
      "a drop after a ping went unanswered for the timeout: keepalive",
      err(status.UNAVAILABLE, "Connection dropped"),
      { silentForMs: 5_000, unansweredWrite: true },
      KEEPALIVE,
    ],
    [
      "a drop after a long silence with nothing written since the last answer: the slave closed it",
      err(status.UNAVAILABLE, "Connection dropped"),
      { silentForMs: 9_000, unansweredWrite: false },
      "UNAVAILABLE: Connection dropped",
    ],
    [
      "a drop right after something was read: not keepalive",
      err(status.UNAVAILABLE, "Connection dropped"),
      { silentForMs: 200, unansweredWrite: true },
      "UNAVAILABLE: Connection dropped",
    ],
    [
      "a reset is named as grpc-js reports it",
      err(status.UNAVAILABLE, "read ECONNRESET"),
      { silentForMs: 6_000, unansweredWrite: true },
      "UNAVAILABLE: read ECONNRESET",
    ],
    [
      "no evidence: not keepalive",
      err(status.UNAVAILABLE, "Connection dropped"),
      undefined,
      "UNAVAILABLE: Connection dropped",
    ],
    [
      "the token refused",
      err(status.UNAUTHENTICATED, "bad token"),
      undefined,
      "UNAUTHENTICATED: the slave refused the sync token (bad token)",
    ],
    [
      "a snapshot too large for the slave",
      err(status.RESOURCE_EXHAUSTED, "too big"),
      undefined,
      /^RESOURCE_EXHAUSTED: .*raise CPM_SYNC_MAX_MESSAGE_BYTES on the slave$/,
    ],
  ];
  for (const [name, e, silence, want] of cases)
    it(name, () => {
      const got = describeStreamError(e, silence, DEFAULTS);
      if (typeof want === "string") assert.equal(got, want);
      else assert.match(got, want);
    });
});

describe("the master's bound on a silent link", () => {
  it("is within 20 s with the defaults", () => {
    const bound = silentLinkBoundMs(DEFAULTS);
    assert.ok(bound <= 20_000, `a silent link is noticed after up to ${bound} ms`);
  });
});
