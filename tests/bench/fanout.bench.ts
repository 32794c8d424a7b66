/**
 * npm run bench:fanout
 *
 * One push to many slaves, measured on two cores: one real master instance (one Node process
 * and its real Caddy, as `npm start` runs it) whose dispatcher holds real TLS streams to
 * CPM_BENCH_FANOUT_SLAVES (default 1000) simulated slaves, all served by one separate Node
 * process (fanout-receivers.ts): each simulated slave is a SyncReceiver on a port of its own
 * (127.0.0.1, one shared sync token) that reads every snapshot whole, reads its header and ACKs
 * its version with the snapshot's content hash, without applying it (a slave's apply is not the
 * master's cost).
 *
 * First a master with no slaves, then one with the slaves, each seeded with
 * CPM_BENCH_FANOUT_HOSTS (default 1000) proxy hosts (16 creates in flight). The master with
 * slaves starts and is seeded before they listen (its links are refused meanwhile); then the
 * time from their listening until every link is up and has ACKed the seeded version. Once the
 * master's Caddy runs it too, the master is left alone CPM_BENCH_FANOUT_SETTLE_MS (default
 * 10000): its CPU time at rest, then its whole-instance memory (VmRSS and USS summed over the
 * launcher's process tree, median of CPM_BENCH_FANOUT_SAMPLES readings, default 3).
 * Then CPM_BENCH_FANOUT_CHANGES (default 5) changes, one host's domain each, a second apart
 * (CPM_BENCH_FANOUT_PAUSE_MS): from the write's call until the first simulated slave got the
 * snapshot and until the last one wrote its ACK of that version (reported by the receivers'
 * process over IPC, one clock for both: the epoch), and until the master's GetSyncStatus shows
 * every slave on it without an error (polled every 5 ms from that report on); the master's CPU
 * time (user + system of its process tree, from /proc) from the write until then and its Caddy
 * runs the version; the receivers' process's CPU time over the same push.
 *
 * Per slave link: the memory of the master with the slaves minus the one without, divided by
 * the slaves; per push per slave: the CPU of a push with the slaves minus one without, divided
 * by the slaves.
 *
 * The master runs with CPM_SYNC_CONNECT_TIMEOUT_MS=CPM_BENCH_FANOUT_CONNECT_TIMEOUT_MS (60000)
 * and CPM_SYNC_KEEPALIVE_TIMEOUT_MS=CPM_BENCH_FANOUT_KEEPALIVE_TIMEOUT_MS (20000): with their
 * defaults a thousand links do not come up, or do not stay up, on two cores (see below).
 * CPM_BENCH_FANOUT_MASTER_ENV (a JSON object) adds to the master's environment, to try other
 * settings; CPM_BENCH_FANOUT_CPU_PROF (a directory) runs the master with slaves under
 * `node --cpu-prof`. CPM_BENCH_LOG_LEVEL (default warn) is the masters' LOG_LEVEL.
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { unary } from "@cpm/grpc-kit";
import type { GetSyncStatusResponse } from "@cpm/proto";
import type { Instance } from "../support/instance.ts";
import { freePort } from "../support/net.ts";
import { makePki, type TestPki } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";
import { killInstancesOnSignal, seed, setDomain, startInstance, stopAll } from "./cluster.ts";
import type { FromReceivers, ToReceivers } from "./fanout-receivers.ts";
import { benchReport, machineDescription } from "./markdown.ts";
import { measureTree, mib, treeCpuMs, type TreeMemory } from "./proc-mem.ts";
import { pct } from "./stats.ts";

const num = (name: string, dflt: number, min = 0) => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v < min)
    throw new Error(`${name} must be a whole number >= ${min}, got ${JSON.stringify(process.env[name])}`);
  return v;
};
const SLAVES = num("CPM_BENCH_FANOUT_SLAVES", 1000, 1);
const HOSTS = num("CPM_BENCH_FANOUT_HOSTS", 1000, 1);
const CHANGES = num("CPM_BENCH_FANOUT_CHANGES", 5, 1);
const SETTLE_MS = num("CPM_BENCH_FANOUT_SETTLE_MS", 10_000);
const SAMPLES = num("CPM_BENCH_FANOUT_SAMPLES", 3, 1);
const PAUSE_MS = num("CPM_BENCH_FANOUT_PAUSE_MS", 1000);
/**
 * The master's CPM_SYNC_CONNECT_TIMEOUT_MS (default 2000; 60000 is its highest value). With the
 * default, a thousand links that connect at once never come up on two cores: each TLS handshake
 * waits behind the others past 2 s, is abandoned and started again on a new channel with a new
 * TLS context (about 6 ms of CPU each), and so on.
 */
const CONNECT_TIMEOUT_MS = num("CPM_BENCH_FANOUT_CONNECT_TIMEOUT_MS", 60_000, 100);
/**
 * The master's CPM_SYNC_KEEPALIVE_TIMEOUT_MS (default 1000). With the default, a push to a
 * thousand slaves holds the master's event loop past a second, the pings' timeouts fire before
 * their answers are read, the links are dropped, and each reconnects and is sent the snapshot
 * again: the slaves never all hold the same version.
 */
const KEEPALIVE_TIMEOUT_MS = num("CPM_BENCH_FANOUT_KEEPALIVE_TIMEOUT_MS", 20_000, 100);
/** More of the master's environment, a JSON object (`{"CPM_SYNC_KEEPALIVE_TIMEOUT_MS": "5000"}`): for trying settings. */
const MASTER_ENV = JSON.parse(process.env.CPM_BENCH_FANOUT_MASTER_ENV ?? "{}") as Record<string, string>;
/** A directory: the master with the slaves runs under `node --cpu-prof` and writes its profile there when it stops. */
const CPU_PROF = process.env.CPM_BENCH_FANOUT_CPU_PROF;

/** A `node` that writes a CPU profile into `dir` when it exits: a script there, for scripts/node.sh's $NODE. */
function profilingNode(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "node-cpu-prof.sh");
  writeFileSync(
    file,
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} --cpu-prof --cpu-prof-dir=${JSON.stringify(dir)} "$@"\n`,
    { mode: 0o755 },
  );
  return file;
}
/** How long one change may take to reach every slave, and the seeded version to be ACKed. */
const TIMEOUT_MS = 300_000;
const IN_FLIGHT = 16;
const LOG_LEVEL = process.env.CPM_BENCH_LOG_LEVEL ?? "warn";
/** The master's sync token for every simulated slave (one shared token: INSTANCE_SLAVES allows it). */
const TOKEN = "fanout-bench-token-0123";
/** Linux's limit on one environment string (MAX_ARG_STRLEN): INSTANCE_SLAVES must fit. */
const MAX_ENV_STRING = 128 * 1024;

const sleep = (t: number) => new Promise((res) => setTimeout(res, t));
/** Epoch milliseconds with sub-millisecond resolution: the receivers' process uses the same clock. */
const now = () => performance.timeOrigin + performance.now();
const ms = (x: number) => `${x.toFixed(1)} ms`;
const seconds = (x: number) => `${(x / 1000).toFixed(2)} s`;
/** KiB (as /proc reports them) in KB (1,000 bytes), the goal's unit. */
const kb = (kib: number) => `${((kib * 1024) / 1000).toFixed(1)} KB`;
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const medianMax = (xs: number[], f: (x: number) => string) => `${f(pct(xs, 50))} / ${f(Math.max(...xs))}`;

type Stats = Extract<FromReceivers, { type: "stats" }>;
type AllAcked = Extract<FromReceivers, { type: "all-acked" }>;
type Watching = Extract<FromReceivers, { type: "watching" }>;

/** The simulated slaves: one forked process serving a SyncReceiver per port. */
class Receivers {
  private waiting: ((m: FromReceivers) => boolean)[] = [];

  private constructor(
    private readonly child: ChildProcess,
    readonly ports: number[],
  ) {
    child.on("message", (m: FromReceivers) => {
      this.waiting = this.waiting.filter((w) => !w(m));
    });
  }

  /** Serves a simulated slave on each of `ports` (127.0.0.1); resolves once every one listens. */
  static async start(ports: number[], pki: TestPki): Promise<Receivers> {
    const child = fork(fileURLToPath(new URL("./fanout-receivers.ts", import.meta.url)), [], {
      env: {
        ...process.env,
        CPM_BENCH_FANOUT_PORTS: ports.join(","),
        CPM_BENCH_FANOUT_TOKEN: TOKEN,
        CPM_BENCH_FANOUT_CA: pki.caCert,
        CPM_BENCH_FANOUT_CERT: pki.cert,
        CPM_BENCH_FANOUT_KEY: pki.key,
      },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const bound = await new Promise<number[]>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`the receivers' process exited (${code}) before listening`)));
      child.on("message", (m: FromReceivers) => m.type === "listening" && resolve(m.ports));
    });
    child.removeAllListeners("exit");
    child.once("exit", (code, signal) => {
      if (code !== 0 && signal !== "SIGTERM")
        process.stderr.write(`the receivers' process exited (${code ?? signal})\n`);
    });
    return new Receivers(child, bound);
  }

  private request<T extends FromReceivers>(msg: ToReceivers, answer: (m: FromReceivers) => m is T): Promise<T> {
    return new Promise((resolve) => {
      this.waiting.push((m) => {
        if (!answer(m)) return false;
        resolve(m);
        return true;
      });
      this.child.send(msg);
    });
  }

  stats(): Promise<Stats> {
    return this.request({ type: "stats" }, (m): m is Stats => m.type === "stats");
  }

  /** Resolves once the receivers watch `version`, with the moment every one has ACKed it (or a later one). */
  async watch(version: number): Promise<{ acked: Promise<AllAcked> }> {
    const acked = new Promise<AllAcked>((resolve) =>
      this.waiting.push((m) => {
        if (m.type !== "all-acked" || m.version !== version) return false;
        resolve(m);
        return true;
      }),
    );
    await this.request(
      { type: "watch", version },
      (m): m is Watching => m.type === "watching" && m.version === version,
    );
    return { acked };
  }

  stop(): void {
    this.child.kill("SIGTERM");
  }
}

/** Every slave of the master's status on `version` or later, without an error. */
function allOn(s: GetSyncStatusResponse, version: number): boolean {
  return s.slaves.every((l) => l.ackedVersion >= version && l.lastError === "");
}

function syncStatus(master: Instance): Promise<GetSyncStatusResponse> {
  return unary(master.dispatcher.getSyncStatus.bind(master.dispatcher), {}, master.adminToken, 30_000);
}

/** What the master's status says about the slaves not on `version`: for an error message. */
function behind(s: GetSyncStatusResponse, version: number): string {
  const late = s.slaves.filter((l) => l.ackedVersion < version || l.lastError !== "");
  const errors = [...new Set(late.map((l) => l.lastError).filter((e) => e))].slice(0, 3);
  return `${late.length} of ${s.slaves.length} slaves not on v${version} (${late.filter((l) => !l.connected).length} not connected)${errors.length ? `; errors: ${errors.join(" | ")}` : ""}`;
}

function withTimeout<T>(p: Promise<T>, what: () => Promise<string>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        void what().then(
          (w) => reject(new Error(`timed out after ${TIMEOUT_MS} ms: ${w}`)),
          (e: Error) => reject(new Error(`timed out after ${TIMEOUT_MS} ms (no status: ${e.message})`)),
        ),
      TIMEOUT_MS,
    );
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

interface Push {
  writeMs: number;
  /** From the write's call: the first simulated slave got the snapshot, the last one ACKed, the master saw every ACK. */
  firstReceivedMs: number;
  lastAckMs: number;
  masterSawMs: number;
  /** The master's process tree, from the write until every slave is on it and its Caddy runs it. */
  cpuMs: number;
  receiversCpuMs: number;
  bytesPerSlave: number;
}

interface MasterRun {
  /** From the receivers listening until every link is up and on the seeded version. */
  linksUpMs: number;
  memory: TreeMemory;
  idleCpuMsPerS: number;
  pushes: Push[];
  snapshotHosts: number;
  reopened: number;
}

/**
 * A master with `slaveCount` simulated slaves (none: the baseline), seeded, at rest, then
 * CHANGES pushes. The master starts and is seeded before its slaves listen (its links are
 * refused meanwhile), so that its start is not held up by as many TLS handshakes at once.
 */
async function runMaster(name: string, pki: TestPki, slaveCount: number): Promise<MasterRun> {
  const ports: number[] = [];
  for (let i = 0; i < slaveCount; i++) ports.push(await freePort());
  const slaves = ports.map((port, i) => ({ name: `s${i}`, url: `https://127.0.0.1:${port}`, token: TOKEN }));
  const slavesJson = JSON.stringify(slaves);
  if (slavesJson.length >= MAX_ENV_STRING)
    throw new Error(
      `INSTANCE_SLAVES for ${slaves.length} slaves is ${slavesJson.length} bytes, over Linux's limit of ${MAX_ENV_STRING} for one environment string`,
    );
  process.stderr.write(`${name}: starting the master with ${slaves.length} slaves...\n`);
  const master = await startInstance({
    name,
    mode: "master",
    split: false,
    env: {
      // scripts/node.sh starts the node's one Node process with $NODE (--cpu-prof is not
      // allowed in NODE_OPTIONS).
      ...(CPU_PROF && slaveCount > 0 ? { NODE: profilingNode(path.resolve(CPU_PROF)) } : {}),
      LOG_LEVEL,
      CPM_SYNC_TLS_CA: pki.caCert,
      INSTANCE_SLAVES: slavesJson,
      CPM_SYNC_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
      CPM_SYNC_KEEPALIVE_TIMEOUT_MS: String(KEEPALIVE_TIMEOUT_MS),
      ...MASTER_ENV,
    },
  });
  let receivers: Receivers | undefined;
  try {
    const root = master.child!.pid!;
    process.stderr.write(`${name}: seeding ${HOSTS} proxy hosts, ${IN_FLIGHT} in flight...\n`);
    const { hosts } = await seed(master, HOSTS, 9, IN_FLIGHT);
    const seeded = await master.version();
    let linksUpMs = NaN;
    if (slaveCount > 0) {
      process.stderr.write(`${name}: starting ${slaveCount} simulated slaves...\n`);
      receivers = await Receivers.start(ports, pki);
      const t0 = performance.now();
      let said = t0;
      await withTimeout(
        waitFor(
          async () => {
            const st = await syncStatus(master);
            if (performance.now() - said > 5000) {
              said = performance.now();
              const r = await receivers!.stats();
              process.stderr.write(
                `  ${((said - t0) / 1000).toFixed(0)} s: ${behind(st, seeded)}; the slaves' streams: ${r.open} open, ${r.opened} opened\n`,
              );
            }
            return allOn(st, seeded);
          },
          "every slave on the seeded version",
          TIMEOUT_MS + 1000,
          500,
        ),
        async () => behind(await syncStatus(master), seeded),
      );
      linksUpMs = performance.now() - t0;
    }
    await master.waitInSync(TIMEOUT_MS);

    process.stderr.write(`${name}: at rest for ${SETTLE_MS} ms, then memory...\n`);
    const idle0 = treeCpuMs(root);
    const idleT0 = performance.now();
    await sleep(SETTLE_MS);
    const idleCpuMsPerS = ((treeCpuMs(root) - idle0) * 1000) / Math.max(1, performance.now() - idleT0);
    const memory = await measureTree(root, SAMPLES);

    process.stderr.write(`${name}: ${CHANGES} changes...\n`);
    const pushes: Push[] = [];
    for (let i = 0; i < CHANGES; i++) {
      await sleep(PAUSE_MS);
      const version = (await master.version()) + 1;
      const watching = await receivers?.watch(version);
      const stats0 = await receivers?.stats();
      const cpu0 = treeCpuMs(root);
      const t0 = now();
      const r = await setDomain(master, hosts[i % HOSTS]!, `f${i}.fanout.test`);
      const tWrite = now();
      hosts[i % HOSTS] = r.host;
      if (r.version !== version) throw new Error(`the change committed v${r.version}, the bench expected v${version}`);
      let all: AllAcked | undefined;
      let tMaster = tWrite;
      if (watching) {
        all = await withTimeout(watching.acked, async () => behind(await syncStatus(master), version));
        await waitFor(
          async () => allOn(await syncStatus(master), version),
          `master sees every ACK of v${version}`,
          30_000,
          5,
        );
        tMaster = now();
      }
      await waitFor(
        async () => {
          const s = await master.renderStatus();
          return s.inSync && s.appliedVersion >= version;
        },
        `master's Caddy on v${version}`,
        30_000,
        5,
      );
      const cpuMs = treeCpuMs(root) - cpu0;
      const stats1 = await receivers?.stats();
      pushes.push({
        writeMs: tWrite - t0,
        firstReceivedMs: all ? all.firstReceivedAt - t0 : NaN,
        lastAckMs: all ? all.lastAckAt - t0 : NaN,
        masterSawMs: tMaster - t0,
        cpuMs,
        receiversCpuMs: stats0 && stats1 ? stats1.cpuMs - stats0.cpuMs : NaN,
        bytesPerSlave: stats0 && stats1 ? (stats1.bytes - stats0.bytes) / SLAVES : NaN,
      });
    }
    const stats = await receivers?.stats();
    return {
      linksUpMs,
      memory,
      idleCpuMsPerS,
      pushes,
      snapshotHosts: stats?.hosts ?? NaN,
      reopened: stats ? stats.opened - SLAVES : NaN,
    };
  } finally {
    receivers?.stop();
    await stopAll([master]);
  }
}

async function main() {
  killInstancesOnSignal();
  const report = benchReport("fanout", "npm run bench:fanout");
  console.log(`machine: ${machineDescription()}`);
  const pki = makePki(mkdtempSync(path.join(os.tmpdir(), "cpm-bench-pki-")));
  const alone = await runMaster("fanout-alone", pki, 0);
  const fan = await runMaster(`fanout-${SLAVES}`, pki, SLAVES);

  const n = SLAVES.toLocaleString("en-US");
  const p = fan.pushes;
  const perLink = (f: (m: TreeMemory) => number) => (f(fan.memory) - f(alone.memory)) / SLAVES;
  const cpuAlone = mean(alone.pushes.map((x) => x.cpuMs));
  const cpuFan = mean(p.map((x) => x.cpuMs));
  report.log(
    `Setup: one master (one Node process and its Caddy) at ${HOSTS.toLocaleString("en-US")} hosts, without slaves, then with ${n} simulated slaves over TLS (one process beside it: each reads the snapshot whole and ACKs the version and content hash its header gives, without decoding the hosts or applying anything; one snapshot per version decoded whole and checked); ${CHANGES} changes of one host, ${PAUSE_MS / 1000} s apart; memory at rest ${SETTLE_MS / 1000} s after the seeding, median of ${SAMPLES}; the master's CPM_SYNC_CONNECT_TIMEOUT_MS=${CONNECT_TIMEOUT_MS} and CPM_SYNC_KEEPALIVE_TIMEOUT_MS=${KEEPALIVE_TIMEOUT_MS}${
      Object.keys(MASTER_ENV).length
        ? `, ${Object.entries(MASTER_ENV)
            .map(([k, v]) => `${k}=${v}`)
            .join(", ")}`
        : ""
    }, its other settings the defaults.`,
  );
  report.log();
  report.log(`| | no slaves | ${n} simulated slaves | goal |`);
  report.log("|---|---|---|---|");
  report.log(
    `| change -> every slave ACKed it (the last ACK written), median / max of ${CHANGES} | | ${medianMax(
      p.map((x) => x.lastAckMs),
      seconds,
    )} | <= 2 s |`,
  );
  report.log(
    `| change -> the master's GetSyncStatus shows every slave on it, median / max | | ${medianMax(
      p.map((x) => x.masterSawMs),
      seconds,
    )} | |`,
  );
  report.log(
    `| change -> the first slave has the snapshot, median / max | | ${medianMax(
      p.map((x) => x.firstReceivedMs),
      ms,
    )} | |`,
  );
  report.log(
    `| API write latency of the change, median / max | ${medianMax(
      alone.pushes.map((x) => x.writeMs),
      ms,
    )} | ${medianMax(
      p.map((x) => x.writeMs),
      ms,
    )} | |`,
  );
  report.log(
    `| master memory at rest (process tree), RSS / USS | ${mib(alone.memory.totalRssKiB)} / ${mib(alone.memory.totalUssKiB)} | ${mib(fan.memory.totalRssKiB)} / ${mib(fan.memory.totalUssKiB)} | |`,
  );
  report.log(
    `| master memory per slave link (difference / ${n}), RSS / USS | | ${kb(perLink((m) => m.totalRssKiB))} / ${kb(perLink((m) => m.totalUssKiB))} | <= 200 KB |`,
  );
  report.log(`| master CPU per push (process tree, mean) | ${ms(cpuAlone)} | ${ms(cpuFan)} | |`);
  report.log(
    `| master CPU per push per slave ((with - without) / ${n}) | | ${((cpuFan - cpuAlone) / SLAVES).toFixed(3)} ms | |`,
  );
  report.log(
    `| master CPU at rest | ${alone.idleCpuMsPerS.toFixed(1)} ms/s | ${fan.idleCpuMsPerS.toFixed(1)} ms/s | |`,
  );
  report.log(
    `| the simulated slaves' process: CPU per push (all ${n}, mean); snapshot bytes per slave | | ${ms(mean(p.map((x) => x.receiversCpuMs)))}; ${(mean(p.map((x) => x.bytesPerSlave)) / 1024).toFixed(1)} KiB | |`,
  );
  report.log(
    `| the slaves start listening -> all ${n} links up and on the seeded snapshot | | ${seconds(fan.linksUpMs)} | |`,
  );
  report.log(
    `| hosts in the last snapshot decoded whole (the check); streams opened again during the run | | ${fan.snapshotHosts}; ${fan.reopened} | |`,
  );
  report.finish();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
