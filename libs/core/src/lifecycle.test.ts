import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { CONFIG_ERROR_EXIT_CODE, ConfigError, loadConfig } from "./env.ts";
import {
  decide,
  runServices,
  type LifecycleAction,
  type LifecycleEvent,
  type LifecycleState,
  type ProcessPort,
  type Service,
} from "./lifecycle.ts";
import { createLogger } from "./logger.ts";

const badVariable = new ConfigError("CPM_API_LISTEN", '"nowhere" is not a host:port address');

describe("the lifecycle's decisions", () => {
  const cases: [string, LifecycleState, LifecycleEvent, LifecycleState, LifecycleAction][] = [
    ["a start that succeeds runs", "starting", { type: "started" }, "running", { do: "nothing" }],
    [
      "a configuration error exits 78 and names the variable",
      "starting",
      { type: "start-failed", error: badVariable },
      "done",
      {
        do: "abandon-start",
        code: CONFIG_ERROR_EXIT_CODE,
        message: 'svc: configuration error: CPM_API_LISTEN: "nowhere" is not a host:port address',
      },
    ],
    [
      "any other start failure exits 1 and says why",
      "starting",
      { type: "start-failed", error: new Error("cannot listen on 127.0.0.1:1: EACCES") },
      "done",
      { do: "abandon-start", code: 1, message: "svc: cannot start: cannot listen on 127.0.0.1:1: EACCES" },
    ],
    [
      "a thrown non-Error is quoted as text",
      "starting",
      { type: "start-failed", error: "boom" },
      "done",
      { do: "abandon-start", code: 1, message: "svc: cannot start: boom" },
    ],
    ["SIGTERM while running stops", "running", { type: "signal", signal: "SIGTERM" }, "stopping", { do: "stop" }],
    ["SIGINT while running stops", "running", { type: "signal", signal: "SIGINT" }, "stopping", { do: "stop" }],
    [
      "a signal during start waits for the start (deadline armed)",
      "starting",
      { type: "signal", signal: "SIGTERM" },
      "stop-pending",
      { do: "arm-deadline" },
    ],
    ["then stops once started", "stop-pending", { type: "started" }, "stopping", { do: "stop" }],
    [
      "a running service that gives up stops every service and exits 1",
      "running",
      { type: "failed", reason: "caddy: exited 5 times during start-up" },
      "done",
      { do: "abandon-start", code: 1, message: "caddy: exited 5 times during start-up" },
    ],
    [
      "a service that gives up while the others stop changes nothing",
      "stopping",
      { type: "failed", reason: "caddy: gone" },
      "stopping",
      { do: "nothing" },
    ],
    [
      "or reports the failed start",
      "stop-pending",
      { type: "start-failed", error: badVariable },
      "done",
      {
        do: "abandon-start",
        code: CONFIG_ERROR_EXIT_CODE,
        message: 'svc: configuration error: CPM_API_LISTEN: "nowhere" is not a host:port address',
      },
    ],
    ["a clean stop exits 0", "stopping", { type: "stopped" }, "done", { do: "exit", code: 0, message: undefined }],
    [
      "a second SIGINT exits at once with 130",
      "stopping",
      { type: "signal", signal: "SIGINT" },
      "done",
      { do: "exit", code: 130, message: "svc: SIGINT again while stopping; exiting now" },
    ],
    [
      "a second SIGTERM exits at once with 143",
      "stopping",
      { type: "signal", signal: "SIGTERM" },
      "done",
      { do: "exit", code: 143, message: "svc: SIGTERM again while stopping; exiting now" },
    ],
    [
      "a second signal during a pending start exits too",
      "stop-pending",
      { type: "signal", signal: "SIGTERM" },
      "done",
      { do: "exit", code: 143, message: "svc: SIGTERM again while stopping; exiting now" },
    ],
    [
      "a stop past its deadline exits 1",
      "stopping",
      { type: "deadline" },
      "done",
      { do: "exit", code: 1, message: "svc: did not stop within 5000 ms; exiting anyway" },
    ],
    [
      "a start past the deadline after a signal exits 1",
      "stop-pending",
      { type: "deadline" },
      "done",
      { do: "exit", code: 1, message: "svc: did not stop within 5000 ms; exiting anyway" },
    ],
    [
      "a stop that throws exits 1",
      "stopping",
      { type: "stop-failed", error: new Error("database is locked") },
      "done",
      { do: "exit", code: 1, message: "svc: cannot stop cleanly: database is locked" },
    ],
    ["nothing happens once done", "done", { type: "signal", signal: "SIGTERM" }, "done", { do: "nothing" }],
    ["a stray deadline once done is ignored", "done", { type: "deadline" }, "done", { do: "nothing" }],
  ];
  for (const [what, state, event, next, action] of cases)
    it(what, () => assert.deepEqual(decide(state, event, "svc", 5000), { next, action }));
});

/** A process whose signals the test sends and whose exit it records. */
function fakeProcess() {
  const handlers = new Map<string, () => void>();
  const lines: string[] = [];
  const exits: number[] = [];
  const port: ProcessPort = {
    onSignal: (signal, handler) => handlers.set(signal, handler),
    exit: (code) => exits.push(code),
    stderr: (line) => lines.push(line),
  };
  return { port, lines, exits, signal: (s: NodeJS.Signals) => handlers.get(s)!() };
}

const options = (port: ProcessPort, stopDeadlineMs = 1_000) => ({
  process: port,
  stopDeadlineMs,
  loadConfig: () => loadConfig({}),
  createLogger: (name: string | undefined) => createLogger(name, "silent"),
});

const tick = () => new Promise((r) => setImmediate(r));

describe("runServices", () => {
  it("starts in order, stops in reverse order on SIGTERM, and exits 0", async () => {
    const seen: string[] = [];
    const service = (name: string): Service => ({
      name,
      start: () => {
        seen.push(`start ${name}`);
        return Promise.resolve({ stop: () => void seen.push(`stop ${name}`) });
      },
    });
    const p = fakeProcess();
    const done = runServices([service("a"), service("b")], options(p.port));
    await tick();
    p.signal("SIGTERM");
    assert.equal(await done, 0);
    assert.deepEqual(seen, ["start a", "start b", "stop b", "stop a"]);
    assert.deepEqual(p.exits, [0]);
    assert.deepEqual(p.lines, []);
  });

  it("a configuration that does not load exits 78 naming the variable, before any service starts", async () => {
    let started = false;
    const p = fakeProcess();
    const code = await runServices(
      [{ name: "svc", start: () => ((started = true), Promise.resolve({ stop: () => {} })) }],
      { ...options(p.port), loadConfig: () => loadConfig({ INSTANCE_MODE: "primary" }) },
    );
    assert.equal(code, CONFIG_ERROR_EXIT_CODE);
    assert.equal(started, false);
    assert.deepEqual(p.lines, [
      'svc: configuration error: INSTANCE_MODE: unknown mode "primary" (use standalone, master or slave)',
    ]);
  });

  it("a failed start stops the services started before it, then exits 1", async () => {
    const seen: string[] = [];
    const p = fakeProcess();
    const code = await runServices(
      [
        { name: "a", start: () => Promise.resolve({ stop: () => void seen.push("stop a") }) },
        { name: "b", start: () => Promise.reject(new Error("port taken")) },
      ],
      options(p.port),
    );
    assert.equal(code, 1);
    assert.deepEqual(seen, ["stop a"]);
    assert.deepEqual(p.lines, ["b: cannot start: port taken"]);
  });

  it("a stop that hangs past the deadline exits 1; a second signal does not wait for it", async () => {
    const hanging: Service = { name: "svc", start: () => Promise.resolve({ stop: () => new Promise(() => {}) }) };
    const p = fakeProcess();
    const started = Date.now();
    const done = runServices([hanging], options(p.port, 200));
    await tick();
    p.signal("SIGTERM");
    assert.equal(await done, 1);
    assert.ok(Date.now() - started >= 200, "waited for the deadline");
    assert.deepEqual(p.lines, ["svc: did not stop within 200 ms; exiting anyway"]);

    const q = fakeProcess();
    const again = runServices([hanging], options(q.port, 60_000));
    await tick();
    q.signal("SIGINT");
    q.signal("SIGINT");
    assert.equal(await again, 130);
    assert.deepEqual(q.exits, [130], "exits once");
  });

  it("a signal during a start stops the service once it has started", async () => {
    const seen: string[] = [];
    let release = () => {};
    const slow: Service = {
      name: "svc",
      start: () =>
        new Promise((resolve) => {
          release = () => resolve({ stop: () => void seen.push("stopped") });
        }),
    };
    const p = fakeProcess();
    const done = runServices([slow], options(p.port));
    await tick();
    p.signal("SIGTERM");
    await tick();
    assert.deepEqual(p.exits, [], "waits for the start");
    release();
    assert.equal(await done, 0);
    assert.deepEqual(seen, ["stopped"]);
  });
});

describe("a real process", () => {
  const lifecycle = fileURLToPath(new URL("./lifecycle.ts", import.meta.url));
  /** A node process that runs one service through runServices, as a service's main does. */
  function run(env: NodeJS.ProcessEnv, signalOnReady?: NodeJS.Signals) {
    const script = `
      import { runServices } from ${JSON.stringify(lifecycle)};
      void runServices([{ name: "example", start: async ({ log }) => {
        const serving = setInterval(() => {}, 60_000); // what a listening server does: keep the process up
        log.info("example ready");
        return { stop: () => { clearInterval(serving); log.info("example stopped"); } };
      } }]);`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_FORMAT: "json", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (signalOnReady && out.includes("example ready")) child.kill(signalOnReady);
    });
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    return new Promise<{ code: number | null; out: string; err: string }>((resolve) =>
      child.once("exit", (code) => {
        clearTimeout(timer);
        resolve({ code, out, err });
      }),
    );
  }

  it("started with a bad variable, exits 78 and names the variable", async () => {
    const r = await run({ CPM_DATA_DIR: "/tmp", LOG_LEVEL: "loud" });
    assert.equal(r.code, CONFIG_ERROR_EXIT_CODE, r.err);
    assert.match(r.err, /^example: configuration error: LOG_LEVEL: "loud" is not one of fatal, error/m);
    assert.doesNotMatch(r.out, /example ready/);
  });

  it("on SIGTERM, logs that it shuts down, stops the service, and exits 0", async () => {
    const r = await run({ CPM_DATA_DIR: "/tmp" }, "SIGTERM");
    assert.equal(r.code, 0, r.err);
    const messages = r.out
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
    // Both lines of the stop are there; their order on the pipe is pino's, not the lifecycle's.
    const { version } = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    assert.deepEqual(messages.slice(0, 2), [`example ${version} starting`, "example ready"], r.out);
    assert.deepEqual(messages.slice(2).sort(), ["example stopped", "shutting down"], r.out);
  });
});
