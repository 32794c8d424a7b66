// Compose stacks for the container tests: docker-compose.yml (one container per service) or
// docker-compose.one.yml (the whole node in one container) as a user runs them (images from
// scripts/build-images.sh), one compose project per instance, started through testcontainers.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { credentials } from "@grpc/grpc-js";
import { AccountServiceClient, ConfigServiceClient, ProxyHost, Role, SyncDispatcherClient } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { ROOT } from "./instance.ts";
import { httpGet, type HttpResult } from "./net.ts";
import { waitFor } from "./wait.ts";

// The reaper image cannot be pulled here, and /.dockerenv would make testcontainers look for
// the host through a helper container: both off, the host is this machine.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= "true";
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= "localhost";
const tc = await import("testcontainers");

const run = promisify(execFile);

/**
 * The image tag the tests build and run, so a user's `latest` images are left alone
 * (CPM_TEST_IMAGE_TAG: another, e.g. for two checkouts sharing one Docker engine).
 */
export const TAG = process.env.CPM_TEST_IMAGE_TAG || "compose-test";

function tryRun(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], timeout: 20_000 })
      .toString()
      .trim();
  } catch {
    return undefined;
  }
}

/** `docker compose` (v2) when the plugin is there, else `docker-compose` (v1), else none. */
function composeFlavour(): "v2" | "v1" | undefined {
  if (tryRun("docker", ["compose", "version"])) return "v2";
  if (tryRun("docker-compose", ["version"])) return "v1";
  return undefined;
}
const flavour = composeFlavour();

/** The compose command line this machine has: `docker compose` or `docker-compose`. */
export function composeCommand(): [string, ...string[]] {
  return flavour === "v2" ? ["docker", "compose"] : ["docker-compose"];
}

/** Why the compose tests cannot run on this machine; undefined when they can. */
export function dockerMissing(): string | undefined {
  if (!tryRun("docker", ["version", "--format", "{{.Server.Version}}"]))
    return "no Docker engine is reachable (`docker version` found no server)";
  if (!flavour) return "neither `docker compose` (v2) nor `docker-compose` (v1) is installed";
  return undefined;
}

let images: Promise<void> | undefined;
/** Builds the images once per process (scripts/build-images.sh; warm, it costs seconds). */
export function buildImages(): Promise<void> {
  images ??= run("bash", [path.join(ROOT, "scripts/build-images.sh")], {
    env: { ...process.env, CPM_IMAGE_TAG: TAG },
    maxBuffer: 1 << 24,
  }).then(({ stderr }) => {
    const summary = stderr.split("\n").filter((l) => /s, caddy|MB/.test(l));
    console.log(summary.join("\n"));
  });
  return images;
}

/** The host address containers reach as host.docker.internal (`host-gateway`), as Docker resolves it. */
export async function hostGateway(): Promise<string> {
  await buildImages();
  const { stdout } = await run("docker", [
    "run",
    "--rm",
    "--add-host",
    "cpm-host:host-gateway",
    "--entrypoint",
    "getent",
    `cpm-node:${TAG}`,
    "hosts",
    "cpm-host",
  ]);
  const ip = stdout.trim().split(/\s+/)[0];
  if (!ip) throw new Error("cannot tell which host address containers reach as host-gateway");
  return ip;
}

/** A random token of 48 hex characters. */
export const token = () => randomBytes(24).toString("hex");

/** A directory for ./secrets that the containers' unprivileged users can read. */
export function secretsDir(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cpm-secrets-"));
  chmodSync(dir, 0o755);
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text, { mode: 0o644 });
  return dir;
}

/** The compose files: one container per service, or the whole node in one container (service `cpm`). */
export type ComposeFile = "docker-compose.yml" | "docker-compose.one.yml";
const ONE_CONTAINER_SERVICE = "cpm";

export interface StackOptions {
  /** The compose project name: one instance per project. */
  project: string;
  /** Default: docker-compose.yml. */
  file?: ComposeFile;
  profile?: "master" | "slave";
  /** .env-style variables on top of the test defaults (random published ports on loopback). */
  env: Record<string, string>;
}

/** One instance (a compose project) started from docker-compose.yml or docker-compose.one.yml. */
export class Stack {
  readonly adminToken: string;
  private started?: Awaited<ReturnType<InstanceType<typeof tc.DockerComposeEnvironment>["up"]>>;
  private clients: { close(): void }[] = [];

  private constructor(
    readonly opts: StackOptions,
    readonly env: Record<string, string>,
  ) {
    this.adminToken = env.CPM_ADMIN_TOKEN!;
  }

  get file(): ComposeFile {
    return this.opts.file ?? "docker-compose.yml";
  }

  /** The compose service that runs `service` (in the one-container file, `cpm` runs them all). */
  private serviceOf(service: string): string {
    return this.file === "docker-compose.one.yml" ? ONE_CONTAINER_SERVICE : service;
  }

  /** Starts the project and waits until every container reports healthy. */
  static async up(opts: StackOptions): Promise<Stack> {
    await buildImages();
    const env: Record<string, string> = {
      CPM_NODE_IMAGE: `cpm-node:${TAG}`,
      CPM_CADDY_IMAGE: `cpm-caddy:${TAG}`,
      CPM_NODE_ALL_IMAGE: `cpm-node-all:${TAG}`,
      CPM_ADMIN_TOKEN: token(),
      // Only the services of separate containers need one; the one-container node is started without.
      ...(opts.file === "docker-compose.one.yml" ? {} : { CPM_INTERNAL_TOKEN: token() }),
      // "127.0.0.1:" publishes each port on a random loopback port.
      CPM_PUBLISH_HTTP: "127.0.0.1:",
      CPM_PUBLISH_HTTPS: "127.0.0.1:",
      CPM_PUBLISH_L4: "127.0.0.1:",
      CPM_PUBLISH_API: "127.0.0.1:",
      CPM_PUBLISH_DISPATCHER: "127.0.0.1:",
      CPM_PUBLISH_SYNC: "127.0.0.1:",
      CPM_PUBLISH_CONSOLE: "127.0.0.1:",
      LOG_LEVEL: "info",
      ...opts.env,
    };
    const stack = new Stack(opts, env);
    await stack.start();
    return stack;
  }

  /** `up` of the same project again (same volumes), after `down`. */
  async start(): Promise<void> {
    let compose = new tc.DockerComposeEnvironment(ROOT, this.file)
      .withProjectName(this.opts.project)
      .withEnvironment(this.env)
      .withDefaultWaitStrategy(tc.Wait.forHealthCheck())
      .withStartupTimeout(180_000);
    if (flavour === "v1") compose = compose.withClientOptions({ executable: { standalone: true } });
    if (this.opts.profile) compose = compose.withProfiles(this.opts.profile);
    this.started = await compose.up();
  }

  /** `down`: containers and network go; volumes stay unless asked. */
  async down(removeVolumes = false): Promise<void> {
    for (const c of this.clients.splice(0)) c.close();
    await this.started?.down({ removeVolumes, timeout: 10_000 });
    this.started = undefined;
  }

  /**
   * The container that runs a service (compose v2 names it `<service>-1`, v1
   * `<project>_<service>_1`); in the one-container file, the one container.
   */
  containerName(service: string): string {
    const s = this.serviceOf(service);
    return flavour === "v1" ? `${this.opts.project}_${s}_1` : `${this.opts.project}-${s}-1`;
  }

  /** The host port a service's container port is published on. */
  async port(service: string, containerPort: number): Promise<number> {
    const { stdout } = await run("docker", ["port", this.containerName(service), `${containerPort}/tcp`]);
    const m = /:(\d+)\s*$/m.exec(stdout.trim().split("\n")[0] ?? "");
    if (!m) throw new Error(`${service}: port ${containerPort} is not published (${stdout.trim()})`);
    return Number(m[1]);
  }

  /** Health of every container of the project, by container name. */
  async health(): Promise<Record<string, string>> {
    const { stdout } = await run("docker", [
      "ps",
      "-aq",
      "--filter",
      `label=com.docker.compose.project=${this.opts.project}`,
    ]);
    const ids = stdout.split("\n").filter(Boolean);
    if (!ids.length) return {};
    const { stdout: out } = await run("docker", [
      "inspect",
      "--format",
      "{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}}",
      ...ids,
    ]);
    return Object.fromEntries(
      out
        .split("\n")
        .filter(Boolean)
        .map((l) => l.replace(/^\//, "").split(" ") as [string, string]),
    );
  }

  /** Waits until every container of the project reports healthy. */
  async waitHealthy(timeoutMs = 120_000): Promise<Record<string, string>> {
    return waitFor(
      async () => {
        const h = await this.health();
        return Object.keys(h).length && Object.values(h).every((s) => s === "healthy") ? h : undefined;
      },
      `${this.opts.project}: every container healthy`,
      timeoutMs,
      1000,
    );
  }

  async config(): Promise<ConfigServiceClient> {
    const c = new ConfigServiceClient(
      `127.0.0.1:${await this.port("config-service", 50051)}`,
      credentials.createInsecure(),
    );
    this.clients.push(c);
    return c;
  }

  async account(): Promise<AccountServiceClient> {
    const c = new AccountServiceClient(
      `127.0.0.1:${await this.port("config-service", 50051)}`,
      credentials.createInsecure(),
    );
    this.clients.push(c);
    return c;
  }

  /** The web console's published address on the host (its own container, or the one-container node). */
  async consoleUrl(): Promise<string> {
    return `http://127.0.0.1:${await this.port("web-console", 3000)}`;
  }

  async dispatcher(): Promise<SyncDispatcherClient> {
    const c = new SyncDispatcherClient(
      `127.0.0.1:${await this.port("sync-dispatcher", 50053)}`,
      credentials.createInsecure(),
    );
    this.clients.push(c);
    return c;
  }

  async version(): Promise<number> {
    const c = await this.config();
    return (await unary(c.getInstanceInfo.bind(c), {}, this.adminToken, 5000)).version;
  }

  /** Polls this instance's published HTTP port until `host` answers as expected. */
  async waitServes(host: string, expect: RegExp | number, timeoutMs = 60_000): Promise<HttpResult> {
    const port = await this.port("caddy", 80);
    return waitFor(
      async () => {
        const r = await httpGet(port, host);
        return (typeof expect === "number" ? r.status === expect : r.status === 200 && expect.test(r.body))
          ? r
          : undefined;
      },
      `${this.opts.project} serving ${host} (${expect})`,
      timeoutMs,
      250,
    );
  }

  /** Runs a docker CLI command on one of this project's containers (kill, start, ...). */
  async docker(command: string, service: string): Promise<void> {
    await run("docker", [command, this.containerName(service)]);
  }

  /** `docker inspect --format <format>` of the container that runs a service, trimmed. */
  async inspect(format: string, service: string): Promise<string> {
    const { stdout } = await run("docker", ["inspect", "--format", format, this.containerName(service)]);
    return stdout.trim();
  }

  /** The last lines of a service's log (for failure messages). */
  async logs(service: string, lines = 40): Promise<string> {
    const { stdout, stderr } = await run("docker", [
      "logs",
      "--tail",
      String(lines),
      this.containerName(service),
    ]).catch(() => ({ stdout: "", stderr: "" }));
    return stdout + stderr;
  }
}

/**
 * Creates the proxy host `app.test` through the stack's published gRPC port, to the host's
 * upstream on `upstreamPort` (answering `upstream=A`), and checks that the stack's Caddy serves
 * it and answers an unknown host with 404. The stack's first change: it becomes version 1.
 */
export async function servesProxyHostCreatedThroughApi(stack: Stack, upstreamPort: number): Promise<void> {
  const config = await stack.config();
  const r = await unary(
    config.createProxyHost.bind(config),
    {
      proxyHost: ProxyHost.fromPartial({
        name: "app",
        domains: ["app.test"],
        upstreams: [`host.docker.internal:${upstreamPort}`],
      }),
    },
    stack.adminToken,
  );
  assert.equal(r.configVersion, 1);
  await stack.waitServes("app.test", /upstream=A/);
  assert.equal((await stack.waitServes("other.test", 404)).status, 404, "an unknown host gets 404");
}

const CONSOLE_PASSWORD = "correct horse battery staple";

/** A Connect (JSON) call through the console's published port, with the session cookie. */
export async function consoleCall(
  url: string,
  cookie: string,
  method: string,
  body: unknown = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}/api/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", "connect-protocol-version": "1", cookie },
    body: JSON.stringify(body),
  });
  // An unknown method is a 404 with no body.
  const text = await res.text();
  return { status: res.status, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

/**
 * What a user of the published console sees: its page (200, with the strict
 * Content-Security-Policy), a sign-in as a user created through the API (the session cookie is
 * set), and a call through the console's API with that cookie (WhoAmI says who). Returns the
 * console's address and the session cookie for further calls.
 */
export async function consoleSignsIn(stack: Stack, username = "alice"): Promise<{ url: string; cookie: string }> {
  const url = await stack.consoleUrl();
  const page = await fetch(`${url}/`);
  assert.equal(page.status, 200, "the console's page over the published port");
  assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'/);
  assert.match(await page.text(), /<script[^>]+src="\/app\.js"/);
  const account = await stack.account();
  await unary(
    account.createUser.bind(account),
    { username, role: Role.ROLE_ADMIN, password: CONSOLE_PASSWORD },
    stack.adminToken,
  );
  const wrong = await fetch(`${url}/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password: "not the password" }),
  });
  assert.equal(wrong.status, 401, "a wrong password is refused");
  const res = await fetch(`${url}/session`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password: CONSOLE_PASSWORD }),
  });
  assert.equal(res.status, 200, `sign-in through the published port: ${await res.clone().text()}`);
  const set = res.headers.get("set-cookie") ?? "";
  assert.match(set, /^cpm_session=[^;]+;.*HttpOnly; Secure; SameSite=Strict/);
  const cookie = set.split(";")[0]!;
  const me = await consoleCall(url, cookie, "cpm.config.v1.AccountService/WhoAmI");
  assert.equal(me.status, 200, JSON.stringify(me.json));
  assert.equal(me.json.username, username);
  const anonymous = await consoleCall(url, "", "cpm.config.v1.AccountService/WhoAmI");
  assert.equal(anonymous.status, 401, "without the cookie the console's API refuses");
  return { url, cookie };
}

/** Removes a stack and its volumes, ignoring a stack that is gone already. */
export async function removeStack(stack: Stack | undefined): Promise<void> {
  await stack?.down(true).catch(() => undefined);
}

/** Removes a directory made by secretsDir. */
export function removeDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}
