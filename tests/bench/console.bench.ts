/**
 * npm run bench:console
 *
 * The web console's proxy hosts page at CPM_BENCH_SIZES hosts (default 100 and 10,000): one
 * standalone instance per size (`npm start`'s launcher, a real Caddy, SQLite), seeded through
 * the API, then Debian's Chromium (CPM_CHROMIUM, default /usr/bin/chromium, through
 * playwright-core) signed in as an admin. Medians of CPM_BENCH_RUNS (default 5) runs of, each
 * after one run not counted (the first run compiles the browser's and the server's code):
 * - open: from navigation to the page until the first page's rows are visible;
 * - search: from typing one host's domain until that host is the only row (the page asks the
 *   server once typing pauses for 250 ms: that pause is part of the figure);
 * - Next: from the click until the next page's rows are shown;
 * - ListProxyHosts as the server answers it to a gRPC client: one page of 25, one search, and
 *   the whole list (what the page read before it paged on the server).
 */
import { performance } from "node:perf_hooks";
import type { Browser, Page } from "playwright-core";
import { Role } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { CHROMIUM, consoleUrl, launchChromium, signIn } from "../support/browser.ts";
import type { Instance } from "../support/instance.ts";
import { killInstancesOnSignal, seed, startInstance, stopAll } from "./cluster.ts";
import { benchReport, machineDescription } from "./markdown.ts";
import { pct } from "./stats.ts";

const SIZES = (process.env.CPM_BENCH_SIZES ?? "100,10000").split(",").map((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 30) throw new Error(`CPM_BENCH_SIZES must list whole numbers >= 30, got "${s}"`);
  return n;
});
const RUNS = Number(process.env.CPM_BENCH_RUNS ?? 5);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`CPM_BENCH_RUNS must be a whole number >= 1`);
const PASSWORD = "bench console password 0123";
const PAGE_SIZE = 25; // the console's
const UPSTREAM = 9; // nothing is served: the list is what counts

const median = (xs: number[]) => pct(xs, 50);
const ms = (x: number) => `${x.toFixed(x < 10 ? 1 : 0)} ms`;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

interface Result {
  n: number;
  open: number;
  search: number;
  next: number;
  serverPage: number;
  serverSearch: number;
  serverAll: number;
}

/** The page's "Page x of y · m of n proxy hosts" line, once it says `text`. */
const pageInfo = (page: Page, text: string) => page.getByText(text, { exact: false }).first().waitFor();

async function benchSize(n: number, browser: Browser): Promise<Result> {
  const inst = await startInstance({
    name: `bench-console-${n}`,
    mode: "standalone",
    env: { LOG_LEVEL: process.env.CPM_BENCH_LOG_LEVEL ?? "warn" },
  });
  try {
    process.stderr.write(`  seeding ${n} proxy hosts...\n`);
    await seed(inst, n, UPSTREAM, 16);
    await inst.waitInSync(600_000);
    await unary(
      inst.account.createUser.bind(inst.account),
      { username: "bench", role: Role.ROLE_ADMIN, password: PASSWORD },
      inst.adminToken,
    );
    const server = await serverTimes(inst, n);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const url = consoleUrl(inst);
    await signIn(page, inst, "bench", PASSWORD);
    const pages = Math.ceil(n / PAGE_SIZE);
    const first = `Page 1 of ${pages} · ${n} of ${n} proxy hosts`;
    await pageInfo(page, first);

    process.stderr.write(`  opening the page, searching, paging (${RUNS} runs each after one not counted)...\n`);
    const open: number[] = [];
    for (let r = -1; r < RUNS; r++) {
      await page.goto("about:blank");
      const t = await timed(async () => {
        await page.goto(`${url}#/hosts`);
        await page
          .locator("tbody tr[data-name]")
          .nth(PAGE_SIZE - 1)
          .waitFor();
        await pageInfo(page, first);
      });
      if (r >= 0) open.push(t);
    }
    const search: number[] = [];
    for (let r = -1; r < RUNS; r++) {
      const k = r < 0 ? n - 1 : Math.floor(((r + 0.5) / RUNS) * n);
      const t = await timed(async () => {
        await page.getByLabel("Search").fill(`h${k}.bench.test`);
        await page.locator(`tbody tr[data-name="h${k}"]`).waitFor();
        await pageInfo(page, `Page 1 of 1 · 1 of ${n} proxy hosts`);
      });
      if (r >= 0) search.push(t);
    }
    await page.getByLabel("Search").fill("");
    await pageInfo(page, first);
    const next: number[] = [];
    for (let r = -1; r < Math.min(RUNS, pages - 2); r++) {
      const t = await timed(async () => {
        await page.getByRole("button", { name: "Next" }).click();
        await pageInfo(page, `Page ${r + 3} of ${pages} · `);
        await page.locator("tbody tr[data-name]").first().waitFor();
      });
      if (r >= 0) next.push(t);
    }
    await page.close();
    return { n, open: median(open), search: median(search), next: median(next), ...server };
  } finally {
    await stopAll([inst]);
  }
}

/** ListProxyHosts as a gRPC client sees it: a page, a search, the whole list (medians). */
async function serverTimes(inst: Instance, n: number) {
  const list = (pageSize: number, query = "") =>
    unary(inst.config.listProxyHosts.bind(inst.config), { pageSize, pageToken: "", query }, inst.adminToken, 120_000);
  const times = async (fn: () => Promise<unknown>) => {
    await fn(); // warm
    const xs: number[] = [];
    for (let r = 0; r < RUNS; r++) xs.push(await timed(fn));
    return median(xs);
  };
  const all = await list(0);
  if (all.proxyHosts.length !== n) throw new Error(`listed ${all.proxyHosts.length} hosts, seeded ${n}`);
  return {
    serverPage: await times(() => list(PAGE_SIZE)),
    serverSearch: await times(() => list(PAGE_SIZE, `h${n - 1}.bench.test`)),
    serverAll: await times(() => list(0)),
  };
}

async function main() {
  killInstancesOnSignal();
  const report = benchReport("console", "npm run bench:console");
  console.log(`machine: ${machineDescription()}`);
  report.log(
    `Setup: one standalone instance (one Node process, a real Caddy, SQLite) per size, seeded through the API; Chromium (${CHROMIUM}) signed in as an admin at 1280×800; pages of ${PAGE_SIZE}; medians of ${RUNS} runs.`,
  );
  const browser = await launchChromium();
  const rows: Result[] = [];
  try {
    for (const n of SIZES) {
      process.stderr.write(`size ${n}:\n`);
      rows.push(await benchSize(n, browser));
    }
  } finally {
    await browser.close();
  }
  const line = (label: string, cell: (r: Result) => string) =>
    report.log(`| ${label} | ${rows.map(cell).join(" | ")} |`);
  report.log();
  report.log(`| | ${rows.map((r) => `${r.n.toLocaleString("en-US")} hosts`).join(" | ")} |`);
  report.log(`|---|${rows.map(() => "---").join("|")}|`);
  line("open the page: navigation to the first page's rows visible", (r) => ms(r.open));
  line("search one host's domain: typing to the one row (includes the 250 ms typing pause)", (r) => ms(r.search));
  line("Next: click to the next page's rows", (r) => ms(r.next));
  line(`ListProxyHosts, one page of ${PAGE_SIZE} (server, gRPC client)`, (r) => ms(r.serverPage));
  line(`ListProxyHosts, a search, page of ${PAGE_SIZE} (server, gRPC client)`, (r) => ms(r.serverSearch));
  line("ListProxyHosts, the whole list (page_size 0)", (r) => ms(r.serverAll));
  report.finish();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
