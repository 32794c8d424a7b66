// The rendered HTTP layout through a real Caddy: one server on both ports (TLS on the HTTPS port
// only), class routes (redirect, websocket refusal, 404 over HTTPS without a certificate) and
// grouped proxy routes, with an exact name under another host's wildcard.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Certificate, CertificateType } from "@cpm/proto";
import { render } from "./index.ts";
import { CADDY, host, makeSelfSigned, snapshot } from "./test-support.ts";

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });

/** An upstream that answers with its name and the Host it was sent. */
async function upstream(name: string): Promise<{ port: number; close: () => void }> {
  const server = http.createServer((req, res) => res.end(`upstream=${name} host=${req.headers.host}`));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

interface Answer {
  status: number;
  body: string;
  location?: string;
  altSvc?: string;
}

function request(port: number, hostName: string, opts: { tls?: boolean; upgrade?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: hostName };
    // An Upgrade header without "Connection: upgrade": Caddy's matchers see it, the upstream gets a plain request.
    if (opts.upgrade) headers.upgrade = opts.upgrade;
    const common = { host: "127.0.0.1", port, path: "/p?q=1", headers, agent: false as const };
    const done = (res: http.IncomingMessage) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () =>
        resolve({ status: res.statusCode!, body, location: res.headers.location, altSvc: res.headers["alt-svc"] }),
      );
    };
    const req = opts.tls
      ? https.request({ ...common, servername: hostName, rejectUnauthorized: false }, done)
      : http.request(common, done);
    req.on("error", reject);
    req.end();
  });
}

describe("rendered HTTP layout in a real Caddy", { skip: existsSync(CADDY) ? false : `${CADDY} not found` }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), "cpm-render-live-"));
  let caddy: ChildProcess | undefined;
  let ports: { http: number; https: number; admin: number };
  const ups: { port: number; close: () => void }[] = [];

  before(async () => {
    const [a, b, c] = [await upstream("A"), await upstream("B"), await upstream("C")];
    ups.push(a, b, c);
    ports = { http: await freePort(), https: await freePort(), admin: await freePort() };
    const wild = makeSelfSigned(dir, "example.test", ["DNS:*.example.test"]);
    const s = snapshot({
      proxyHosts: [
        host("wild", ["*.example.test"], { certificateId: "c", sslForced: true, upstreams: [`127.0.0.1:${a.port}`] }),
        host("exact", ["b.example.test"], { allowWebsocket: true, upstreams: [`127.0.0.1:${b.port}`] }),
        host("twin", ["twin.test"], { upstreams: [`127.0.0.1:${c.port}`] }),
        host("twin2", ["twin2.test"], { upstreams: [`127.0.0.1:${c.port}`], preserveHostHeader: true }),
        host("twin3", ["twin3.test"], { upstreams: [`127.0.0.1:${c.port}`] }),
      ],
      certificates: [
        Certificate.fromPartial({
          id: "c",
          name: "wild",
          type: CertificateType.CERTIFICATE_TYPE_IMPORTED,
          domainNames: ["*.example.test"],
          certificatePem: wild.cert,
          privateKeyPem: wild.key,
        }),
      ],
    });
    const file = path.join(dir, "caddy.json");
    writeFileSync(
      file,
      render(s, {
        httpPort: ports.http,
        httpsPort: ports.https,
        adminListen: `127.0.0.1:${ports.admin}`,
        layer4: false,
        bindAddress: "127.0.0.1",
      }).json,
    );
    caddy = spawn(CADDY, ["run", "--config", file], {
      stdio: "ignore",
      env: {
        ...process.env,
        HOME: dir,
        XDG_DATA_HOME: path.join(dir, "data"),
        XDG_CONFIG_HOME: path.join(dir, "config"),
      },
    });
    for (let i = 0; ; i++) {
      const up = await request(ports.http, "unknown.test").then(
        () => true,
        () => false,
      );
      if (up) break;
      assert.equal(caddy.exitCode, null, "Caddy exited at start");
      // Up to 30 s: the first start of a freshly built binary on a busy machine can be slow.
      assert.ok(i < 600, "Caddy did not come up");
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  after(() => {
    caddy?.kill("SIGTERM");
    for (const u of ups) u.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("HTTPS forced: plain HTTP gets 308 to the HTTPS port, HTTPS reaches the wildcard's upstream", async () => {
    const r = await request(ports.http, "x.example.test");
    assert.equal(r.status, 308);
    assert.equal(r.location, `https://x.example.test:${ports.https}/p?q=1`);
    const s = await request(ports.https, "x.example.test", { tls: true });
    assert.equal(s.status, 200);
    assert.match(s.body, /^upstream=A host=127\.0\.0\.1:\d+$/, "Host rewritten to the upstream's address");
  });

  test("an exact name under that wildcard is its own host: no redirect, websockets allowed, 404 over HTTPS (no certificate)", async () => {
    const r = await request(ports.http, "b.example.test", { upgrade: "websocket" });
    assert.equal(r.status, 200);
    assert.match(r.body, /^upstream=B /);
    assert.equal((await request(ports.https, "b.example.test", { tls: true })).status, 404);
  });

  test("hosts grouped in one proxy route reach their upstream; a websocket upgrade is refused", async () => {
    for (const name of ["twin.test", "twin3.test"]) {
      const r = await request(ports.http, name);
      assert.equal(r.status, 200, name);
      assert.match(r.body, /^upstream=C host=127\.0\.0\.1:\d+$/, name);
    }
    assert.equal(
      (await request(ports.http, "twin2.test")).body,
      "upstream=C host=twin2.test",
      "preserve_host_header keeps the client's Host",
    );
    const ws = await request(ports.http, "TWIN.test", { upgrade: "WebSocket" });
    assert.equal(ws.status, 403);
    assert.equal(ws.body, "Websocket upgrades are not allowed for this host.\n");
  });

  test("HTTP/3 is advertised over HTTPS only", async () => {
    assert.match((await request(ports.https, "x.example.test", { tls: true })).altSvc ?? "", /h3=":\d+"/);
    assert.equal((await request(ports.http, "twin.test")).altSvc, undefined);
    assert.equal((await request(ports.http, "unknown.test")).altSvc, undefined);
  });

  test("unknown names get 404 on both ports; the HTTP port speaks no TLS", async () => {
    assert.equal((await request(ports.http, "unknown.test")).status, 404);
    assert.equal((await request(ports.https, "y.example.test", { tls: true })).status, 200);
    assert.equal(
      (await request(ports.https, "a.b.example.test", { tls: true })).status,
      404,
      "a wildcard stands for one label",
    );
    await assert.rejects(request(ports.http, "x.example.test", { tls: true }));
  });
});
