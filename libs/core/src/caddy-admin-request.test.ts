import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { caddyAdminRequest } from "./caddy-admin-request.ts";

describe("caddyAdminRequest", () => {
  let server: http.Server;
  let base: string;
  const seen: { method?: string; headers: http.IncomingHttpHeaders; body: string }[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        seen.push({ method: req.method, headers: req.headers, body });
        if (req.url === "/stall") return; // never answers
        // As current Caddy does: a Sec-Fetch-Mode header without an Origin is refused.
        if (req.headers["sec-fetch-mode"] && !req.headers.origin) {
          res.writeHead(403).end(JSON.stringify({ error: "client is not allowed to access from origin ''" }));
          return;
        }
        res.writeHead(req.url === "/load" ? 200 : 404).end(req.url === "/load" ? "" : "null");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test("POSTs a JSON body without the headers that trigger Caddy's origin check", async () => {
    const r = await caddyAdminRequest(`${base}/load`, { method: "POST", body: '{"apps":{}}' });
    assert.equal(r.status, 200);
    const req = seen.at(-1)!;
    assert.equal(req.method, "POST");
    assert.equal(req.body, '{"apps":{}}');
    assert.equal(req.headers["content-type"], "application/json");
    assert.equal(req.headers["sec-fetch-mode"], undefined);
  });

  test("GET returns status and body as they are", async () => {
    assert.deepEqual(await caddyAdminRequest(`${base}/config/x`), { status: 404, body: "null" });
  });

  test("rejects when nothing listens, and when no answer comes in time", async () => {
    await assert.rejects(caddyAdminRequest("http://127.0.0.1:1/config/"), /ECONNREFUSED/);
    await assert.rejects(caddyAdminRequest(`${base}/stall`, { timeoutMs: 200 }), /no answer within 200 ms/);
  });
});
