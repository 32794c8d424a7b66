import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { loadConfig } from "@cpm/core";
import { describeStreamError, silentLinkBoundMs } from "./link-loss.ts";

const cfg = loadConfig({});
const DEFAULTS = { timeMs: cfg.syncKeepaliveTimeMs, timeoutMs: cfg.syncKeepaliveTimeoutMs };
const err = (code: number, details: string, keepalive?: boolean) =>
  Object.assign(new Error(details), { code, details, keepalive });
const KEEPALIVE = /^no keepalive answer from the slave for 2 s; the link is silent/;

describe("describeStreamError", () => {
  const cases: Array<[string, Error & { code: number; details: string; keepalive?: boolean }, string | RegExp]> = [
    [
      "a connection its keepalive ended: named so",
      err(status.UNAVAILABLE, "Connection dropped: no keepalive answer", true),
      KEEPALIVE,
    ],
    ["a connection the slave closed", err(status.UNAVAILABLE, "Connection dropped"), "UNAVAILABLE: Connection dropped"],
    ["a reset", err(status.UNAVAILABLE, "read ECONNRESET"), "UNAVAILABLE: read ECONNRESET"],
    [
      "the token refused",
      err(status.UNAUTHENTICATED, "bad token"),
      "UNAUTHENTICATED: the slave refused the sync token (bad token)",
    ],
    [
      "a snapshot too large for the slave",
      err(status.RESOURCE_EXHAUSTED, "too big"),
      /^RESOURCE_EXHAUSTED: .*raise CPM_SYNC_MAX_MESSAGE_BYTES on the slave$/,
    ],
  ];
  for (const [name, e, want] of cases)
    it(name, () => {
      const got = describeStreamError(e, DEFAULTS);
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
