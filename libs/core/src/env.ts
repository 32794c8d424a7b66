import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import path from "node:path";
import { parseTarget, type ModuleName } from "./modules.ts";

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
  /** The modules this node runs (CPM_TARGET), in start order. */
  readonly target: readonly ModuleName[];
  /** Each module in a process of its own (CPM_SPLIT_PROCESSES), rather than all in one. */
  readonly splitProcesses: boolean;
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
  /** How the logger writes: JSON lines, or pretty lines on a terminal (LOG_FORMAT). */
  readonly logFormat: LogFormat;
  /** Internal wiring between the services of one instance. */
  readonly rendererListen: string;
  readonly dispatcherListen: string;
  /** Where the web console serves the browser (CPM_CONSOLE_LISTEN). */
  readonly consoleListen: string;
  /** CPM_CONSOLE_LISTEN was not set: consoleListen is the default address. */
  readonly consoleListenIsDefault: boolean;
  /** config-service's listener for the other services of the instance (internal token only, snapshot-sized messages). */
  readonly configInternalListen: string;
  /** Where the other services reach config-service's internal listener. */
  readonly configAddr: string;
  /** Where the other services reach config-service's public API (to check API tokens). */
  readonly apiAddr: string;
  /** Where the web console (or another client service) reaches the dispatcher's API. */
  readonly dispatcherAddr: string;
  readonly rendererAddr: string;
  readonly internalToken: string | undefined;
  readonly syncMaxMessageBytes: number;
  readonly syncAckTimeoutSeconds: number;
  readonly syncConnectTimeoutMs: number;
  /** Master: how often the sync link pings a slave, and how long an unanswered ping may wait before the link is dropped. */
  readonly syncKeepaliveTimeMs: number;
  readonly syncKeepaliveTimeoutMs: number;
  /** Slave: how often the sync receiver pings the master, and how long an unanswered ping may wait. */
  readonly receiverKeepaliveTimeMs: number;
  readonly receiverKeepaliveTimeoutMs: number;
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
export const METRICS_LISTEN_VARIABLES: Readonly<Record<MetricsService, NameOf<"listen">>> = Object.freeze({
  config: "CPM_CONFIG_METRICS_LISTEN",
  renderer: "CPM_RENDERER_METRICS_LISTEN",
  dispatcher: "CPM_DISPATCHER_METRICS_LISTEN",
  receiver: "CPM_RECEIVER_METRICS_LISTEN",
});

/** Where a variable belongs in docs/configuration.md. */
export type EnvGroup = "sync" | "instance" | "tracing" | "runtime" | "cli" | "compose";

/** Headings and one-line introductions of the groups, in the order docs/configuration.md lists them. */
export const ENV_GROUPS: readonly { readonly group: EnvGroup; readonly title: string; readonly intro: string }[] = [
  {
    group: "sync",
    title: "Instance sync",
    intro:
      "The instance-sync contract: names and meanings as documented for CPM. Read by `loadConfig` in every service.",
  },
  {
    group: "instance",
    title: "Instance",
    intro: "This project's own settings of one instance. Read by `loadConfig` in every service and in the launcher.",
  },
  {
    group: "tracing",
    title: "Tracing",
    intro:
      "OpenTelemetry, read by every service (`tracingConfigFromEnv` in `@cpm/grpc-kit`); see [Tracing](operations.md#tracing).",
  },
  {
    group: "runtime",
    title: "Launcher and Node runtime",
    intro: "Read by the launcher (`npm start`, `npm run demo`) and the service images' entrypoint.",
  },
  {
    group: "cli",
    title: "The `cpm` CLI",
    intro: "Where `cpm` connects when no flag says so; see [the CLI](cli.md).",
  },
  {
    group: "compose",
    title: "docker compose and images",
    intro:
      "Read by `docker-compose.yml`, `docker-compose.one.yml` and `scripts/build-images.sh`, not by the services; see [Deploy with docker compose](deploy-compose.md).",
  },
];

interface VariableDoc {
  readonly group: EnvGroup;
  /** What it sets (Markdown, one line). */
  readonly meaning: string;
  /** Who reads it: services and modes. */
  readonly readBy: string;
  /** The default as the docs state it, when it is not the parsed default itself. */
  readonly defaultText?: string;
}

/** A variable `loadConfig` reads as text (blank counts as unset). */
interface TextVariable extends VariableDoc {
  readonly kind: "text";
  readonly default?: string;
}
/** A whole number in [min, max]. */
interface IntVariable extends VariableDoc {
  readonly kind: "int";
  readonly default: number;
  readonly min: number;
  readonly max: number;
}
/** true/false (also 1/0, yes/no, on/off). */
interface BoolVariable extends VariableDoc {
  readonly kind: "bool";
  readonly default: boolean;
}
/** A host:port to listen on; no default: not served. */
interface ListenVariable extends VariableDoc {
  readonly kind: "listen";
  readonly default?: string;
}
/** Read elsewhere than `loadConfig` (the launcher, tracing, the CLI, compose): documented only. */
interface OtherVariable extends VariableDoc {
  readonly kind: "other";
}

export type EnvVariable = TextVariable | IntVariable | BoolVariable | ListenVariable | OtherVariable;

const EVERY = "every service";

/**
 * Every environment variable of the project, declared once: `loadConfig` reads the parsed ones
 * by these names with these defaults and bounds, and `npm run docs:env` writes
 * docs/configuration.md from it (a test fails when the file differs or a variable read in the
 * code is missing here).
 */
export const ENV_VARIABLES = {
  INSTANCE_MODE: {
    group: "sync",
    kind: "text",
    default: "standalone",
    meaning: "`standalone`, `master` or `slave`",
    readBy: EVERY,
  },
  INSTANCE_SYNC_TOKEN: {
    group: "sync",
    kind: "text",
    meaning: "slave: the bearer token the master must present (at least 16 characters)",
    readBy: "sync-receiver (slave)",
    defaultText: "none (required on a slave)",
  },
  INSTANCE_SLAVES: {
    group: "sync",
    kind: "text",
    meaning:
      'master: JSON array of `{"name": ..., "url": ..., "token": ...}`; each slave its own token; `url` is `https://host:port` of the slave\'s receiver (`http://` only with `INSTANCE_SYNC_ALLOW_HTTP`)',
    readBy: "sync-dispatcher (master)",
    defaultText: "none (required on a master; `[]` allowed)",
  },
  INSTANCE_SYNC_INTERVAL: {
    group: "sync",
    kind: "int",
    default: 0,
    min: 0,
    max: 86_400 * 7,
    meaning: "seconds between periodic full pushes (even when acked: repairs drift); `0` = push on change only",
    readBy: "sync-dispatcher (master)",
  },
  INSTANCE_SYNC_ALLOW_HTTP: {
    group: "sync",
    kind: "bool",
    default: false,
    meaning:
      "allow plaintext sync: `http://` slave URLs on the master, a receiver without TLS on a slave; for isolated networks only",
    readBy: "sync-dispatcher (master), sync-receiver (slave)",
  },
  CPM_DATA_DIR: {
    group: "instance",
    kind: "text",
    default: "./data",
    meaning:
      "where the instance keeps its state (SQLite file, Caddy's storage, autosaved config and log `caddy.log` under `caddy/`, the internal token, a slave's `sync-receiver-status.json`, the renderer's `caddy-renderer-preload.json`)",
    readBy: "every service, launcher",
  },
  DATABASE_URL: {
    group: "instance",
    kind: "text",
    meaning: "`file:...` (SQLite) or `postgresql://user:pass@host/db`",
    readBy: "config-service",
    defaultText: "`file:<CPM_DATA_DIR>/cpm.db`",
  },
  CADDY_API_URL: {
    group: "instance",
    kind: "text",
    default: "http://127.0.0.1:2019",
    meaning: "Caddy admin API of this instance",
    readBy: "caddy-renderer, launcher",
  },
  CPM_CADDY_ADMIN_LISTEN: {
    group: "instance",
    kind: "listen",
    meaning:
      "where Caddy's admin API listens (kept in every rendered config); set it when Caddy is reached under another name, e.g. `0.0.0.0:2019` behind `http://caddy:2019`",
    readBy: "caddy-renderer",
    defaultText: "host:port of `CADDY_API_URL`",
  },
  CPM_TARGET: {
    group: "instance",
    kind: "text",
    default: "all",
    meaning:
      "which modules this node runs: `all` (Caddy and every service of `INSTANCE_MODE`) or a comma-separated list of `caddy`, `config-service`, `caddy-renderer`, `sync-dispatcher`, `sync-receiver`, `web-console`; a module not in it is reached at its configured address",
    readBy: "launcher, every service",
  },
  CPM_SPLIT_PROCESSES: {
    group: "instance",
    kind: "bool",
    default: false,
    meaning:
      "`true`: the launcher runs each module of `CPM_TARGET` as a process of its own (the service-mesh shape on one host, talking gRPC with an internal token kept in the data dir); `false`: one Node process runs them all and they call each other in place",
    readBy: "launcher",
  },
  CPM_CADDY_BIN: {
    group: "instance",
    kind: "text",
    meaning: "Caddy binary the launcher runs (and the renderer probes for layer4)",
    readBy: "launcher, caddy-renderer",
    defaultText:
      "the project's build (`npm run caddy:build`), else `caddy` on `PATH`; none: Caddy is expected to run already",
  },
  CPM_CADDY_LAYER4: {
    group: "instance",
    kind: "bool",
    default: false,
    meaning: "whether this Caddy has the `layer4` app (caddy-l4); unset: probe `caddy list-modules`",
    readBy: "caddy-renderer",
    defaultText: "probe",
  },
  CPM_HTTP_PORT: {
    group: "instance",
    kind: "int",
    default: 80,
    min: 1,
    max: 65535,
    meaning: "port this instance's Caddy serves HTTP on (instance-local, never synced)",
    readBy: "caddy-renderer, config-service",
  },
  CPM_HTTPS_PORT: {
    group: "instance",
    kind: "int",
    default: 443,
    min: 1,
    max: 65535,
    meaning: "port this instance's Caddy serves HTTPS (and HTTP/3) on (instance-local, never synced)",
    readBy: "caddy-renderer, config-service",
  },
  CPM_CADDY_BIND: {
    group: "instance",
    kind: "text",
    meaning:
      "the IP address (`127.0.0.1`, `::1`) Caddy's HTTP and HTTPS servers listen on, and L4 listeners written without an address (`:5432`); L4 listeners with an address keep it (instance-local, never synced)",
    readBy: "caddy-renderer, config-service",
    defaultText: "every interface",
  },
  CPM_API_LISTEN: {
    group: "instance",
    kind: "listen",
    default: "127.0.0.1:50051",
    meaning: "config-service public gRPC address (API tokens only)",
    readBy: "config-service",
  },
  CPM_API_MAX_MESSAGE_BYTES: {
    group: "instance",
    kind: "int",
    default: 4 * 1024 * 1024,
    min: 64 * 1024,
    max: 1024 * 1024 * 1024,
    meaning:
      "largest request the public API (and the dispatcher) reads; a larger one is refused from its frame header, before it is buffered, with a status naming this variable",
    readBy: "config-service, sync-dispatcher",
    defaultText: "`4194304` (4 MiB)",
  },
  CPM_CONFIG_INTERNAL_LISTEN: {
    group: "instance",
    kind: "listen",
    default: "127.0.0.1:50054",
    meaning:
      "config-service listener for the other services of the instance: the internal token only, requests up to `CPM_SYNC_MAX_MESSAGE_BYTES` + 1 MiB (`ApplySnapshot` carries whole snapshots)",
    readBy: "config-service",
  },
  CPM_RENDERER_LISTEN: {
    group: "instance",
    kind: "listen",
    default: "127.0.0.1:50052",
    meaning: "caddy-renderer gRPC address",
    readBy: "caddy-renderer",
  },
  CPM_DISPATCHER_LISTEN: {
    group: "instance",
    kind: "listen",
    default: "127.0.0.1:50053",
    meaning: "sync-dispatcher gRPC address",
    readBy: "sync-dispatcher (master)",
  },
  CPM_CONSOLE_LISTEN: {
    group: "instance",
    kind: "listen",
    default: "127.0.0.1:3000",
    meaning:
      "where the web console serves its pages and the browser's API (plain HTTP: keep it on loopback, or put TLS in front; see docs/console.md)",
    readBy: "web-console",
  },
  CPM_SYNC_LISTEN: {
    group: "instance",
    kind: "listen",
    default: "0.0.0.0:50443",
    meaning: "sync-receiver address, reached by the master",
    readBy: "sync-receiver (slave)",
  },
  CPM_CONFIG_ADDR: {
    group: "instance",
    kind: "text",
    meaning: "where the other services reach config-service's internal listener",
    readBy: "caddy-renderer, sync-dispatcher, sync-receiver",
    defaultText: "`CPM_CONFIG_INTERNAL_LISTEN` (`0.0.0.0` → `127.0.0.1`)",
  },
  CPM_API_ADDR: {
    group: "instance",
    kind: "text",
    meaning:
      "where the other services reach config-service's public API (to check API tokens; the console forwards the browser's calls there)",
    readBy: "caddy-renderer, sync-dispatcher, web-console",
    defaultText: "`CPM_API_LISTEN` (`0.0.0.0` → `127.0.0.1`)",
  },
  CPM_DISPATCHER_ADDR: {
    group: "instance",
    kind: "text",
    meaning: "where the other services reach the dispatcher's API (the console's fleet page, on a master)",
    readBy: "web-console (master)",
    defaultText: "`CPM_DISPATCHER_LISTEN` (`0.0.0.0` → `127.0.0.1`)",
  },
  CPM_RENDERER_ADDR: {
    group: "instance",
    kind: "text",
    meaning: "where the other services reach the renderer",
    readBy: "sync-dispatcher, sync-receiver",
    defaultText: "`CPM_RENDERER_LISTEN` (`0.0.0.0` → `127.0.0.1`)",
  },
  CPM_SYNC_TLS_CERT: {
    group: "instance",
    kind: "text",
    meaning:
      "receiver certificate chain (PEM file); with `CPM_SYNC_TLS_KEY`, required on a slave unless `INSTANCE_SYNC_ALLOW_HTTP=true`",
    readBy: "sync-receiver (slave)",
    defaultText: "none",
  },
  CPM_SYNC_TLS_KEY: {
    group: "instance",
    kind: "text",
    meaning: "receiver private key (PEM file), set together with `CPM_SYNC_TLS_CERT`",
    readBy: "sync-receiver (slave)",
    defaultText: "none",
  },
  CPM_SYNC_TLS_CA: {
    group: "instance",
    kind: "text",
    meaning: "master: CA bundle (PEM file) that signs slave certificates",
    readBy: "sync-dispatcher (master)",
    defaultText: "system roots",
  },
  CPM_ADMIN_TOKEN: {
    group: "instance",
    kind: "text",
    meaning:
      "bootstrap: an admin API token of the user `admin`, ensured at every start (idempotent; at least 16 characters)",
    readBy: "config-service",
    defaultText: "none",
  },
  CPM_INTERNAL_TOKEN: {
    group: "instance",
    kind: "text",
    meaning:
      "the token the services of one instance present to each other (at least 16 characters); `npm start` generates one into `CPM_DATA_DIR/internal-token` when unset; set it yourself when services run in separate containers",
    readBy: "every service, launcher",
    defaultText: "generated",
  },
  CPM_SYNC_MAX_MESSAGE_BYTES: {
    group: "instance",
    kind: "int",
    default: 64 * 1024 * 1024,
    min: 64 * 1024,
    max: 1024 * 1024 * 1024,
    meaning:
      "largest snapshot sent or accepted (both ends); a larger one is refused with a status naming this variable; the renderer and config-service's internal listener read at most this plus 1 MiB",
    readBy: "every service",
    defaultText: "`67108864` (64 MiB)",
  },
  CPM_SYNC_ACK_TIMEOUT: {
    group: "instance",
    kind: "int",
    default: 60,
    min: 1,
    max: 3600,
    meaning:
      "seconds the master waits for an ACK/NACK (and the slave for its Caddy) before giving up on a push; also how long a slave's renderer holds a preload",
    readBy: "sync-dispatcher (master), sync-receiver and caddy-renderer (slave)",
  },
  CPM_SYNC_CONNECT_TIMEOUT_MS: {
    group: "instance",
    kind: "int",
    default: 2000,
    min: 100,
    max: 60_000,
    meaning:
      "milliseconds the master waits for a slave to open its sync stream before abandoning the attempt and its connection and connecting again on a fresh one (a healed network link is used within this bound, whatever the kernel's SYN retry schedule)",
    readBy: "sync-dispatcher (master)",
  },
  CPM_SYNC_KEEPALIVE_TIME_MS: {
    group: "instance",
    kind: "int",
    default: 1_000,
    min: 100,
    max: 600_000,
    meaning:
      "milliseconds between the HTTP/2 pings the master sends on each slave's sync link; with CPM_SYNC_KEEPALIVE_TIMEOUT_MS it bounds how long a silent link (packets dropped, no reset) goes unnoticed: their sum, 2 s by default (short, so a healed link is used at once rather than after TCP's next retransmission)",
    readBy: "sync-dispatcher (master)",
  },
  CPM_SYNC_KEEPALIVE_TIMEOUT_MS: {
    group: "instance",
    kind: "int",
    default: 1_000,
    min: 100,
    max: 600_000,
    meaning:
      'milliseconds the master waits for a slave to answer a ping before it drops the link (status: "no keepalive answer from the slave for N s") and connects again',
    readBy: "sync-dispatcher (master)",
  },
  CPM_RECEIVER_KEEPALIVE_TIME_MS: {
    group: "instance",
    kind: "int",
    default: 20_000,
    min: 100,
    max: 600_000,
    meaning:
      "milliseconds between the HTTP/2 pings a slave sends to its master on the sync stream; with CPM_RECEIVER_KEEPALIVE_TIMEOUT_MS it bounds how long the slave reports a silent link as connected: their sum, 30 s by default",
    readBy: "sync-receiver (slave)",
  },
  CPM_RECEIVER_KEEPALIVE_TIMEOUT_MS: {
    group: "instance",
    kind: "int",
    default: 10_000,
    min: 100,
    max: 600_000,
    meaning:
      'milliseconds a slave waits for its master to answer a ping before it drops the stream (receiver status: master not connected, "no keepalive answer from the master for N s")',
    readBy: "sync-receiver (slave)",
  },
  CPM_RECONCILE_INTERVAL_MS: {
    group: "instance",
    kind: "int",
    default: 2000,
    min: 100,
    max: 3_600_000,
    meaning: "how often the renderer compares Caddy's running config with the applied one",
    readBy: "caddy-renderer",
  },
  CPM_CADDY_STORAGE_DIR: {
    group: "instance",
    kind: "text",
    meaning:
      "master or standalone: Caddy's storage directory, where the renderer reads the certificates Caddy obtained and `cpm/issuance.log`, the log of Caddy's orders it asks Caddy to write; Caddy must see it at the same path (`docker-compose.yml` sets `/data/caddy`)",
    readBy: "caddy-renderer",
    defaultText: "`<CPM_DATA_DIR>/caddy/data/caddy` (where `npm start` runs Caddy)",
  },
  CPM_MASTER_HTTP_URL: {
    group: "instance",
    kind: "text",
    meaning:
      "slave: `http://host[:port]` of the master's Caddy HTTP port; ACME HTTP-01 challenges that reach this slave and that its own Caddy did not start are proxied there",
    readBy: "caddy-renderer (slave)",
    defaultText: "none (not proxied)",
  },
  CPM_CONFIG_METRICS_LISTEN: {
    group: "instance",
    kind: "listen",
    meaning:
      "host:port where config-service serves Prometheus metrics at `GET /metrics`; must differ from every other listener",
    readBy: "config-service",
    defaultText: "none (not served)",
  },
  CPM_RENDERER_METRICS_LISTEN: {
    group: "instance",
    kind: "listen",
    meaning: "the same for caddy-renderer",
    readBy: "caddy-renderer",
    defaultText: "none (not served)",
  },
  CPM_DISPATCHER_METRICS_LISTEN: {
    group: "instance",
    kind: "listen",
    meaning: "the same for sync-dispatcher",
    readBy: "sync-dispatcher (master)",
    defaultText: "none (not served)",
  },
  CPM_RECEIVER_METRICS_LISTEN: {
    group: "instance",
    kind: "listen",
    meaning: "the same for sync-receiver",
    readBy: "sync-receiver (slave)",
    defaultText: "none (not served)",
  },
  LOG_LEVEL: {
    group: "instance",
    kind: "text",
    default: "info",
    meaning: "pino level: `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`",
    readBy: "every service",
  },
  LOG_FORMAT: {
    group: "instance",
    kind: "text",
    default: "auto",
    meaning:
      "`json` (one JSON object a line), `pretty` (human-readable lines) or `auto`: pretty when stdout is a terminal; the launcher decides from its own stdout and passes the result to its services",
    readBy: "every service, the launcher",
  },
  OTEL_TRACES_EXPORTER: {
    group: "tracing",
    kind: "other",
    meaning:
      "trace exporters, comma-separated: `otlp` (OTLP/HTTP, JSON), `console` (each span on stdout, for debugging), `none`",
    readBy: EVERY,
    defaultText: "`otlp` when an OTLP endpoint is set, else off",
  },
  OTEL_EXPORTER_OTLP_ENDPOINT: {
    group: "tracing",
    kind: "other",
    meaning:
      "base URL of an OTLP/HTTP collector (`/v1/traces` is appended), e.g. `http://collector:4318`; `OTEL_EXPORTER_OTLP_HEADERS` and the other standard OTLP variables apply",
    readBy: EVERY,
    defaultText: "none (no export)",
  },
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: {
    group: "tracing",
    kind: "other",
    meaning: "the full traces URL, instead of `OTEL_EXPORTER_OTLP_ENDPOINT`",
    readBy: EVERY,
    defaultText: "none",
  },
  OTEL_RESOURCE_ATTRIBUTES: {
    group: "tracing",
    kind: "other",
    meaning:
      "extra attributes for every span's resource, e.g. `cpm.node=edge-1,deployment.environment=prod` (`service.name` is always the service's own name)",
    readBy: EVERY,
    defaultText: "none",
  },
  OTEL_BSP_SCHEDULE_DELAY: {
    group: "tracing",
    kind: "other",
    meaning: "milliseconds between OTLP exports of finished spans",
    readBy: EVERY,
    defaultText: "`5000`",
  },
  OTEL_SDK_DISABLED: {
    group: "tracing",
    kind: "other",
    meaning: "`true` turns tracing off whatever else is set",
    readBy: EVERY,
    defaultText: "`false`",
  },
  MALLOC_ARENA_MAX: {
    group: "runtime",
    kind: "other",
    meaning:
      "glibc malloc arenas of each Node service; the launcher and the images' entrypoint set it when unset (see [Memory](benchmarks.md#memory))",
    readBy: "launcher, images",
    defaultText: "`2`",
  },
  NODE_OPTIONS: {
    group: "runtime",
    kind: "other",
    meaning:
      "Node options of every service; a `--max-semi-space-size` here replaces the services' default cap of V8's young generation (`--max-semi-space-size=2`, MiB). The services also run with `--liftoff-only` (WebAssembly, i.e. Prisma's query compiler, on V8's baseline compiler: about 17 MiB less resident), which NODE_OPTIONS cannot carry; `--no-liftoff-only` after it on node's command line turns it off",
    readBy: "launcher, images",
    defaultText: "none",
  },
  CPM_DEMO_DIR: {
    group: "runtime",
    kind: "other",
    meaning: "where `npm run demo` keeps its master's and slave's data, CA and tokens",
    readBy: "launcher (`npm run demo`)",
    defaultText: "`data/demo`",
  },
  CPM_API: {
    group: "cli",
    kind: "other",
    meaning: "config-service API (`--api`)",
    readBy: "cpm",
    defaultText: "`127.0.0.1:50051`",
  },
  CPM_DISPATCHER: {
    group: "cli",
    kind: "other",
    meaning: "a master's sync-dispatcher (`--dispatcher`)",
    readBy: "cpm",
    defaultText: "`127.0.0.1:50053`",
  },
  CPM_TOKEN: {
    group: "cli",
    kind: "other",
    meaning: "API token (`--token`)",
    readBy: "cpm",
    defaultText: "none",
  },
  CPM_TLS: {
    group: "cli",
    kind: "other",
    meaning: "`true` speaks TLS to the API and the dispatcher (`--tls`)",
    readBy: "cpm",
    defaultText: "`false`",
  },
  CPM_CA: {
    group: "cli",
    kind: "other",
    meaning: "CA bundle that verifies the server (`--ca`; implies TLS)",
    readBy: "cpm",
    defaultText: "system roots",
  },
  COMPOSE_PROJECT_NAME: {
    group: "compose",
    kind: "other",
    meaning: "the instance's project name (its containers, network and volumes)",
    readBy: "docker compose",
    defaultText: "directory name",
  },
  COMPOSE_PROFILES: {
    group: "compose",
    kind: "other",
    meaning:
      "`docker-compose.yml`: the mode's profile: none (standalone), `master` (adds sync-dispatcher), `slave` (adds sync-receiver); `docker-compose.one.yml` has none",
    readBy: "docker compose",
    defaultText: "none",
  },
  CPM_PUBLISH_HTTP: {
    group: "compose",
    kind: "other",
    meaning: "`[address:]port` on the host for Caddy's port 80",
    readBy: "docker compose",
    defaultText: "`80`",
  },
  CPM_PUBLISH_HTTPS: {
    group: "compose",
    kind: "other",
    meaning: "`[address:]port` on the host for Caddy's port 443 (TCP and UDP)",
    readBy: "docker compose",
    defaultText: "`443`",
  },
  CPM_PUBLISH_L4: {
    group: "compose",
    kind: "other",
    meaning:
      "`[address:]first-last` on the host for the L4 range: L4 proxy hosts listen on `:7000` to `:7009` in the container (TCP and UDP)",
    readBy: "docker compose",
    defaultText: "`7000-7009`",
  },
  CPM_PUBLISH_API: {
    group: "compose",
    kind: "other",
    meaning: "the public gRPC API (config-service's internal listener, 50054, is never published)",
    readBy: "docker compose",
    defaultText: "`127.0.0.1:50051`",
  },
  CPM_PUBLISH_DISPATCHER: {
    group: "compose",
    kind: "other",
    meaning: "the dispatcher (master)",
    readBy: "docker compose",
    defaultText: "`127.0.0.1:50053`",
  },
  CPM_PUBLISH_CONSOLE: {
    group: "compose",
    kind: "other",
    meaning: "the web console (plain HTTP: keep it on loopback, or put TLS in front)",
    readBy: "docker compose",
    defaultText: "`127.0.0.1:3000`",
  },
  CPM_PUBLISH_SYNC: {
    group: "compose",
    kind: "other",
    meaning: "the receiver (slave); must be reachable from the master",
    readBy: "docker compose",
    defaultText: "`50443`",
  },
  CPM_SECRETS_DIR: {
    group: "compose",
    kind: "other",
    meaning: "the host directory mounted read-only at `/secrets` in every service",
    readBy: "docker compose",
    defaultText: "`./secrets`",
  },
  CPM_NODE_IMAGE: {
    group: "compose",
    kind: "other",
    meaning: "the services' image",
    readBy: "docker compose",
    defaultText: "`cpm-node:latest`",
  },
  CPM_CADDY_IMAGE: {
    group: "compose",
    kind: "other",
    meaning: "Caddy's image",
    readBy: "docker compose",
    defaultText: "`cpm-caddy:latest`",
  },
  CPM_NODE_ALL_IMAGE: {
    group: "compose",
    kind: "other",
    meaning: "the one-container variant's image (`docker-compose.one.yml`; built from the two above)",
    readBy: "docker compose",
    defaultText: "`cpm-node-all:latest`",
  },
  CPM_NODE_BUILD_BASE: {
    group: "compose",
    kind: "other",
    meaning: "base of the services' build stage for `docker compose build`",
    readBy: "docker compose",
    defaultText: "`node:22-bookworm`",
  },
  CPM_NODE_BASE: {
    group: "compose",
    kind: "other",
    meaning: "base of the services' final image for `docker compose build`",
    readBy: "docker compose",
    defaultText: "`node:22-bookworm-slim`",
  },
  CPM_CADDY_BUILDER: {
    group: "compose",
    kind: "other",
    meaning: "Go image that builds Caddy with the pinned versions for `docker compose build`",
    readBy: "docker compose",
    defaultText: "`golang:1.26-bookworm`",
  },
  CPM_CADDY_BASE: {
    group: "compose",
    kind: "other",
    meaning: "base of Caddy's final image for `docker compose build`",
    readBy: "docker compose",
    defaultText: "`debian:bookworm-slim`",
  },
  CPM_IMAGE_TAG: {
    group: "compose",
    kind: "other",
    meaning: "tag `npm run images:build` gives its images",
    readBy: "scripts/build-images.sh",
    defaultText: "`latest`",
  },
  CPM_IMAGES_FORCE_BASES: {
    group: "compose",
    kind: "other",
    meaning: "`1` makes the local base images anew",
    readBy: "scripts/build-images.sh",
    defaultText: "none",
  },
} as const satisfies Record<string, EnvVariable>;

export type EnvName = keyof typeof ENV_VARIABLES;
type NameOf<K extends EnvVariable["kind"]> = {
  [N in EnvName]: (typeof ENV_VARIABLES)[N]["kind"] extends K ? N : never;
}[EnvName];

/** The default column of docs/configuration.md. */
export function envDefaultText(v: EnvVariable): string {
  if (v.defaultText !== undefined) return v.defaultText;
  if (v.kind !== "other" && v.default !== undefined) return `\`${String(v.default)}\``;
  return "none";
}

type Env = Record<string, string | undefined>;

/** CPM_API_MAX_MESSAGE_BYTES when unset: API requests are small (a certificate chain is the largest). */
export const DEFAULT_API_MAX_MESSAGE_BYTES = ENV_VARIABLES.CPM_API_MAX_MESSAGE_BYTES.default;
/** CPM_SYNC_MAX_MESSAGE_BYTES when unset. */
export const DEFAULT_SYNC_MAX_MESSAGE_BYTES = ENV_VARIABLES.CPM_SYNC_MAX_MESSAGE_BYTES.default;

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** A variable loadConfig parses: blank counts as unset. */
function str(env: Env, name: Exclude<EnvName, NameOf<"other">>): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === "" ? undefined : v.trim();
}

/** The text variables declared with a default. */
type TextWithDefault = {
  [N in NameOf<"text">]: (typeof ENV_VARIABLES)[N] extends { readonly default: string } ? N : never;
}[NameOf<"text">];

/** A text variable, or its declared default. */
function text(env: Env, name: TextWithDefault): string {
  return str(env, name) ?? ENV_VARIABLES[name].default;
}

function bool(env: Env, name: NameOf<"bool">): boolean {
  const v = str(env, name);
  if (v === undefined) return ENV_VARIABLES[name].default;
  if (/^(true|1|yes|on)$/i.test(v)) return true;
  if (/^(false|0|no|off)$/i.test(v)) return false;
  throw new ConfigError(name, `"${v}" is not a boolean (use true or false)`);
}

function optBool(env: Env, name: NameOf<"bool">): boolean | undefined {
  return str(env, name) === undefined ? undefined : bool(env, name);
}

function int(env: Env, name: NameOf<"int">): number {
  const { default: dflt, min, max } = ENV_VARIABLES[name];
  const v = str(env, name);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) throw new ConfigError(name, `"${v}" is not a whole number`);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(name, `${n} is outside ${min}..${max}`);
  return n;
}

function listenAddress(env: Env, name: NameOf<"listen">, dflt?: string): string {
  const spec: ListenVariable = ENV_VARIABLES[name];
  const v = str(env, name) ?? dflt ?? spec.default ?? "";
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
  for (const [service, variable] of Object.entries(METRICS_LISTEN_VARIABLES) as [MetricsService, NameOf<"listen">][]) {
    if (str(env, variable) === undefined) {
      out[service] = undefined;
      continue;
    }
    const address = listenAddress(env, variable);
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
function bindAddress(env: Env, name: NameOf<"text">): string | undefined {
  const v = str(env, name);
  if (v === undefined) return undefined;
  const bare = v.startsWith("[") && v.endsWith("]") ? v.slice(1, -1) : v;
  const family = isIP(bare);
  if (family === 0)
    throw new ConfigError(name, `"${v}" is not an IP address (e.g. 127.0.0.1 or ::1; unset: every interface)`);
  return family === 6 ? `[${bare.toLowerCase()}]` : bare;
}

function masterHttpAddress(env: Env, name: NameOf<"text">): string | undefined {
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

function readablePath(env: Env, name: NameOf<"text">): string | undefined {
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
  const modeRaw = text(env, "INSTANCE_MODE");
  if (!["standalone", "master", "slave"].includes(modeRaw)) {
    throw new ConfigError("INSTANCE_MODE", `unknown mode "${modeRaw}" (use standalone, master or slave)`);
  }
  const mode = modeRaw as InstanceMode;
  const syncAllowHttp = bool(env, "INSTANCE_SYNC_ALLOW_HTTP");
  const syncToken = str(env, "INSTANCE_SYNC_TOKEN");
  if (mode === "slave" && syncToken === undefined) {
    throw new ConfigError("INSTANCE_SYNC_TOKEN", "required when INSTANCE_MODE=slave (the token the master presents)");
  }
  if (mode === "slave" && syncToken !== undefined && syncToken.length < 16) {
    throw new ConfigError("INSTANCE_SYNC_TOKEN", "too short: use at least 16 characters");
  }
  const slaves = mode === "master" ? parseSlaves(str(env, "INSTANCE_SLAVES"), syncAllowHttp) : [];
  const syncIntervalSeconds = int(env, "INSTANCE_SYNC_INTERVAL");

  const dataDir = path.resolve(text(env, "CPM_DATA_DIR"));
  const databaseUrl = str(env, "DATABASE_URL") ?? `file:${path.join(dataDir, "cpm.db")}`;
  if (!/^(file:|postgres(ql)?:\/\/)/.test(databaseUrl)) {
    throw new ConfigError("DATABASE_URL", "must start with file: (SQLite) or postgresql:// (PostgreSQL)");
  }
  const caddyApiUrl = text(env, "CADDY_API_URL");
  try {
    const u = new URL(caddyApiUrl);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
  } catch {
    throw new ConfigError("CADDY_API_URL", `"${caddyApiUrl}" is not an http(s) URL`);
  }
  const logLevel = text(env, "LOG_LEVEL");
  if (!LOG_LEVELS.includes(logLevel))
    throw new ConfigError("LOG_LEVEL", `"${logLevel}" is not one of ${LOG_LEVELS.join(", ")}`);

  const apiListen = listenAddress(env, "CPM_API_LISTEN");
  const rendererListen = listenAddress(env, "CPM_RENDERER_LISTEN");
  const dispatcherListen = listenAddress(env, "CPM_DISPATCHER_LISTEN");
  const configInternalListen = listenAddress(env, "CPM_CONFIG_INTERNAL_LISTEN");
  const syncListen = listenAddress(env, "CPM_SYNC_LISTEN");
  const consoleListen = listenAddress(env, "CPM_CONSOLE_LISTEN");
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
    httpPort: int(env, "CPM_HTTP_PORT"),
    httpsPort: int(env, "CPM_HTTPS_PORT"),
    caddyBind: bindAddress(env, "CPM_CADDY_BIND"),
    apiListen,
    apiMaxMessageBytes: int(env, "CPM_API_MAX_MESSAGE_BYTES"),
    syncListen,
    syncTlsCert,
    syncTlsKey,
    syncTlsCa: readablePath(env, "CPM_SYNC_TLS_CA"),
    adminToken,
    logLevel,
    logFormat: logFormat(env),
    rendererListen,
    dispatcherListen,
    consoleListen,
    consoleListenIsDefault: str(env, "CPM_CONSOLE_LISTEN") === undefined,
    configInternalListen,
    configAddr: str(env, "CPM_CONFIG_ADDR") ?? dialable(configInternalListen),
    apiAddr: str(env, "CPM_API_ADDR") ?? dialable(apiListen),
    dispatcherAddr: str(env, "CPM_DISPATCHER_ADDR") ?? dialable(dispatcherListen),
    rendererAddr: str(env, "CPM_RENDERER_ADDR") ?? dialable(rendererListen),
    internalToken,
    syncMaxMessageBytes: int(env, "CPM_SYNC_MAX_MESSAGE_BYTES"),
    syncAckTimeoutSeconds: int(env, "CPM_SYNC_ACK_TIMEOUT"),
    syncConnectTimeoutMs: int(env, "CPM_SYNC_CONNECT_TIMEOUT_MS"),
    syncKeepaliveTimeMs: int(env, "CPM_SYNC_KEEPALIVE_TIME_MS"),
    syncKeepaliveTimeoutMs: int(env, "CPM_SYNC_KEEPALIVE_TIMEOUT_MS"),
    receiverKeepaliveTimeMs: int(env, "CPM_RECEIVER_KEEPALIVE_TIME_MS"),
    receiverKeepaliveTimeoutMs: int(env, "CPM_RECEIVER_KEEPALIVE_TIMEOUT_MS"),
    reconcileIntervalMs: int(env, "CPM_RECONCILE_INTERVAL_MS"),
    caddyBin: str(env, "CPM_CADDY_BIN"),
    target: targetModules(env, mode),
    splitProcesses: bool(env, "CPM_SPLIT_PROCESSES"),
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
        CPM_CONSOLE_LISTEN: consoleListen,
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
  const value = text(env, "LOG_FORMAT");
  if (value === "json" || value === "pretty") return value;
  if (value === "auto") return stdoutIsTty ? "pretty" : "json";
  throw new ConfigError("LOG_FORMAT", `"${value}" is not one of auto, json, pretty`);
}

function targetModules(env: Env, mode: InstanceMode): readonly ModuleName[] {
  const parsed = parseTarget(text(env, "CPM_TARGET"), mode);
  if ("error" in parsed) throw new ConfigError("CPM_TARGET", parsed.error);
  return Object.freeze(parsed.modules);
}
