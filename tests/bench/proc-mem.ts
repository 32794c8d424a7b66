import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** One process of a tree with its resident memory in KiB. */
export interface ProcessMemory {
  pid: number;
  /** The service (`config-service`, ...), `launcher`, `caddy`, or the command. */
  name: string;
  /** VmRSS from /proc/<pid>/status: pages shared with other processes counted in each. */
  rssKiB: number;
  /** Private pages (Private_Clean + Private_Dirty in smaps_rollup): what stopping the process would free. */
  ussKiB: number;
}

/** Memory of a whole process tree: totals and per process name, each the median over the samples. */
export interface TreeMemory {
  totalRssKiB: number;
  totalUssKiB: number;
  rssByName: Map<string, number>;
  ussByName: Map<string, number>;
}

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** `kib` KiB as MiB with one decimal. */
export const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;

function readProc(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return undefined; // the process is gone
  }
}

/** `root` and every process below it (read from /proc now), each with its VmRSS, private pages and a short name. */
export function processTree(root: number): ProcessMemory[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readProc(pid, "stat");
    // The command name in field 2 may hold spaces; the parent pid follows its closing parenthesis.
    const ppid = stat ? Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) : NaN;
    if (Number.isInteger(ppid)) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const out: ProcessMemory[] = [];
  const visit = (pid: number) => {
    const status = readProc(pid, "status");
    const rss = status?.match(/^VmRSS:\s+(\d+) kB/m);
    // Private pages only: unlike Pss, independent of what else runs on the machine.
    const rollup = readProc(pid, "smaps_rollup") ?? "";
    const kib = (field: string) => Number(rollup.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
    if (rss)
      out.push({ pid, name: nameOf(pid), rssKiB: Number(rss[1]), ussKiB: kib("Private_Clean") + kib("Private_Dirty") });
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

/**
 * The memory of `root`'s process tree: `samples` readings `intervalMs` apart, the median of
 * each total and of each process name's sum.
 */
export async function measureTree(root: number, samples: number, intervalMs = 1000): Promise<TreeMemory> {
  const totals: number[] = [];
  const ussTotals: number[] = [];
  const perName = new Map<string, number[]>();
  const ussPerName = new Map<string, number[]>();
  for (let i = 0; i < samples; i++) {
    if (i > 0) await sleep(intervalMs);
    const tree = processTree(root);
    if (tree.length === 0) throw new Error(`process ${root} is gone: no memory to measure`);
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
  return {
    totalRssKiB: median(totals),
    totalUssKiB: median(ussTotals),
    rssByName: medians(perName),
    ussByName: medians(ussPerName),
  };
}

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU time (user + system, ms) that `root` and every process below it have used so far, from
 * /proc/<pid>/stat; only the processes whose name `counts` (see `nameOf`: `caddy`, ...). A
 * process that exited is no longer counted.
 */
export function treeCpuMs(root: number, counts: (name: string) => boolean = () => true): number {
  let ticks = 0;
  for (const p of processTree(root)) {
    if (!counts(p.name)) continue;
    const stat = readProc(p.pid, "stat");
    if (!stat) continue;
    // After the command's closing parenthesis: state is field 3, utime 14 and stime 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1000) / CLOCK_TICKS;
}
