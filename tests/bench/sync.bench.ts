/**
 * npm run bench (also npm run bench:sync)
 *
 * Prints the machine (CPU model, cores, Node, load average at start), then for each size in
 * CPM_BENCH_SIZES (default 100 and 1,000 proxy hosts; 10000 works too) one master and one slave
 * (TLS, each a whole instance with its own real Caddy), and one table with a goal per row:
 * - writes/s: the hosts are seeded with CPM_BENCH_IN_FLIGHT (default 16) creates in flight;
 * - API write latency: CPM_BENCH_WRITES (default 200) UpdateProxyHost calls one at a time;
 * - write -> the slave's Caddy serves it, over CPM_BENCH_CHANGES changes (default 30), each
 *   made once the one before was served and as long again has passed (isolated), next to the
 *   bare `POST /load` of the same rendered config into a separate Caddy, same run, and the
 *   ratios median / bare median and p99 / bare median; then as many changes back to back,
 *   each as soon as the last is served (the renderers pace those loads); and the bare load of
 *   the same config into two Caddies at the same moment, as the master's and the slave's
 *   Caddies load each change on this one machine, with the ratio against it; and the floor of
 *   write -> serve as this bench measures it: the same two loads with a host renamed, timed
 *   from their start until the same poller that watches the slave sees the new name served
 *   (no CPM in it), with the ratio against it;
 * - burst: CPM_BENCH_BURST (default 1000) updates of existing hosts, CPM_BENCH_IN_FLIGHT at a
 *   time; the time from the last write returning until the slave holds the final version with
 *   its Caddy on it and serves the last write's domain, and the snapshots pushed meanwhile;
 * - whole-instance memory of master and slave (sum over the launcher's process tree of VmRSS,
 *   and of private pages, as `npm run bench:rss` measures), the median of
 *   CPM_BENCH_RSS_SAMPLES (default 3) readings a second apart, taken CPM_BENCH_RSS_SETTLE_MS
 *   (default 30000: at rest, as an operator sees it) after the burst with the slave in sync,
 *   and the RSS of each process below the table;
 * - slave restart: CPM_BENCH_RESTARTS times (default 3) the slave is killed (SIGKILL to its
 *   process group), a host changes on the master (which keeps running), and the slave starts
 *   again on its data dir; measured from the slave's API being up, taken as its sync receiver
 *   answering GetReceiverStatus over TLS (the earliest moment the master can push to it), until
 *   its Caddy serves the change; median and max; and the same from its process's launch (what
 *   the slave does at start before it listens counts there);
 * - the snapshot's size on the wire and the rendered config's size;
 * - the unchanged periodic push: the master's current snapshot sent again to the slave's
 *   receiver over one stream, CPM_BENCH_TICKS times (default 30), encoded once as the
 *   dispatcher does, the time to its ACK, and
 *   whether the slave's Caddy reloaded.
 * Fan-out to many slaves is `npm run bench:fanout` (fanout.bench.ts): one master and simulated
 * slaves, since a real slave per Caddy cannot run by the dozen on two cores.
 * CPM_BENCH_LOG_LEVEL (default warn) is the instances' LOG_LEVEL.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { Snapshot, SyncReceiverService, SyncRequest, type SyncResponse } from "@cpm/proto";
import { unary, withBearer } from "@cpm/grpc-kit";
import { caddyAdminRequest } from "@cpm/core";
import { Instance, projectCaddy } from "../support/instance.ts";
import { freePort, startUpstream } from "../support/net.ts";
import { makePki, type TestPki } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";
import {
  burst,
  killInstancesOnSignal,
  restartUntilServed,
  seed,
  setDomain,
  startMaster,
  startSlave,
  stopAll,
  SYNC_TOKEN,
  untilPortsServe,
  untilServed,
  waitSlavesOn,
} from "./cluster.ts";
import { measureTree, mib } from "./proc-mem.ts";
import { pct } from "./stats.ts";
import { benchReport, machineDescription } from "./markdown.ts";

const num = (name: string, dflt: number) => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isInteger(v) || v < 0)
    throw new Error(`${name} must be a whole number >= 0, got ${JSON.stringify(process.env[name])}`);
  return v;
};
const SIZES = (process.env.CPM_BENCH_SIZES ?? "100,1000").split(",").map((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`CPM_BENCH_SIZES must list whole numbers >= 1, got ${JSON.stringify(s)}`);
  return n;
});
/** The node's shapes, each beside the other per size: one process (`all`) and one process per service. */
const SHAPES = (process.env.CPM_BENCH_SHAPES ?? "all,split").split(",").map((s) => {
  if (s !== "all" && s !== "split")
    throw new Error(`CPM_BENCH_SHAPES must list "all" and/or "split", got ${JSON.stringify(s)}`);
  return s;
});
const CHANGES = num("CPM_BENCH_CHANGES", 30);
const WRITES = num("CPM_BENCH_WRITES", 200);
const IN_FLIGHT = num("CPM_BENCH_IN_FLIGHT", 16);
const TICKS = num("CPM_BENCH_TICKS", 30);
const BURST = num("CPM_BENCH_BURST", 1000);
const RESTARTS = num("CPM_BENCH_RESTARTS", 3);
const RSS_SAMPLES = num("CPM_BENCH_RSS_SAMPLES", 3);
const RSS_SETTLE_MS = num("CPM_BENCH_RSS_SETTLE_MS", 30_000);

const ms = (x: number) => `${x.toFixed(1)} ms`;
const ratio = (x: number) => `${x.toFixed(2)}x`;
/** Median and max of `xs`; NaN for none (a size run without restarts). */
const medianMax = (xs: number[]) =>
  xs.length ? { median: pct(xs, 50), max: Math.max(...xs) } : { median: NaN, max: NaN };
const sleep = (t: number) => new Promise((res) => setTimeout(res, t));

async function bareCaddy(): Promise<{ admin: number; stop: () => void }> {
  const admin = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "cpm-bench-caddy-"));
  const cfg = path.join(dir, "initial.json");
  writeFileSync(cfg, JSON.stringify({ admin: { listen: `127.0.0.1:${admin}` } }));
  const child = spawn(projectCaddy(), ["run", "--config", cfg], {
    stdio: "ignore",
    env: { ...process.env, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
  });
  await waitFor(
    async () => (await caddyAdminRequest(`http://127.0.0.1:${admin}/config/`)).status === 200,
    "bare caddy up",
    15_000,
  );
  return { admin, stop: () => child.kill("SIGTERM") };
}

/** `together` bare Caddies, each with `json` retargeted to it: its admin port and an HTTP port of its own. */
async function withBareCaddies<T>(
  together: number,
  fn: (bares: { admin: number; port: number; retarget: (json: string) => string }[]) => Promise<T>,
): Promise<T> {
  const bares = await Promise.all(Array.from({ length: together }, () => bareCaddy()));
  try {
    const targets = await Promise.all(
      bares.map(async (b) => {
        const port = await freePort();
        const retarget = (s: string) => {
          const cfg = JSON.parse(s) as {
            admin: { listen: string };
            apps: { http: { servers: { http: { listen: string[] } }; http_port: number } };
          };
          cfg.admin = { listen: `127.0.0.1:${b.admin}` };
          cfg.apps.http.servers.http.listen = [`:${port}`];
          cfg.apps.http.http_port = port;
          return JSON.stringify(cfg);
        };
        return { admin: b.admin, port, retarget };
      }),
    );
    return await fn(targets);
  } finally {
    for (const b of bares) b.stop();
  }
}

/** `json` with every occurrence of the string `from` (a host name) replaced by `to`. */
function renamed(json: string, from: string, to: string): string {
  const parts = json.split(JSON.stringify(from));
  if (parts.length < 2) throw new Error(`${from} is not in the config`);
  return parts.join(JSON.stringify(to));
}

async function bareLoad(admin: number, body: string): Promise<void> {
  const res = await caddyAdminRequest(`http://127.0.0.1:${admin}/load`, { method: "POST", body });
  if (res.status !== 200) throw new Error(`bare load failed: ${res.status}`);
}

/**
 * `count` rounds of bare `POST /load`s of the Caddy config `json` into `together` separate
 * Caddies, all of a round at the same moment (two variants alternated, `domain` renamed in
 * every other one, so no load is a no-op): every load's duration. Two together is what a change
 * costs a master and a slave on one machine, whose Caddies load it at the same time.
 */
async function bareLoads(json: string, domain: string, count: number, together = 1): Promise<number[]> {
  return withBareCaddies(together, async (bares) => {
    const variants = bares.map((b) => [b.retarget(json), b.retarget(renamed(json, domain, `bare.${domain}`))]);
    const loads: number[] = [];
    for (let i = 0; i < count; i++) {
      const round = bares.map(async (b, k) => {
        const t0 = performance.now();
        await bareLoad(b.admin, variants[k]![i % 2]!);
        return performance.now() - t0;
      });
      loads.push(...(await Promise.all(round)));
    }
    return loads;
  });
}

/**
 * The floor of write -> serve as this bench sees it: `count` rounds of a bare `POST /load` of
 * `json` with `domain` renamed to a name no round used before, into `together` Caddies at the
 * same moment, each timed from the loads' start until the bench's poller (untilPortsServe, as
 * for the slave) gets 200 for the new name from the first Caddy. No CPM at all: what remains of
 * write -> serve above it is the product's.
 */
async function bareServes(json: string, domain: string, count: number, together = 1): Promise<number[]> {
  return withBareCaddies(together, async (bares) => {
    const first = bares[0]!;
    await Promise.all(bares.map((b) => bareLoad(b.admin, b.retarget(json))));
    await untilPortsServe([{ name: "bare caddy", port: first.port }], domain);
    const took: number[] = [];
    let current = { json, domain };
    for (let i = 0; i < count; i++) {
      const next = {
        json: renamed(current.json, current.domain, `floor${i}.${domain}`),
        domain: `floor${i}.${domain}`,
      };
      const bodies = bares.map((b) => b.retarget(next.json));
      const t0 = performance.now();
      await Promise.all([
        ...bares.map((b, k) => bareLoad(b.admin, bodies[k]!)),
        untilPortsServe([{ name: "bare caddy", port: first.port }], next.domain),
      ]);
      took.push(performance.now() - t0);
      current = next;
    }
    return took;
  });
}

async function benchSize(n: number, shape: "all" | "split", pki: TestPki) {
  const up = await startUpstream("bench");
  const split = shape === "split";
  const slave = await startSlave(`bench-slave-${n}-${shape}`, pki, { split });
  const master = await startMaster(`bench-master-${n}-${shape}`, [slave], pki, { split }).catch(async (e) => {
    await slave.stop();
    throw e;
  });
  try {
    process.stderr.write(`  seeding ${n} proxy hosts, ${IN_FLIGHT} in flight...\n`);
    const { hosts, writesPerSecond } = await seed(master, n, up.port, IN_FLIGHT);
    await waitSlavesOn(master, [slave], "seeded");

    process.stderr.write(`  ${WRITES} writes one at a time...\n`);
    const writeLatencies: number[] = [];
    for (let i = 0; i < WRITES; i++) {
      const k = (i * 7) % n;
      const t0 = performance.now();
      const r = await unary(
        master.config.updateProxyHost.bind(master.config),
        { proxyHost: { ...hosts[k]!, upstreams: [`127.0.0.1:${up.port}`, `127.0.0.2:${1000 + i}`] } },
        master.adminToken,
      );
      writeLatencies.push(performance.now() - t0);
      hosts[k] = r.proxyHost!;
    }
    await waitSlavesOn(master, [slave], "caught up");

    // Each change is made once the one before it has been served and as long again has passed:
    // an isolated change, as an operator makes one. A change made as soon as the last one is
    // served waits for the renderers' pacing (a load starts no sooner after the previous one
    // than that one took, see LOAD_PACING in reconciler.ts): measured too, as its own row.
    process.stderr.write(`  ${CHANGES} changes, then ${CHANGES} back to back...\n`);
    const latencies: number[] = [];
    const pacedLatencies: number[] = [];
    for (let i = 0; i < 2 * CHANGES; i++) {
      const isolated = i < CHANGES;
      const k = i % n;
      const domain = `c${i}.bench.test`;
      hosts[k] = (await setDomain(master, hosts[k]!, domain)).host;
      const took = await untilServed([slave], domain);
      (isolated ? latencies : pacedLatencies).push(took);
      if (isolated) await sleep(took);
    }

    const json = (await caddyAdminRequest(`http://127.0.0.1:${slave.ports.caddyAdmin}/config/`)).body;
    const lastDomain = hosts[0]!.domains[0]!; // in the config the slave runs now
    const loads = await bareLoads(json, lastDomain, Math.max(CHANGES, 1));
    const pairedLoads = await bareLoads(json, lastDomain, Math.max(CHANGES, 1), 2);
    const pairedServes = await bareServes(json, lastDomain, Math.max(CHANGES, 1), 2);
    const sentBeforeBurst = (
      await unary(master.dispatcher.getSyncStatus.bind(master.dispatcher), {}, master.adminToken)
    ).slaves[0]!.snapshotsSent;

    process.stderr.write(`  ${TICKS} unchanged pushes...\n`);
    const snapshot = (await unary(master.config.getSnapshot.bind(master.config), {}, master.adminToken)).snapshot!;
    const snapshotBytes = Snapshot.encode(snapshot).finish().length;
    await waitFor(
      async () => (await slave.version()) === snapshot.version && (await slave.renderStatus()).inSync,
      "slave on the master's version",
      60_000,
      100,
    );
    const before = await slave.renderStatus();
    const ticks = await unchangedPushes(slave, pki.caCert, snapshot, TICKS);
    const after = await slave.renderStatus();
    const reloaded =
      after.appliedAt?.getTime() !== before.appliedAt?.getTime() || after.configSha256 !== before.configSha256;

    let burstResult: Awaited<ReturnType<typeof burst>> | undefined;
    if (BURST > 0) {
      process.stderr.write(`  burst of ${BURST} writes, ${IN_FLIGHT} in flight...\n`);
      burstResult = await burst(master, [slave], hosts, BURST, IN_FLIGHT, `${n}`);
    }

    process.stderr.write(`  memory: settling ${RSS_SETTLE_MS} ms...\n`);
    await waitSlavesOn(master, [slave], "in sync before the memory readings");
    await sleep(RSS_SETTLE_MS);
    const [masterMem, slaveMem] =
      RSS_SAMPLES > 0
        ? await Promise.all([measureTree(master.child!.pid!, RSS_SAMPLES), measureTree(slave.child!.pid!, RSS_SAMPLES)])
        : [];

    process.stderr.write(`  ${RESTARTS} slave restarts...\n`);
    const restarts: number[] = [];
    const restartsFromStart: number[] = [];
    for (let i = 0; i < RESTARTS; i++) {
      const r = await restartUntilServed(master, slave, hosts[i % n]!, `r${i}.bench.test`, pki.caCert);
      hosts[i % n] = r.host;
      restarts.push(r.ms);
      restartsFromStart.push(r.fromStartMs);
    }

    return {
      n,
      shape,
      writesPerSecond,
      writeMedian: pct(writeLatencies, 50),
      writeP99: pct(writeLatencies, 99),
      snapshotBytes,
      tickMedian: pct(ticks, 50),
      tickP99: pct(ticks, 99),
      reloaded,
      syncMedian: pct(latencies, 50),
      syncP99: pct(latencies, 99),
      pacedMedian: pct(pacedLatencies, 50),
      pacedP99: pct(pacedLatencies, 99),
      loadMedian: pct(loads, 50),
      loadP99: pct(loads, 99),
      pairedLoadMedian: pct(pairedLoads, 50),
      pairedServeMedian: pct(pairedServes, 50),
      configBytes: json.length,
      snapshotsSent: Number(sentBeforeBurst),
      burst: burstResult,
      masterMem,
      slaveMem,
      restart: medianMax(restarts),
      restartFromStart: medianMax(restartsFromStart),
    };
  } finally {
    await stopAll([master, slave]);
    await up.close();
  }
}

/**
 * Sends `s` (what the slave already runs) `count` times over one stream, as the master's
 * periodic push does: encoded once, the same bytes written each time (the dispatcher encodes a
 * version once too), and returns the time from each send to its ACK.
 */
async function unchangedPushes(slave: Instance, ca: string, s: Snapshot, count: number): Promise<number[]> {
  const client = slave.receiverClient(ca);
  const bytes = Buffer.from(SyncRequest.encode({ snapshot: s, traceContext: undefined }).finish());
  const call = client.makeBidiStreamRequest(
    SyncReceiverService.sync.path,
    (b: Buffer) => b,
    SyncReceiverService.sync.responseDeserialize,
    withBearer(SYNC_TOKEN),
  );
  let failed: Error | undefined;
  const answers: ((r: SyncResponse) => void)[] = [];
  call.on("data", (r: SyncResponse) => answers.shift()?.(r));
  call.on("error", (e: Error) => (failed = e));
  const times: number[] = [];
  try {
    for (let i = 0; i < count + 3; i++) {
      const t0 = performance.now();
      const r = await new Promise<SyncResponse>((resolve) => {
        answers.push(resolve);
        call.write(bytes);
      });
      if (failed) throw failed;
      if (!r.ack) throw new Error(`unchanged push refused: ${r.nack?.reason}`);
      if (i >= 3) times.push(performance.now() - t0); // the first ones warm the stream up
    }
  } finally {
    call.end();
    client.close();
  }
  return times;
}

async function main() {
  killInstancesOnSignal();
  const report = benchReport("sync", "npm run bench");
  console.log(`machine: ${machineDescription()}`);
  report.log(
    `Setup: a master and one TLS slave with real Caddies per size; ${IN_FLIGHT} writes in flight while seeding and in bursts, ${WRITES} single writes, ${CHANGES} changes, ${TICKS} unchanged pushes, a burst of ${BURST}, ${RESTARTS} slave restarts per size; node shapes ${SHAPES.map((s) => (s === "all" ? "one process (CPM_TARGET=all)" : "split (one process per service)")).join(" and ")}, each pair of the same shape`,
  );
  const pki = makePki(mkdtempSync(path.join(os.tmpdir(), "cpm-bench-pki-")));
  const rows: Awaited<ReturnType<typeof benchSize>>[] = [];
  for (const n of SIZES) {
    for (const shape of SHAPES) {
      process.stderr.write(`size ${n}, ${shape === "all" ? "one process" : "split"}:\n`);
      rows.push(await benchSize(n, shape, pki));
    }
  }

  type Row = (typeof rows)[number];
  const line = (label: string, cell: (r: Row) => string, goal = "") =>
    report.log(`| ${label} | ${rows.map(cell).join(" | ")} | ${goal} |`);
  const sizeGoal = (byN: (n: number) => string | undefined) =>
    [...new Set(rows.map((r) => r.n))]
      .map((n) => [n, byN(n)] as const)
      .filter(([, g]) => g)
      .map(([n, g]) => `${g} at ${n.toLocaleString("en-US")}`)
      .join(", ");
  const column = (r: Row) =>
    `${r.n.toLocaleString("en-US")} hosts${SHAPES.length > 1 ? (r.shape === "all" ? ", one process" : ", split") : ""}`;
  const burstCell = (b: Row["burst"]) =>
    b
      ? `${ms(b.settleMs)}; pushed ${b.pushed} of ${b.writes} (${((100 * b.pushed) / b.writes).toFixed(1)}%)`
      : "not run";
  const memCell = (m: Row["masterMem"]) => (m ? `${mib(m.totalRssKiB)} / ${mib(m.totalUssKiB)}` : "not run");
  report.log();
  report.log(`| | ${rows.map(column).join(" | ")} | goal |`);
  report.log(`|---|${rows.map(() => "---").join("|")}|---|`);
  line(`writes/s, ${IN_FLIGHT} in flight (seeding)`, (r) => `${r.writesPerSecond.toFixed(0)}/s`, ">= 1,000/s");
  line("API write latency, median / p99", (r) => `${ms(r.writeMedian)} / ${ms(r.writeP99)}`, "median <= 5 ms");
  line("write -> slave's Caddy serves it, median / p99", (r) => `${ms(r.syncMedian)} / ${ms(r.syncP99)}`);
  line(
    "the same, each change made as soon as the last is served (loads paced), median / p99",
    (r) => `${ms(r.pacedMedian)} / ${ms(r.pacedP99)}`,
  );
  line("bare `POST /load` of the same config, median / p99", (r) => `${ms(r.loadMedian)} / ${ms(r.loadP99)}`);
  line(
    "ratio of medians (sync / bare load)",
    (r) => ratio(r.syncMedian / r.loadMedian),
    sizeGoal((n) => (n === 100 ? "<= 2x" : "<= 1.5x")),
  );
  line("ratio sync p99 / bare load median", (r) => ratio(r.syncP99 / r.loadMedian), "<= 2x");
  line("bare `POST /load` into two Caddies at the same moment (a master's and a slave's on one machine), median", (r) =>
    ms(r.pairedLoadMedian),
  );
  line("ratio of medians (sync / two bare loads at once)", (r) => ratio(r.syncMedian / r.pairedLoadMedian));
  line(
    "the same two loads, from their start until the bench's poller sees the change served (no CPM: this bench's floor on this machine), median",
    (r) => ms(r.pairedServeMedian),
  );
  line("ratio of medians (sync / that floor)", (r) => ratio(r.syncMedian / r.pairedServeMedian));
  line(
    `burst of ${BURST} updates (${IN_FLIGHT} in flight): last write -> slave serves the final version; snapshots pushed`,
    (r) => burstCell(r.burst),
    "pushed <= 10% of writes",
  );
  line(
    `slave restarted -> its Caddy serves a change made while it was down, from its receiver answering GetReceiverStatus, median / max of ${RESTARTS}`,
    (r) => `${ms(r.restart.median)} / ${ms(r.restart.max)}`,
    "<= 1 s",
  );
  line(
    `the same, from the slave's start (its process launched: start-up, then the above), median / max of ${RESTARTS}`,
    (r) => `${ms(r.restartFromStart.median)} / ${ms(r.restartFromStart.max)}`,
  );
  line(
    `master instance memory at rest (process tree, ${RSS_SETTLE_MS / 1000} s after the writes), RSS / USS`,
    (r) => memCell(r.masterMem),
    "RSS <= 250 MB at 1,000",
  );
  line(
    `slave instance memory at rest (process tree, ${RSS_SETTLE_MS / 1000} s after the writes), RSS / USS`,
    (r) => memCell(r.slaveMem),
    "RSS <= 250 MB at 1,000",
  );
  line("snapshot bytes", (r) => `${(r.snapshotBytes / 1024).toFixed(1)} KiB`, "<= 160 KB");
  line("rendered Caddy config", (r) => `${(r.configBytes / 1024).toFixed(0)} KiB`);
  line("unchanged push -> slave's ACK, median / p99", (r) => `${ms(r.tickMedian)} / ${ms(r.tickP99)}`, "<= 5 ms");
  line("slave's Caddy reloaded by unchanged pushes", (r) => (r.reloaded ? "yes" : "no"), "no");
  line("snapshots sent to the slave (before the burst)", (r) => String(r.snapshotsSent));

  const byProcess = (m: Row["masterMem"]) =>
    m ? [...m.rssByName].map(([name, kib]) => `${name} ${mib(kib)}`).join(", ") : "not run";
  report.log();
  for (const r of rows) {
    report.log(
      `- memory by process at ${column(r)} (RSS): master: ${byProcess(r.masterMem)}; slave: ${byProcess(r.slaveMem)}`,
    );
  }

  report.finish();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
