import http from "node:http";
import type net from "node:net";

/**
 * FAKE: a fault-injecting proxy in front of a real Caddy admin API. It forwards every
 * request unchanged, except that while `rejectLoads` is set it answers POST /load with
 * 400 and an error body, the way Caddy answers a config it cannot provision. It exists
 * because making a real Caddy refuse only one slave's copy of a valid config is not
 * otherwise possible.
 */
export class FakeCaddyAdminProxy {
  rejectLoads = false;
  rejected = 0;
  private server: http.Server | undefined;
  port = 0;

  constructor(private readonly targetPort: number) {}

  async start(port = 0): Promise<number> {
    this.server = http.createServer((req, res) => {
      if (this.rejectLoads && req.method === "POST" && req.url?.startsWith("/load")) {
        this.rejected++;
        req.resume();
        res.writeHead(400, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: "loading config: injected fault: provisioning app http failed" }));
        return;
      }
      const up = http.request(
        {
          host: "127.0.0.1",
          port: this.targetPort,
          path: req.url,
          method: req.method,
          headers: { ...req.headers, host: `127.0.0.1:${this.targetPort}` },
        },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on("error", () => {
        res.writeHead(502);
        res.end();
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => this.server!.listen(port, "127.0.0.1", r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  close(): Promise<void> {
    return new Promise((r) => {
      this.server?.closeAllConnections();
      this.server?.close(() => r());
    });
  }
}
