import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import { Client, credentials, Metadata, type ChannelCredentials } from "@grpc/grpc-js";

/**
 * Raw clients for hostile tests: calls any method by path with bytes we choose, frames a
 * gRPC message by hand, and speaks garbage to a port. Nothing here is a fake: every byte
 * goes to the real server.
 */

export interface CallResult {
  code: number;
  details: string;
}

/** Calls a unary or server-streaming method by path with a raw protobuf body; resolves with the final status. */
export function callRaw(
  address: string,
  path: string,
  body: Buffer,
  opts: { token?: string; creds?: ChannelCredentials; serverStream?: boolean; timeoutMs?: number } = {},
): Promise<CallResult> {
  const client = new Client(address, opts.creds ?? credentials.createInsecure());
  const md = new Metadata();
  if (opts.token !== undefined) md.set("authorization", `Bearer ${opts.token}`);
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  const ser = (b: Buffer) => b;
  const de = (b: Buffer) => b;
  return new Promise((resolve) => {
    const done = (r: CallResult) => {
      client.close();
      resolve(r);
    };
    if (opts.serverStream) {
      const call = client.makeServerStreamRequest(path, ser, de, body, md, { deadline });
      // A stream that was admitted sends something (or stays open): cancel after the first message.
      call.on("data", () => call.cancel());
      call.on("error", (e: { code: number; details: string }) => done({ code: e.code, details: e.details }));
      call.on("end", () => done({ code: 0, details: "" }));
      return;
    }
    client.makeUnaryRequest(path, ser, de, body, md, { deadline }, (err) =>
      done(err ? { code: err.code, details: err.details } : { code: 0, details: "" }),
    );
  });
}

export interface FrameResult {
  /** grpc-status the server sent (-1: none before the connection ended). */
  status: number;
  message: string;
  /** Body bytes written when the status arrived. */
  bytesWritten: number;
}

/**
 * Opens an HTTP/2 stream to `path`, announces a gRPC message of `announced` bytes, and writes
 * its body in 256 KiB chunks until the server answers or `maxWrite` bytes are out. Shows
 * whether the server refuses before reading the whole message.
 */
export function sendAnnouncedMessage(
  url: string,
  path: string,
  announced: number,
  opts: { token?: string; ca?: Buffer; maxWrite?: number; compressedFlag?: boolean; timeoutMs?: number } = {},
): Promise<FrameResult> {
  const maxWrite = opts.maxWrite ?? announced;
  return new Promise((resolve) => {
    const session = http2.connect(url, opts.ca ? { ca: opts.ca, servername: "localhost" } : {});
    let written = 0;
    let settled = false;
    const finish = (status: number, message: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve({ status, message, bytesWritten: written });
    };
    const timer = setTimeout(() => finish(-1, "timeout"), opts.timeoutMs ?? 15_000);
    session.on("error", (e: Error) => finish(-1, e.message));
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
    };
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    const req = session.request(headers);
    const onStatus = (h: http2.IncomingHttpHeaders) => {
      const s = h["grpc-status"];
      if (s !== undefined) finish(Number(s), decodeURIComponent(String(h["grpc-message"] ?? "")));
    };
    req.on("response", onStatus);
    req.on("trailers", onStatus);
    req.on("close", () => finish(-1, `stream closed (rst code ${req.rstCode})`));
    req.on("error", () => undefined);
    const header = Buffer.alloc(5);
    header.writeUInt8(opts.compressedFlag ? 1 : 0, 0);
    header.writeUInt32BE(announced, 1);
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    const pump = () => {
      while (!settled && written < maxWrite) {
        const n = Math.min(chunk.length, maxWrite - written);
        written += n;
        if (!req.write(chunk.subarray(0, n))) {
          req.once("drain", pump);
          return;
        }
      }
      if (!settled && written >= announced) req.end();
    };
    req.write(header);
    pump();
  });
}

/** Sends `bytes` on a raw TCP (or TLS) connection and reports how the server reacted. */
export function sendGarbage(
  port: number,
  bytes: Buffer,
  opts: { tls?: { ca: Buffer }; timeoutMs?: number } = {},
): Promise<{ closed: boolean; reply: Buffer }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket: net.Socket = opts.tls
      ? tls.connect({ host: "127.0.0.1", port, ca: opts.tls.ca, servername: "localhost", ALPNProtocols: ["h2"] }, () =>
          socket.write(bytes),
        )
      : net.connect({ host: "127.0.0.1", port }, () => socket.write(bytes));
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ closed, reply: Buffer.concat(chunks) });
    };
    const timer = setTimeout(() => finish(false), opts.timeoutMs ?? 5000);
    socket.on("data", (d) => chunks.push(d));
    socket.on("close", () => finish(true));
    socket.on("error", () => finish(true));
  });
}
