/**
 * npm run bench:rss
 *
 * Resident memory of one whole master instance as `npm start` runs it (launcher,
 * config-service, caddy-renderer, sync-dispatcher and Caddy): the sum of VmRSS from
 * /proc/<pid>/status over the launcher and every process below it (pages shared by several
 * processes, such as the node binary's, counted in each), and the sum of their private pages
 * (USS: Private_Clean + Private_Dirty in /proc/<pid>/smaps_rollup, what stopping the process
 * would free), idle (no hosts) and
 * with CPM_BENCH_HOSTS proxy hosts (default 1000). Each figure is the median of
 * CPM_BENCH_SAMPLES samples (default 5) taken one second apart after
 * CPM_BENCH_SETTLE_MS (default 10000) with Caddy in sync.
 */
import { readdirSync, readFileSync } from "node:fs";
import { ProxyHost } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { Instance } from "../support/instance.ts";

const HOSTS = Number(process.env.CPM_BENCH_HOSTS ?? 1000);
const SAMPLES = Number(process.env.CPM_BENCH_SAMPLES ?? 5);
const SETTLE_MS = Number(process.env.CPM_BENCH_SETTLE_MS ?? 10_000);

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;

function readProc(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return undefined; // the process is gone
  }
}

/** `root` and every process below it, each with its VmRSS and private pages in KiB and a short name. */
function processTree(root: number): { pid: number; name: string; rssKiB: number; ussKiB: number }[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readProc(pid, "stat");
    // The command name in field 2 may hold spaces; the parent pid follows its closing parenthesis.
    const ppid = stat ? Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) : NaN;
    if (Number.isInteger(ppid)) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const out: { pid: number; name: string; rssKiB: number; ussKiB: number }[] = [];
  const visit = (pid: number) => {
    const status = readProc(pid, "status");
    const rss = status?.match(/^VmRSS:\s+(\d+) kB/m);
    // Private pages only: unlike Pss, independent of what else runs on the machine.
    const rollup = readProc(pid, "smaps_rollup") ?? "";
    const kib = (field: string) => Number(rollup.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
    if (rss) out.push({ pid, name: nameOf(pid), rssKiB: Number(rss[1]), ussKiB: kib("Private_Clean") + kib("Private_Dirty") });
    for (const c of children.get(pid) ?? []) visit(c);
  };
  visit(root);
  return out;
}

function nameOf(pid: number): string {
  const cmd = (readProc(pid, "cmdline") ?? "").split("\0");
  const service = cmd.join(" ").match(/services\/([a-z-]+)\//);
  if (service) return service[1]!;
  if (cmd.some((a) => a.includes("libs/launcher/"))) return "launcher";
  if (cmd[0]?.endsWith("caddy")) return "caddy";
  if (cmd[0]?.endsWith("esbuild")) return "esbuild (tsx)";
  return cmd[0] ?? String(pid);
}

/** Median over SAMPLES samples of the whole tree's RSS and USS, and per process name. */
async function measure(root: number): Promise<{ total: number; totalUss: number; byName: Map<string, number>; ussByName: Map<string, number> }> {
  const totals: number[] = [];
  const ussTotals: number[] = [];
  const perName = new Map<string, number[]>();
  const ussPerName = new Map<string, number[]>();
  for (let i = 0; i < SAMPLES; i++) {
    if (i > 0) await sleep(1000);
    const tree = processTree(root);
    totals.push(tree.reduce((s, p) => s + p.rssKiB, 0));
    ussTotals.push(tree.reduce((s, p) => s + p.ussKiB, 0));
    const sums = new Map<string, [number, number]>();
    for (const p of tree) {
      const [r, q] = sums.get(p.name) ?? [0, 0];
      sums.set(p.name, [r + p.rssKiB, q + p.ussKiB]);
    }
    for (const [n, [r, q]] of sums) {
      perName.set(n, [...(perName.get(n) ?? []), r]);
      ussPerName.set(n, [...(ussPerName.get(n) ?? []), q]);
    }
  }
  const medians = (m: Map<string, number[]>) => new Map([...m].map(([n, vs]) => [n, median(vs)]));
  return { total: median(totals), totalUss: median(ussTotals), byName: medians(perName), ussByName: medians(ussPerName) };
}

async function main() {
  console.log(`bench:rss — one master instance (no slaves), sum of VmRSS over launcher, services and Caddy`);
  const inst = await Instance.start({ name: "bench-rss", mode: "master", env: { LOG_LEVEL: "warn", INSTANCE_SLAVES: "[]" } });
  try {
    const root = inst.child!.pid!;
    process.stderr.write(`  idle: settling ${SETTLE_MS} ms...\n`);
    await sleep(SETTLE_MS);
    const idle = await measure(root);

    process.stderr.write(`  seeding ${HOSTS} proxy hosts...\n`);
    for (let i = 0; i < HOSTS; i++) {
      await unary(
        inst.config.createProxyHost.bind(inst.config),
        { proxyHost: ProxyHost.fromPartial({ name: `h${i}`, domains: [`h${i}.bench.test`], upstreams: ["127.0.0.1:9"] }) },
        inst.adminToken,
      );
    }
    await inst.waitInSync(300_000);
    process.stderr.write(`  ${HOSTS} hosts: settling ${SETTLE_MS} ms...\n`);
    await sleep(SETTLE_MS);
    const loaded = await measure(root);

    const names = [...new Set([...idle.byName.keys(), ...loaded.byName.keys()])];
    const cell = (m: Map<string, number>, n: string) => mib(m.get(n) ?? 0).padStart(12);
    console.log("");
    console.log(`process         | idle RSS     | idle USS     | ${HOSTS} hosts RSS | ${HOSTS} hosts USS`);
    console.log("----------------|--------------|--------------|----------------|---------------");
    for (const n of names) {
      console.log(`${n.padEnd(15)} | ${cell(idle.byName, n)} | ${cell(idle.ussByName, n)} | ${cell(loaded.byName, n).padStart(14)} | ${cell(loaded.ussByName, n).padStart(14)}`);
    }
    console.log(`${"total".padEnd(15)} | ${mib(idle.total).padStart(12)} | ${mib(idle.totalUss).padStart(12)} | ${mib(loaded.total).padStart(14)} | ${mib(loaded.totalUss).padStart(14)}`);
  } finally {
    await inst.stop();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
