import type { InstanceMode } from "./env.ts";

/**
 * The modules a node is made of, each declared once with the modes it runs in and the modules it
 * calls (as Loki's module manager declares its own): the one place that says what `CPM_TARGET=all`
 * means in each mode and in which order a node starts them. A module whose dependency is not in
 * this process's target reaches it at its configured address (CPM_CONFIG_ADDR, CPM_RENDERER_ADDR,
 * CADDY_API_URL).
 */
export const MODULE_NAMES = [
  "caddy",
  "config-service",
  "caddy-renderer",
  "sync-dispatcher",
  "sync-receiver",
  "web-console",
] as const;
export type ModuleName = (typeof MODULE_NAMES)[number];

export interface ModuleSpec {
  /** The modes whose `all` includes it; a target that names it in another mode is refused. */
  readonly modes: readonly InstanceMode[];
  /** The modules it calls: started before it when they run in the same node. */
  readonly dependsOn: readonly ModuleName[];
  readonly what: string;
}

const EVERY_MODE: readonly InstanceMode[] = ["standalone", "master", "slave"];

export const MODULES: Readonly<Record<ModuleName, ModuleSpec>> = {
  caddy: { modes: EVERY_MODE, dependsOn: [], what: "the Caddy this node supervises (restarted when it dies)" },
  "config-service": { modes: EVERY_MODE, dependsOn: [], what: "the database, the public API, versions, snapshots" },
  "caddy-renderer": {
    modes: EVERY_MODE,
    dependsOn: ["config-service", "caddy"],
    what: "renders each version into Caddy's config and keeps Caddy on it",
  },
  "sync-dispatcher": {
    modes: ["master"],
    dependsOn: ["config-service", "caddy-renderer"],
    what: "pushes each version to the slaves and keeps their status",
  },
  "sync-receiver": {
    modes: ["slave"],
    dependsOn: ["config-service", "caddy-renderer"],
    what: "receives, checks and applies the master's snapshots",
  },
  "web-console": {
    modes: EVERY_MODE,
    // It calls only the public APIs (config-service's, a master's dispatcher's) over gRPC with each
    // browser's own token, never an internal listener; declared last, it starts last.
    dependsOn: [],
    what: "serves the browser console and forwards its calls to the public API with the caller's token",
  },
};

/** Orders `names` so that every module comes after the modules it depends on (declaration order otherwise). */
export function startOrder(names: readonly ModuleName[]): ModuleName[] {
  const wanted = new Set(names);
  const out: ModuleName[] = [];
  const visit = (name: ModuleName) => {
    if (out.includes(name)) return;
    for (const dep of MODULES[name].dependsOn) if (wanted.has(dep)) visit(dep);
    out.push(name);
  };
  for (const name of MODULE_NAMES) if (wanted.has(name)) visit(name);
  return out;
}

/**
 * CPM_TARGET read: `all` (the modules of `mode`) or a comma-separated list of module names.
 * Returns the modules in start order, or why the value is refused.
 */
export function parseTarget(value: string, mode: InstanceMode): { modules: ModuleName[] } | { error: string } {
  const trimmed = value.trim();
  if (trimmed === "all") return { modules: startOrder(MODULE_NAMES.filter((n) => MODULES[n].modes.includes(mode))) };
  const names = trimmed.split(",").map((s) => s.trim());
  const seen = new Set<string>();
  for (const [i, name] of names.entries()) {
    if (name === "") return { error: `entry ${i + 1} is empty; write "all" or module names separated by commas` };
    if (!(MODULE_NAMES as readonly string[]).includes(name))
      return { error: `"${name}" is not a module; the modules are ${MODULE_NAMES.join(", ")} (or "all")` };
    if (seen.has(name)) return { error: `"${name}" is named twice` };
    seen.add(name);
    const spec = MODULES[name as ModuleName];
    if (!spec.modes.includes(mode))
      return { error: `"${name}" runs only with INSTANCE_MODE=${spec.modes.join(" or ")}, not ${mode}` };
  }
  return { modules: startOrder(names as ModuleName[]) };
}

/**
 * The modules of `mode` that call `module` from another process, given the modules `inProcess`
 * (what this process runs): a module listens for its internal callers only when there are some
 * (in a one-process node with CPM_TARGET=all there are none, and nothing internal listens).
 */
export function remoteCallers(module: ModuleName, inProcess: readonly string[], mode: InstanceMode): ModuleName[] {
  return MODULE_NAMES.filter(
    (n) => MODULES[n].modes.includes(mode) && MODULES[n].dependsOn.includes(module) && !inProcess.includes(n),
  );
}
