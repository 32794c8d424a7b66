import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decideSend, type LinkView } from "./send-decision.ts";

const v5 = { version: 5, contentSha256: "c5" };
const idle = (over: Partial<LinkView> = {}): LinkView => ({
  connected: true,
  inFlight: false,
  want: v5,
  acked: undefined,
  refused: undefined,
  tooLarge: undefined,
  incompatible: undefined,
  retry: undefined,
  force: false,
  now: 1_000,
  ...over,
});

describe("decideSend: what a slave link sends, from its state alone", () => {
  it("sends a state the slave has not answered", () => {
    assert.deepEqual(decideSend(idle()), { send: true });
  });

  it("sends nothing while disconnected, while a snapshot is in flight, or before the first commit", () => {
    assert.deepEqual(decideSend(idle({ connected: false })), { send: false, reason: "not-connected" });
    assert.deepEqual(decideSend(idle({ inFlight: true, force: true })), { send: false, reason: "in-flight" });
    assert.deepEqual(decideSend(idle({ want: { version: 0, contentSha256: "" } })), {
      send: false,
      reason: "nothing-committed",
    });
  });

  it("does not resend an acked state unless forced", () => {
    assert.deepEqual(decideSend(idle({ acked: v5 })), { send: false, reason: "up-to-date" });
    assert.deepEqual(decideSend(idle({ acked: v5, force: true })), { send: true });
    assert.deepEqual(
      decideSend(idle({ acked: { version: 5, contentSha256: "other" } })),
      { send: true },
      "same version, new content (master restored)",
    );
  });

  it("never resends a non-retryable NACKed state until it changes or a push is forced", () => {
    assert.deepEqual(decideSend(idle({ refused: v5 })), { send: false, reason: "refused" });
    assert.deepEqual(
      decideSend(idle({ refused: v5, now: 10_000_000 })),
      { send: false, reason: "refused" },
      "time alone never resends it",
    );
    assert.deepEqual(decideSend(idle({ refused: v5, want: { version: 6, contentSha256: "c6" } })), { send: true });
    assert.deepEqual(decideSend(idle({ refused: v5, force: true })), { send: true });
  });

  it("resends a retryable NACKed state only once its backoff has passed", () => {
    const retry = { ...v5, notBefore: 1_750 };
    assert.deepEqual(decideSend(idle({ retry })), { send: false, reason: "backoff", retryInMs: 750 });
    assert.deepEqual(decideSend(idle({ retry, now: 1_749 })), { send: false, reason: "backoff", retryInMs: 1 });
    assert.deepEqual(decideSend(idle({ retry, now: 1_750 })), { send: true });
    assert.deepEqual(
      decideSend(idle({ retry, want: { version: 6, contentSha256: "c6" } })),
      { send: true },
      "a new state is not held back",
    );
  });

  it("never sends a state known to be too large, even when forced", () => {
    assert.deepEqual(decideSend(idle({ tooLarge: v5, force: true })), { send: false, reason: "too-large" });
    assert.deepEqual(decideSend(idle({ tooLarge: v5, want: { version: 6, contentSha256: "c6" } })), { send: true });
  });

  it("never sends a state the slave cannot serve, even when forced, until it changes", () => {
    assert.deepEqual(decideSend(idle({ incompatible: v5 })), { send: false, reason: "incompatible" });
    assert.deepEqual(decideSend(idle({ incompatible: v5, force: true })), { send: false, reason: "incompatible" });
    assert.deepEqual(decideSend(idle({ incompatible: v5, want: { version: 6, contentSha256: "c6" } })), {
      send: true,
    });
  });
});
