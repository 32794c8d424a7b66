import http from "node:http";
import net from "node:net";

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface HttpResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** GET through Caddy with a given Host header (what a browser would send). */
export function httpGet(port: number, host: string, path = "/", headers: Record<string, string> = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method: "GET", headers: { Host: host, ...headers }, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
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
