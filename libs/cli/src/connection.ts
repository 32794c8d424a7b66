import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { parse } from "yaml";
import { CliError, ExitCode } from "./exit-codes.ts";

/** Where and how `cpm` reaches an instance. */
export interface Connection {
  /** config-service's public API (CPM_API_LISTEN), host:port. */
  api: string;
  /** The master's sync-dispatcher (CPM_DISPATCHER_LISTEN), host:port. */
  dispatcher: string;
  token: string | undefined;
  /** TLS to the API and the dispatcher; verified against `ca` or the system roots. */
  tls: boolean;
  ca: string | undefined;
  /** The config file that was read, if any (named in messages). */
  configFile: string | undefined;
}

export interface ConnectionFlags {
  api?: string;
  dispatcher?: string;
  token?: string;
  tls?: boolean;
  ca?: string;
}

export const DEFAULT_API = "127.0.0.1:50051";
export const DEFAULT_DISPATCHER = "127.0.0.1:50053";
const FILE_KEYS = ["api", "dispatcher", "token", "tls", "ca"] as const;

/** $XDG_CONFIG_HOME/cpm/config.yaml, else ~/.config/cpm/config.yaml. */
export function configFilePath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || homedir(), ".config");
  return path.join(base, "cpm", "config.yaml");
}

function readConfigFile(file: string): Partial<Record<(typeof FILE_KEYS)[number], unknown>> {
  if (!existsSync(file)) return {};
  let doc: unknown;
  try {
    doc = parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new CliError(ExitCode.USAGE, `${file}: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc))
    throw new CliError(ExitCode.USAGE, `${file}: expected a mapping of ${FILE_KEYS.join(", ")}`);
  for (const key of Object.keys(doc)) {
    if (!(FILE_KEYS as readonly string[]).includes(key))
      throw new CliError(ExitCode.USAGE, `${file}: ${key}: unknown key (known: ${FILE_KEYS.join(", ")})`);
  }
  return doc;
}

/** Flags first, then CPM_API / CPM_DISPATCHER / CPM_TOKEN / CPM_TLS / CPM_CA, then the config file, then the defaults. */
export function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv): Connection {
  const file = configFilePath(env);
  const fromFile = readConfigFile(file);
  const str = (key: (typeof FILE_KEYS)[number]) => {
    const v = fromFile[key];
    if (v === undefined) return undefined;
    if (typeof v !== "string") throw new CliError(ExitCode.USAGE, `${file}: ${key}: expected a string`);
    return v;
  };
  const fileTls = fromFile.tls;
  if (fileTls !== undefined && typeof fileTls !== "boolean")
    throw new CliError(ExitCode.USAGE, `${file}: tls: expected true or false`);
  const envTls = env.CPM_TLS === undefined ? undefined : ["1", "true", "yes"].includes(env.CPM_TLS.toLowerCase());
  const ca = flags.ca ?? (env.CPM_CA || undefined) ?? str("ca");
  return {
    api: flags.api ?? (env.CPM_API || undefined) ?? str("api") ?? DEFAULT_API,
    dispatcher: flags.dispatcher ?? (env.CPM_DISPATCHER || undefined) ?? str("dispatcher") ?? DEFAULT_DISPATCHER,
    token: flags.token ?? (env.CPM_TOKEN || undefined) ?? str("token"),
    // A CA file implies TLS.
    tls: flags.tls ?? envTls ?? fileTls ?? ca !== undefined,
    ca,
    configFile: existsSync(file) ? file : undefined,
  };
}
