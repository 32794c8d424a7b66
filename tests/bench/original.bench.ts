/**
 * npm run bench:original (needs CPM_ORIGINAL_DIR, root and `ip` from iproute2; see README "Benchmarks")
 *
 * Side by side, in one run and one at a time, for each size in CPM_BENCH_SIZES (default 100 and
 * 1,000 proxy hosts, every host on one imported wildcard certificate) and each shape in
 * CPM_BENCH_ORIGINAL_SHAPES (default all three: `shared`, every host on one upstream with HTTPS
 * forced, where this project's grouping helps most; `own`, an upstream each with HTTPS forced;
 * `own-plain`, an upstream each without, where it leads least):
 * - this project: master + TLS slave (`npm start`'s launcher, each with its own real Caddy);
 * - the original single-process product (a built checkout in CPM_ORIGINAL_DIR, run with Bun as its
 *   image does): master + slave, each with its own real Caddy, synced through its own path
 *   (a save on the master loads the master's Caddy, then POSTs the JSON export to the slave's
 *   `/api/instances/sync`, which writes its database and loads the slave's Caddy).
 * It prints one table: the time from a write being sent on the master until the slave's Caddy
 * serves the new domain over HTTPS (CPM_BENCH_CHANGES changes, default 30; median / p99), the
 * rendered Caddy config the slave runs (KiB, bytes per host), and the bare `POST /load` of that
 * same config into a separate Caddy.
 *
 * The original's rendered config always binds Caddy's admin API on 0.0.0.0:2019 and its sites on
 * :80/:443, so each of its Caddies runs in a network namespace of its own (with its upstream
 * there too), reached from here over a veth pair; its web processes run here on loopback.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import Database from "better-sqlite3";
import { Certificate, CertificateType, ProxyHost } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { caddyAdminRequest } from "@cpm/core";
import { Instance, projectCaddy } from "../support/instance.ts";
import { freePort, startUpstream } from "../support/net.ts";
import { makeNamedCerts, makePki, type NamedCerts } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";
import { pct } from "./stats.ts";
import { benchReport } from "./markdown.ts";

const ORIGINAL_DIR = process.env.CPM_ORIGINAL_DIR;
const BUN = process.env.CPM_ORIGINAL_BUN ?? "bun";
const SIZES = (process.env.CPM_BENCH_SIZES ?? "100,1000").split(",").map(Number);
/** How the hosts are made: their upstreams shared or one each, HTTPS forced or not. */
interface Shape {
  name: string;
  ownUpstream: boolean;
  sslForced: boolean;
}
const ALL_SHAPES: Shape[] = [
  { name: "shared", ownUpstream: false, sslForced: true },
  { name: "own", ownUpstream: true, sslForced: true },
  { name: "own-plain", ownUpstream: true, sslForced: false },
];
const SHAPES = (process.env.CPM_BENCH_ORIGINAL_SHAPES ?? ALL_SHAPES.map((x) => x.name).join(","))
  .split(",")
  .map((name) => {
    const shape = ALL_SHAPES.find((x) => x.name === name.trim());
    if (!shape)
      throw new Error(
        `CPM_BENCH_ORIGINAL_SHAPES: unknown shape ${JSON.stringify(name)} (${ALL_SHAPES.map((x) => x.name).join(", ")})`,
      );
    return shape;
  });
/**
 * Host i's upstream address: one loopback address for every host, or one each (127.1.0.0/16,
 * all on the loopback interface; the upstreams listen on every address).
 */
const upstreamHost = (shape: Shape, i: number) =>
  shape.ownUpstream ? `127.1.${(i >> 8) & 255}.${i & 255}` : "127.0.0.1";
const CHANGES = Number(process.env.CPM_BENCH_CHANGES ?? 30);
const IN_FLIGHT = Number(process.env.CPM_BENCH_IN_FLIGHT ?? 16);
/** How long the slave may take to serve the seeded hosts. */
const SEED_TIMEOUT_MS = Number(process.env.CPM_BENCH_SEED_TIMEOUT_MS ?? 600_000);
const TOKEN = "bench-original-sync-token-0123456789";
const WILDCARD = "*.bench.test";
/** The upstream's port inside each of the original's network namespaces. */
const NS_UPSTREAM_PORT = 18080;
/** The original's API defaults for a new proxy host, given to this project's hosts too so both render the same shape. */
const ORIGINAL_HOST_DEFAULTS = {
  sslForced: true,
  hstsEnabled: true,
  hstsSubdomains: false,
  allowWebsocket: true,
  preserveHostHeader: true,
};

const ms = (x: number) => `${x.toFixed(0)} ms`;
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));
const log = (s: string) => process.stderr.write(`  ${s}\n`);

/** Every process and instance this run started, stopped on the way out whatever happens. */
const children = new Set<ChildProcess>();
const instances = new Set<Instance>();
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/** GET https://ip:port/ for `domain` (SNI and Host): whether the upstream answered it. */
function httpsServes(ip: string, port: number, domain: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.request(
      {
        host: ip,
        port,
        servername: domain,
        path: "/",
        headers: { Host: domain },
        rejectUnauthorized: false,
        agent: false,
        timeout: 5000,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve(res.statusCode === 200 && body.includes("upstream=")));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve(false));
    req.end();
  });
}

/** Polls until the slave's Caddy serves `domain` from its upstream. */
async function untilServed(ip: string, port: number, domain: string, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await httpsServes(ip, port, domain))) {
    if (Date.now() > deadline) throw new Error(`${domain} not served by ${ip}:${port} after ${timeoutMs} ms`);
    await sleep(5);
  }
}

/** A Caddy config with its admin and listeners moved to fresh loopback ports, for a bare Caddy. */
async function retarget(json: string, adminPort: number): Promise<string> {
  interface CaddyConfig {
    admin?: { listen: string };
    apps?: {
      http?: { servers?: Record<string, { listen?: string[] }>; http_port?: number; https_port?: number };
    };
  }
  const cfg = JSON.parse(json) as CaddyConfig;
  cfg.admin = { listen: `127.0.0.1:${adminPort}` };
  const http = cfg.apps?.http;
  if (http?.servers) {
    const moved = new Map<number, number>();
    const move = async (p: number) => moved.get(p) ?? moved.set(p, await freePort()).get(p)!;
    for (const server of Object.values(http.servers)) {
      server.listen = await Promise.all(
        (server.listen ?? []).map(async (a) => `:${await move(Number(a.split(":").pop()))}`),
      );
    }
    http.http_port = await move(http.http_port ?? 80);
    http.https_port = await move(http.https_port ?? 443);
  }
  return JSON.stringify(cfg);
}

/** The bare cost of Caddy's `POST /load` for `json`: two retargeted variants alternated, so no load is a no-op. */
async function bareLoads(json: string, count: number): Promise<number[]> {
  const admin = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "cpm-bench-orig-bare-"));
  const cfg = path.join(dir, "initial.json");
  writeFileSync(cfg, JSON.stringify({ admin: { listen: `127.0.0.1:${admin}` } }));
  const child = track(
    spawn(projectCaddy(), ["run", "--config", cfg], {
      stdio: "ignore",
      env: { ...process.env, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
    }),
  );
  try {
    await waitFor(
      async () => (await caddyAdminRequest(`http://127.0.0.1:${admin}/config/`).catch(() => undefined))?.status === 200,
      "bare caddy up",
      15_000,
    );
    const variants = [await retarget(json, admin), await retarget(json, admin)];
    const loads: number[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const res = await caddyAdminRequest(`http://127.0.0.1:${admin}/load`, { method: "POST", body: variants[i % 2] });
      if (res.status !== 200) throw new Error(`bare load failed: ${res.status} ${res.body.slice(0, 300)}`);
      loads.push(performance.now() - t0);
    }
    return loads;
  } finally {
    await stopChild(child);
  }
}

interface Cell {
  /** From sending the write on the master to the slave's Caddy serving it. */
  serve: number[];
  /** From sending the write to the master's answer. */
  write: number[];
  configBytes: number;
  loads: number[];
}

/** This project: master + TLS slave, an imported wildcard certificate, `n` hosts of `shape` on it. */
async function benchThis(n: number, shape: Shape, pem: { cert: string; key: string }): Promise<Cell> {
  const up = await startUpstream("cpm", "0.0.0.0");
  const pki = makePki(mkdtempSync(path.join(os.tmpdir(), "cpm-bench-orig-pki-")));
  const quiet = { LOG_LEVEL: process.env.CPM_BENCH_LOG_LEVEL ?? "warn" };
  const slave = await Instance.start({
    name: `bench-orig-slave-${n}`,
    mode: "slave",
    env: { ...quiet, INSTANCE_SYNC_TOKEN: TOKEN, CPM_SYNC_TLS_CERT: pki.cert, CPM_SYNC_TLS_KEY: pki.key },
  });
  instances.add(slave);
  const master = await Instance.start({
    name: `bench-orig-master-${n}`,
    mode: "master",
    env: {
      ...quiet,
      CPM_SYNC_TLS_CA: pki.caCert,
      INSTANCE_SLAVES: JSON.stringify([{ name: "s", url: `https://localhost:${slave.ports.sync}`, token: TOKEN }]),
    },
  }).catch(async (err) => {
    await slave.stop();
    throw err;
  });
  instances.add(master);
  try {
    const cert = (
      await unary(
        master.config.createCertificate.bind(master.config),
        {
          certificate: Certificate.fromPartial({
            name: "wildcard",
            type: CertificateType.CERTIFICATE_TYPE_IMPORTED,
            certificatePem: pem.cert,
            privateKeyPem: pem.key,
          }),
        },
        master.adminToken,
      )
    ).certificate!;
    log(`this project: seeding ${n} proxy hosts, ${IN_FLIGHT} in flight...`);
    const hosts = new Array<ProxyHost>(n);
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        for (let i = next++; i < n; i = next++) {
          const r = await unary(
            master.config.createProxyHost.bind(master.config),
            {
              proxyHost: ProxyHost.fromPartial({
                name: `h${i}`,
                domains: [`h${i}.bench.test`],
                upstreams: [`${upstreamHost(shape, i)}:${up.port}`],
                certificateId: cert.id,
                ...ORIGINAL_HOST_DEFAULTS,
                sslForced: shape.sslForced,
              }),
            },
            master.adminToken,
          );
          hosts[i] = r.proxyHost!;
        }
      }),
    );
    await untilServed("127.0.0.1", slave.ports.https, `h${n - 1}.bench.test`, SEED_TIMEOUT_MS);
    const seeded = await master.version();
    await waitFor(
      async () => (await slave.version()) === seeded && (await slave.renderStatus()).inSync,
      "slave seeded",
      600_000,
      200,
    );

    log(`this project: ${CHANGES} changes...`);
    const serve: number[] = [];
    const write: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const h = hosts[i % n]!;
      const domain = `c${i}.bench.test`;
      const t0 = performance.now();
      const r = await unary(
        master.config.updateProxyHost.bind(master.config),
        { proxyHost: { ...h, domains: [domain] } },
        master.adminToken,
      );
      write.push(performance.now() - t0);
      await untilServed("127.0.0.1", slave.ports.https, domain, 120_000);
      serve.push(performance.now() - t0);
      hosts[i % n] = r.proxyHost!;
    }
    const json = (await caddyAdminRequest(`http://127.0.0.1:${slave.ports.caddyAdmin}/config/`)).body;
    return { serve, write, configBytes: json.length, loads: await bareLoads(json, CHANGES) };
  } finally {
    for (const i of [master, slave]) {
      await i.stop();
      instances.delete(i);
    }
    await up.close();
  }
}

/** A network namespace joined to this one by a veth pair: `ip` inside, `hostIp` on this side. */
interface Netns {
  name: string;
  ip: string;
  hostIp: string;
  /** argv that runs `argv` inside the namespace. */
  exec(argv: string[]): string[];
  remove(): void;
}

/** Namespaces this run created, removed on the way out whatever happens. */
const namespaces = new Set<Netns>();

function createNetns(tag: string, subnet: number): Netns {
  const name = `cpmob-${process.pid}-${tag}`;
  const host = `cob${process.pid % 100000}${tag}`;
  const peer = `${host}n`;
  const [hostIp, ip] = [`10.231.${subnet}.1`, `10.231.${subnet}.2`];
  const ipCmd = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" });
  ipCmd("netns", "add", name);
  ipCmd("link", "add", host, "type", "veth", "peer", "name", peer);
  ipCmd("link", "set", peer, "netns", name);
  ipCmd("addr", "add", `${hostIp}/30`, "dev", host);
  ipCmd("link", "set", host, "up");
  ipCmd("netns", "exec", name, "ip", "addr", "add", `${ip}/30`, "dev", peer);
  ipCmd("netns", "exec", name, "ip", "link", "set", peer, "up");
  ipCmd("netns", "exec", name, "ip", "link", "set", "lo", "up");
  const ns: Netns = {
    name,
    ip,
    hostIp,
    exec: (argv) => ["ip", "netns", "exec", name, ...argv],
    remove: () => {
      namespaces.delete(ns);
      for (const args of [
        ["link", "del", host],
        ["netns", "del", name],
      ]) {
        try {
          ipCmd(...args);
        } catch {
          // already gone
        }
      }
    },
  };
  namespaces.add(ns);
  return ns;
}

/** Spawns argv (argv[0] is the program), its output into `logFile`. */
function spawnLogged(
  argv: string[],
  logFile: string,
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): ChildProcess {
  const out = createWriteStream(logFile, { flags: "a" });
  const child = track(
    spawn(argv[0]!, argv.slice(1), { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] }),
  );
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  return child;
}

/** One node of the original: its Caddy and an upstream in a namespace, its web process here. */
interface OriginalNode {
  ns: Netns;
  port: number;
  dir: string;
  db: string;
  stop(): Promise<void>;
}

const UPSTREAM_SCRIPT = `require("node:http").createServer((q, s) => s.end("upstream=original host=" + q.headers.host + "\\n")).listen(${NS_UPSTREAM_PORT}, "0.0.0.0")`;

async function startOriginalNode(
  role: "master" | "slave",
  subnet: number,
  env: Record<string, string>,
): Promise<OriginalNode> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `cpm-bench-orig-${role}-`));
  const ns = createNetns(role === "master" ? "m" : "s", subnet);
  const procs: ChildProcess[] = [];
  try {
    const caddyCfg = path.join(dir, "caddy-initial.json");
    writeFileSync(caddyCfg, JSON.stringify({ admin: { listen: "0.0.0.0:2019" } }));
    procs.push(
      spawnLogged(ns.exec([projectCaddy(), "run", "--config", caddyCfg]), path.join(dir, "caddy.log"), {
        env: { ...process.env, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
      }),
    );
    procs.push(spawnLogged(ns.exec([process.execPath, "-e", UPSTREAM_SCRIPT]), path.join(dir, "upstream.log")));
    await waitFor(
      async () => (await caddyAdminRequest(`http://${ns.ip}:2019/config/`).catch(() => undefined))?.status === 200,
      `original ${role}: Caddy up`,
      30_000,
    );
    const port = await freePort();
    const db = path.join(dir, "cpm-original.db");
    const webEnv: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: dir,
      NODE_ENV: "production",
      NEXT_TELEMETRY_DISABLED: "1",
      PORT: String(port),
      HOSTNAME: "127.0.0.1",
      BASE_URL: `http://127.0.0.1:${port}`,
      SESSION_SECRET: randomBytes(32).toString("hex"),
      ADMIN_USERNAME: "benchadmin",
      ADMIN_PASSWORD: "Bench-Passw0rd!-2026",
      DATABASE_URL: `file:${db}`,
      DATABASE_PATH: db,
      CERTS_DIRECTORY: path.join(dir, "certs"),
      ACME_CA_ROOT_DIR: dir,
      CADDY_API_URL: `http://${ns.ip}:2019`,
      INSTANCE_MODE: role,
      // Not the measured path's limits: the bench sends more syncs per minute than its default allows.
      INSTANCE_SYNC_RATE_MAX: "1000000",
      INSTANCE_SYNC_MAX_BYTES: String(1 << 30),
      ...env,
    };
    procs.push(
      spawnLogged(
        [BUN, "--bun", "node_modules/.bin/next", "start", "-p", String(port), "-H", "127.0.0.1"],
        path.join(dir, "web.log"),
        { cwd: ORIGINAL_DIR, env: webEnv },
      ),
    );
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/api/health`).catch(() => undefined))?.status === 200,
      `original ${role}: web up (log ${path.join(dir, "web.log")})`,
      120_000,
      250,
    );
    return {
      ns,
      port,
      dir,
      db,
      stop: async () => {
        for (const p of procs.reverse()) await stopChild(p);
        ns.remove();
      },
    };
  } catch (err) {
    for (const p of procs.reverse()) await stopChild(p);
    ns.remove();
    throw err;
  }
}

/** An API token for the original's admin, written into its database as its token model stores one (sha256 of the token). */
async function originalApiToken(node: OriginalNode): Promise<string> {
  const raw = `bench-${randomBytes(24).toString("hex")}`;
  const db = new Database(node.db);
  try {
    const admin = await waitFor(
      () =>
        db.prepare("SELECT id FROM users WHERE role = 'admin' ORDER BY id LIMIT 1").get() as { id: number } | undefined,
      "original: admin user",
      30_000,
      200,
    );
    db.prepare("INSERT INTO api_tokens (name, tokenHash, createdBy, createdAt) VALUES (?, ?, ?, ?)").run(
      "bench",
      createHash("sha256").update(raw).digest("hex"),
      admin.id,
      new Date().toISOString(),
    );
  } finally {
    db.close();
  }
  return raw;
}

async function originalApi<T>(
  node: OriginalNode,
  token: string,
  method: string,
  p: string,
  body?: unknown,
): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${node.port}${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`original ${method} ${p}: ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

/**
 * The original: master + slave. The certificate and the first host go through its REST API; the
 * other hosts are copies of that first row written into the master's database (its API would load
 * Caddy and sync the slave once per host), then one `POST /api/v1/caddy/apply` loads them and
 * syncs the slave through its real path. The measured changes are `PUT /api/v1/proxy-hosts/:id`.
 */
async function benchOriginal(
  n: number,
  shape: Shape,
  pem: { cert: string; key: string },
  subnet: number,
): Promise<Cell> {
  const slave = await startOriginalNode("slave", subnet + 1, { INSTANCE_SYNC_TOKEN: TOKEN });
  let master: OriginalNode | undefined;
  try {
    master = await startOriginalNode("master", subnet, {
      INSTANCE_SLAVES: JSON.stringify([{ name: "s", url: `http://127.0.0.1:${slave.port}`, token: TOKEN }]),
      // Its sync is plain HTTP (the web process has no TLS of its own); on loopback here.
      INSTANCE_SYNC_ALLOW_HTTP: "true",
    });
    const token = await originalApiToken(master);
    const cert = await originalApi<{ id: number }>(master, token, "POST", "/api/v1/certificates", {
      name: "wildcard",
      type: "imported",
      domainNames: [WILDCARD],
      certificatePem: pem.cert,
      privateKeyPem: pem.key,
    });
    const first = await originalApi<{ id: number }>(master, token, "POST", "/api/v1/proxy-hosts", {
      name: "h0",
      domains: ["h0.bench.test"],
      upstreams: [`${upstreamHost(shape, 0)}:${NS_UPSTREAM_PORT}`],
      certificateId: cert.id,
      sslForced: shape.sslForced,
    });
    log(`original: seeding ${n} proxy hosts...`);
    const ids = [first.id];
    const db = new Database(master.db);
    try {
      const cols =
        "certificateId, accessListId, ownerUserId, sslForced, hstsEnabled, hstsSubdomains, allowWebsocket, preserveHostHeader, meta, enabled, createdAt, updatedAt, skipHttpsHostnameValidation";
      const copy = db.prepare(
        `INSERT INTO proxy_hosts (name, domains, upstreams, ${cols}) SELECT ?, ?, ?, ${cols} FROM proxy_hosts WHERE id = ?`,
      );
      db.transaction(() => {
        for (let i = 1; i < n; i++) {
          const upstreams = JSON.stringify([`${upstreamHost(shape, i)}:${NS_UPSTREAM_PORT}`]);
          ids.push(
            Number(copy.run(`h${i}`, JSON.stringify([`h${i}.bench.test`]), upstreams, first.id).lastInsertRowid),
          );
        }
      })();
    } finally {
      db.close();
    }
    await originalApi(master, token, "POST", "/api/v1/caddy/apply");
    await untilServed(slave.ns.ip, 443, `h${n - 1}.bench.test`, SEED_TIMEOUT_MS);

    log(`original: ${CHANGES} changes...`);
    const serve: number[] = [];
    const write: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const domain = `c${i}.bench.test`;
      const t0 = performance.now();
      await originalApi(master, token, "PUT", `/api/v1/proxy-hosts/${ids[i % n]}`, { domains: [domain] });
      write.push(performance.now() - t0);
      await untilServed(slave.ns.ip, 443, domain, 120_000);
      serve.push(performance.now() - t0);
    }
    const json = (await caddyAdminRequest(`http://${slave.ns.ip}:2019/config/`)).body;
    return { serve, write, configBytes: json.length, loads: await bareLoads(json, CHANGES) };
  } finally {
    await master?.stop();
    await slave.stop();
  }
}

/** The original checkout's commit (and Bun's version), as far as git and Bun say. */
function originalRevision(): string {
  const run = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { cwd: ORIGINAL_DIR, stdio: "pipe" }).toString().trim();
    } catch {
      return undefined;
    }
  };
  const commit = run("git", ["rev-parse", "HEAD"]);
  const date = run("git", ["log", "-1", "--format=%cs"]);
  return `${commit ? `commit \`${commit}\`${date ? ` (${date})` : ""}` : "commit unknown (no git checkout)"}, run with Bun ${run(BUN, ["--version"]) ?? "?"}`;
}

function preflight(): string | undefined {
  if (!ORIGINAL_DIR)
    return "CPM_ORIGINAL_DIR is not set: point it at a built checkout of the original product (see README, Benchmarks)";
  if (!existsSync(path.join(ORIGINAL_DIR, ".next", "BUILD_ID")))
    return `CPM_ORIGINAL_DIR=${ORIGINAL_DIR} has no .next/BUILD_ID: build it first (\`bun --bun run build\`, see README)`;
  if (process.getuid?.() !== 0)
    return "the original's Caddies run in network namespaces of their own (`ip netns`), which needs root";
  try {
    execFileSync(BUN, ["--version"], { stdio: "pipe" });
  } catch {
    return `CPM_ORIGINAL_BUN (${BUN}) is not a runnable Bun: the original runs on Bun (bun:sqlite)`;
  }
  return undefined;
}

async function main() {
  const blocked = preflight();
  if (blocked) {
    console.log(`bench:original skipped: ${blocked}`);
    return;
  }
  const certs: NamedCerts = makeNamedCerts(mkdtempSync(path.join(os.tmpdir(), "cpm-bench-orig-cert-")), [WILDCARD]);
  const pem = certs.certs[WILDCARD]!;
  const report = benchReport("original", "sudo CPM_ORIGINAL_DIR=/srv/cpm-original npm run bench:original");
  report.log(`The original: ${originalRevision()}.`);
  report.log();
  report.log(
    `Setup: a master and one slave of each product, real Caddies, ${CHANGES} changes per cell, hosts on one imported wildcard certificate; shapes: \`shared\` every host on one upstream, HTTPS forced; \`own\` an upstream each, HTTPS forced; \`own-plain\` an upstream each, HTTPS not forced (HSTS, websockets and the client's Host as the original's API sets them by default, for both products).`,
  );
  const rows: { n: number; shape: Shape; cpm: Cell | Error; orig: Cell | Error }[] = [];
  let subnet = 100 + (process.pid % 50) * 2;
  // A side that fails at a size is reported in its cells; the other side and sizes still run.
  const attempt = (run: () => Promise<Cell>) =>
    run().catch((err: unknown) => {
      console.error(err);
      return err instanceof Error ? err : new Error(String(err));
    });
  for (const n of SIZES)
    for (const shape of SHAPES) {
      process.stderr.write(`size ${n}, shape ${shape.name}:\n`);
      const cpm = await attempt(() => benchThis(n, shape, pem));
      const orig = await attempt(() => benchOriginal(n, shape, pem, subnet));
      subnet += 2;
      rows.push({ n, shape, cpm, orig });
    }
  const failed = (c: Cell | Error): c is Error => c instanceof Error;
  const cell = (c: Cell | Error, pick: (c: Cell) => number[]) =>
    failed(c) ? `failed: ${c.message.slice(0, 120)}` : `${ms(pct(pick(c), 50))} / ${ms(pct(pick(c), 99))}`;
  const size = (c: Cell | Error, n: number) =>
    failed(c) ? "-" : `${(c.configBytes / 1024).toFixed(0)} KiB (${(c.configBytes / n).toFixed(0)} B/host)`;
  const median = (c: Cell | Error, pick: (c: Cell) => number[]) => (failed(c) ? NaN : pct(pick(c), 50));
  report.log();
  report.log(
    "| hosts | shape | write -> slave's Caddy serves it, this project (median / p99) | same, original | ratio of medians (original / this) | API write returns, this / original (median) | rendered config, this | rendered config, original | bare `POST /load`, this (median / p99) | bare `POST /load`, original |",
  );
  report.log("|---|---|---|---|---|---|---|---|---|---|");
  for (const { n, shape, cpm, orig } of rows) {
    report.log(
      `| ${n.toLocaleString("en-US")} | ${shape.name} | ${cell(cpm, (c) => c.serve)} | ${cell(orig, (c) => c.serve)} | ${(median(orig, (c) => c.serve) / median(cpm, (c) => c.serve)).toFixed(2)}x | ${ms(median(cpm, (c) => c.write))} / ${ms(median(orig, (c) => c.write))} | ${size(cpm, n)} | ${size(orig, n)} | ${cell(cpm, (c) => c.loads)} | ${cell(orig, (c) => c.loads)} |`,
    );
  }
  report.finish();
}

/** The original's rendered config always writes a log under /logs; removed again when this run made it. */
const LOGS_DIR = "/logs";
const logsDirExisted = existsSync(LOGS_DIR);

async function cleanup() {
  await Promise.all([...children].map(stopChild));
  await Promise.all([...instances].map((i) => i.stop()));
  for (const ns of [...namespaces]) ns.remove();
  if (!logsDirExisted) rmSync(LOGS_DIR, { recursive: true, force: true });
}

process.on("SIGINT", () => void cleanup().then(() => process.exit(130)));
main().then(
  async () => {
    await cleanup();
    process.exit(0);
  },
  async (err) => {
    console.error(err);
    await cleanup();
    process.exit(1);
  },
);
