import { EventEmitter } from "node:events";
import {
  connect as http2Connect,
  constants as h2,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
} from "node:http2";
import { connect as netConnect, isIP, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { Metadata, status } from "@grpc/grpc-js";
import { SyncResponse } from "@cpm/proto";
import { sharedSecureContext } from "./slave-credentials.ts";

/** The method every link calls: one bidirectional stream per connection. */
export const SYNC_PATH = "/cpm.sync.v1.SyncReceiver/Sync";

/** A stream's end as gRPC names it (the same shape as grpc-js's ServiceError). */
export type StreamError = Error & { code: number; details: string; keepalive?: boolean };

export function streamError(code: status, details: string, keepalive?: boolean): StreamError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, keepalive });
}

/** What gRPC makes of an HTTP status that is not 200 (the gRPC HTTP/2 protocol's table). */
export function statusOfHttp(httpStatus: number): status {
  switch (httpStatus) {
    case 400:
      return status.INTERNAL;
    case 401:
      return status.UNAUTHENTICATED;
    case 403:
      return status.PERMISSION_DENIED;
    case 404:
      return status.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return status.UNAVAILABLE;
    default:
      return status.UNKNOWN;
  }
}

/** What gRPC makes of a stream reset by the peer without a status (RST_STREAM's error code). */
export function statusOfReset(rstCode: number): status {
  switch (rstCode) {
    case h2.NGHTTP2_REFUSED_STREAM:
      return status.UNAVAILABLE;
    case h2.NGHTTP2_CANCEL:
      return status.CANCELLED;
    case h2.NGHTTP2_ENHANCE_YOUR_CALM:
      return status.RESOURCE_EXHAUSTED;
    case h2.NGHTTP2_INADEQUATE_SECURITY:
      return status.PERMISSION_DENIED;
    default:
      return status.INTERNAL;
  }
}

/** The status a response's trailers (or trailers-only headers) carry; OK when absent and `end`. */
export function statusOfTrailers(headers: IncomingHttpHeaders): { code: status; details: string } | undefined {
  const raw = headers["grpc-status"];
  if (raw === undefined) return undefined;
  const code = Number(raw);
  const message = headers["grpc-message"];
  let details = typeof message === "string" ? message : "";
  try {
    details = decodeURIComponent(details);
  } catch {
    // A malformed percent-encoding: shown as sent.
  }
  return { code: Number.isInteger(code) && code >= 0 && code <= 16 ? code : status.UNKNOWN, details };
}

/**
 * Splits gRPC's length-prefixed messages out of a byte stream: a flag byte (compressed or not),
 * a 4-byte big-endian length, the message. Returns the whole messages and keeps the rest.
 */
export class MessageReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxMessageBytes: number) {}

  push(chunk: Buffer): Buffer[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const out: Buffer[] = [];
    while (this.pendingBytes >= 5) {
      const head = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
      this.pending = [head];
      if (head[0] !== 0) throw streamError(status.INTERNAL, "a compressed message, which was never asked for");
      const length = head.readUInt32BE(1);
      if (length > this.maxMessageBytes)
        throw streamError(
          status.RESOURCE_EXHAUSTED,
          `Received message larger than max (${length} vs. ${this.maxMessageBytes})`,
        );
      if (head.length < 5 + length) break;
      out.push(head.subarray(5, 5 + length));
      const rest = head.subarray(5 + length);
      this.pending = rest.length ? [rest] : [];
      this.pendingBytes = rest.length;
    }
    return out;
  }
}

/** The 5-byte prefix of an uncompressed gRPC message of `length` bytes. */
export function messagePrefix(length: number): Buffer {
  const prefix = Buffer.allocUnsafe(5);
  prefix[0] = 0;
  prefix.writeUInt32BE(length, 1);
  return prefix;
}

/** `buffer` in views of at most `size` bytes (no copy). */
export function chunks(buffer: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < buffer.length; at += size) out.push(buffer.subarray(at, at + size));
  return out;
}

/**
 * One Sync call to a slave, as the link sees it: `metadata` (the slave's handshake headers),
 * `data` (each SyncResponse), then `end` (closed with OK) or `error` (a StreamError), once.
 */
export class SyncStream extends EventEmitter<{
  metadata: [Metadata];
  data: [SyncResponse];
  error: [StreamError];
  end: [];
}> {
  private done = false;
  private trailers: { code: status; details: string } | undefined;

  constructor(
    private readonly request: ClientHttp2Stream,
    maxMessageBytes: number,
    private readonly pieceBytes: number,
    /** Why the connection went, when it did (a keepalive that went unanswered, a refused connect). */
    private readonly connectionFailure: () => StreamError | undefined,
  ) {
    super();
    const reader = new MessageReader(maxMessageBytes);
    request.on("response", (headers) => {
      const httpStatus = Number(headers[":status"]);
      if (httpStatus !== 200) {
        this.end(streamError(statusOfHttp(httpStatus), `Received HTTP status code ${httpStatus}`));
        return;
      }
      // A trailers-only response: the status comes with the headers, no handshake to read.
      this.trailers = statusOfTrailers(headers);
      if (!this.trailers) this.emit("metadata", Metadata.fromHttp2Headers(headers));
    });
    request.on("data", (chunk: Buffer) => {
      if (this.done) return;
      try {
        for (const message of reader.push(chunk)) this.emit("data", SyncResponse.decode(message));
      } catch (err) {
        this.end(
          (err as StreamError).code !== undefined
            ? (err as StreamError)
            : streamError(status.INTERNAL, `cannot decode the slave's answer: ${(err as Error).message}`),
        );
      }
    });
    // The call ends with the slave's status once it and every answer before it are read, even
    // while this side is still writing: a slave that refuses a snapshot (too large, say) answers
    // before it has read all of it, and reads no more, so the write would wait on flow control.
    const settle = () => {
      if (this.trailers && request.readableEnded) this.end(this.statusError());
    };
    request.on("trailers", (headers: IncomingHttpHeaders) => {
      this.trailers = statusOfTrailers(headers) ?? { code: status.UNKNOWN, details: "no grpc-status in the trailers" };
      settle();
    });
    request.on("end", settle);
    // 'close' follows and says how the stream ended; this says why, when the connection failed.
    let requestError: (Error & { cause?: unknown }) | undefined;
    request.on("error", (err: Error) => {
      requestError = err;
    });
    request.on("close", () => {
      if (this.trailers) {
        this.end(this.statusError());
        return;
      }
      const cause = requestError?.cause instanceof Error ? requestError.cause : requestError;
      this.end(
        this.connectionFailure() ??
          (cause && (cause as Error & { code?: string }).code !== "ERR_HTTP2_STREAM_ERROR"
            ? streamError(status.UNAVAILABLE, cause.message)
            : request.rstCode !== undefined && request.rstCode !== h2.NGHTTP2_NO_ERROR
              ? streamError(statusOfReset(request.rstCode), `Received RST_STREAM with code ${request.rstCode}`)
              : streamError(status.UNAVAILABLE, "Connection dropped")),
      );
    });
  }

  /**
   * Writes one message (a serialized SyncRequest) as it is: no copy is made of it. It goes to
   * the connection `pieceBytes` at a time, each once the one before was written (see
   * ConnectionOptions.pieceBytes).
   */
  write(message: Buffer): void {
    if (this.done) return;
    this.queue.push(messagePrefix(message.length), ...chunks(message, this.pieceBytes));
    if (!this.writing) this.writeNext();
  }

  private queue: Buffer[] = [];
  private writing = false;

  private writeNext(): void {
    const piece = this.queue.shift();
    if (!piece || this.done) {
      this.writing = false;
      this.queue = [];
      return;
    }
    this.writing = true;
    this.request.write(piece, () => this.writeNext());
  }

  cancel(): void {
    this.end(streamError(status.CANCELLED, "Cancelled on client"));
  }

  /** The slave's status as an error; undefined when it is OK. */
  private statusError(): StreamError | undefined {
    const { code, details } = this.trailers!;
    return code === status.OK ? undefined : streamError(code, details);
  }

  /** Ends the call once (`end`, or `error` with `err`), dropping whatever is still to be written. */
  private end(err?: StreamError): void {
    if (this.done) return;
    this.done = true;
    if (!this.request.destroyed) this.request.close(h2.NGHTTP2_CANCEL);
    // Never inside the caller's own call (cancel from a timer, a handler): as grpc-js does.
    process.nextTick(() => (err ? this.emit("error", err) : this.emit("end")));
  }
}

export interface SlaveEndpoint {
  /** host:port, the host as the URL gave it (an IPv6 address in brackets). */
  address: string;
  /** The host the certificate must name: a name or an IP address, without brackets. */
  host: string;
  /** Over TLS, trusting `caFile` (the system's CAs when undefined); plaintext when undefined. */
  tls: { caFile: string | undefined } | undefined;
}

export interface ConnectionOptions {
  maxMessageBytes: number;
  keepalive: { timeMs: number; timeoutMs: number };
  /**
   * How much of a message is handed to the connection at a time (Infinity: all of it). A TLS
   * connection keeps native buffers as large as the largest write it was handed: about 64 KB
   * more per connection after one 104 KiB write than after 16 KiB pieces, measured. Each piece
   * waits for a turn of the event loop, though (see writePieceBytes in dispatcher.ts).
   */
  pieceBytes: number;
}

/**
 * One link's HTTP/2 connection to its slave and the Sync call on it, written over `node:http2`
 * rather than a grpc-js channel. A slave link is one long stream that writes the same bytes as
 * every other link: grpc-js copies each message into a framed buffer of its own per call (its
 * identity "compression") and keeps the last one written referenced until the next (its
 * RetryingCall frees sent messages before it advances past the one just written), so a master
 * with N slaves held N copies of the last snapshot; with its channel, resolver, load balancer,
 * subchannel and call stack per link besides. Here a message is the shared snapshot bytes after
 * a 5-byte prefix, referenced only until the socket has taken it.
 *
 * Over TLS, the server name (SNI) is sent only for a host name (RFC 6066 does not allow an IP
 * address, and Node warns, DEP0123); the certificate is checked against the host, IP or name:
 * an IP URL needs the IP in the certificate's SANs. The TLS context is shared by every link
 * trusting the same CA (see `sharedSecureContext`).
 *
 * Keepalive: an HTTP/2 PING every `keepalive.timeMs`; one unanswered for `keepalive.timeoutMs`
 * ends the connection, and its stream with UNAVAILABLE "Connection dropped".
 */
export class SlaveConnection {
  private session: ClientHttp2Session | undefined;
  private readonly sockets = new Set<Socket>();
  private failure: StreamError | undefined;
  private pinger: NodeJS.Timeout | undefined;

  constructor(
    private readonly endpoint: SlaveEndpoint,
    private readonly opts: ConnectionOptions,
  ) {}

  /** Opens the Sync call with `metadata` as its headers, on a connection made for it when there is none. */
  open(metadata: Metadata): SyncStream {
    const session = this.session && !this.session.closed && !this.session.destroyed ? this.session : this.connect();
    const request = session.request(
      {
        [h2.HTTP2_HEADER_METHOD]: "POST",
        [h2.HTTP2_HEADER_PATH]: SYNC_PATH,
        [h2.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
        [h2.HTTP2_HEADER_TE]: "trailers",
        ...metadata.toHttp2Headers(),
      },
      { endStream: false },
    );
    return new SyncStream(request, this.opts.maxMessageBytes, this.opts.pieceBytes, () =>
      this.session === session ? this.failure : undefined,
    );
  }

  private connect(): ClientHttp2Session {
    this.close();
    this.failure = undefined;
    const { address, host, tls } = this.endpoint;
    const session = http2Connect(`${tls ? "https" : "http"}://${address}`, {
      createConnection: (authority: URL) => this.socket(authority, host, tls),
      settings: { enablePush: false },
    });
    this.session = session;
    session.on("error", (err: Error & { code?: string }) => {
      if (this.session !== session) return;
      this.failure ??= streamError(status.UNAVAILABLE, err.message);
    });
    session.once("connect", () => this.keepPinging(session));
    session.once("close", () => {
      if (this.session === session) {
        clearInterval(this.pinger);
        this.failure ??= streamError(status.UNAVAILABLE, "Connection dropped");
      }
    });
    return session;
  }

  private socket(authority: URL, host: string, tls: SlaveEndpoint["tls"]): Socket {
    const port = Number(authority.port) || (tls ? 443 : 80);
    const socket = tls
      ? tlsConnect({
          host,
          port,
          secureContext: sharedSecureContext(tls.caFile),
          servername: isIP(host) ? undefined : host,
          ALPNProtocols: ["h2"],
        })
      : netConnect({ host, port });
    // No Nagle delay: the last segment of a snapshot, and every ping, go out at once (as
    // grpc-js's own transport does).
    socket.setNoDelay(true);
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    return socket;
  }

  private keepPinging(session: ClientHttp2Session): void {
    const { timeMs, timeoutMs } = this.opts.keepalive;
    clearInterval(this.pinger);
    this.pinger = setInterval(() => {
      if (session.destroyed || session.closed) return;
      const deadline = setTimeout(() => {
        if (this.session !== session) return;
        this.failure ??= streamError(status.UNAVAILABLE, "Connection dropped: no keepalive answer", true);
        session.destroy();
      }, timeoutMs);
      try {
        session.ping((err) => {
          clearTimeout(deadline);
          if (err && this.session === session && !session.destroyed) {
            this.failure ??= streamError(status.UNAVAILABLE, `Connection dropped: ${err.message}`);
            session.destroy();
          }
        });
      } catch {
        clearTimeout(deadline);
      }
    }, timeMs);
  }

  /** Ends the connection and its socket, in whatever state they are (a handshake included). */
  close(): void {
    clearInterval(this.pinger);
    this.pinger = undefined;
    const session = this.session;
    this.session = undefined;
    session?.destroy();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }
}
