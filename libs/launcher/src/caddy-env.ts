import path from "node:path";

/**
 * The whole environment Caddy is started with: PATH and HOME from the launcher's own
 * environment (when set) and Caddy's storage and config dirs under `caddyDir`. Nothing
 * else is passed on, so no CPM_*, INSTANCE_*, DATABASE_URL or other secret can reach Caddy,
 * where a `{env.*}` placeholder could expand it.
 */
export function caddyEnvironment(parent: NodeJS.ProcessEnv, caddyDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    XDG_DATA_HOME: path.join(caddyDir, "data"),
    XDG_CONFIG_HOME: path.join(caddyDir, "config"),
  };
  if (parent.PATH !== undefined) env.PATH = parent.PATH;
  // Caddy falls back to HOME for its storage when XDG is unset; keep it a real directory.
  env.HOME = parent.HOME ?? caddyDir;
  return env;
}
