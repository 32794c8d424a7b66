import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import {
  composeCommand,
  consoleCall,
  consoleSignsIn,
  dockerMissing,
  hostGateway,
  removeDir,
  removeStack,
  secretsDir,
  servesProxyHostCreatedThroughApi,
  Stack,
  TAG,
} from "../support/compose.ts";
import { ROOT } from "../support/instance.ts";
import { startUpstream, type TestServer } from "../support/net.ts";

const run = promisify(execFile);
const skip = dockerMissing();

describe("docker compose: a standalone instance from docker-compose.yml", { skip }, () => {
  let stack: Stack | undefined;
  let upstream: TestServer;
  let secrets: string;

  before(async () => {
    // The containers reach the host's upstream through host.docker.internal (the bridge gateway).
    upstream = await startUpstream("A", await hostGateway());
    secrets = secretsDir();
    stack = await Stack.up({ project: `cpm-ct-standalone-${process.pid}`, env: { CPM_SECRETS_DIR: secrets } });
  });
  after(async () => {
    await removeStack(stack);
    await upstream?.close();
    removeDir(secrets);
  });

  it("reports every container healthy", async () => {
    const health = await stack!.waitHealthy();
    assert.deepEqual(
      Object.keys(health)
        .map((n) => n.replace(/^.*?(caddy-renderer|config-service|web-console|caddy).*$/, "$1"))
        .sort(),
      ["caddy", "caddy-renderer", "config-service", "web-console"],
    );
  });

  it("serves a proxy host created through the published gRPC port", async () => {
    await servesProxyHostCreatedThroughApi(stack!, upstream.port);
  });

  it("serves the web console on its published port: the page, sign-in, the API with the session", async () => {
    const { url, cookie } = await consoleSignsIn(stack!);
    const { status, json } = await consoleCall(url, cookie, "cpm.config.v1.ConfigService/ListProxyHosts");
    assert.equal(status, 200, JSON.stringify(json));
    const hosts = json.proxyHosts as { name: string }[];
    assert.deepEqual(
      hosts.map((h) => h.name),
      ["app"],
      "the console lists the host created through the API",
    );
    const noDispatcher = await consoleCall(url, cookie, "cpm.sync.v1.SyncDispatcher/GetSyncStatus");
    assert.equal(noDispatcher.status, 404, "a standalone console has no fleet API");
  });

  it("has the cpm CLI on PATH in the image: it lists the host through the API", async () => {
    const { stdout } = await run("docker", [
      "exec",
      "-e",
      `CPM_TOKEN=${stack!.adminToken}`,
      stack!.containerName("config-service"),
      "cpm",
      "proxy-host",
      "list",
      "-o",
      "json",
    ]);
    const hosts = JSON.parse(stdout) as { name: string; domains: string[] }[];
    assert.deepEqual(
      hosts.map((h) => [h.name, h.domains]),
      [["app", ["app.test"]]],
    );
  });

  it("keeps its data across down and up (volumes)", async () => {
    const version = await stack!.version();
    await stack!.down();
    await stack!.start();
    assert.equal(await stack!.version(), version, "the configuration version survives");
    await stack!.waitServes("app.test", /upstream=A/);
    await stack!.waitHealthy();
  });

  it("refuses to start a service without CPM_INTERNAL_TOKEN, naming it; down needs no secrets", async () => {
    const failed = await run("docker", ["run", "--rm", `cpm-node:${TAG}`, "services/config-service/dist/main.js"]).then(
      () => assert.fail("the service started without CPM_INTERNAL_TOKEN"),
      (e: { stderr: string; code: number }) => e,
    );
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /CPM_INTERNAL_TOKEN: not set/);
    const { CPM_INTERNAL_TOKEN: _i, CPM_ADMIN_TOKEN: _a, INSTANCE_SYNC_TOKEN: _s, ...noSecrets } = process.env;
    const [cmd, ...args] = composeCommand();
    const down = await run(cmd, [...args, "-p", `cpm-ct-nothing-${process.pid}`, "down"], {
      cwd: ROOT,
      env: noSecrets,
    }).catch((e: Error) => e);
    assert.ok(!(down instanceof Error), `down without secrets: ${down instanceof Error ? down.message : ""}`);
  });
});
