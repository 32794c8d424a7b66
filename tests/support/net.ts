import http from "node:http";
import net from "node:net";
import { readFileSync } from "node:fs";

/**
 * Where freePort looks: below the kernel's ephemeral range (ip_local_port_range), which the
 * source ports of outgoing connections come from. A port handed out for a service to bind a
 * moment later could otherwise be taken meanwhile by any connection on the machine (the tests
 * poll Caddy with a new connection every millisecond), and the service would fail to listen.
 */
function portRange(): { low: number; high: number } {
  let ephemeralLow = 32768;
  try {
    ephemeralLow =
      Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || ephemeralLow;
  } catch {
    /* not Linux: the usual default */
  }
  const high = Math.max(2048, ephemeralLow - 1);
  return { low: Math.max(1024, high - 20_000), high };
}

/** Read once: the kernel setting does not change while the tests run. */
const PORT_RANGE = portRange();
const handedOut = new Set<number>();

/** Whether a listener can bind `port` on 127.0.0.1 now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, outside the ephemeral range (see
 * portRange), and not handed out before by this process.
 */
export async function freePort(): Promise<number> {
  const { low, high } = PORT_RANGE;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (handedOut.has(port)) continue;
    if (await bindable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port found between ${low} and ${high}`);
}

export interface HttpResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** GET through Caddy with a given Host header (what a browser would send). */
export function httpGet(
  port: number,
  host: string,
  path = "/",
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, path, method: "GET", headers: { Host: host, ...headers }, timeout: 5000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

export interface TestServer {
  port: number;
  /** Drops open connections and stops listening. */
  close: () => Promise<void>;
}

/** An HTTP server on `host` (on a free port) answering with `handler`. */
export async function serveHttp(handler: http.RequestListener, host = "127.0.0.1"): Promise<TestServer> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A test upstream on `host` that names itself and echoes what it received. */
export function startUpstream(name: string, host?: string): Promise<TestServer> {
  return serveHttp((req, res) => {
    res.setHeader("content-type", "text/plain");
    res.end(`upstream=${name} host=${req.headers.host} path=${req.url}\n`);
  }, host);
}
