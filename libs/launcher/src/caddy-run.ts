import { readFileSync } from "node:fs";
import path from "node:path";

/** Caddy's admin block as the launcher and the renderer write it (@cpm/core caddyAdminBlock). */
export interface AdminBlock {
  listen: string;
  origins?: string[];
}

/** Where Caddy saves the last config it loaded, under the XDG_CONFIG_HOME that caddyEnvironment gives it. */
export function caddyAutosavePath(caddyDir: string): string {
  return path.join(caddyDir, "config", "caddy", "autosave.json");
}

/**
 * Arguments of `caddy run`. A restarted Caddy resumes the last config it ran (its
 * autosave.json: the hosts are served at once, not only when the renderer loads them
 * again), provided that config keeps the admin API where this instance expects it; else it
 * starts from `initialConfig` (the admin API only) and the renderer loads the rest.
 */
export function caddyRunArgs(caddyDir: string, initialConfig: string, admin: AdminBlock): string[] {
  const args = ["run", "--config", initialConfig];
  return savedAdminMatches(caddyAutosavePath(caddyDir), admin) ? [...args, "--resume"] : args;
}

function savedAdminMatches(file: string, admin: AdminBlock): boolean {
  let saved: { admin?: { listen?: unknown; origins?: unknown } };
  try {
    saved = JSON.parse(readFileSync(file, "utf8")) as typeof saved;
  } catch {
    return false; // none yet, or unreadable: start from the initial config
  }
  return (
    saved?.admin?.listen === admin.listen &&
    JSON.stringify(saved.admin.origins ?? []) === JSON.stringify(admin.origins ?? [])
  );
}
