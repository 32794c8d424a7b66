import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { constants as http2 } from "node:http2";
import { loadConfig } from "@cpm/core";
import { describeMasterLoss, silentLinkBoundMs, type StreamEnd } from "./master-link.ts";

const cfg = loadConfig({});
const DEFAULTS = { timeMs: cfg.receiverKeepaliveTimeMs, timeoutMs: cfg.receiverKeepaliveTimeoutMs };

describe("describeMasterLoss", () => {
  const cases: Array<[string, StreamEnd, string | RegExp]> = [
    [
      "a session this receiver dropped (NO_ERROR on an open stream): keepalive",
      { how: "cancelled", rstCode: http2.NGHTTP2_NO_ERROR },
      /^no keepalive answer from the master for 30 s; /,
    ],
    [
      "the master cancelled or its connection closed",
      { how: "cancelled", rstCode: http2.NGHTTP2_CANCEL },
      "the master closed the stream",
    ],
    [
      "the connection was reset",
      { how: "cancelled", rstCode: http2.NGHTTP2_INTERNAL_ERROR },
      "the connection to the master was reset",
    ],
    [
      "an unreadable RST code is not called keepalive",
      { how: "cancelled", rstCode: undefined },
      "the master closed the stream",
    ],
    ["the master half-closed", { how: "ended" }, "the master closed the stream"],
    ["this receiver stops", { how: "shutdown" }, "this receiver is shutting down"],
  ];
  for (const [name, end, want] of cases)
    it(name, () => {
      const got = describeMasterLoss(end, DEFAULTS);
      if (typeof want === "string") assert.equal(got, want);
      else assert.match(got, want);
    });

  it("names the configured bound", () => {
    assert.match(
      describeMasterLoss({ how: "cancelled", rstCode: 0 }, { timeMs: 300, timeoutMs: 300 }),
      /^no keepalive answer from the master for 0\.6 s/,
    );
  });
});

describe("the slave's bound on a silent link", () => {
  it("is within 40 s with the defaults", () => {
    const bound = silentLinkBoundMs(DEFAULTS);
    assert.ok(bound <= 40_000, `a silent link is noticed after up to ${bound} ms`);
  });
});
