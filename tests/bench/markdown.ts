/**
 * A bench's printed tables, also written into its own section of docs/benchmarks.md when the
 * bench runs with `--markdown` (or CPM_BENCH_MARKDOWN=1): the section between
 * `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->` is replaced by the date, the commit,
 * the machine, the command and the tables of this run. Nothing else in the file changes.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";

export const BENCHMARKS_DOC = fileURLToPath(new URL("../../docs/benchmarks.md", import.meta.url));

const markers = (name: string) => [`<!-- bench:${name}:start -->`, `<!-- bench:${name}:end -->`] as const;

/** `doc` with the section `name` holding `body`; throws when the section's markers are missing. */
export function replaceBenchSection(doc: string, name: string, body: string): string {
  const [start, end] = markers(name);
  const from = doc.indexOf(start);
  const to = doc.indexOf(end, from);
  if (from < 0 || to < 0) throw new Error(`docs/benchmarks.md has no section ${start} ... ${end}`);
  return `${doc.slice(0, from + start.length)}\n${body.trimEnd()}\n${doc.slice(to)}`;
}

/** The commit the bench ran on, "+ changes" when the tree differs from it. */
function commit(): string {
  try {
    const git = (...args: string[]) => execFileSync("git", args, { encoding: "utf8", stdio: "pipe" }).trim();
    const head = git("rev-parse", "--short", "HEAD");
    return git("status", "--porcelain", "--untracked-files=no") === "" ? head : `${head} + changes`;
  } catch {
    return "unknown";
  }
}

/** CPU, cores, memory, Node and load: what the figures depend on. */
export function machineDescription(): string {
  const cpus = os.cpus();
  const gib = (os.totalmem() / 1024 ** 3).toFixed(1);
  const load = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
  return `${cpus[0]?.model.trim() ?? "unknown CPU"}, ${cpus.length} cores, ${gib} GiB memory, Node ${process.version}, load average at start ${load}`;
}

export interface BenchReport {
  /** Prints a line of the bench's result and keeps it for the markdown section. */
  log(line?: string): void;
  /** Writes the kept lines into docs/benchmarks.md when asked to (`--markdown`). */
  finish(): void;
}

/**
 * The report of bench `name`, run by `command` (as the doc shows it: `npm run bench:render`).
 * The machine is read at once, so its load average is the one at the bench's start.
 */
export function benchReport(name: string, command: string): BenchReport {
  const machine = machineDescription();
  const started = new Date();
  const lines: string[] = [];
  const markdown = process.argv.includes("--markdown") || process.env.CPM_BENCH_MARKDOWN === "1";
  return {
    log(line = "") {
      console.log(line);
      lines.push(line);
    },
    finish() {
      if (!markdown) return;
      const settings = Object.entries(process.env)
        .filter(([k]) => k.startsWith("CPM_BENCH_") && k !== "CPM_BENCH_MARKDOWN")
        .map(([k, v]) => `${k}=${v ?? ""}`)
        .sort();
      const run = `${settings.length ? `${settings.join(" ")} ` : ""}${command} -- --markdown`;
      const header = [
        `Run on ${started.toISOString().slice(0, 10)} at commit ${commit()} with \`${run}\`.`,
        `Machine: ${machine}.`,
      ];
      const doc = readFileSync(BENCHMARKS_DOC, "utf8");
      writeFileSync(BENCHMARKS_DOC, replaceBenchSection(doc, name, [...header, "", ...lines].join("\n")));
      process.stderr.write(`wrote the ${name} section of ${BENCHMARKS_DOC}\n`);
    },
  };
}
