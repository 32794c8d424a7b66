/**
 * npm run bench:rss
 *
 * Resident memory of one whole master node as `npm start` runs it, in both shapes: one Node
 * process (config-service, caddy-renderer, sync-dispatcher) and Caddy, the default; and split
 * (CPM_SPLIT_PROCESSES=true: the launcher, one process per service, and Caddy). The sum of VmRSS from
 * /proc/<pid>/status over the launcher and every process below it (pages shared by several
 * processes, such as the node binary's, counted in each), and the sum of their private pages
 * (USS: Private_Clean + Private_Dirty in /proc/<pid>/smaps_rollup, what stopping the process
 * would free), idle (no hosts) and
 * with CPM_BENCH_HOSTS proxy hosts (default 1000). Each figure is the median of
 * CPM_BENCH_SAMPLES samples (default 5) taken one second apart after
 * CPM_BENCH_SETTLE_MS (default 10000) with Caddy in sync.
 */
import { ProxyHost } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { Instance } from "../support/instance.ts";
import { measureTree, mib } from "./proc-mem.ts";
import { benchReport } from "./markdown.ts";

const HOSTS = Number(process.env.CPM_BENCH_HOSTS ?? 1000);
const SAMPLES = Number(process.env.CPM_BENCH_SAMPLES ?? 5);
const SETTLE_MS = Number(process.env.CPM_BENCH_SETTLE_MS ?? 10_000);

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

interface ShapeMemory {
  idle: Awaited<ReturnType<typeof measureTree>>;
  loaded: Awaited<ReturnType<typeof measureTree>>;
}

/** One master node of `split` shape: its memory idle and with HOSTS hosts. */
async function measureShape(split: boolean): Promise<ShapeMemory> {
  const shape = split ? "split" : "one process";
  const inst = await Instance.start({
    name: `bench-rss-${split ? "split" : "all"}`,
    mode: "master",
    split,
    env: { LOG_LEVEL: "warn", INSTANCE_SLAVES: "[]" },
  });
  try {
    const root = inst.child!.pid!;
    process.stderr.write(`  ${shape}, idle: settling ${SETTLE_MS} ms...\n`);
    await sleep(SETTLE_MS);
    const idle = await measureTree(root, SAMPLES);
    process.stderr.write(`  ${shape}: seeding ${HOSTS} proxy hosts...\n`);
    for (let i = 0; i < HOSTS; i++) {
      await unary(
        inst.config.createProxyHost.bind(inst.config),
        {
          proxyHost: ProxyHost.fromPartial({
            name: `h${i}`,
            domains: [`h${i}.bench.test`],
            upstreams: ["127.0.0.1:9"],
          }),
        },
        inst.adminToken,
      );
    }
    await inst.waitInSync(300_000);
    process.stderr.write(`  ${shape}, ${HOSTS} hosts: settling ${SETTLE_MS} ms...\n`);
    await sleep(SETTLE_MS);
    return { idle, loaded: await measureTree(root, SAMPLES) };
  } finally {
    await inst.stop();
  }
}

async function main() {
  const report = benchReport("rss", "npm run bench:rss");
  report.log(
    `One master node (no slaves) started as \`npm start\` does, in its default shape (one Node process and Caddy) and split (CPM_SPLIT_PROCESSES=true: the launcher, one process per service, and Caddy): VmRSS and USS of the whole process tree, median of ${SAMPLES} samples after ${SETTLE_MS / 1000} s.`,
  );
  const all = await measureShape(false);
  const split = await measureShape(true);
  const cell = (m: Map<string, number>, n: string) => (m.has(n) ? mib(m.get(n)!) : "-");
  for (const [title, m] of [
    ["one process", all],
    ["split", split],
  ] as const) {
    const names = [...new Set([...m.idle.rssByName.keys(), ...m.loaded.rssByName.keys()])];
    report.log();
    report.log(`| ${title}: process | idle RSS | idle USS | ${HOSTS} hosts RSS | ${HOSTS} hosts USS |`);
    report.log("|---|---|---|---|---|");
    for (const n of names)
      report.log(
        `| ${n} | ${cell(m.idle.rssByName, n)} | ${cell(m.idle.ussByName, n)} | ${cell(m.loaded.rssByName, n)} | ${cell(m.loaded.ussByName, n)} |`,
      );
    report.log(
      `| **whole node** | ${mib(m.idle.totalRssKiB)} | ${mib(m.idle.totalUssKiB)} | ${mib(m.loaded.totalRssKiB)} | ${mib(m.loaded.totalUssKiB)} |`,
    );
  }
  const MB = 1_000_000 / 1024; // KiB per MB
  const verdict = (kib: number, goalMb: number) => (kib <= goalMb * MB ? "met" : "missed");
  report.log();
  report.log("| whole node RSS | one process | split | goal |");
  report.log("|---|---|---|---|");
  report.log(
    `| idle | ${mib(all.idle.totalRssKiB)} | ${mib(split.idle.totalRssKiB)} | at most 150 MB: ${verdict(all.idle.totalRssKiB, 150)} |`,
  );
  report.log(
    `| ${HOSTS} hosts, at rest | ${mib(all.loaded.totalRssKiB)} | ${mib(split.loaded.totalRssKiB)} | at most 250 MB: ${verdict(all.loaded.totalRssKiB, 250)} |`,
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
