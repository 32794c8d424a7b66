import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdtempSync, readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { credentials } from "@grpc/grpc-js";
import {
  AccountServiceClient,
  CaddyRendererClient,
  ConfigServiceClient,
  SyncDispatcherClient,
  SyncReceiverClient,
  type RenderStatus,
  type Snapshot,
  type SyncResponse,
} from "@cpm/proto";
import { builtCaddyPath, CADDY_BUILD_COMMAND, findBuiltCaddy } from "@cpm/core";
import { channelCredentials, unary, withBearer } from "@cpm/grpc-kit";
import { freePort, httpGet } from "./net.ts";
import { waitFor } from "./wait.ts";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * The Caddy the end-to-end tests run: the project's build with caddy-l4. Throws naming the
 * build command when it has not been built.
 */
export function projectCaddy(root = ROOT): string {
  const bin = findBuiltCaddy(root);
  if (!bin) {
    throw new Error(
      `the end-to-end tests need the project's Caddy with caddy-l4 (${builtCaddyPath(root) ?? ".cache/caddy/"}), which is not built: run \`${CADDY_BUILD_COMMAND}\` (needs Go)`,
    );
  }
  return bin;
}

/** Runs node with the memory defaults `npm start` uses (of the release in `root`). */
const nodeSh = (root = ROOT) => path.join(root, "scripts", "node.sh");

/** The compiled launcher (`npm start`) of the release in `root`; `npm test` builds it before the end-to-end tests. */
export function launcherPath(root = ROOT): string {
  const file = path.join(root, "libs/launcher/dist/main.js");
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` before the end-to-end tests`);
  return file;
}

export interface InstancePorts {
  api: number;
  configInternal: number;
  renderer: number;
  dispatcher: number;
  sync: number;
  caddyAdmin: number;
  http: number;
  https: number;
  /** The web console (CPM_CONSOLE_LISTEN). */
  console: number;
}

export interface InstanceOptions {
  name: string;
  mode?: "standalone" | "master" | "slave";
  /** Extra environment; `CPM_CADDY_BIN` here replaces the project's Caddy. */
  env?: Record<string, string>;
  /** Reuse a data dir and ports (restart after kill). */
  dataDir?: string;
  ports?: InstancePorts;
  /**
   * Where the listeners others reach are (API, renderer, dispatcher, sync receiver, Caddy's admin
   * API) and where the test's clients connect: 127.0.0.1 unless given (a network namespace's address).
   */
  host?: string;
  /** The admin API token (random unless given: nodes that split one instance share it). */
  adminToken?: string;
  /** A command prefix the launcher runs under (`ip netns exec <ns>`: it execs, the pid stays the launcher's). */
  exec?: string[];
  /**
   * Each service in a process of its own (CPM_SPLIT_PROCESSES=true) rather than one Node
   * process: for tests that kill one service, and for the split run of the suite. Default:
   * `SPLIT` (CPM_E2E_SPLIT).
   */
  split?: boolean;
  /**
   * The tree of the release to run: its scripts/node.sh, launcher and Caddy (its
   * `.cache/caddy/`). Default: this repository, the current build; `previousRelease()`
   * (previous-release.ts) gives the previous release's, built from git.
   */
  root?: string;
}

/** The deployment shape the suite runs in: `npm run test:e2e:split` sets CPM_E2E_SPLIT=true. */
export const SPLIT = process.env.CPM_E2E_SPLIT === "true";

/**
 * One whole CPM instance as an operator runs it: `npm start`'s launcher with its own
 * processes (config-service, caddy-renderer, dispatcher or receiver, and a real Caddy),
 * a SQLite file in a temporary data dir, and ports of its own.
 */
export class Instance {
  readonly adminToken: string;
  child: ChildProcess | undefined;
  config!: ConfigServiceClient;
  account!: AccountServiceClient;
  renderer!: CaddyRendererClient;
  dispatcher!: SyncDispatcherClient;
  exited: Promise<number | null> = Promise.resolve(null);

  private constructor(
    readonly opts: InstanceOptions,
    readonly ports: InstancePorts,
    readonly dataDir: string,
  ) {
    this.adminToken = opts.adminToken ?? `admin-${Math.random().toString(36).slice(2)}-token`;
  }

  static async start(opts: InstanceOptions): Promise<Instance> {
    const ports = opts.ports ?? (await allocatePorts());
    const dataDir = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), `cpm-${opts.name}-`));
    const inst = new Instance(opts, ports, dataDir);
    await inst.launch();
    return inst;
  }

  /**
   * An instance with its ports and data dir, not launched yet: `launch()` starts it, and `kill()`
   * takes down what a launch that failed part-way left running.
   */
  static async prepare(opts: InstanceOptions): Promise<Instance> {
    const ports = opts.ports ?? (await allocatePorts());
    const dataDir = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), `cpm-${opts.name}-`));
    return new Instance(opts, ports, dataDir);
  }

  get env(): Record<string, string> {
    const p = this.ports;
    const h = this.host;
    return {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      INSTANCE_MODE: this.opts.mode ?? "standalone",
      CPM_DATA_DIR: this.dataDir,
      CPM_ADMIN_TOKEN: this.adminToken,
      CPM_API_LISTEN: `${h}:${p.api}`,
      CPM_CONFIG_INTERNAL_LISTEN: `127.0.0.1:${p.configInternal}`,
      CPM_RENDERER_LISTEN: `${h}:${p.renderer}`,
      CPM_DISPATCHER_LISTEN: `${h}:${p.dispatcher}`,
      CPM_SYNC_LISTEN: `${h}:${p.sync}`,
      CPM_CONSOLE_LISTEN: `${h}:${p.console}`,
      CADDY_API_URL: `http://${h}:${p.caddyAdmin}`,
      CPM_HTTP_PORT: String(p.http),
      CPM_HTTPS_PORT: String(p.https),
      CPM_RECONCILE_INTERVAL_MS: "500",
      LOG_LEVEL: process.env.CPM_TEST_LOG_LEVEL ?? "info",
      CPM_CADDY_BIN: this.opts.env?.CPM_CADDY_BIN ?? projectCaddy(this.root),
      CPM_SPLIT_PROCESSES: String(this.split),
      NODE: process.execPath,
      ...this.opts.env,
    };
  }

  /** Whether each service runs in a process of its own. */
  get split(): boolean {
    return this.opts.split ?? SPLIT;
  }

  /** The tree of the release this instance runs. */
  get root(): string {
    return this.opts.root ?? ROOT;
  }

  /** Where the test reaches this instance's listeners. */
  get host(): string {
    return this.opts.host ?? "127.0.0.1";
  }

  /** Starts the launcher and waits until the API answers and Caddy runs the current version. */
  async launch(): Promise<void> {
    const log = createWriteStream(path.join(this.dataDir, "instance.log"), { flags: "a" });
    // As `npm start` runs it: node with the project's memory defaults (scripts/node.sh execs node).
    const [cmd = "sh", ...args] = [...(this.opts.exec ?? []), "sh", nodeSh(this.root), launcherPath(this.root)];
    const child = spawn(cmd, args, {
      cwd: this.root,
      env: this.env,
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group, so `kill()` can take down the launcher and every child at once.
      detached: true,
    });
    // Two sources into one file: neither may end it (the other could still write), it ends when both have.
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    let open = 2;
    for (const s of [child.stdout, child.stderr]) s.once("end", () => --open === 0 && log.end());
    this.child = child;
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    const addr = (port: number) => `${this.host}:${port}`;
    this.config = new ConfigServiceClient(addr(this.ports.api), credentials.createInsecure());
    this.account = new AccountServiceClient(addr(this.ports.api), credentials.createInsecure());
    this.renderer = new CaddyRendererClient(addr(this.ports.renderer), credentials.createInsecure());
    this.dispatcher = new SyncDispatcherClient(addr(this.ports.dispatcher), credentials.createInsecure());
    try {
      await waitFor(async () => (await this.info()).instanceId, `${this.opts.name}: config-service up`, 60_000, 200);
      await this.waitInSync();
      // A slave's receiver opens its port once its config-service and renderer answer.
      if (this.opts.mode === "slave")
        await waitFor(
          () => accepts(this.host, this.ports.sync),
          `${this.opts.name}: sync receiver listening`,
          30_000,
          50,
        );
    } catch (e) {
      // What the instance said is what explains a start that never came up.
      const tail = this.log().split("\n").slice(-30).join("\n");
      throw new Error(
        `${e instanceof Error ? e.message : String(e)}\n--- last lines of ${this.opts.name}'s log ---\n${tail}`,
        { cause: e },
      );
    }
  }

  info() {
    return unary(this.config.getInstanceInfo.bind(this.config), {}, this.adminToken, 5000);
  }

  async version(): Promise<number> {
    return (await this.info()).version;
  }

  async renderStatus(): Promise<RenderStatus> {
    const r = await unary(this.renderer.getRenderStatus.bind(this.renderer), {}, this.adminToken, 5000);
    return r.status!;
  }

  /** Caddy runs the instance's current version. */
  async waitInSync(timeoutMs = 30_000): Promise<RenderStatus> {
    return waitFor(
      async () => {
        const s = await this.renderStatus();
        return s.inSync && s.appliedVersion === (await this.version()) ? s : undefined;
      },
      `${this.opts.name}: Caddy in sync`,
      timeoutMs,
      100,
    );
  }

  /** An HTTP request through this instance's Caddy. */
  get(host: string, p = "/", headers: Record<string, string> = {}) {
    return httpGet(this.ports.http, host, p, headers);
  }

  /** Waits until a request with Host `host` gets a body matching `re` (or a status). */
  waitServes(host: string, expect: RegExp | number, timeoutMs = 30_000) {
    return waitFor(
      async () => {
        const r = await this.get(host);
        return (typeof expect === "number" ? r.status === expect : r.status === 200 && expect.test(r.body))
          ? r
          : undefined;
      },
      `${this.opts.name} serving ${host} -> ${expect}`,
      timeoutMs,
    );
  }

  /** A client of this slave's sync receiver (TLS verified against `ca`, or plaintext without one). */
  receiverClient(ca?: string) {
    return new SyncReceiverClient(`localhost:${this.ports.sync}`, channelCredentials({ tls: !!ca, caFile: ca }));
  }

  /** One snapshot over a fresh stream to this slave's receiver, as a master sends it; resolves with its answer. */
  pushSnapshot(snapshot: Snapshot, token: string | undefined, ca?: string): Promise<SyncResponse> {
    const client = this.receiverClient(ca);
    return new Promise((resolve, reject) => {
      const call = client.sync(withBearer(token));
      call.on("data", (r: SyncResponse) => {
        resolve(r);
        call.end();
        client.close();
      });
      call.on("error", (e) => {
        client.close();
        reject(e);
      });
      call.write({ snapshot, traceContext: undefined });
    });
  }

  log(): string {
    try {
      return readFileSync(path.join(this.dataDir, "instance.log"), "utf8");
    } catch {
      return "";
    }
  }

  closeClients(): void {
    for (const c of [this.config, this.account, this.renderer, this.dispatcher]) c?.close();
  }

  /** Graceful stop (SIGTERM, as `docker stop` does). Resolves with the exit code. */
  async stop(): Promise<number | null> {
    this.closeClients();
    if (!this.child || this.child.exitCode !== null) return this.child?.exitCode ?? null;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child?.kill("SIGKILL"), 20_000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /**
   * Abrupt death of the whole instance: SIGKILL to the launcher and every child, Caddy included
   * (a crash, a pulled plug). Caddy runs in its own session, so it is killed by its recorded pid.
   */
  async kill(): Promise<void> {
    const caddy = this.caddyPid();
    await this.killControlPlane();
    if (caddy === undefined) return;
    try {
      process.kill(caddy, "SIGKILL");
    } catch {
      /* gone already */
    }
    await waitFor(() => !alive(caddy), `${this.opts.name}: Caddy (pid ${caddy}) gone`, 5_000, 20);
  }

  /**
   * SIGKILL to the launcher and its services (its process group; an OOM kill of Node), not to
   * Caddy, which runs in its own session and keeps serving.
   */
  async killControlPlane(): Promise<void> {
    this.closeClients();
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    process.kill(-this.child.pid!, "SIGKILL");
    await this.exited;
  }

  /** The pid of this instance's Caddy as the launcher records it, when that process is alive. */
  caddyPid(): number | undefined {
    try {
      const pid = Number(readFileSync(path.join(this.dataDir, "caddy", "caddy.pid"), "utf8").trim());
      return pid > 0 && alive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** Starts again on the same data dir and ports. */
  async restart(): Promise<void> {
    await this.launch();
  }
}

/** Stops `inst` (when it was started) with SIGTERM and asserts the launcher exits cleanly (code 0). */
export async function stopCleanly(inst: Instance | undefined): Promise<void> {
  assert.equal(await inst?.stop(), 0, "the launcher stops cleanly on SIGTERM");
}

/** Whether `pid` is a live process (not a zombie). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Whether something accepts TCP connections on `host`:`port`. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

export async function allocatePorts(): Promise<InstancePorts> {
  return {
    api: await freePort(),
    configInternal: await freePort(),
    renderer: await freePort(),
    dispatcher: await freePort(),
    sync: await freePort(),
    caddyAdmin: await freePort(),
    http: await freePort(),
    https: await freePort(),
    console: await freePort(),
  };
}

/**
 * Runs the launcher (of the release in `root`) with an environment and returns its exit code and
 * output (for start-up failures).
 */
export function runLauncher(
  env: Record<string, string>,
  timeoutMs = 20_000,
  root = ROOT,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [launcherPath(root)], {
      cwd: root,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}
