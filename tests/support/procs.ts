import { readdirSync, readFileSync } from "node:fs";

/** A process the launcher runs: one of the services, or Caddy. */
export type ServiceName = "config-service" | "caddy-renderer" | "sync-dispatcher" | "sync-receiver" | "caddy";

function parentPid(pid: number): number | undefined {
  try {
    // The command name (field 2) is in parentheses and may hold spaces: fields start after the last ")".
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

/** Which launcher process `argv` is: `node services/<name>/dist/main.js` or `caddy run ...`. */
export function serviceOf(argv: string[]): ServiceName | undefined {
  const entry = argv.find((a) => /services\/[a-z-]+\/dist\/main\.js$/.test(a));
  if (entry) return /services\/([a-z-]+)\//.exec(entry)![1] as ServiceName;
  if (argv.length > 1 && /(^|\/)caddy$/.test(argv[0]!) && argv[1] === "run") return "caddy";
  return undefined;
}

/** The processes a launcher (`pid`) runs now, by name (read from /proc). */
export function launcherChildren(pid: number): Map<ServiceName, number> {
  const out = new Map<ServiceName, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const child = Number(entry);
    if (parentPid(child) !== pid) continue;
    const name = serviceOf(commandLine(child));
    if (name) out.set(name, child);
  }
  return out;
}
