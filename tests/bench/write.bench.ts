/**
 * npm run bench:write
 *
 * The API write path of one instance, per size in CPM_BENCH_SIZES (default 100, 1,000 and
 * 10,000 proxy hosts), in two parts run one after the other (never at the same time: they share
 * the cores):
 * - a whole instance as an operator runs it (`npm start`'s launcher, one Node process unless
 *   CPM_E2E_SPLIT=true, a real Caddy, a SQLite file), CPM_BENCH_MODE `master` (default: the
 *   goal's shape, a master with no slaves, its dispatcher running) or `standalone`. Seeded with
 *   N hosts, CPM_BENCH_IN_FLIGHT (default 16) creates in flight; then the API write latency,
 *   CPM_BENCH_WRITES (default 200) UpdateProxyHost calls one at a time (median and p99); then
 *   writes per second, CPM_BENCH_CREATES (default 1000) CreateProxyHost calls,
 *   CPM_BENCH_IN_FLIGHT in flight, then as many again: the first batch is the instance's first
 *   thousand or so writes after its start (its code still being compiled at 100 hosts, where
 *   seeding made few), the second what a node that has run a while takes. Caddy runs the
 *   current version before each part.
 * - config-service alone in this process (the same handlers, store and token check behind its
 *   gRPC API on a loopback port, no Caddy, no other service), seeded the same way: the same
 *   writes, and the SQL statements each write runs on the database connection (better-sqlite3's
 *   `verbose`: token check, content check, transaction and the writes themselves), one update at
 *   a time, one create at a time (CPM_BENCH_SINGLE_CREATES, default 50) and creates in flight.
 * Before the first size, the bench's own client is warmed up: CPM_BENCH_WARMUP (default 1000)
 * creates on an instance that is thrown away (each measured instance still starts cold).
 * Both parts also give the CPU time per write (the instance's Node processes from /proc, Caddy
 * apart; this process for config-service alone, client included), which other work on the
 * machine moves less than the wall-clock figures. Prints one table with the goals beside the
 * figures, the Prisma version, and the statements of one update as SQLite ran them.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { AccountServiceClient, ConfigServiceClient, ProxyHost } from "@cpm/proto";
import { channelCredentials, unary } from "@cpm/grpc-kit";
import { createLogger } from "@cpm/core";
import { ApiTokens, ConfigStore, createServer, openDatabase } from "@cpm/config-service";
import { SPLIT } from "../support/instance.ts";
import { inParallel, killInstancesOnSignal, seed, startInstance, stopAll } from "./cluster.ts";
import { benchReport, machineDescription } from "./markdown.ts";
import { treeCpuMs } from "./proc-mem.ts";
import { pct } from "./stats.ts";

const num = (name: string, dflt: number) => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v < 1)
    throw new Error(`${name} must be a whole number >= 1, got ${JSON.stringify(process.env[name])}`);
  return v;
};
const SIZES = (process.env.CPM_BENCH_SIZES ?? "100,1000,10000").split(",").map((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`CPM_BENCH_SIZES must list whole numbers >= 1, got ${JSON.stringify(s)}`);
  return n;
});
const WRITES = num("CPM_BENCH_WRITES", 200);
const CREATES = num("CPM_BENCH_CREATES", 1000);
const SINGLE_CREATES = num("CPM_BENCH_SINGLE_CREATES", 50);
const WARMUP = num("CPM_BENCH_WARMUP", 1000);
const IN_FLIGHT = num("CPM_BENCH_IN_FLIGHT", 16);
const MODE = process.env.CPM_BENCH_MODE ?? "master";
if (MODE !== "standalone" && MODE !== "master")
  throw new Error(`CPM_BENCH_MODE must be standalone or master, got ${JSON.stringify(MODE)}`);

const UPSTREAM = 9; // nothing is served: Caddy's config is what counts, not the traffic
const ms = (x: number) => `${x.toFixed(1)} ms`;
const perSecond = (count: number, t0: number) => count / ((performance.now() - t0) / 1000);

/** The version of Prisma's client that config-service runs. */
function prismaVersion(): string {
  const require = createRequire(import.meta.resolve("@cpm/config-service"));
  const manifest = require.resolve("@prisma/client/package.json");
  return (JSON.parse(readFileSync(manifest, "utf8")) as { version: string }).version;
}

/** CPU time (ms) used so far by the instance's Node processes under `root`, Caddy apart: what its own code costs. */
const nodeCpuMs = (root: number) => treeCpuMs(root, (name) => name !== "caddy");
/** CPU time (ms) used so far by the instance's Caddy under `root` (its loads). */
const caddyCpuMs = (root: number) => treeCpuMs(root, (name) => name === "caddy");

/** CPU time (user + system, ms) of this process so far. */
const ownCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** The calls a part makes: create and update one proxy host. */
interface Api {
  create(name: string): Promise<ProxyHost>;
  update(host: ProxyHost, i: number): Promise<ProxyHost>;
}

const newHost = (name: string) =>
  ProxyHost.fromPartial({ name, domains: [`${name}.bench.test`], upstreams: [`127.0.0.1:${UPSTREAM}`] });

function api(config: ConfigServiceClient, token: string): Api {
  return {
    create: async (name) =>
      (await unary(config.createProxyHost.bind(config), { proxyHost: newHost(name) }, token)).proxyHost!,
    // Another upstream each time, the same domains: the write the bench's sync table also measures.
    update: async (host, i) =>
      (
        await unary(
          config.updateProxyHost.bind(config),
          { proxyHost: { ...host, upstreams: [`127.0.0.1:${UPSTREAM}`, `127.0.0.2:${1000 + i}`] } },
          token,
        )
      ).proxyHost!,
  };
}

/** WRITES updates one at a time over `hosts` (changed in place); each one's latency, and `during(i)` around each. */
async function updatesOneAtATime(
  a: Api,
  hosts: ProxyHost[],
  around: { before?: () => void; after?: () => void } = {},
): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < WRITES; i++) {
    const k = (i * 7) % hosts.length;
    around.before?.();
    const t0 = performance.now();
    hosts[k] = await a.update(hosts[k]!, i);
    latencies.push(performance.now() - t0);
    around.after?.();
  }
  return latencies;
}

/** CREATES creates, IN_FLIGHT at a time; writes per second. */
async function createsInFlight(a: Api, prefix: string, count = CREATES): Promise<number> {
  const t0 = performance.now();
  await inParallel(count, IN_FLIGHT, async (i) => void (await a.create(`${prefix}${i}`)));
  return perSecond(count, t0);
}

/** An instance of CPM_BENCH_MODE as `npm start` runs it (a master with no slaves). */
function startBenchInstance(name: string) {
  return startInstance({
    name,
    mode: MODE as "standalone" | "master",
    env: { LOG_LEVEL: process.env.CPM_BENCH_LOG_LEVEL ?? "warn", ...(MODE === "master" && { INSTANCE_SLAVES: "[]" }) },
  });
}

/**
 * The bench's own client code run hot before anything is measured: WARMUP creates and WRITES
 * updates on an instance that is thrown away. Without it the first size paid for compiling the
 * bench's gRPC client (0.9 ms of the bench's CPU per create at 100 hosts against 0.3 ms at
 * 1,000, on the same two cores as the instance). Each measured instance still starts cold, as a
 * node does.
 */
async function warmUpClient(): Promise<void> {
  const inst = await startBenchInstance("bench-write-warm-up");
  try {
    const { hosts } = await seed(inst, IN_FLIGHT, UPSTREAM, IN_FLIGHT);
    const a = api(inst.config, inst.adminToken);
    await createsInFlight(a, "warm", WARMUP);
    await updatesOneAtATime(a, hosts);
  } finally {
    await stopAll([inst]);
  }
}

interface InstanceResult {
  seedPerSecond: number;
  updates: number[];
  createsPerSecond: number;
  /** The same, the next CREATES creates. */
  nextCreatesPerSecond: number;
  /** CPU ms of the instance's Node processes per update one at a time, and per create in flight. */
  cpuPerUpdate: number;
  cpuPerCreate: number;
  /** CPU ms per create in flight of the instance's Caddy (its loads) and of the bench's client. */
  caddyCpuPerCreate: number;
  clientCpuPerCreate: number;
}

/** The whole instance at `n` hosts. */
async function benchInstance(n: number): Promise<InstanceResult> {
  const inst = await startBenchInstance(`bench-write-${n}`);
  try {
    process.stderr.write(`  instance: seeding ${n} proxy hosts, ${IN_FLIGHT} in flight...\n`);
    const { hosts, writesPerSecond: seedPerSecond } = await seed(inst, n, UPSTREAM, IN_FLIGHT);
    await inst.waitInSync(300_000);
    process.stderr.write(`  instance: ${WRITES} updates one at a time...\n`);
    const a = api(inst.config, inst.adminToken);
    const pid = inst.child!.pid!;
    let cpu = nodeCpuMs(pid);
    const updates = await updatesOneAtATime(a, hosts);
    await inst.waitInSync(300_000);
    const cpuPerUpdate = (nodeCpuMs(pid) - cpu) / WRITES;
    process.stderr.write(`  instance: ${CREATES} creates, ${IN_FLIGHT} in flight...\n`);
    cpu = nodeCpuMs(pid);
    const [caddy0, client0] = [caddyCpuMs(pid), ownCpuMs()];
    const createsPerSecond = await createsInFlight(a, "w");
    const clientCpuPerCreate = (ownCpuMs() - client0) / CREATES;
    await inst.waitInSync(300_000);
    const cpuPerCreate = (nodeCpuMs(pid) - cpu) / CREATES;
    const caddyCpuPerCreate = (caddyCpuMs(pid) - caddy0) / CREATES;
    process.stderr.write(`  instance: ${CREATES} creates again, ${IN_FLIGHT} in flight...\n`);
    const nextCreatesPerSecond = await createsInFlight(a, "x");
    await inst.waitInSync(300_000);
    return {
      seedPerSecond,
      updates,
      createsPerSecond,
      nextCreatesPerSecond,
      cpuPerUpdate,
      cpuPerCreate,
      caddyCpuPerCreate,
      clientCpuPerCreate,
    };
  } finally {
    await stopAll([inst]);
  }
}

interface AloneResult {
  updates: number[];
  createsPerSecond: number;
  /** CPU ms of this process (server and client) per update one at a time, and per create in flight. */
  cpuPerUpdate: number;
  cpuPerCreate: number;
  /** SQL statements per write: an update alone, a create alone, a create among IN_FLIGHT. */
  perUpdate: number;
  perCreate: number;
  perCreateInFlight: number;
  /** The statements of the last update, in order. */
  oneUpdate: string[];
}

const ADMIN = "bench-write-admin-token-0123456789";

/** config-service alone in this process at `n` hosts, counting the statements on its connection. */
async function benchAlone(n: number): Promise<AloneResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cpm-bench-write-"));
  let statements: string[] = [];
  const { db, dialect } = await openDatabase(`file:${path.join(dir, "config.db")}`, {
    onStatement: (sql) => statements.push(sql),
  });
  const log = createLogger("bench", "silent");
  const store = new ConfigStore(db, log, { dialect });
  await store.init();
  const tokens = new ApiTokens(db, { dialect });
  await tokens.ensure(ADMIN);
  const server = createServer({ store, tokens, mode: "standalone", internalToken: undefined, log });
  const address = `127.0.0.1:${await server.api.listen("127.0.0.1:0")}`;
  const config = new ConfigServiceClient(address, channelCredentials({}));
  const account = new AccountServiceClient(address, channelCredentials({}));
  try {
    const a = api(config, ADMIN);
    process.stderr.write(`  config-service alone: seeding ${n} proxy hosts...\n`);
    const hosts = new Array<ProxyHost>(n);
    await inParallel(n, IN_FLIGHT, async (i) => void (hosts[i] = await a.create(`h${i}`)));
    process.stderr.write(`  config-service alone: ${WRITES} updates one at a time...\n`);
    statements = [];
    let counted = 0;
    let oneUpdate: string[] = [];
    let cpu = ownCpuMs();
    const updates = await updatesOneAtATime(a, hosts, {
      before: () => (statements = []),
      after: () => {
        counted += statements.length;
        oneUpdate = statements;
      },
    });
    const cpuPerUpdate = (ownCpuMs() - cpu) / WRITES;
    const perUpdate = counted / WRITES;
    statements = [];
    for (let i = 0; i < SINGLE_CREATES; i++) await a.create(`s${i}`);
    const perCreate = statements.length / SINGLE_CREATES;
    process.stderr.write(`  config-service alone: ${CREATES} creates, ${IN_FLIGHT} in flight...\n`);
    statements = [];
    cpu = ownCpuMs();
    const createsPerSecond = await createsInFlight(a, "w");
    const cpuPerCreate = (ownCpuMs() - cpu) / CREATES;
    const perCreateInFlight = statements.length / CREATES;
    return {
      updates,
      createsPerSecond,
      cpuPerUpdate,
      cpuPerCreate,
      perUpdate,
      perCreate,
      perCreateInFlight,
      oneUpdate,
    };
  } finally {
    config.close();
    account.close();
    await server.shutdown();
    await db.$disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A statement as a line of the report: whitespace collapsed, bound values cut short. */
function shape(sql: string): string {
  const s = sql
    .replace(/\s+/g, " ")
    .replace(/\/\*\+\d+ bytes\*\//g, "")
    .replace(/'[^']{12,}'/g, "'...'");
  return s.length > 160 ? `${s.slice(0, 157)}...` : s;
}

async function main() {
  killInstancesOnSignal();
  const report = benchReport("write", "npm run bench:write");
  console.log(`machine: ${machineDescription()}`);
  report.log(
    `Setup: one ${MODE} instance (${SPLIT ? "one process per service" : "one Node process"} and a real Caddy, SQLite) per size, then config-service alone in the bench's process; Prisma ${prismaVersion()}; ${IN_FLIGHT} creates in flight while seeding, ${WRITES} updates one at a time, ${CREATES} creates ${IN_FLIGHT} in flight, ${SINGLE_CREATES} creates one at a time (statements only); the bench's client warmed up first by ${WARMUP} creates on an instance thrown away.`,
  );
  const rows: { n: number; inst: InstanceResult; alone: AloneResult }[] = [];
  process.stderr.write(`warming the bench's client up: ${WARMUP} creates on an instance thrown away...\n`);
  await warmUpClient();
  for (const n of SIZES) {
    process.stderr.write(`size ${n}:\n`);
    const inst = await benchInstance(n);
    const alone = await benchAlone(n);
    rows.push({ n, inst, alone });
  }

  type Row = (typeof rows)[number];
  const line = (label: string, cell: (r: Row) => string, goal = "") =>
    report.log(`| ${label} | ${rows.map(cell).join(" | ")} | ${goal} |`);
  const latency = (xs: number[]) => `${ms(pct(xs, 50))} / ${ms(pct(xs, 99))}`;
  const count = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));
  report.log();
  report.log(`| | ${rows.map((r) => `${r.n.toLocaleString("en-US")} hosts`).join(" | ")} | goal |`);
  report.log(`|---|${rows.map(() => "---").join("|")}|---|`);
  line(
    "API write latency (UpdateProxyHost one at a time), median / p99",
    (r) => latency(r.inst.updates),
    "median <= 5 ms",
  );
  line(
    `writes/s, CreateProxyHost, ${IN_FLIGHT} in flight: the first ${CREATES} after seeding / the next ${CREATES}`,
    (r) => `${r.inst.createsPerSecond.toFixed(0)}/s / ${r.inst.nextCreatesPerSecond.toFixed(0)}/s`,
    ">= 1,000/s",
  );
  line(
    "instance's Node CPU per write: update one at a time / create in flight (Caddy apart)",
    (r) => `${ms(r.inst.cpuPerUpdate)} / ${ms(r.inst.cpuPerCreate)}`,
  );
  line(
    `CPU per create in flight: instance's Node / its Caddy / the bench's client (${os.cpus().length} cores)`,
    (r) => `${ms(r.inst.cpuPerCreate)} / ${ms(r.inst.caddyCpuPerCreate)} / ${ms(r.inst.clientCpuPerCreate)}`,
  );
  line(`writes/s while seeding 0 -> N hosts, ${IN_FLIGHT} in flight`, (r) => `${r.inst.seedPerSecond.toFixed(0)}/s`);
  line("config-service alone: UpdateProxyHost one at a time, median / p99", (r) => latency(r.alone.updates));
  line(
    `config-service alone: writes/s, CreateProxyHost, ${IN_FLIGHT} in flight`,
    (r) => `${r.alone.createsPerSecond.toFixed(0)}/s`,
  );
  line(
    "config-service alone: CPU per write, update / create in flight (server and client)",
    (r) => `${ms(r.alone.cpuPerUpdate)} / ${ms(r.alone.cpuPerCreate)}`,
  );
  line(
    `SQL statements per write: update alone / create alone / create among ${IN_FLIGHT} in flight`,
    (r) => `${count(r.alone.perUpdate)} / ${count(r.alone.perCreate)} / ${count(r.alone.perCreateInFlight)}`,
  );
  const last = rows[rows.length - 1];
  if (last) {
    report.log();
    report.log(`The statements of one UpdateProxyHost at ${last.n.toLocaleString("en-US")} hosts, as SQLite ran them:`);
    report.log();
    for (const sql of last.alone.oneUpdate) report.log(`- \`\` ${shape(sql)} \`\``);
  }
  report.finish();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
