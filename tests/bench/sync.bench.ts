/**
 * npm run bench:sync
 *
 * For 100 and 1,000 proxy hosts, one master and one slave (TLS, each with its own real
 * Caddy): the latency from the master's API write returning to the slave's Caddy serving
 * the change, over CPM_BENCH_CHANGES changes (default 30), next to the bare `POST /load`
 * time of the same rendered config into a separate Caddy, measured in the same run.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { ProxyHost } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { caddyAdminRequest } from "@cpm/core";
import { Instance, projectCaddy } from "../support/instance.ts";
import { freePort, httpGet, startUpstream } from "../support/net.ts";
import { makePki } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";

const SIZES = (process.env.CPM_BENCH_SIZES ?? "100,1000").split(",").map(Number);
const CHANGES = Number(process.env.CPM_BENCH_CHANGES ?? 30);
const TOKEN = "bench-sync-token-0123456789abcdef";

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
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
    process.stderr.write(`  seeding ${n} proxy hosts...\n`);
    const hosts: ProxyHost[] = [];
    for (let i = 0; i < n; i++) {
      const r = await unary(
        master.config.createProxyHost.bind(master.config),
        { proxyHost: ProxyHost.fromPartial({ name: `h${i}`, domains: [`h${i}.bench.test`], upstreams: [`127.0.0.1:${up.port}`] }) },
        master.adminToken,
      );
      hosts.push(r.proxyHost!);
    }
    const seeded = await master.version();
    await waitFor(async () => (await slave.version()) === seeded && (await slave.renderStatus()).inSync, "slave seeded", 300_000, 200);

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
    return {
      n,
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

async function main() {
  console.log(`bench:sync — write returned on the master -> slave's Caddy serves the change (${CHANGES} changes per size)`);
  const rows = [];
  for (const n of SIZES) {
    process.stderr.write(`size ${n}:\n`);
    rows.push(await benchSize(n));
  }
  console.log("");
  console.log("hosts | sync median | sync p99 | bare POST /load median | bare p99 | ratio (sync/load, medians) | config size");
  console.log("------|-------------|----------|------------------------|----------|----------------------------|------------");
  for (const r of rows) {
    console.log(
      `${String(r.n).padStart(5)} | ${ms(r.syncMedian).padStart(11)} | ${ms(r.syncP99).padStart(8)} | ${ms(r.loadMedian).padStart(22)} | ${ms(r.loadP99).padStart(8)} | ${(r.syncMedian / r.loadMedian).toFixed(2).padStart(26)}x | ${(r.configBytes / 1024).toFixed(0)} KiB`,
    );
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
