/**
 * How the launcher runs each Node service: settings that keep an idle service's memory small
 * without changing what it does. The service images set the same (docker/entrypoint.sh).
 *
 * - `MALLOC_ARENA_MAX=2`: glibc otherwise gives each thread that allocates (libuv's pool,
 *   SQLite, V8's helpers) its own 64 MiB arena, kept resident once touched; two arenas took
 *   config-service from about 206 to 153 MiB at 1,000 hosts.
 * - `--max-semi-space-size=2` (MiB): V8's young generation grows to 2 x 16 MiB under a burst
 *   of writes or renders and stays that size; capped at 2 MiB it costs more scavenges.
 *   config-service at 1,000 hosts: about 106 MiB with both settings, 147-167 MiB with a
 *   4 MiB cap, 206 MiB with neither.
 *
 * - `--optimize-for-size`: V8 grows its old generation less eagerly between collections. A
 *   burst of writes left config-service's heap at about 90 MiB with 26 MiB live (RSS 173-181
 *   MiB at rest, 1,000 hosts); with the flag its heap stayed at 28 MiB (RSS 112-115 MiB) and
 *   the writes per second did not drop (273 and 249/s with it, 259 and 240/s without). These
 *   are control-plane processes: Caddy, which carries the traffic, is not a Node process.
 *
 * The first two are left alone when the operator set them (MALLOC_ARENA_MAX, or the flag in
 * NODE_OPTIONS); Node does not take `--optimize-for-size` from NODE_OPTIONS, so it is always on.
 */
export const NODE_SERVICE_FLAGS = ["--max-semi-space-size=2", "--optimize-for-size"] as const;
export const DEFAULT_MALLOC_ARENA_MAX = "2";

/** The environment a Node service starts with: `env` plus the memory defaults it does not set. */
export function nodeServiceEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX || DEFAULT_MALLOC_ARENA_MAX };
}

/** The node arguments that run `entry`: the memory flags NODE_OPTIONS does not already set, then the entry. */
export function nodeServiceArgs(entry: string, env: NodeJS.ProcessEnv): string[] {
  const given = env.NODE_OPTIONS ?? "";
  const flags = NODE_SERVICE_FLAGS.filter((f) => !given.includes(f.split("=")[0]!));
  return [...flags, entry];
}
