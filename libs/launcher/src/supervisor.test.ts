import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { CONFIG_ERROR_EXIT_CODE } from "@cpm/core";
import { pidAlive } from "./caddy-adopt.ts";
import { DEFAULT_RESTART_POLICY } from "./restart-policy.ts";
import { Supervisor, type ProcessSpec } from "./supervisor.ts";

/** The default policy with short delays, so a test sees several restarts in a second. */
const FAST = { ...DEFAULT_RESTART_POLICY, baseDelayMs: 20, maxDelayMs: 100 };

const dir = mkdtempSync(path.join(tmpdir(), "cpm-supervisor-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A node process running `script`; each start appends a line to `<name>.starts`. */
const node = (name: string, script: string, over: Partial<ProcessSpec> = {}): ProcessSpec => ({
  name,
  command: process.execPath,
  args: () => [
    "-e",
    `require("fs").appendFileSync(${JSON.stringify(path.join(dir, `${name}.starts`))}, "x\\n"); ${script}`,
  ],
  env: {},
  ...over,
});
const starts = (name: string) =>
  existsSync(path.join(dir, `${name}.starts`))
    ? readFileSync(path.join(dir, `${name}.starts`), "utf8").split("\n").length - 1
    : 0;
const STAY_UP = "setInterval(() => {}, 1000);";

function run(specs: ProcessSpec[]) {
  const said: string[] = [];
  let stopped!: (code: number) => void;
  const exit = new Promise<number>((r) => (stopped = r));
  const sup = new Supervisor(specs, {
    say: (m) => said.push(m),
    onStopped: (c) => stopped(c),
    policy: FAST,
    stopTimeoutMs: 2_000,
  });
  sup.start();
  return { sup, said, exit };
}

const until = async (what: string, f: () => boolean, ms = 5_000) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe("Supervisor", () => {
  it("stops its processes together, not one after another", async () => {
    // Each takes 400 ms to stop: one after another, three would take 1.2 s.
    const slowStop = `process.on("SIGTERM", () => setTimeout(() => process.exit(0), 400)); ${STAY_UP}`;
    const r = run([node("slow-a", slowStop), node("slow-b", slowStop), node("slow-c", slowStop)]);
    await until("all started", () => starts("slow-a") + starts("slow-b") + starts("slow-c") === 3);
    await new Promise((res) => setTimeout(res, 300)); // their SIGTERM handlers are installed
    const t0 = Date.now();
    void r.sup.stop(0);
    assert.equal(await r.exit, 0);
    const took = Date.now() - t0;
    assert.ok(took < 1_000, `stopped in ${took} ms`);
  });

  it("restarts a process that dies during start-up (crash, kill) instead of stopping the instance", async () => {
    // Dies at its first two starts (exit 1, then SIGKILL as an OOM kill would), then stays up.
    const flaky = node(
      "flaky",
      `const n = require("fs").readFileSync(${JSON.stringify(path.join(dir, "flaky.starts"))}, "utf8").length / 2;
      if (n === 1) process.exit(1); if (n === 2) process.kill(process.pid, "SIGKILL"); ${STAY_UP}`,
    );
    const { sup, said, exit } = run([flaky, node("steady", STAY_UP)]);
    await until("the third start", () => starts("flaky") === 3);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(starts("flaky"), 3, "up after its third start");
    assert.equal(starts("steady"), 1, "the others are left alone");
    assert.deepEqual(said, [
      "flaky exited (code 1); restarting in 20 ms",
      "flaky exited (signal SIGKILL); restarting in 40 ms",
    ]);
    await sup.stop(0);
    assert.equal(await exit, 0);
  });

  it("stops the instance after too many start-up deaths in a row, naming the process and its last exit", async () => {
    const { said, exit } = run([node("doomed", "process.exit(3)"), node("bystander", STAY_UP)]);
    assert.equal(await exit, 1);
    assert.equal(starts("doomed"), FAST.maxBootDeaths);
    assert.equal(
      said.at(-1),
      `doomed exited (code 3): died during start-up ${FAST.maxBootDeaths} times in a row (last: code 3); stopping the instance`,
    );
  });

  it("stops the instance at once when a process exits with the configuration-error code", async () => {
    const { said, exit } = run([
      node("misconfigured", `console.error("bad variable"); process.exit(${CONFIG_ERROR_EXIT_CODE})`),
      node("other", STAY_UP),
    ]);
    assert.equal(await exit, 1);
    assert.equal(starts("misconfigured"), 1, "not restarted");
    assert.deepEqual(said, [
      `misconfigured exited (code ${CONFIG_ERROR_EXIT_CODE}): configuration error (exit code ${CONFIG_ERROR_EXIT_CODE}); stopping the instance`,
    ]);
  });

  it("writes a process's output to its log file when it has one, and reads its arguments at every start", async () => {
    const logFile = path.join(dir, "logs", "chatty.log");
    let n = 0;
    const chatty: ProcessSpec = {
      name: "chatty",
      command: process.execPath,
      args: () => ["-e", `console.log("out ${++n}"); console.error("err ${n}"); process.exit(${n === 1 ? 1 : 0})`],
      env: {},
      logFile,
    };
    const { sup } = run([{ ...chatty }]);
    await until("two runs logged", () => existsSync(logFile) && /err 2/.test(readFileSync(logFile, "utf8")));
    await sup.stop(0);
    const log = readFileSync(logFile, "utf8");
    assert.match(log, /out 1\nerr 1\n/);
    assert.match(log, /out 2\nerr 2\n/);
  });

  it("watches an adopted process, starts a new one when it dies, and stops it on stop; records the pid", async () => {
    // Left running by an earlier launcher: not a child of this supervisor.
    const orphan = spawn(process.execPath, ["-e", STAY_UP], { stdio: "ignore", detached: true });
    await new Promise((r) => orphan.once("spawn", r));
    const pidFile = path.join(dir, "adoptee.pid");
    const { sup, said, exit } = run([node("adoptee", STAY_UP, { adopt: orphan.pid, pidFile, detached: true })]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(starts("adoptee"), 0, "no second process while the adopted one runs");
    process.kill(orphan.pid!, "SIGKILL");
    await until("a new one started", () => starts("adoptee") === 1);
    assert.match(said.join("\n"), /adoptee exited .*; restarting in 20 ms/);
    await until("its pid recorded", () => existsSync(pidFile) && Number(readFileSync(pidFile, "utf8")) !== orphan.pid);
    const successor = Number(readFileSync(pidFile, "utf8"));
    assert.equal(pidAlive(successor), true);
    await sup.stop(0);
    assert.equal(await exit, 0);
    assert.equal(pidAlive(successor), false, "stopped with the instance, though in its own session");
    assert.equal(existsSync(pidFile), false, "the pid file is removed after a clean stop");
  });

  it("stops an adopted process that is still running", async () => {
    const orphan = spawn(process.execPath, ["-e", STAY_UP], { stdio: "ignore", detached: true });
    await new Promise((r) => orphan.once("spawn", r));
    const { sup, exit } = run([node("adoptee2", STAY_UP, { adopt: orphan.pid })]);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    await sup.stop(0);
    assert.equal(await exit, 0);
    assert.equal(pidAlive(orphan.pid!), false);
    assert.ok(Date.now() - t0 < 1_000, `stopped in ${Date.now() - t0} ms`);
    assert.equal(starts("adoptee2"), 0);
  });
});
