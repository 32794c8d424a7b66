import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from "@opentelemetry/api";
import { ConfigError } from "@cpm/core";
import type { TraceContext } from "@cpm/proto";
import { status, type Metadata } from "@grpc/grpc-js";

const grpcStatus = status as unknown as Record<number, string>;

export { SpanKind, type Context, type Span };

/** W3C Trace Context (`traceparent`, `tracestate`) as messages carry it (cpm.config.v1.TraceContext). */
export type TraceCarrier = TraceContext;

export type TraceExporterName = "otlp" | "console";

export interface TracingConfig {
  /** Where finished spans go; empty: tracing is off (no SDK is loaded, the API is a no-op). */
  exporters: readonly TraceExporterName[];
}

const EXPORTERS: readonly string[] = ["otlp", "console", "none"];

/**
 * Which exporters the standard OpenTelemetry variables select. Off unless configured:
 * `OTEL_TRACES_EXPORTER` (`otlp`, `console`, `none`, comma-separated), or else `otlp` when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set.
 * `OTEL_SDK_DISABLED=true` turns it off whatever else is set.
 */
export function tracingConfigFromEnv(env: NodeJS.ProcessEnv = process.env): TracingConfig {
  if ((env.OTEL_SDK_DISABLED ?? "").trim().toLowerCase() === "true") return { exporters: [] };
  for (const name of ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]) {
    const value = env[name]?.trim();
    if (value && !/^https?:\/\/[^\s/]+/.test(value))
      throw new ConfigError(name, `"${value}" is not an http:// or https:// URL`);
  }
  const raw = env.OTEL_TRACES_EXPORTER?.trim();
  if (!raw) {
    const endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
    return { exporters: endpoint ? ["otlp"] : [] };
  }
  const names = raw.split(",").map((s) => s.trim().toLowerCase());
  const unknown = names.find((n) => !EXPORTERS.includes(n));
  if (unknown !== undefined)
    throw new ConfigError("OTEL_TRACES_EXPORTER", `"${unknown}" is not one of ${EXPORTERS.join(", ")}`);
  if (names.includes("none")) return { exporters: [] };
  return { exporters: [...new Set(names)] as TraceExporterName[] };
}

/** A started tracing setup; `shutdown` flushes the spans not yet exported. */
export interface Tracing {
  readonly enabled: boolean;
  shutdown(): Promise<void>;
}

/** The process's tracing, once started: a process has one tracer provider. */
let started: Tracing | undefined;

/**
 * Starts the OpenTelemetry SDK for one service when the environment configures an exporter
 * (see `tracingConfigFromEnv`); otherwise loads nothing and every span helper stays a no-op.
 * `service` becomes `service.name`; `OTEL_RESOURCE_ATTRIBUTES` adds resource attributes.
 * A process has one provider: in a node that runs several services in one process, the
 * first call (the node's, as `cpm`) starts it and the services' calls share it (their
 * `shutdown` leaves it to its owner).
 */
export async function initTracing(
  service: string,
  attributes: Attributes = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<Tracing> {
  if (started) return { enabled: started.enabled, shutdown: async () => undefined };
  const tracing = await startTracing(service, attributes, env);
  if (tracing.enabled) started = tracing;
  return tracing;
}

async function startTracing(service: string, attributes: Attributes, env: NodeJS.ProcessEnv): Promise<Tracing> {
  const cfg = tracingConfigFromEnv(env);
  if (cfg.exporters.length === 0) return { enabled: false, shutdown: async () => undefined };
  // Loaded only when configured: an instance without tracing never pays for the SDK.
  const [sdk, core, res, hooks] = await Promise.all([
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/core"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/context-async-hooks"),
  ]);
  const processors = [];
  for (const name of cfg.exporters) {
    if (name === "console") processors.push(new sdk.SimpleSpanProcessor(new sdk.ConsoleSpanExporter()));
    else {
      const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
      processors.push(new sdk.BatchSpanProcessor(new OTLPTraceExporter()));
    }
  }
  const resource = res
    .detectResources({ detectors: [res.envDetector] })
    .merge(res.resourceFromAttributes({ ...attributes, "service.name": service, "service.namespace": "cpm" }));
  const provider = new sdk.BasicTracerProvider({ resource, spanProcessors: processors });
  context.setGlobalContextManager(new hooks.AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new core.W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  return {
    enabled: true,
    shutdown: async () => {
      try {
        await provider.shutdown();
      } catch {
        /* an unreachable collector must not stop the service from exiting */
      }
    },
  };
}

const tracer = () => trace.getTracer("cpm");

const metadataSetter: TextMapSetter<Metadata> = { set: (md, key, value) => md.set(key, value) };
const metadataGetter: TextMapGetter<Metadata> = {
  keys: (md) => Object.keys(md.getMap()),
  get: (md, key) => {
    const v = md.get(key)[0];
    return typeof v === "string" ? v : undefined;
  },
};

/** Writes the trace context of `ctx` (the active one by default) into outgoing gRPC metadata. */
export function injectTraceContext(md: Metadata, ctx: Context = context.active()): Metadata {
  propagation.inject(ctx, md, metadataSetter);
  return md;
}

/** The trace context a caller sent in gRPC metadata (the root context when none). */
export function extractTraceContext(md: Metadata): Context {
  return propagation.extract(ROOT_CONTEXT, md, metadataGetter);
}

/** The trace context of `ctx` (the active one by default) for a message; undefined when there is none (tracing off). */
export function traceCarrier(ctx: Context = context.active()): TraceCarrier | undefined {
  const headers: Record<string, string> = {};
  propagation.inject(ctx, headers);
  return headers.traceparent ? { traceparent: headers.traceparent, tracestate: headers.tracestate ?? "" } : undefined;
}

/** The trace context of `span` as a map for a proto field, so the receiver's spans become its children. */
export function spanCarrier(span: Span): TraceCarrier | undefined {
  return traceCarrier(trace.setSpan(context.active(), span));
}

/** The context a carrier describes (the root context when it is empty or invalid). */
export function contextFromCarrier(carrier: TraceCarrier | undefined): Context {
  if (!carrier?.traceparent) return ROOT_CONTEXT;
  const headers: Record<string, string> = { traceparent: carrier.traceparent };
  if (carrier.tracestate) headers.tracestate = carrier.tracestate;
  return propagation.extract(ROOT_CONTEXT, headers);
}

/** Runs `fn` with `ctx` as the active context. */
export function runInContext<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}

/** The active context, to carry across a queue or timer. */
export const activeContext = (): Context => context.active();

export interface SpanOptions {
  attributes?: Attributes;
  /** The parent; the active context when omitted. */
  parent?: Context;
  kind?: SpanKind;
  /** Other operations this span also continues (e.g. the commits a push carries besides its parent's). */
  links?: readonly TraceCarrier[];
}

/** Starts a span that the caller ends (one that outlives the current call, e.g. a push until its ACK). */
export function startSpan(name: string, opts: SpanOptions = {}): Span {
  const links = (opts.links ?? []).flatMap((c) => {
    const spanContext = trace.getSpanContext(contextFromCarrier(c));
    return spanContext ? [{ context: spanContext }] : [];
  });
  return tracer().startSpan(
    name,
    { attributes: opts.attributes, kind: opts.kind, links },
    opts.parent ?? context.active(),
  );
}

/**
 * Runs `fn` in a new active span that ends when `fn` settles; an exception marks the span
 * as an error (with the exception's message) and is rethrown.
 */
export async function withSpan<T>(name: string, opts: SpanOptions, fn: (span: Span) => Promise<T> | T): Promise<T> {
  return tracer().startActiveSpan(
    name,
    { attributes: opts.attributes, kind: opts.kind },
    opts.parent ?? context.active(),
    async (span) => {
      try {
        return await fn(span);
      } catch (err) {
        failSpan(span, err);
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

/**
 * Marks `span` as failed with a code for the error (`error.type`): a gRPC status name, a
 * domain error's kind or the error's class. Never the message: messages can quote the
 * configuration (host names) or a peer's words, which spans do not carry.
 */
export function failSpan(span: Span, err: unknown): void {
  const type = errorType(err);
  span.setAttribute("error.type", type);
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}

/** A short, data-free name for an error. */
export function errorType(err: unknown): string {
  const e = err as { code?: unknown; kind?: unknown; name?: unknown } | undefined;
  if (typeof e?.code === "number" && grpcStatus[e.code]) return grpcStatus[e.code]!;
  if (typeof e?.kind === "string") return e.kind.toUpperCase();
  if (typeof e?.name === "string" && e.name !== "Error") return e.name;
  return "error";
}

/** The attributes that identify a configuration version on a span: the version and a content hash prefix. */
export function versionAttributes(version: number, contentSha256: string): Attributes {
  return { "cpm.config.version": version, "cpm.config.content_sha256": contentSha256.slice(0, 12) };
}
