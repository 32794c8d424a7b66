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
 * - `--liftoff-only`: WebAssembly runs on V8's baseline compiler only. The one module is Prisma's
 *   query compiler (config-service); optimizing its hot functions kept about 17 MiB more resident
 *   in an idle node (107 -> 90 MiB for its Node process) for no CPU per write that could be
 *   measured (9-11 ms of CPU per update, in-process, either way). NODE_OPTIONS cannot carry this
 *   flag; a `--no-liftoff-only` given after it on the command line wins.
 *
 * The first two are left alone when the operator set them (MALLOC_ARENA_MAX, or the flag in NODE_OPTIONS).
 */
export const NODE_SERVICE_FLAGS = ["--max-semi-space-size=2"] as const;
/** V8 flags NODE_OPTIONS cannot carry, always given first (a later flag of the operator's wins). */
export const NODE_SERVICE_V8_FLAGS = ["--liftoff-only"] as const;
export const DEFAULT_MALLOC_ARENA_MAX = "2";

/** The environment a Node service starts with: `env` plus the memory defaults it does not set. */
export function nodeServiceEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX || DEFAULT_MALLOC_ARENA_MAX };
}

/** The node arguments that run `entry`: the memory flags NODE_OPTIONS does not already set, then the entry. */
export function nodeServiceArgs(entry: string, env: NodeJS.ProcessEnv): string[] {
  const given = env.NODE_OPTIONS ?? "";
  const flags = NODE_SERVICE_FLAGS.filter((f) => !given.includes(f.split("=")[0]!));
  return [...NODE_SERVICE_V8_FLAGS, ...flags, entry];
}
