import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import path from "node:path";

/** A bad environment: the message names the variable (and the entry, for INSTANCE_SLAVES). */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`${variable}: ${detail}`);
    this.name = "ConfigError";
  }
}

/**
 * The exit code of a service that stops on a ConfigError (EX_CONFIG of sysexits.h): the
 * launcher stops the instance at once instead of restarting a service that cannot start.
 */
export const CONFIG_ERROR_EXIT_CODE = 78;

export type InstanceMode = "standalone" | "master" | "slave";

export interface SlaveTarget {
  readonly name: string;
  /** As the operator wrote it. */
  readonly url: string;
  /** host:port for the gRPC channel. */
  readonly address: string;
  readonly tls: boolean;
  readonly token: string;
}

export interface InstanceConfig {
  readonly mode: InstanceMode;
  readonly syncToken: string | undefined;
  readonly slaves: readonly SlaveTarget[];
  readonly syncIntervalSeconds: number;
  readonly syncAllowHttp: boolean;
  readonly dataDir: string;
  readonly databaseUrl: string;
  readonly caddyApiUrl: string;
  /** Where Caddy's admin API listens (kept in every rendered config); defaults to CADDY_API_URL's host:port. */
  readonly caddyAdminListen: string;
  readonly httpPort: number;
  readonly httpsPort: number;
  /**
   * The address Caddy's HTTP/HTTPS listeners and L4 listeners written without one bind
   * to: "127.0.0.1", "[::1]"; undefined: every interface.
   */
  readonly caddyBind: string | undefined;
  readonly apiListen: string;
  /** Largest request message config-service's public listener reads. */
  readonly apiMaxMessageBytes: number;
  readonly syncListen: string;
  readonly syncTlsCert: string | undefined;
  readonly syncTlsKey: string | undefined;
  readonly syncTlsCa: string | undefined;
  readonly adminToken: string | undefined;
  readonly logLevel: string;
  /** Internal wiring between the services of one instance. */
  readonly rendererListen: string;
  readonly dispatcherListen: string;
  /** config-service's listener for the other services of the instance (internal token only, snapshot-sized messages). */
  readonly configInternalListen: string;
  /** Where the other services reach config-service's internal listener. */
  readonly configAddr: string;
  /** Where the other services reach config-service's public API (to check API tokens). */
  readonly apiAddr: string;
  readonly rendererAddr: string;
  readonly internalToken: string | undefined;
  readonly syncMaxMessageBytes: number;
  readonly syncAckTimeoutSeconds: number;
  readonly reconcileIntervalMs: number;
  readonly caddyBin: string | undefined;
  readonly caddyHasLayer4: boolean | undefined;
  /** Caddy's storage directory (certificates it obtained), read by the renderer of a master or standalone instance. */
  readonly caddyStorageDir: string;
  /** Slave: host:port of the master's Caddy HTTP port, where ACME HTTP-01 challenges for master-issued names are proxied. */
  readonly masterHttpAddress: string | undefined;
  /** Where each service serves Prometheus metrics (`GET /metrics`); undefined: not served (the default). */
  readonly metricsListen: Readonly<Record<MetricsService, string | undefined>>;
}

/** The services that can serve Prometheus metrics. */
export type MetricsService = "config" | "renderer" | "dispatcher" | "receiver";

/** The variable that sets each service's metrics address. */
export const METRICS_LISTEN_VARIABLES: Readonly<Record<MetricsService, string>> = Object.freeze({
  config: "CPM_CONFIG_METRICS_LISTEN",
  renderer: "CPM_RENDERER_METRICS_LISTEN",
  dispatcher: "CPM_DISPATCHER_METRICS_LISTEN",
  receiver: "CPM_RECEIVER_METRICS_LISTEN",
});

type Env = Record<string, string | undefined>;

/** CPM_API_MAX_MESSAGE_BYTES when unset: API requests are small (a certificate chain is the largest). */
export const DEFAULT_API_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** CPM_SYNC_MAX_MESSAGE_BYTES when unset. */
export const DEFAULT_SYNC_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

function str(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === "" ? undefined : v.trim();
}

function bool(env: Env, name: string, dflt: boolean): boolean {
  const v = str(env, name);
  if (v === undefined) return dflt;
  if (/^(true|1|yes|on)$/i.test(v)) return true;
  if (/^(false|0|no|off)$/i.test(v)) return false;
  throw new ConfigError(name, `"${v}" is not a boolean (use true or false)`);
}

function optBool(env: Env, name: string): boolean | undefined {
  return str(env, name) === undefined ? undefined : bool(env, name, false);
}

function int(env: Env, name: string, dflt: number, min: number, max: number): number {
  const v = str(env, name);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) throw new ConfigError(name, `"${v}" is not a whole number`);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(name, `${n} is outside ${min}..${max}`);
  return n;
}

function listenAddress(env: Env, name: string, dflt: string): string {
  const v = str(env, name) ?? dflt;
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(v) || Number(v.slice(v.lastIndexOf(":") + 1)) > 65535) {
    throw new ConfigError(name, `"${v}" is not a host:port address`);
  }
  return v;
}

/**
 * The metrics addresses, off unless set. Each must differ from the others and from the
 * instance's gRPC listeners: two listeners on one address would stop a service at start.
 */
function metricsListen(env: Env, taken: Record<string, string>): Record<MetricsService, string | undefined> {
  const out = {} as Record<MetricsService, string | undefined>;
  const used = new Map(Object.entries(taken).map(([variable, address]) => [address, variable]));
  for (const [service, variable] of Object.entries(METRICS_LISTEN_VARIABLES) as [MetricsService, string][]) {
    if (str(env, variable) === undefined) {
      out[service] = undefined;
      continue;
    }
    const address = listenAddress(env, variable, "");
    const other = used.get(address);
    if (other !== undefined && !address.endsWith(":0"))
      throw new ConfigError(variable, `"${address}" is already used by ${other}`);
    used.set(address, variable);
    out[service] = address;
  }
  return out;
}

/** host:port of an http(s) URL, with the scheme's default port when none is given. */
function hostPort(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`;
}

/** A listen address turned into one a local client can dial (0.0.0.0 -> 127.0.0.1). */
export function dialable(listen: string): string {
  return listen.replace(/^0\.0\.0\.0:/, "127.0.0.1:").replace(/^\[::\]:/, "[::1]:");
}

function parseSlaves(raw: string | undefined, allowHttp: boolean): SlaveTarget[] {
  const V = "INSTANCE_SLAVES";
  if (raw === undefined)
    throw new ConfigError(V, "required when INSTANCE_MODE=master (a JSON array of {name, url, token})");
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (e) {
    throw new ConfigError(V, `invalid JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new ConfigError(V, "must be a JSON array of {name, url, token}");
  const seen = new Set<string>();
  return parsed.map((entry: unknown, i: number) => {
    const at = `${V}[${i}]`;
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
      throw new ConfigError(at, "must be an object {name, url, token}");
    }
    const e = entry as Record<string, unknown>;
    for (const field of ["name", "url", "token"]) {
      if (typeof e[field] !== "string" || e[field].trim() === "") {
        throw new ConfigError(`${at}.${field}`, "is required (a non-empty string)");
      }
    }
    const name = (e.name as string).trim();
    if (seen.has(name)) throw new ConfigError(`${at}.name`, `duplicate slave name "${name}"`);
    seen.add(name);
    const url = (e.url as string).trim();
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ConfigError(`${at}.url`, `"${url}" is not a URL (e.g. https://slave-1:50443)`);
    }
    if (u.protocol !== "https:" && u.protocol !== "http:") {
      throw new ConfigError(`${at}.url`, `scheme "${u.protocol}" is not supported (use https://)`);
    }
    if (u.protocol === "http:" && !allowHttp) {
      throw new ConfigError(
        `${at}.url`,
        `"${url}" is plaintext http; use https:// or set INSTANCE_SYNC_ALLOW_HTTP=true for an isolated network`,
      );
    }
    if (u.pathname !== "/" && u.pathname !== "") throw new ConfigError(`${at}.url`, "must not have a path");
    const port = u.port || (u.protocol === "https:" ? "443" : "80");
    return Object.freeze({
      name,
      url,
      address: `${u.hostname}:${port}`,
      tls: u.protocol === "https:",
      token: (e.token as string).trim(),
    });
  });
}

/** An IP address to bind to, IPv6 in brackets ("[::1]"); undefined when unset. */
function bindAddress(env: Env, name: string): string | undefined {
  const v = str(env, name);
  if (v === undefined) return undefined;
  const bare = v.startsWith("[") && v.endsWith("]") ? v.slice(1, -1) : v;
  const family = isIP(bare);
  if (family === 0)
    throw new ConfigError(name, `"${v}" is not an IP address (e.g. 127.0.0.1 or ::1; unset: every interface)`);
  return family === 6 ? `[${bare.toLowerCase()}]` : bare;
}

function masterHttpAddress(env: Env, name: string): string | undefined {
  const v = str(env, name);
  if (v === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(name, `"${v}" is not a URL (e.g. http://master.internal:80)`);
  }
  if (u.protocol !== "http:" || u.pathname !== "/" || u.search || u.username || /[{}]/.test(v)) {
    throw new ConfigError(name, `"${v}" must be http://host[:port] (the master's Caddy HTTP port), without a path`);
  }
  return `${u.hostname}:${u.port || "80"}`;
}

function readablePath(env: Env, name: string): string | undefined {
  const p = str(env, name);
  if (p === undefined) return undefined;
  try {
    readFileSync(p);
  } catch (e) {
    throw new ConfigError(name, `cannot read "${p}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return p;
}

/**
 * Reads and validates the whole environment once. Throws ConfigError naming the
 * first bad variable. The result is frozen.
 */
export function loadConfig(env: Env = process.env): InstanceConfig {
  const modeRaw = str(env, "INSTANCE_MODE") ?? "standalone";
  if (!["standalone", "master", "slave"].includes(modeRaw)) {
    throw new ConfigError("INSTANCE_MODE", `unknown mode "${modeRaw}" (use standalone, master or slave)`);
  }
  const mode = modeRaw as InstanceMode;
  const syncAllowHttp = bool(env, "INSTANCE_SYNC_ALLOW_HTTP", false);
  const syncToken = str(env, "INSTANCE_SYNC_TOKEN");
  if (mode === "slave" && syncToken === undefined) {
    throw new ConfigError("INSTANCE_SYNC_TOKEN", "required when INSTANCE_MODE=slave (the token the master presents)");
  }
  if (mode === "slave" && syncToken !== undefined && syncToken.length < 16) {
    throw new ConfigError("INSTANCE_SYNC_TOKEN", "too short: use at least 16 characters");
  }
  const slaves = mode === "master" ? parseSlaves(str(env, "INSTANCE_SLAVES"), syncAllowHttp) : [];
  const syncIntervalSeconds = int(env, "INSTANCE_SYNC_INTERVAL", 0, 0, 86_400 * 7);

  const dataDir = path.resolve(str(env, "CPM_DATA_DIR") ?? "./data");
  const databaseUrl = str(env, "DATABASE_URL") ?? `file:${path.join(dataDir, "cpm.db")}`;
  if (!/^(file:|postgres(ql)?:\/\/)/.test(databaseUrl)) {
    throw new ConfigError("DATABASE_URL", "must start with file: (SQLite) or postgresql:// (PostgreSQL)");
  }
  const caddyApiUrl = str(env, "CADDY_API_URL") ?? "http://127.0.0.1:2019";
  try {
    const u = new URL(caddyApiUrl);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
  } catch {
    throw new ConfigError("CADDY_API_URL", `"${caddyApiUrl}" is not an http(s) URL`);
  }
  const logLevel = str(env, "LOG_LEVEL") ?? "info";
  if (!LOG_LEVELS.includes(logLevel))
    throw new ConfigError("LOG_LEVEL", `"${logLevel}" is not one of ${LOG_LEVELS.join(", ")}`);

  const apiListen = listenAddress(env, "CPM_API_LISTEN", "127.0.0.1:50051");
  const rendererListen = listenAddress(env, "CPM_RENDERER_LISTEN", "127.0.0.1:50052");
  const dispatcherListen = listenAddress(env, "CPM_DISPATCHER_LISTEN", "127.0.0.1:50053");
  const configInternalListen = listenAddress(env, "CPM_CONFIG_INTERNAL_LISTEN", "127.0.0.1:50054");
  const syncListen = listenAddress(env, "CPM_SYNC_LISTEN", "0.0.0.0:50443");
  const syncTlsCert = readablePath(env, "CPM_SYNC_TLS_CERT");
  const syncTlsKey = readablePath(env, "CPM_SYNC_TLS_KEY");
  if ((syncTlsCert === undefined) !== (syncTlsKey === undefined)) {
    throw new ConfigError(
      syncTlsCert ? "CPM_SYNC_TLS_KEY" : "CPM_SYNC_TLS_CERT",
      "set both CPM_SYNC_TLS_CERT and CPM_SYNC_TLS_KEY, or neither",
    );
  }
  if (mode === "slave" && syncTlsCert === undefined && !syncAllowHttp) {
    throw new ConfigError(
      "CPM_SYNC_TLS_CERT",
      "a slave serves sync over TLS: set CPM_SYNC_TLS_CERT and CPM_SYNC_TLS_KEY (or INSTANCE_SYNC_ALLOW_HTTP=true on an isolated network)",
    );
  }
  const adminToken = str(env, "CPM_ADMIN_TOKEN");
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new ConfigError("CPM_ADMIN_TOKEN", "too short: use at least 16 characters");
  }
  const internalToken = str(env, "CPM_INTERNAL_TOKEN");
  if (internalToken !== undefined && internalToken.length < 16) {
    throw new ConfigError("CPM_INTERNAL_TOKEN", "too short: use at least 16 characters");
  }

  return Object.freeze({
    mode,
    syncToken,
    slaves: Object.freeze(slaves),
    syncIntervalSeconds,
    syncAllowHttp,
    dataDir,
    databaseUrl,
    caddyApiUrl: caddyApiUrl.replace(/\/+$/, ""),
    caddyAdminListen: listenAddress(env, "CPM_CADDY_ADMIN_LISTEN", hostPort(caddyApiUrl)),
    httpPort: int(env, "CPM_HTTP_PORT", 80, 1, 65535),
    httpsPort: int(env, "CPM_HTTPS_PORT", 443, 1, 65535),
    caddyBind: bindAddress(env, "CPM_CADDY_BIND"),
    apiListen,
    apiMaxMessageBytes: int(
      env,
      "CPM_API_MAX_MESSAGE_BYTES",
      DEFAULT_API_MAX_MESSAGE_BYTES,
      64 * 1024,
      1024 * 1024 * 1024,
    ),
    syncListen,
    syncTlsCert,
    syncTlsKey,
    syncTlsCa: readablePath(env, "CPM_SYNC_TLS_CA"),
    adminToken,
    logLevel,
    rendererListen,
    dispatcherListen,
    configInternalListen,
    configAddr: str(env, "CPM_CONFIG_ADDR") ?? dialable(configInternalListen),
    apiAddr: str(env, "CPM_API_ADDR") ?? dialable(apiListen),
    rendererAddr: str(env, "CPM_RENDERER_ADDR") ?? dialable(rendererListen),
    internalToken,
    syncMaxMessageBytes: int(
      env,
      "CPM_SYNC_MAX_MESSAGE_BYTES",
      DEFAULT_SYNC_MAX_MESSAGE_BYTES,
      64 * 1024,
      1024 * 1024 * 1024,
    ),
    syncAckTimeoutSeconds: int(env, "CPM_SYNC_ACK_TIMEOUT", 60, 1, 3600),
    reconcileIntervalMs: int(env, "CPM_RECONCILE_INTERVAL_MS", 2000, 100, 3_600_000),
    caddyBin: str(env, "CPM_CADDY_BIN"),
    caddyHasLayer4: optBool(env, "CPM_CADDY_LAYER4"),
    caddyStorageDir: path.resolve(str(env, "CPM_CADDY_STORAGE_DIR") ?? path.join(dataDir, "caddy", "data", "caddy")),
    masterHttpAddress: masterHttpAddress(env, "CPM_MASTER_HTTP_URL"),
    metricsListen: Object.freeze(
      metricsListen(env, {
        CPM_API_LISTEN: apiListen,
        CPM_RENDERER_LISTEN: rendererListen,
        CPM_DISPATCHER_LISTEN: dispatcherListen,
        CPM_CONFIG_INTERNAL_LISTEN: configInternalListen,
        CPM_SYNC_LISTEN: syncListen,
      }),
    ),
  });
}

/**
 * Caddy's `admin` block for this instance. When the renderer reaches Caddy under another
 * name than the one Caddy listens on (e.g. http://caddy:2019 in docker compose), that
 * name is allowed explicitly: Caddy refuses admin requests for hosts it does not know.
 */
export function caddyAdminBlock(cfg: Pick<InstanceConfig, "caddyApiUrl" | "caddyAdminListen">): {
  listen: string;
  origins?: string[];
} {
  const reached = hostPort(cfg.caddyApiUrl);
  return reached === cfg.caddyAdminListen
    ? { listen: cfg.caddyAdminListen }
    : { listen: cfg.caddyAdminListen, origins: [reached, cfg.caddyAdminListen] };
}

/** Require a value a particular service needs; names the variable when it is missing. */
export function required<T>(value: T | undefined, variable: string, why: string): T {
  if (value === undefined) throw new ConfigError(variable, `required ${why}`);
  return value;
}

export type LogFormat = "json" | "pretty";

/**
 * LOG_FORMAT: `json` (one JSON object a line), `pretty` (human-readable lines), or `auto`
 * (default): pretty when stdout is a terminal, JSON otherwise. Read by the logger, and by the
 * launcher, which decides from its own stdout and passes the result to the services it runs.
 */
export function logFormat(env: Env = process.env, stdoutIsTty = process.stdout.isTTY === true): LogFormat {
  const value = str(env, "LOG_FORMAT") ?? "auto";
  if (value === "json" || value === "pretty") return value;
  if (value === "auto") return stdoutIsTty ? "pretty" : "json";
  throw new ConfigError("LOG_FORMAT", `"${value}" is not one of auto, json, pretty`);
}
