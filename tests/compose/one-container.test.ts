import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import {
  consoleCall,
  consoleSignsIn,
  dockerMissing,
  hostGateway,
  removeDir,
  removeStack,
  secretsDir,
  servesProxyHostCreatedThroughApi,
  Stack,
} from "../support/compose.ts";
import { startUpstream, type TestServer } from "../support/net.ts";
import { waitFor } from "../support/wait.ts";

const run = promisify(execFile);
const skip = dockerMissing();

interface Proc {
  pid: number;
  ppid: number;
  args: string;
}

/** The processes of a container as the host sees them (`docker top`), without the health check's. */
async function processes(container: string): Promise<Proc[]> {
  const { stdout } = await run("docker", ["top", container, "-o", "pid,ppid,args"]);
  return stdout
    .trim()
    .split("\n")
    .slice(1)
    .map((line) => {
      const m = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line);
      if (!m) throw new Error(`docker top: unexpected line ${JSON.stringify(line)}`);
      return { pid: Number(m[1]), ppid: Number(m[2]), args: m[3]!.trim() };
    })
    .filter((p) => !p.args.includes("docker/healthcheck.mjs"));
}

describe("docker compose: a standalone instance in one container (docker-compose.one.yml)", { skip }, () => {
  let stack: Stack | undefined;
  let upstream: TestServer;
  let secrets: string;
  const CONTAINER = "cpm";

  before(async () => {
    upstream = await startUpstream("A", await hostGateway());
    secrets = secretsDir();
    // Started without CPM_INTERNAL_TOKEN (Stack.up sets none for this file).
    stack = await Stack.up({
      project: `cpm-ct-one-${process.pid}`,
      file: "docker-compose.one.yml",
      env: { CPM_SECRETS_DIR: secrets },
    });
  });
  after(async () => {
    await removeStack(stack);
    await upstream?.close();
    removeDir(secrets);
  });

  it("is one healthy container, started without an internal token", async () => {
    const health = await stack!.waitHealthy();
    assert.deepEqual(Object.values(health), ["healthy"], JSON.stringify(health));
    assert.equal(stack!.env.CPM_INTERNAL_TOKEN, undefined);
    const env = await stack!.inspect("{{json .Config.Env}}", CONTAINER);
    assert.ok(!env.includes("CPM_INTERNAL_TOKEN"), "the container's environment has no internal token");
  });

  it("serves a proxy host created through the published gRPC port", async () => {
    await servesProxyHostCreatedThroughApi(stack!, upstream.port);
  });

  it("serves the web console on its published port: the page, sign-in, the API with the session", async () => {
    const { url, cookie } = await consoleSignsIn(stack!);
    const { status, json } = await consoleCall(url, cookie, "cpm.config.v1.ConfigService/GetInstanceInfo");
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.version, "1", "the version the API's change made");
  });

  it("runs exactly one Node process, the container's main process, and Caddy as its child", async () => {
    const container = stack!.containerName(CONTAINER);
    const main = Number(await stack!.inspect("{{.State.Pid}}", CONTAINER));
    const procs = await processes(container);
    const described = JSON.stringify(procs);
    const node = procs.filter((p) => /(^|\/)node\s/.test(p.args));
    const caddy = procs.filter((p) => /(^|\/)caddy\s+run\b/.test(p.args));
    assert.equal(node.length, 1, `one Node process: ${described}`);
    assert.equal(node[0]!.pid, main, `the Node process is the container's main process: ${described}`);
    assert.match(node[0]!.args, /libs\/launcher\/dist\/main\.js/);
    assert.equal(caddy.length, 1, `one Caddy: ${described}`);
    assert.equal(caddy[0]!.ppid, main, `Caddy is the Node process's child: ${described}`);
    assert.equal(procs.length, 2, `nothing else runs: ${described}`);
  });

  it("is restarted by Docker when the Node process is killed, and serves the host again", async (t) => {
    const version = await stack!.version();
    const pidBefore = Number(await stack!.inspect("{{.State.Pid}}", CONTAINER));
    const restartsBefore = Number(await stack!.inspect("{{.RestartCount}}", CONTAINER));
    // A crash, not a stop: SIGKILL from the host to the container's main process (the Node
    // process), which `docker kill` or `docker stop` would not be (Docker does not restart a
    // container it stopped itself).
    const killedAt = Date.now();
    try {
      process.kill(pidBefore, "SIGKILL");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EPERM") throw e;
      t.skip(`this user may not signal the container's main process (host pid ${pidBefore}); run as root`);
      return;
    }
    const state = await waitFor(
      async () => {
        const [status, pid, restarts] = (
          await stack!.inspect("{{.State.Status}} {{.State.Pid}} {{.RestartCount}}", CONTAINER)
        ).split(" ");
        return status === "running" && Number(pid) !== pidBefore && Number(pid) > 0 && Number(restarts) > restartsBefore
          ? { pid: Number(pid), restarts: Number(restarts) }
          : undefined;
      },
      "the container running again after a restart by Docker",
      60_000,
      250,
    );
    assert.equal(state.restarts, restartsBefore + 1, "one restart by the restart policy");
    await stack!.waitServes("app.test", /upstream=A/);
    console.log(`one container: running again and serving ${Date.now() - killedAt} ms after the kill`);
    // Caddy resumes its last config first; the API answers once config-service is up again.
    const again = await waitFor(
      async () => ({ version: await stack!.version() }),
      "the API after the restart",
      60_000,
      250,
    );
    assert.equal(again.version, version, "the configuration survives in the volume");
    const procs = await processes(stack!.containerName(CONTAINER));
    assert.deepEqual(
      procs.map((p) => (p.pid === state.pid ? "main" : p.ppid === state.pid ? "child" : "other")).sort(),
      ["child", "main"],
      `again one Node process and its Caddy: ${JSON.stringify(procs)}`,
    );
    await stack!.waitHealthy();
  });
});
