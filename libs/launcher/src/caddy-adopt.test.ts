import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { decideCaddyStart, isOurCaddy, pidAlive, readPid, type CaddyFacts, type CaddyStart } from "./caddy-adopt.ts";

describe("decideCaddyStart: what a starting launcher does with a Caddy it finds", () => {
  const table: [CaddyFacts, CaddyStart][] = [
    // Ours and answering: adopt, no second Caddy on ports it holds.
    [{ pidAlive: true, ours: true, adminAnswers: true }, { action: "adopt" }],
    // Ours but its admin API is silent (hung, or still starting): stop it by signal, start anew.
    [
      { pidAlive: true, ours: true, adminAnswers: false },
      { action: "stop-then-start", via: "signal" },
    ],
    // The pid was reused by another program, and a Caddy holds this instance's admin address.
    [
      { pidAlive: true, ours: false, adminAnswers: true },
      { action: "stop-then-start", via: "admin" },
    ],
    [{ pidAlive: true, ours: false, adminAnswers: false }, { action: "start" }],
    // No live recorded pid (none, or gone): whatever answers on the admin address is stopped.
    [
      { pidAlive: false, ours: false, adminAnswers: true },
      { action: "stop-then-start", via: "admin" },
    ],
    [{ pidAlive: false, ours: false, adminAnswers: false }, { action: "start" }],
    // A dead pid is never ours, whatever was said of it.
    [
      { pidAlive: false, ours: true, adminAnswers: true },
      { action: "stop-then-start", via: "admin" },
    ],
    [{ pidAlive: false, ours: true, adminAnswers: false }, { action: "start" }],
  ];
  for (const [facts, want] of table) {
    it(`${JSON.stringify(facts)} -> ${want.action}${"via" in want ? ` (${want.via})` : ""}`, () => {
      assert.deepEqual(decideCaddyStart(facts), want);
    });
  }
});

describe("looking at a recorded pid", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "cpm-adopt-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("tells this instance's process (binary and config file) from another, and a dead pid from a live one", async () => {
    const config = path.join(dir, "initial.json");
    const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)", config], { stdio: "ignore" });
    await new Promise((r) => child.once("spawn", r));
    const pid = child.pid!;
    try {
      assert.equal(pidAlive(pid), true);
      assert.equal(isOurCaddy(pid, process.execPath, config), true);
      assert.equal(isOurCaddy(pid, process.execPath, path.join(dir, "other.json")), false, "another data dir");
      assert.equal(isOurCaddy(pid, "/bin/sh", config), false, "another binary");
    } finally {
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
    }
    assert.equal(pidAlive(pid), false);
    assert.equal(isOurCaddy(pid, process.execPath, config), false);
  });

  it("reads a pid file, and nothing from a missing or garbled one", () => {
    const file = path.join(dir, "caddy.pid");
    assert.equal(readPid(file), undefined);
    writeFileSync(file, "1234\n");
    assert.equal(readPid(file), 1234);
    writeFileSync(file, "not a pid");
    assert.equal(readPid(file), undefined);
  });
});
