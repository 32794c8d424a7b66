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
import { ProxyHost } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { Instance } from "../support/instance.ts";
import { measureTree, mib } from "./proc-mem.ts";
import { benchReport } from "./markdown.ts";

const HOSTS = Number(process.env.CPM_BENCH_HOSTS ?? 1000);
const SAMPLES = Number(process.env.CPM_BENCH_SAMPLES ?? 5);
const SETTLE_MS = Number(process.env.CPM_BENCH_SETTLE_MS ?? 10_000);

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

async function main() {
  const report = benchReport("rss", "npm run bench:rss");
  report.log(
    `One master instance (no slaves) started as \`npm start\` does: VmRSS and USS of the launcher, the services and Caddy, median of ${SAMPLES} samples after ${SETTLE_MS / 1000} s.`,
  );
  const inst = await Instance.start({
    name: "bench-rss",
    mode: "master",
    env: { LOG_LEVEL: "warn", INSTANCE_SLAVES: "[]" },
  });
  try {
    const root = inst.child!.pid!;
    process.stderr.write(`  idle: settling ${SETTLE_MS} ms...\n`);
    await sleep(SETTLE_MS);
    const idle = await measureTree(root, SAMPLES);

    process.stderr.write(`  seeding ${HOSTS} proxy hosts...\n`);
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
    process.stderr.write(`  ${HOSTS} hosts: settling ${SETTLE_MS} ms...\n`);
    await sleep(SETTLE_MS);
    const loaded = await measureTree(root, SAMPLES);

    const names = [...new Set([...idle.rssByName.keys(), ...loaded.rssByName.keys()])];
    const cell = (m: Map<string, number>, n: string) => mib(m.get(n) ?? 0);
    report.log();
    report.log(`| process | idle RSS | idle USS | ${HOSTS} hosts RSS | ${HOSTS} hosts USS |`);
    report.log("|---|---|---|---|---|");
    for (const n of names) {
      report.log(
        `| ${n} | ${cell(idle.rssByName, n)} | ${cell(idle.ussByName, n)} | ${cell(loaded.rssByName, n)} | ${cell(loaded.ussByName, n)} |`,
      );
    }
    report.log(
      `| **whole instance** | ${mib(idle.totalRssKiB)} | ${mib(idle.totalUssKiB)} | ${mib(loaded.totalRssKiB)} | ${mib(loaded.totalUssKiB)} |`,
    );
    report.finish();
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
