import http from "node:http";
import { gunzipSync } from "node:zlib";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ProxyHost } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { Instance, stopCleanly } from "../support/instance.ts";
import { serveHttp, type TestServer } from "../support/net.ts";
import { waitFor } from "../support/wait.ts";

/** A compressible upstream body of a few KB. */
const BODY = Array.from({ length: 150 }, (_, i) => `line ${i} of a response worth compressing\n`).join("");

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A GET through Caddy with Host `host` and `headers`, the body as the bytes that came (not decoded). */
function rawGet(port: number, host: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, path: "/", method: "GET", headers: { Host: host, ...headers }, timeout: 5000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

describe("proxy host compression: a real Caddy compresses a host's responses when asked to", () => {
  let inst: Instance;
  let upstream: TestServer;

  before(async () => {
    upstream = await serveHttp((_req, res) => {
      res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": Buffer.byteLength(BODY) });
      res.end(BODY);
    });
    inst = await Instance.start({ name: "compression" });
  });
  after(async () => {
    await stopCleanly(inst);
    await upstream?.close();
  });

  const create = (h: Partial<ProxyHost>) =>
    unary(inst.config.createProxyHost.bind(inst.config), { proxyHost: ProxyHost.fromPartial(h) }, inst.adminToken);
  const get = (host: string, headers: Record<string, string> = {}) => rawGet(inst.ports.http, host, headers);
  const GZIP = { "Accept-Encoding": "gzip" };

  it("answers Accept-Encoding: gzip with a gzip body that decompresses to the upstream's; off, the body as it came", async () => {
    const upstreams = [`127.0.0.1:${upstream.port}`];
    const zipped = (await create({ name: "zipped", domains: ["zipped.test"], upstreams, compression: true }))
      .proxyHost!;
    await create({ name: "plain", domains: ["plain.test"], upstreams });
    await inst.waitServes("zipped.test", /line 149 of/);
    await inst.waitServes("plain.test", /line 149 of/);
    await inst.waitInSync();

    const z = await get("zipped.test", GZIP);
    assert.equal(z.status, 200);
    assert.equal(z.headers["content-encoding"], "gzip");
    assert.ok(z.body.length < BODY.length / 4, `gzip body of ${z.body.length} bytes for ${BODY.length}`);
    assert.equal(gunzipSync(z.body).toString("utf8"), BODY);
    assert.match(String(z.headers.vary), /Accept-Encoding/i);

    // zstd is preferred when the client takes both.
    assert.equal((await get("zipped.test", { "Accept-Encoding": "gzip, zstd" })).headers["content-encoding"], "zstd");
    // A client that asks for nothing gets the body as it came.
    const identity = await get("zipped.test");
    assert.equal(identity.headers["content-encoding"], undefined);
    assert.equal(identity.body.toString("utf8"), BODY);

    const p = await get("plain.test", GZIP);
    assert.equal(p.status, 200);
    assert.equal(p.headers["content-encoding"], undefined);
    assert.equal(p.body.toString("utf8"), BODY);

    // Turned off: the same host answers uncompressed.
    await unary(
      inst.config.updateProxyHost.bind(inst.config),
      { proxyHost: { ...zipped, compression: false } },
      inst.adminToken,
    );
    await inst.waitInSync();
    const off = await waitFor(
      async () => {
        const r = await get("zipped.test", GZIP);
        return r.status === 200 && r.headers["content-encoding"] === undefined ? r : undefined;
      },
      "zipped.test served without compression",
      30_000,
    );
    assert.equal(off.body.toString("utf8"), BODY);
  });
});
