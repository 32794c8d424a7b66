// Servers and clients for L4 proxy hosts: what stands behind Caddy's layer4 listeners (TCP
// echo, TLS servers, UDP echo, a PROXY protocol reader) and what talks to those listeners.
import dgram from "node:dgram";
import net from "node:net";
import tls from "node:tls";

export interface L4Server {
  port: number;
  close: () => Promise<void>;
}

/** Listens on `host` (a free port), and closes every open connection on close. */
async function listen(server: net.Server, host = "127.0.0.1"): Promise<L4Server> {
  const sockets = new Set<net.Socket>();
  server.on("connection", (s: net.Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("secureConnection", (s: net.Socket) => s.on("error", () => undefined));
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A TCP server that sends back every byte it receives. */
export function startTcpEcho(host?: string): Promise<L4Server> {
  return listen(
    net.createServer((s) => s.on("error", () => undefined).pipe(s)),
    host,
  );
}

/** A TLS server (certificate and key in PEM) that greets every client with `name` and closes. */
export function startTlsGreeter(name: string, cert: string, key: string): Promise<L4Server> {
  return listen(tls.createServer({ cert, key }, (s) => s.end(name)));
}

/** A UDP server on 127.0.0.1 that answers each datagram with `name:` and the datagram. */
export async function startUdpEcho(name: string): Promise<L4Server> {
  const sock = dgram.createSocket("udp4");
  sock.on("message", (msg, rinfo) =>
    sock.send(Buffer.concat([Buffer.from(`${name}:`), msg]), rinfo.port, rinfo.address),
  );
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
  return { port: sock.address().port, close: () => new Promise<void>((r) => sock.close(() => r())) };
}

/** A UDP port that was free a moment ago on 127.0.0.1. */
export async function freeUdpPort(): Promise<number> {
  const sock = dgram.createSocket("udp4");
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
  const port = sock.address().port;
  await new Promise<void>((r) => sock.close(() => r()));
  return port;
}

const V2_SIGNATURE = Buffer.from("0d0a0d0a000d0a515549540a", "hex");

export interface ProxyHeader {
  version: 1 | 2;
  /** The client's address as the header tells it, "ip:port". */
  source: string;
}

/**
 * Parses a PROXY protocol header (v1 text or v2 binary, TCP over IPv4 or IPv6) at the start
 * of `buf`: the header, "incomplete" when more bytes are needed, or undefined when `buf`
 * does not start with one.
 */
export function parseProxyHeader(buf: Buffer): ProxyHeader | "incomplete" | undefined {
  const v1 = Buffer.from("PROXY ");
  if (buf.subarray(0, v1.length).equals(v1.subarray(0, Math.min(buf.length, v1.length)))) {
    const end = buf.indexOf("\r\n");
    if (end < 0) return buf.length < 108 ? "incomplete" : undefined;
    const [, proto, src, , sport] = buf.subarray(0, end).toString("latin1").split(" ");
    if (proto !== "TCP4" && proto !== "TCP6") return undefined;
    return { version: 1, source: proto === "TCP6" ? `[${src}]:${sport}` : `${src}:${sport}` };
  }
  if (
    buf.subarray(0, V2_SIGNATURE.length).equals(V2_SIGNATURE.subarray(0, Math.min(buf.length, V2_SIGNATURE.length)))
  ) {
    if (buf.length < 16) return "incomplete";
    const len = buf.readUInt16BE(14);
    if (buf.length < 16 + len) return "incomplete";
    const family = buf[13]! >> 4;
    const a = buf.subarray(16, 16 + len);
    if (family === 1) return { version: 2, source: `${[...a.subarray(0, 4)].join(".")}:${a.readUInt16BE(8)}` };
    if (family === 2) {
      const groups = Array.from({ length: 8 }, (_, i) => a.readUInt16BE(i * 2).toString(16));
      return { version: 2, source: `[${net.isIPv6(groups.join(":")) ? groups.join(":") : "?"}]:${a.readUInt16BE(32)}` };
    }
    return undefined;
  }
  return undefined;
}

/**
 * A TCP server that reads the PROXY protocol header its client sends first and answers one
 * line with what it saw: "v1 127.0.0.1:40000\n", "v2 203.0.113.7:4444\n", or "no header\n".
 */
export function startProxyProtocolReader(): Promise<L4Server> {
  return listen(
    net.createServer((s) => {
      let buf = Buffer.alloc(0);
      s.on("error", () => undefined);
      s.on("data", (d) => {
        buf = Buffer.concat([buf, d]);
        const h = parseProxyHeader(buf);
        if (h === "incomplete") return;
        s.end(h ? `v${h.version} ${h.source}\n` : "no header\n");
      });
    }),
  );
}

/**
 * Connects to 127.0.0.1:`port`, writes `send`, and reads until `until` says the answer is
 * complete (a byte count, or a test of what arrived) or the peer closes.
 */
export function tcpExchange(
  port: number,
  send: Buffer | string,
  until: number | ((data: Buffer) => boolean),
  timeoutMs = 5000,
): Promise<{ data: Buffer; localPort: number }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const s = net.connect({ host: "127.0.0.1", port });
    let localPort = 0;
    const done = () => {
      s.destroy();
      resolve({ data: Buffer.concat(chunks), localPort });
    };
    s.setTimeout(timeoutMs, () =>
      s.destroy(new Error(`no answer from port ${port} within ${timeoutMs} ms (got ${got} bytes)`)),
    );
    s.on("connect", () => {
      localPort = s.localPort!;
      s.write(send);
    });
    s.on("data", (d) => {
      chunks.push(d);
      got += d.length;
      if (typeof until === "number" ? got >= until : until(Buffer.concat(chunks))) done();
    });
    s.on("end", done);
    s.on("error", reject);
  });
}

/** A TLS handshake with `servername` on 127.0.0.1:`port`, verified against `ca` (PEM): what the server said and who it was. */
export function tlsHello(
  port: number,
  servername: string,
  ca: string,
  timeoutMs = 5000,
): Promise<{ data: string; subject: string }> {
  return new Promise((resolve, reject) => {
    let data = "";
    let secure = false;
    const s = tls.connect({ host: "127.0.0.1", port, servername, ca });
    s.on("secureConnect", () => (secure = true));
    s.setTimeout(timeoutMs, () => s.destroy(new Error(`no TLS answer for ${servername} within ${timeoutMs} ms`)));
    s.setEncoding("utf8");
    s.on("data", (d: string) => (data += d));
    s.on("end", () => {
      if (!secure) return s.destroy(new Error(`connection for ${servername} closed before the TLS handshake`));
      const subject = s.getPeerCertificate()?.subject?.CN ?? "";
      s.destroy();
      resolve({ data, subject: String(subject) });
    });
    s.on("error", reject);
  });
}

/** Sends `payload` to 127.0.0.1:`port` over UDP and resolves with the first answer (rejects after `timeoutMs`). */
export function udpExchange(port: number, payload: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket("udp4");
    const finish = (err: Error | undefined, answer?: string) => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(
      () => finish(new Error(`no UDP answer from port ${port} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on("message", (msg) => finish(undefined, msg.toString()));
    sock.on("error", (e) => finish(e));
    sock.send(payload, port, "127.0.0.1");
  });
}

/** Whether a TCP connection to 127.0.0.1:`port` is refused (nothing listens). */
export function tcpRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.on("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"));
  });
}
