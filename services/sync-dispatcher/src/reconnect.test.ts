import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { isConnectionRefused, nextReconnect, RECONNECT_MAX_MS, REFUSED_RETRY_MS } from "./reconnect.ts";

describe("reconnect: the wait before the next stream attempt", () => {
  it("is a short fixed interval while the slave refuses connections, however long it was down", () => {
    let failures = 0;
    for (let i = 0; i < 50; i++) {
      const next = nextReconnect("refused", failures);
      assert.equal(next.delayMs, REFUSED_RETRY_MS);
      assert.ok(next.delayMs <= 250, `${next.delayMs} ms between tries of a refused connection`);
      failures = next.failures;
    }
  });

  it("keeps the failure count across refusals, and backs off exponentially, bounded at a second, after other failures", () => {
    let failures = 0;
    const delays: number[] = [];
    for (let i = 0; i < 20; i++) {
      const next = nextReconnect("failed", failures);
      delays.push(next.delayMs);
      failures = next.failures;
    }
    assert.equal(failures, 20);
    assert.ok(
      delays.every((d) => d >= 250 && d <= RECONNECT_MAX_MS),
      `delays ${delays.join(", ")}`,
    );
    assert.equal(nextReconnect("refused", failures).failures, 20, "a refusal neither grows nor resets the count");
    assert.equal(nextReconnect("answered", failures).failures, 0, "an answered stream resets it");
    assert.ok(nextReconnect("answered", failures).delayMs <= 250);
  });

  it("tries again at once after an attempt that timed out (it already waited its deadline)", () => {
    assert.deepEqual(nextReconnect("timeout", 7), { delayMs: 0, failures: 7 });
  });

  it("tells a refused connection from other stream errors", () => {
    const refused = {
      code: status.UNAVAILABLE,
      details: "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:4443",
      message: "14 UNAVAILABLE: ...",
    };
    assert.equal(isConnectionRefused(refused), true);
    assert.equal(
      isConnectionRefused({
        code: status.UNAVAILABLE,
        details: "Connection dropped",
        message: "14 UNAVAILABLE: Connection dropped",
      }),
      false,
    );
    assert.equal(
      isConnectionRefused({
        code: status.UNAVAILABLE,
        details: "No connection established. Last error: Error: self-signed certificate",
        message: "",
      }),
      false,
    );
    assert.equal(
      isConnectionRefused({ code: status.UNAUTHENTICATED, details: "ECONNREFUSED", message: "" }),
      false,
      "only UNAVAILABLE",
    );
    assert.equal(isConnectionRefused(undefined), false);
  });
});
