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
    const timer = setTimeout(() => done(() => reject(new Error(`no gRPC status from ${path} within ${opts.timeoutMs ?? 5000} ms`))), opts.timeoutMs ?? 5000);
    session.on("error", (err) => done(() => reject(err)));
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
      done(() => resolve({ code: Number(code), details: decodeURIComponent(String(h["grpc-message"] ?? "")), requestEnded }));
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
