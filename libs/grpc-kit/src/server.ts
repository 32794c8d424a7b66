import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import {
  Server,
  ServerCredentials,
  status,
  type handleBidiStreamingCall,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type Metadata,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import descriptor from "protobufjs/ext/descriptor/index.js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "@cpm/core";
import type { Registry } from "prom-client";
import { unauthenticated, type Authenticate, type Principal } from "./auth.ts";
import { INTERNAL_MAX_MESSAGE_BYTES } from "./client.ts";
import { toServiceError } from "./errors.ts";
import { accessInterceptor, principalOf } from "./interceptor.ts";
import { grpcMetricsInterceptor } from "./metrics.ts";
import { receiveWindowBytes, widenReceiveWindow } from "./receive-window.ts";
import { extractTraceContext, runInContext } from "./tracing.ts";
import { assertPolicyCovers, methodName, type MethodPolicy, type ServicePolicy } from "./policy.ts";

/** What every handler gets besides its request. */
export interface CallContext {
  readonly principal: Principal;
  readonly log: Logger;
  readonly metadata: Metadata;
  /** Aborted when the client cancels or the server shuts down. */
  readonly signal: AbortSignal;
  readonly peer: string;
}

export type UnaryHandler<Req, Res> = (req: Req, ctx: CallContext) => Promise<Res>;
export type ServerStreamHandler<Req, Res> = (
  req: Req,
  ctx: CallContext,
  call: ServerWritableStream<Req, Res>,
) => Promise<void>;
export type BidiHandler<Req, Res> = (call: ServerDuplexStream<Req, Res>, ctx: CallContext) => Promise<void>;

/** The async-function form of a generated grpc-js server interface. */
export type AsyncService<S> = {
  [K in keyof S as string extends K ? never : K]?: S[K] extends handleUnaryCall<infer Req, infer Res>
    ? UnaryHandler<Req, Res>
    : S[K] extends handleServerStreamingCall<infer Req, infer Res>
      ? ServerStreamHandler<Req, Res>
      : S[K] extends handleBidiStreamingCall<infer Req, infer Res>
        ? BidiHandler<Req, Res>
        : never;
};

export interface GrpcServerOptions {
  log: Logger;
  /** Who the caller is, from the metadata; called only for methods that are not public. */
  authenticate: Authenticate;
  /** Largest request message this listener reads (checked on its frame header, before it is buffered). */
  maxReceiveBytes?: number;
  /** The variable that sets `maxReceiveBytes`, named in the status of a larger message. */
  limitVariable?: string;
  /** Who may use server reflection here; health is public everywhere (it tells only SERVING or not). */
  reflection?: MethodPolicy;
  /** Where calls are counted (cpm_grpc_server_*); the process's registry when unset. */
  metricsRegistry?: Registry;
  /**
   * HTTP/2 pings this server sends on every connection (every `timeMs`; a connection whose
   * ping is not answered within `timeoutMs` is dropped with its calls), and the shortest
   * interval it accepts between a client's pings. Unset: 30 s, 10 s and 5 s.
   */
  keepalive?: { timeMs: number; timeoutMs: number; minPingIntervalMs: number };
}

/**
 * A grpc-js server with health, reflection, central error mapping, per-method access
 * policies checked by one interceptor before a request is read, and graceful shutdown.
 * Never listens by itself: call `listen`.
 */
export class GrpcServer {
  readonly server: Server;
  readonly health = new HealthImplementation({ "": "SERVING" });
  private readonly shutdownController = new AbortController();
  private readonly serviceNames: string[] = [];
  private readonly policies = new Map<string, MethodPolicy>();

  constructor(private readonly opts: GrpcServerOptions) {
    this.server = new Server({
      "grpc.max_receive_message_length": opts.maxReceiveBytes ?? INTERNAL_MAX_MESSAGE_BYTES,
      "grpc.max_send_message_length": INTERNAL_MAX_MESSAGE_BYTES,
      "grpc.keepalive_time_ms": opts.keepalive?.timeMs ?? 30_000,
      "grpc.keepalive_timeout_ms": opts.keepalive?.timeoutMs ?? 10_000,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.http2.min_ping_interval_without_data_ms": opts.keepalive?.minPingIntervalMs ?? 5_000,
      interceptors: [
        // First: it sits on grpc-js's own call and so sees every status, even the access interceptor's.
        grpcMetricsInterceptor(opts.metricsRegistry),
        accessInterceptor({
          policies: this.policies,
          authenticate: opts.authenticate,
          log: opts.log,
          limitVariable: opts.limitVariable,
        }),
      ],
    });
    const window = receiveWindowBytes(opts.maxReceiveBytes ?? INTERNAL_MAX_MESSAGE_BYTES);
    if (!widenReceiveWindow(this.server, window))
      opts.log.warn("this grpc-js cannot widen its servers' HTTP/2 receive window; large messages arrive slower");
    this.health.addToServer(this.registrar(["public"]));
    addReflection(this.registrar(opts.reflection ?? ["public"]));
  }

  /** The server as a library that adds its own services sees it: every method it adds gets `policy`. */
  private registrar(policy: MethodPolicy): Server {
    const addService: Server["addService"] = (definition, impl) => {
      for (const d of Object.values(definition)) this.policies.set(d.path, policy);
      this.server.addService(definition, impl);
    };
    return { addService } as Server;
  }

  /**
   * Adds a generated service with async handlers and its access table, which must name
   * every method of the service (start-up fails otherwise). Methods without a handler
   * answer UNIMPLEMENTED to callers the table lets in.
   */
  add<S>(definition: ServiceDefinition, impl: AsyncService<S>, policy: ServicePolicy): this {
    assertPolicyCovers(definition, policy);
    const out: UntypedServiceImplementation = {};
    for (const [method, def] of Object.entries(definition)) {
      this.policies.set(def.path, policy.methods[methodName(def.path)]!);
      const handler = (impl as Record<string, unknown>)[method];
      if (typeof handler !== "function") continue;
      out[method] = this.wrap(def.path.replace(/^\//, ""), def.requestStream, def.responseStream, handler as never);
    }
    this.server.addService(definition, out);
    this.serviceNames.push(policy.service);
    this.health.setStatus(policy.service, "SERVING");
    return this;
  }

  private wrap(
    method: string,
    requestStream: boolean,
    responseStream: boolean,
    handler: (...args: unknown[]) => Promise<unknown>,
  ): UntypedServiceImplementation[string] {
    const baseLog = this.opts.log;
    const serverSignal = this.shutdownController.signal;
    const context = async (
      call:
        | ServerUnaryCall<unknown, unknown>
        | ServerWritableStream<unknown, unknown>
        | ServerDuplexStream<unknown, unknown>,
    ) => {
      // Admitted by the access interceptor before the request was read; without it, nothing runs.
      const principal = principalOf(call.metadata);
      if (!principal) throw unauthenticated("the call was not authenticated");
      return new LazyCallContext(call, principal, method, baseLog, serverSignal) as CallContext;
    };
    if (!requestStream && !responseStream) {
      const h: handleUnaryCall<unknown, unknown> = (call, cb) => {
        context(call)
          // A caller's trace context (W3C traceparent in the metadata) is the parent of the handler's spans.
          .then((ctx) => runInContext(extractTraceContext(call.metadata), () => handler(call.request, ctx)))
          .then(
            (res) => cb(null, res),
            (err) => cb(toServiceError(err, baseLog.child({ method }))),
          );
      };
      return h;
    }
    if (!requestStream && responseStream) {
      return (call: ServerWritableStream<unknown, unknown>) => {
        context(call)
          .then((ctx) => handler(call.request, ctx, call))
          .then(
            () => call.end(),
            (err) => call.emit("error", toServiceError(err, baseLog.child({ method }))),
          );
      };
    }
    return (call: ServerDuplexStream<unknown, unknown>) => {
      context(call)
        .then((ctx) => handler(call, ctx))
        .then(
          () => call.end(),
          (err) => call.emit("error", toServiceError(err, baseLog.child({ method }))),
        );
    };
  }

  /** Binds and starts serving; returns the bound port (useful with port 0). */
  listen(address: string, credentials: ServerCredentials = ServerCredentials.createInsecure()): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, port) =>
        err ? reject(new Error(`cannot listen on ${address}: ${err.message}`)) : resolve(port),
      );
    });
  }

  /** Health NOT_SERVING, end open streams, then a graceful shutdown bounded by `timeoutMs`. */
  async shutdown(timeoutMs = 5000): Promise<void> {
    this.health.setStatus("", "NOT_SERVING");
    for (const name of this.serviceNames) this.health.setStatus(name, "NOT_SERVING");
    this.shutdownController.abort();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, timeoutMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/**
 * A call's context whose logger and abort signal are made when a handler first asks for them:
 * most calls use neither, and a child logger (with its redaction) and a combined signal cost
 * more than the rest of a small call's handling.
 */
class LazyCallContext {
  private cancelled = false;
  private abort: AbortController | undefined;
  private combined: AbortSignal | undefined;
  private child: Logger | undefined;
  readonly metadata: Metadata;
  readonly peer: string;

  constructor(
    call:
      ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>,
    readonly principal: Principal,
    private readonly method: string,
    private readonly baseLog: Logger,
    private readonly serverSignal: AbortSignal,
  ) {
    this.metadata = call.metadata;
    this.peer = call.getPeer();
    (call as ServerUnaryCall<unknown, unknown>).on("cancelled", () => {
      this.cancelled = true;
      this.abort?.abort();
    });
  }

  get log(): Logger {
    return (this.child ??= this.baseLog.child({ method: this.method, peer: this.peer }));
  }

  /** Aborted when the client cancels (before or after this is first read) or the server shuts down. */
  get signal(): AbortSignal {
    if (!this.combined) {
      this.abort = new AbortController();
      if (this.cancelled) this.abort.abort();
      this.combined = AbortSignal.any([this.abort.signal, this.serverSignal]);
    }
    return this.combined;
  }
}

/**
 * Adds server reflection (v1 and v1alpha) to `server`. What it answers from is built on the
 * process's first reflection call and shared by every server of the process: decoded, the
 * descriptor set with its source info is about 1 MiB per copy, and @grpc/reflection keeps two
 * copies per server (one per version), 8 MiB in a master node of four servers that is never
 * asked for reflection at all.
 */
function addReflection(server: Pick<Server, "addService">): void {
  reflectionServices().forEach(({ definition, method }, i) =>
    server.addService(definition, {
      [method]: (stream: ServerDuplexStream<unknown, unknown>) => reflectionHandlers()[i]!(stream),
    }),
  );
}

type ReflectionHandler = (stream: ServerDuplexStream<unknown, unknown>) => void;

/** One method of a reflection service (v1's or v1alpha's `ServerReflectionInfo`). */
interface ReflectionMethod {
  definition: ServiceDefinition;
  method: string;
}

let reflectionMethods: ReflectionMethod[] | undefined;
let reflectionImpl: ReflectionHandler[] | undefined;

/** Every method a ReflectionService adds to a server, with the handler it adds, in its order. */
function captureReflection(service: ReflectionService): (ReflectionMethod & { handler: ReflectionHandler })[] {
  const found: (ReflectionMethod & { handler: ReflectionHandler })[] = [];
  service.addToServer({
    addService: (definition: ServiceDefinition, impl: UntypedServiceImplementation) => {
      for (const [method, handler] of Object.entries(impl))
        found.push({ definition, method, handler: handler as ReflectionHandler });
    },
  });
  return found;
}

/** The reflection services' methods, from a ReflectionService that knows no file (cheap to build). */
function reflectionServices(): ReflectionMethod[] {
  reflectionMethods ??= captureReflection(new ReflectionService({})).map(({ definition, method }) => ({
    definition,
    method,
  }));
  return reflectionMethods;
}

/** The handlers that answer from the whole descriptor set, built on first use, in reflectionServices()'s order. */
function reflectionHandlers(): ReflectionHandler[] {
  reflectionImpl ??= captureReflection(new ReflectionService(reflectionDefinition() as never)).map((m) => m.handler);
  return reflectionImpl;
}

/**
 * Reflection serves the descriptor set `buf build` writes next to the generated code
 * (libs/proto/descriptors.binpb): one descriptor per .proto file with its real name and
 * imports, which clients such as grpcurl and buf curl need to resolve services.
 */
function reflectionDefinition(): Record<string, { fileDescriptorProtos: Uint8Array[] }> {
  const file = createRequire(import.meta.url).resolve("@cpm/proto/descriptors.binpb");
  const set = (descriptor as unknown as DescriptorModule).FileDescriptorSet.decode(readFileSync(file));
  const protos = set.file.map((f) =>
    (descriptor as unknown as DescriptorModule).FileDescriptorProto.encode(f).finish(),
  );
  return { descriptors: { fileDescriptorProtos: protos } };
}

interface DescriptorModule {
  FileDescriptorSet: { decode(b: Uint8Array): { file: unknown[] } };
  FileDescriptorProto: { encode(f: unknown): { finish(): Uint8Array } };
}

export { status };
