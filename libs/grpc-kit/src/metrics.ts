import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import {
  status as Status,
  type ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
} from "@grpc/grpc-js";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Logger } from "@cpm/core";
import { NackCode } from "@cpm/proto";

// The metric types services define their own metrics with (one prom-client for the process).
export { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * The Prometheus registry of this process. Every metric of the service is registered here
 * (the gRPC server interceptor's, the service's own, and Node's process metrics once
 * `serveMetrics` runs), and `serveMetrics` serves it.
 */
export const metricsRegistry = new Registry();

/**
 * Defines a group of metrics once per registry: prom-client refuses a second metric of the
 * same name in one registry, while services (and their tests) may build a component twice.
 * The returned function gives the registry's group, creating it on first use.
 */
export function metricSet<T>(create: (registry: Registry) => T): (registry?: Registry) => T {
  const sets = new WeakMap<Registry, T>();
  return (registry = metricsRegistry) => {
    let set = sets.get(registry);
    if (set === undefined) {
      set = create(registry);
      sets.set(registry, set);
    }
    return set;
  };
}

/**
 * A gauge read when scraped: `read` gives its value, or undefined to leave it as it was
 * (the thing it reads is not there yet).
 */
export function scrapedGauge(registry: Registry, name: string, help: string, read: () => number | undefined): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      const v = read();
      if (v !== undefined) this.set(v);
    },
  });
}

/** Latency buckets in seconds, from a local call (1 ms) to a slow Caddy load or push (60 s). */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const GRPC_LABELS = ["grpc_service", "grpc_method", "grpc_type", "grpc_code"] as const;

const grpcMetrics = metricSet((registry) => ({
  handled: new Counter({
    name: "cpm_grpc_server_handled_total",
    help: "gRPC calls completed by the server, by service, method, call type and status code.",
    labelNames: GRPC_LABELS,
    registers: [registry],
  }),
  seconds: new Histogram({
    name: "cpm_grpc_server_handling_seconds",
    help: "Time from the start of a gRPC call to its status, by service, method, call type and status code (streams: the stream's life).",
    labelNames: GRPC_LABELS,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  }),
}));

/** grpc-js's names of status codes (OK, INVALID_ARGUMENT, ...), the `grpc_code` label. */
function codeName(code: number): string {
  return Status[code] ?? "UNKNOWN";
}

function callType(d: { requestStream: boolean; responseStream: boolean }): string {
  if (d.requestStream) return d.responseStream ? "bidi_stream" : "client_stream";
  return d.responseStream ? "server_stream" : "unary";
}

/**
 * A server interceptor that counts every call by method and status code and records its
 * latency. It must come first in the server's list (innermost, on grpc-js's own call): it
 * patches that call's `sendStatus` so it also sees the statuses grpc-js sends by itself
 * (deadline exceeded, message too large) and the ones other interceptors send (access
 * refused); a call the client cancels counts as CANCELLED. Labels are the registered
 * method's path only: grpc-js answers unknown paths before any interceptor runs.
 */
export function grpcMetricsInterceptor(registry?: Registry): ServerInterceptor {
  const m = grpcMetrics(registry);
  return (descriptor, call) => {
    const path = descriptor.path.replace(/^\//, "");
    const slash = path.lastIndexOf("/");
    const labels = {
      grpc_service: path.slice(0, slash),
      grpc_method: path.slice(slash + 1),
      grpc_type: callType(descriptor),
    };
    const started = performance.now();
    let recorded = false;
    const record = (code: number) => {
      if (recorded) return;
      recorded = true;
      const l = { ...labels, grpc_code: codeName(code) };
      m.handled.inc(l);
      m.seconds.observe(l, (performance.now() - started) / 1000);
    };
    observeStatus(call, record);
    // Returned as it is, not wrapped: the interceptors after this one must still patch grpc-js's
    // own call (see nameLimitInStatus). grpc-js chains interceptors through this interface only.
    return call as ServerInterceptingCall;
  };
}

function observeStatus(call: ServerInterceptingCallInterface, record: (code: number) => void): void {
  const send = call.sendStatus.bind(call);
  call.sendStatus = (s) => {
    record(s.code);
    send(s);
  };
  const start = call.start.bind(call);
  // grpc-js also calls onCancel after a status was sent; `record` keeps only the first.
  call.start = (listener) =>
    start({
      onReceiveMetadata: (metadata) => listener.onReceiveMetadata(metadata),
      onReceiveMessage: (message) => listener.onReceiveMessage(message),
      onReceiveHalfClose: () => listener.onReceiveHalfClose(),
      onCancel: () => {
        record(Status.CANCELLED);
        listener.onCancel();
      },
    });
}

/** A running `/metrics` listener. */
export interface MetricsServer {
  /** The bound port (useful with port 0). */
  readonly port: number;
  close(): Promise<void>;
}

export interface ServeMetricsOptions {
  /** The variable that set the address, named when it cannot be bound. */
  variable: string;
  registry?: Registry;
}

const withDefaultMetrics = new WeakSet<Registry>();
const NON_COUNTER_TOTALS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

/**
 * Serves `registry` (with Node's process metrics added) in Prometheus's text format at
 * `GET /metrics` on `listen` (host:port, IPv6 in brackets). Any other path is 404. Rejects
 * naming `opts.variable` when the address cannot be bound.
 */
export function serveMetrics(listen: string, opts: ServeMetricsOptions): Promise<MetricsServer> {
  const registry = opts.registry ?? metricsRegistry;
  if (!withDefaultMetrics.has(registry)) {
    withDefaultMetrics.add(registry);
    collectDefaultMetrics({ register: registry });
    // Gauges named like counters (promtool refuses them); nodejs_active_handles and the others,
    // by type, carry the same counts.
    for (const name of NON_COUNTER_TOTALS) registry.removeSingleMetric(name);
  }
  const colon = listen.lastIndexOf(":");
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  const port = Number(listen.slice(colon + 1));
  const server = createServer((req, res) => void answer(registry, req, res));
  return new Promise((resolve, reject) => {
    server.once("error", (err) => reject(new Error(`${opts.variable}: cannot listen on ${listen}: ${err.message}`)));
    server.listen(port, host, () => {
      const address = server.address();
      resolve({
        port: typeof address === "object" && address ? address.port : port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // Scrapers keep connections alive; a stopping service does not wait for them.
            server.closeAllConnections();
          }),
      });
    });
  });
}

async function answer(registry: Registry, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? "/").split("?")[0];
  if (path !== "/metrics") {
    res
      .writeHead(404, { "content-type": "text/plain; charset=utf-8" })
      .end("not found: metrics are served at /metrics\n");
    return;
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }).end("method not allowed\n");
    return;
  }
  try {
    const body = await registry.metrics();
    res.writeHead(200, { "content-type": registry.contentType }).end(req.method === "HEAD" ? undefined : body);
  } catch (err) {
    res
      .writeHead(500, { "content-type": "text/plain; charset=utf-8" })
      .end(`cannot collect metrics: ${(err as Error).message}\n`);
  }
}

/**
 * Starts the `/metrics` listener when `listen` is set (its variable is named when it cannot be
 * bound); does nothing otherwise. For a service's main.
 */
export async function startMetrics(
  listen: string | undefined,
  variable: string,
  log: Logger,
): Promise<MetricsServer | undefined> {
  if (listen === undefined) return undefined;
  const server = await serveMetrics(listen, { variable });
  log.info({ listen, port: server.port }, "metrics served at /metrics");
  return server;
}

/** A sync NACK code as a label value: the proto name without its prefix, lower case ("stale_version"). */
export function nackCodeLabel(code: NackCode): string {
  const name = NackCode[code];
  return typeof name === "string" && code !== NackCode.UNRECOGNIZED
    ? name.replace(/^NACK_CODE_/, "").toLowerCase()
    : "unrecognized";
}

/** Every NACK code a slave can send, as label values (to start each series at 0). */
export const NACK_CODE_LABELS: readonly string[] = Object.values(NackCode)
  .filter(
    (c): c is NackCode => typeof c === "number" && c !== NackCode.UNRECOGNIZED && c !== NackCode.NACK_CODE_UNSPECIFIED,
  )
  .map(nackCodeLabel);
