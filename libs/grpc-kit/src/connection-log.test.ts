import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Logger } from "@cpm/core";
import { ConnectionLog } from "./connection-log.ts";

/** A logger that records "level: message" lines. */
function recorder() {
  const lines: string[] = [];
  const at =
    (level: string) =>
    (...args: unknown[]) =>
      void lines.push(`${level}: ${String(typeof args[0] === "string" ? args[0] : args[1])}`);
  const log = { info: at("info"), warn: at("warn"), debug: at("debug") } as unknown as Logger;
  return { log, lines };
}

const WHAT = "config-service at 127.0.0.1:50054";
const WARNING = "config watch interrupted; reconnecting";

describe("ConnectionLog", () => {
  it("at start, says once that it waits and once that the dependency is up, however many attempts fail", () => {
    const r = recorder();
    const c = new ConnectionLog(r.log, WHAT, WARNING);
    for (let i = 0; i < 30; i++) c.failed("14 UNAVAILABLE: No connection established");
    c.connected();
    const shown = r.lines.filter((l) => !l.startsWith("debug"));
    assert.deepEqual(shown, [`info: waiting for ${WHAT}`, `info: ${WHAT} is up`]);
    assert.equal(r.lines.length, 32, "each attempt is a debug line too");
  });

  it("need not announce the wait (another part of the service does), but still warns after an outage", () => {
    const r = recorder();
    const c = new ConnectionLog(r.log, WHAT, "cannot fetch snapshot", false);
    for (let i = 0; i < 5; i++) c.failed("14 UNAVAILABLE");
    c.connected();
    c.failed("14 UNAVAILABLE");
    c.failed("14 UNAVAILABLE");
    assert.deepEqual(
      r.lines.filter((l) => !l.startsWith("debug")),
      ["warn: cannot fetch snapshot"],
    );
  });

  it("a dependency there at once is not announced", () => {
    const r = recorder();
    new ConnectionLog(r.log, WHAT, WARNING).connected();
    assert.deepEqual(r.lines, []);
  });

  it("after being connected: one warning per outage, and a line when it is back", () => {
    const r = recorder();
    const c = new ConnectionLog(r.log, WHAT, WARNING);
    c.connected();
    for (let outage = 0; outage < 2; outage++) {
      for (let i = 0; i < 10; i++) c.failed("14 UNAVAILABLE");
      c.connected();
    }
    assert.deepEqual(
      r.lines.filter((l) => !l.startsWith("debug")),
      [`warn: ${WARNING}`, `info: ${WHAT} is back`, `warn: ${WARNING}`, `info: ${WHAT} is back`],
    );
  });
});
