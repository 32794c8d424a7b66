/**
 * npm run bench (also npm run bench:sync)
 *
 * For each size in CPM_BENCH_SIZES (default 100 and 1,000 proxy hosts), one master and one
 * slave (TLS, each with its own real Caddy), and prints one table:
 * - writes/s: the hosts are seeded with 16 creates in flight (CPM_BENCH_IN_FLIGHT);
 * - API write latency: CPM_BENCH_WRITES (default 200) UpdateProxyHost calls one at a time;
 * - write -> the slave's Caddy serves it, over CPM_BENCH_CHANGES changes (default 30), next
 *   to the bare `POST /load` of the same rendered config into a separate Caddy, same run;
 * - the snapshot's size on the wire;
 * - the unchanged periodic push: the master's current snapshot sent again to the slave's
 *   receiver over one stream, the time to its ACK, and whether the slave's Caddy reloaded.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { ProxyHost, Snapshot, type SyncResponse } from "@cpm/proto";
import { unary, withBearer } from "@cpm/grpc-kit";
import { caddyAdminRequest } from "@cpm/core";
import { Instance, projectCaddy } from "../support/instance.ts";
import { freePort, httpGet, startUpstream } from "../support/net.ts";
import { makePki } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";
import { pct } from "./stats.ts";

const SIZES = (process.env.CPM_BENCH_SIZES ?? "100,1000").split(",").map(Number);
const CHANGES = Number(process.env.CPM_BENCH_CHANGES ?? 30);
const WRITES = Number(process.env.CPM_BENCH_WRITES ?? 200);
const IN_FLIGHT = Number(process.env.CPM_BENCH_IN_FLIGHT ?? 16);
const TICKS = Number(process.env.CPM_BENCH_TICKS ?? 30);
const TOKEN = "bench-sync-token-0123456789abcdef";

const ms = (x: number) => `${x.toFixed(1)} ms`;

async function bareCaddy(): Promise<{ admin: number; stop: () => void }> {
  const admin = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "cpm-bench-caddy-"));
  const cfg = path.join(dir, "initial.json");
  writeFileSync(cfg, JSON.stringify({ admin: { listen: `127.0.0.1:${admin}` } }));
  const child = spawn(projectCaddy(), ["run", "--config", cfg], { stdio: "ignore", env: { ...process.env, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir } });
  await waitFor(async () => (await caddyAdminRequest(`http://127.0.0.1:${admin}/config/`)).status === 200, "bare caddy up", 15_000);
  return { admin, stop: () => child.kill("SIGTERM") };
}

async function benchSize(n: number) {
  const up = await startUpstream("bench");
  const pki = makePki(mkdtempSync(path.join(os.tmpdir(), "cpm-bench-pki-")));
  const quiet = { LOG_LEVEL: process.env.CPM_BENCH_LOG_LEVEL ?? "warn" };
  const slave = await Instance.start({ name: `bench-slave-${n}`, mode: "slave", env: { ...quiet, INSTANCE_SYNC_TOKEN: TOKEN, CPM_SYNC_TLS_CERT: pki.cert, CPM_SYNC_TLS_KEY: pki.key } });
  const master = await Instance.start({
    name: `bench-master-${n}`,
    mode: "master",
    env: { ...quiet, CPM_SYNC_TLS_CA: pki.caCert, INSTANCE_SLAVES: JSON.stringify([{ name: "s", url: `https://localhost:${slave.ports.sync}`, token: TOKEN }]) },
  });
  try {
    process.stderr.write(`  seeding ${n} proxy hosts, ${IN_FLIGHT} in flight...\n`);
    const hosts: ProxyHost[] = new Array(n);
    let next = 0;
    const seedStart = performance.now();
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        for (let i = next++; i < n; i = next++) {
          const r = await unary(
            master.config.createProxyHost.bind(master.config),
            { proxyHost: ProxyHost.fromPartial({ name: `h${i}`, domains: [`h${i}.bench.test`], upstreams: [`127.0.0.1:${up.port}`] }) },
            master.adminToken,
          );
          hosts[i] = r.proxyHost!;
        }
      }),
    );
    const writesPerSecond = n / ((performance.now() - seedStart) / 1000);
    const seeded = await master.version();
    await waitFor(async () => (await slave.version()) === seeded && (await slave.renderStatus()).inSync, "slave seeded", 300_000, 200);

    process.stderr.write(`  ${WRITES} writes one at a time...\n`);
    const writeLatencies: number[] = [];
    for (let i = 0; i < WRITES; i++) {
      const h = hosts[(i * 7) % n]!;
      const t0 = performance.now();
      const r = await unary(master.config.updateProxyHost.bind(master.config), { proxyHost: { ...h, upstreams: [`127.0.0.1:${up.port}`, `127.0.0.2:${1000 + i}`] } }, master.adminToken);
      writeLatencies.push(performance.now() - t0);
      hosts[(i * 7) % n] = r.proxyHost!;
    }
    const written = await master.version();
    await waitFor(async () => (await slave.version()) === written && (await slave.renderStatus()).inSync, "slave caught up", 300_000, 200);

    process.stderr.write(`  ${CHANGES} changes...\n`);
    const latencies: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const h = hosts[i % hosts.length]!;
      const domain = `c${i}.bench.test`;
      await unary(master.config.updateProxyHost.bind(master.config), { proxyHost: { ...h, domains: [domain] } }, master.adminToken);
      const t0 = performance.now();
      for (;;) {
        const r = await httpGet(slave.ports.http, domain).catch(() => undefined);
        if (r?.status === 200) break;
        await new Promise((res) => setTimeout(res, 1));
      }
      latencies.push(performance.now() - t0);
      hosts[i % hosts.length] = { ...h, domains: [domain] };
    }

    // The same rendered config, loaded bare into a separate Caddy: two variants alternated so no load is a no-op.
    const json = (await caddyAdminRequest(`http://127.0.0.1:${slave.ports.caddyAdmin}/config/`)).body;
    const bare = await bareCaddy();
    const retarget = (s: string, port: number) => {
      const cfg = JSON.parse(s);
      cfg.admin = { listen: `127.0.0.1:${bare.admin}` };
      cfg.apps.http.servers.http.listen = [`:${port}`];
      cfg.apps.http.http_port = port;
      return JSON.stringify(cfg);
    };
    const variants = [retarget(json, await freePort()), retarget(json, await freePort())];
    const loads: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const t0 = performance.now();
      const res = await caddyAdminRequest(`http://127.0.0.1:${bare.admin}/load`, { method: "POST", body: variants[i % 2] });
      if (res.status !== 200) throw new Error(`bare load failed: ${res.status}`);
      loads.push(performance.now() - t0);
    }
    bare.stop();
    const status = (await unary(master.dispatcher.getSyncStatus.bind(master.dispatcher), {}, master.adminToken)).slaves[0]!;

    process.stderr.write(`  ${TICKS} unchanged pushes...\n`);
    const snapshot = (await unary(master.config.getSnapshot.bind(master.config), {}, master.adminToken)).snapshot!;
    const snapshotBytes = Snapshot.encode(snapshot).finish().length;
    await waitFor(async () => (await slave.version()) === snapshot.version && (await slave.renderStatus()).inSync, "slave on the master's version", 60_000, 100);
    const before = await slave.renderStatus();
    const ticks = await unchangedPushes(slave, pki.caCert, snapshot, TICKS);
    const after = await slave.renderStatus();
    const reloaded = after.appliedAt?.getTime() !== before.appliedAt?.getTime() || after.configSha256 !== before.configSha256;
    return {
      n,
      writesPerSecond,
      writeMedian: pct(writeLatencies, 50),
      writeP99: pct(writeLatencies, 99),
      snapshotBytes,
      tickMedian: pct(ticks, 50),
      tickP99: pct(ticks, 99),
      reloaded,
      syncMedian: pct(latencies, 50),
      syncP99: pct(latencies, 99),
      loadMedian: pct(loads, 50),
      loadP99: pct(loads, 99),
      configBytes: json.length,
      snapshotsSent: status.snapshotsSent,
    };
  } finally {
    await master.stop();
    await slave.stop();
    await up.close();
  }
}

/**
 * Sends `s` (what the slave already runs) `count` times over one stream, as the master's
 * periodic push does, and returns the time from each send to its ACK.
 */
async function unchangedPushes(slave: Instance, ca: string, s: Snapshot, count: number): Promise<number[]> {
  const client = slave.receiverClient(ca);
  const call = client.sync(withBearer(TOKEN));
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
        call.write({ snapshot: s, traceContext: undefined });
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
  console.log(`bench: master + one TLS slave with real Caddies; ${IN_FLIGHT} writes in flight while seeding, ${WRITES} single writes, ${CHANGES} changes, ${TICKS} unchanged pushes per size`);
  const rows: Awaited<ReturnType<typeof benchSize>>[] = [];
  for (const n of SIZES) {
    process.stderr.write(`size ${n}:\n`);
    rows.push(await benchSize(n));
  }
  const line = (label: string, cell: (r: (typeof rows)[number]) => string) => console.log(`| ${label} | ${rows.map(cell).join(" | ")} |`);
  console.log("");
  console.log(`| | ${rows.map((r) => `${r.n.toLocaleString("en-US")} hosts`).join(" | ")} |`);
  console.log(`|---|${rows.map(() => "---").join("|")}|`);
  line(`writes/s, ${IN_FLIGHT} in flight (seeding)`, (r) => `${r.writesPerSecond.toFixed(0)}/s`);
  line("API write latency, median / p99", (r) => `${ms(r.writeMedian)} / ${ms(r.writeP99)}`);
  line("write -> slave's Caddy serves it, median / p99", (r) => `${ms(r.syncMedian)} / ${ms(r.syncP99)}`);
  line("bare `POST /load` of the same config, median / p99", (r) => `${ms(r.loadMedian)} / ${ms(r.loadP99)}`);
  line("ratio of medians (sync / bare load)", (r) => `${(r.syncMedian / r.loadMedian).toFixed(2)}x`);
  line("snapshot bytes", (r) => `${(r.snapshotBytes / 1024).toFixed(1)} KiB`);
  line("rendered Caddy config", (r) => `${(r.configBytes / 1024).toFixed(0)} KiB`);
  line("unchanged push -> slave's ACK, median / p99", (r) => `${ms(r.tickMedian)} / ${ms(r.tickP99)}`);
  line("slave's Caddy reloaded by unchanged pushes", (r) => (r.reloaded ? "yes" : "no"));
  line("snapshots sent to the slave", (r) => String(r.snapshotsSent));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
