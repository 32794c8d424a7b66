// Test support shared by the packages' tests (exported as @cpm/grpc-kit/testing, not from the index).
import http2 from "node:http2";

export interface RawCallOptions {
  /** Sent as `authorization: Bearer <token>` when set. */
  token?: string;
  /** The message length the gRPC frame header announces. */
  announcedBytes: number;
  /** How many bytes of the message body are actually sent (default: all of them). */
  sentBytes?: number;
  /** End the request stream after the bytes are sent (default: only when the whole message was sent). */
  end?: boolean;
  timeoutMs?: number;
}

export interface RawCallResult {
  /** From the grpc-status header or trailer. */
  code: number;
  /** grpc-message, decoded. */
  details: string;
  /** Whether the client had ended its request stream when the status arrived. */
  requestEnded: boolean;
}

/**
 * Opens a plain HTTP/2 stream to a gRPC server and sends one length-prefixed message
 * frame, possibly announcing more bytes than it sends, then waits for the gRPC status.
 * Shows what the server does before it has a whole message.
 */
export function rawGrpcCall(address: string, path: string, opts: RawCallOptions): Promise<RawCallResult> {
  const sent = opts.sentBytes ?? opts.announcedBytes;
  const end = opts.end ?? sent === opts.announcedBytes;
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${address}`);
    const done = (fn: () => void) => {
      clearTimeout(timer);
      req.close();
      session.close();
      fn();
    };
    const timer = setTimeout(
      () => done(() => reject(new Error(`no gRPC status from ${path} within ${opts.timeoutMs ?? 5000} ms`))),
      opts.timeoutMs ?? 5000,
    );
    session.on("error", (err: Error) => done(() => reject(err)));
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
    });
    const onStatus = (h: http2.IncomingHttpHeaders) => {
      const code = h["grpc-status"];
      if (code === undefined) return;
      const requestEnded = req.writableEnded;
      done(() =>
        resolve({ code: Number(code), details: decodeURIComponent(String(h["grpc-message"] ?? "")), requestEnded }),
      );
    };
    req.on("response", onStatus);
    req.on("trailers", onStatus);
    req.on("data", () => undefined);
    req.on("error", () => undefined);
    const header = Buffer.alloc(5);
    header.writeUInt32BE(opts.announcedBytes, 1);
    req.write(header);
    if (sent > 0) req.write(Buffer.alloc(sent));
    if (end) req.end();
  });
}

/** One span as an OTLP/HTTP JSON export carries it, with its resource's attributes. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  name: string;
  /** Span attributes, values unwrapped (`{ intValue: "3" }` -> 3). */
  attributes: Record<string, string | number | boolean>;
  /** The exporting process's resource attributes (`service.name`, `cpm.instance.mode`, ...). */
  resource: Record<string, string | number | boolean>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  statusCode: number;
  /** The spans this one links to. */
  links: { traceId: string; spanId: string }[];
  /** Start and end, milliseconds since the epoch (from the exporter's nanoseconds). */
  startMs: number;
  endMs: number;
}

/** A tiny OTLP/HTTP trace receiver (JSON encoding, `POST /v1/traces`), for tests that follow a trace across processes. */
export interface OtlpReceiver {
  /** `http://127.0.0.1:<port>`: what OTEL_EXPORTER_OTLP_ENDPOINT points at. */
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  close(): Promise<void>;
}

type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
type OtlpAttribute = { key: string; value: OtlpValue };

function unwrapAttributes(list: OtlpAttribute[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    out[key] =
      value.stringValue ??
      (value.intValue !== undefined ? Number(value.intValue) : undefined) ??
      value.boolValue ??
      value.doubleValue ??
      "";
  }
  return out;
}

const nanosToMs = (n: string | number | undefined) => (n === undefined ? 0 : Number(BigInt(n) / 1000n) / 1000);

/** Starts an OTLP/HTTP JSON receiver on a loopback port. Anything but JSON on /v1/traces is answered 415/404. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const { createServer } = await import("node:http");
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") return void res.writeHead(404).end();
      if (!String(req.headers["content-type"]).startsWith("application/json")) return void res.writeHead(415).end();
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
        resourceSpans?: {
          resource?: { attributes?: OtlpAttribute[] };
          scopeSpans?: {
            spans?: {
              traceId: string;
              spanId: string;
              parentSpanId?: string;
              name: string;
              attributes?: OtlpAttribute[];
              status?: { code?: number };
              links?: { traceId: string; spanId: string }[];
              startTimeUnixNano?: string | number;
              endTimeUnixNano?: string | number;
            }[];
          }[];
        }[];
      };
      for (const rs of body.resourceSpans ?? []) {
        const resource = unwrapAttributes(rs.resource?.attributes);
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? "",
              name: s.name,
              attributes: unwrapAttributes(s.attributes),
              resource,
              statusCode: s.status?.code ?? 0,
              links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
              startMs: nanosToMs(s.startTimeUnixNano),
              endMs: nanosToMs(s.endTimeUnixNano),
            });
          }
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
