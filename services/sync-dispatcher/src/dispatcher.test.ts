import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger, type SlaveTarget } from "@cpm/core";
import type { ConfigPort } from "@cpm/grpc-kit";
import { Dispatcher, PUSH_BATCH, writePieceBytes } from "./dispatcher.ts";

const OPTS = {
  caFile: undefined,
  maxMessageBytes: 1 << 20,
  ackTimeoutMs: 1_000,
  connectTimeoutMs: 1_000,
  keepalive: { timeMs: 10_000, timeoutMs: 5_000 },
};

/** Slaves on ports nobody dials: the links are made, never run. */
function targets(n: number): SlaveTarget[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `s${i}`,
    url: `http://127.0.0.1:${10_000 + i}`,
    address: `127.0.0.1:${10_000 + i}`,
    tls: false,
    token: "t".repeat(20),
  }));
}

describe("writePieceBytes: how much of a snapshot a link writes at a time", () => {
  const cases: [number, number][] = [
    [0, Infinity],
    [1, Infinity],
    [PUSH_BATCH, Infinity],
    [PUSH_BATCH + 1, 16 * 1024],
    [1000, 16 * 1024],
  ];
  for (const [links, want] of cases) it(`${links} slaves -> ${want}`, () => assert.equal(writePieceBytes(links), want));
});

describe("Dispatcher: every link is pushed to, a batch per turn of the event loop", () => {
  for (const slaves of [1, PUSH_BATCH, PUSH_BATCH + 1, 3 * PUSH_BATCH + 5]) {
    it(`${slaves} slaves: a full sync reaches every one, at most ${PUSH_BATCH} in the first turn`, async () => {
      const d = new Dispatcher({} as ConfigPort, targets(slaves), OPTS, 0, createLogger("test", "silent"));
      const forced: string[] = [];
      for (const l of d.links) l.forceSync = () => void forced.push(l.target.name);
      d.triggerFullSync();
      assert.equal(forced.length, Math.min(slaves, PUSH_BATCH), "the first batch, in the caller's turn");
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(
        forced,
        d.links.map((l) => l.target.name),
        "every link once, in order",
      );
      d.stop();
    });
  }

  it("a full sync of one slave by name reaches that one only", () => {
    const d = new Dispatcher({} as ConfigPort, targets(3), OPTS, 0, createLogger("test", "silent"));
    const forced: string[] = [];
    for (const l of d.links) l.forceSync = () => void forced.push(l.target.name);
    d.triggerFullSync("s1");
    assert.deepEqual(forced, ["s1"]);
    d.stop();
  });
});
