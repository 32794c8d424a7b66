// Settings end to end: gRPC API -> config-service -> renderer -> the project's Caddy; and L4
// proxy hosts on the fallback, Debian's Caddy 2.6.2, which has no layer4 module.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import {
  Certificate,
  CertificateType,
  CreateApiTokenRequest,
  L4Protocol,
  L4ProxyHost,
  ProxyHost,
  Role,
  Settings,
  type DeepPartial,
} from "@cpm/proto";
import { caddyAdminRequest } from "@cpm/core";
import { unary } from "@cpm/grpc-kit";
import { expectStatus } from "../support/grpc.ts";
import { Instance, stopCleanly } from "../support/instance.ts";
import { freePort, serveHttp, startUpstream } from "../support/net.ts";
import { waitFor } from "../support/wait.ts";

/** The parts of Caddy's running config these tests read. */
interface CaddyHandler {
  handler: string;
  transport?: unknown;
}
interface CaddyRoute {
  match?: { host?: string[] }[];
  handle: CaddyHandler[];
}
interface RunningConfig {
  apps: { http: { servers: Record<string, { routes: CaddyRoute[] } | undefined> }; layer4?: unknown };
}

/** GET over HTTPS with SNI and Host `host` (unverified); the response headers matter here. */
function httpsGet(port: number, host: string): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: "127.0.0.1",
        port,
        path: "/",
        servername: host,
        headers: { Host: host },
        rejectUnauthorized: false,
        timeout: 5000,
        agent: false,
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

/** GET through Caddy's HTTP port with a generous client timeout (for an upstream that stalls). */
function slowGet(port: number, host: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, path: "/", headers: { Host: host }, timeout: timeoutMs, agent: false },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** An upstream that accepts requests and never answers them. */
const startStalledUpstream = () => serveHttp(() => undefined);

/** API calls and checks against one instance. */
function api(inst: Instance) {
  return {
    createHost: (h: DeepPartial<ProxyHost>) =>
      unary(inst.config.createProxyHost.bind(inst.config), { proxyHost: ProxyHost.fromPartial(h) }, inst.adminToken),
    createL4: (h: DeepPartial<L4ProxyHost>) =>
      unary(
        inst.config.createL4ProxyHost.bind(inst.config),
        { l4ProxyHost: L4ProxyHost.fromPartial(h) },
        inst.adminToken,
      ),
    updateL4: (h: L4ProxyHost) =>
      unary(inst.config.updateL4ProxyHost.bind(inst.config), { l4ProxyHost: h }, inst.adminToken),
    deleteL4: (id: string) => unary(inst.config.deleteL4ProxyHost.bind(inst.config), { id }, inst.adminToken),
    /** The config Caddy runs. */
    running: async (): Promise<RunningConfig> => {
      // Caddy restarts its admin endpoint on every load: a read that meets a load still in
      // progress (the renderer's, for a write just made) has its connection reset; read again.
      for (let attempt = 1; ; attempt++) {
        try {
          const res = await caddyAdminRequest(`http://127.0.0.1:${inst.ports.caddyAdmin}/config/`);
          assert.equal(res.status, 200);
          return JSON.parse(res.body) as RunningConfig;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (attempt >= 20 || (code !== "ECONNRESET" && code !== "ECONNREFUSED")) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    /** Caddy runs `version` with no load error. */
    inSyncAt: async (version: number) => {
      const s = await inst.waitInSync();
      assert.equal(s.appliedVersion, version);
      assert.equal(s.lastError, "", `render status error: ${s.lastError}`);
      return s;
    },
  };
}

describe("settings on a real Caddy", () => {
  let inst: Instance;
  let up: Awaited<ReturnType<typeof startUpstream>>;
  let stalled: Awaited<ReturnType<typeof startStalledUpstream>>;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "cpm-e2e-settings-l4-"));
    up = await startUpstream("A");
    stalled = await startStalledUpstream();
    inst = await Instance.start({ name: "settings" });
  });
  after(async () => {
    await stopCleanly(inst);
    await up?.close();
    await stalled?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const createHost = (h: DeepPartial<ProxyHost>) => api(inst).createHost(h);
  const updateSettings = (st: DeepPartial<Settings>, token = inst.adminToken) =>
    unary(inst.config.updateSettings.bind(inst.config), { settings: Settings.fromPartial(st) }, token);
  const getSettings = async () =>
    (await unary(inst.config.getSettings.bind(inst.config), {}, inst.adminToken)).settings!;
  const running = () => api(inst).running();
  /** The reverse_proxy handler Caddy runs for `domain` (the route that proxies it; hosts proxied alike share one). */
  const runningProxy = (cfg: RunningConfig, domain: string): CaddyHandler => {
    const route = cfg.apps.http.servers.http?.routes.find(
      (r) => r.match?.[0]?.host?.includes(domain) && r.handle.some((h) => h.handler === "reverse_proxy"),
    );
    assert.ok(route, `no route proxies ${domain} in Caddy's running config`);
    const proxy = route.handle.find((h) => h.handler === "reverse_proxy");
    assert.ok(proxy);
    return proxy;
  };
  const inSyncAt = (version: number) => api(inst).inSyncAt(version);

  it("upstream timeouts from the settings reach Caddy's running config, and act", async () => {
    await createHost({ name: "app", domains: ["app.test"], upstreams: [`127.0.0.1:${up.port}`] });
    await createHost({ name: "stalls", domains: ["stalls.test"], upstreams: [`127.0.0.1:${stalled.port}`] });
    await inst.waitServes("app.test", /upstream=A/);
    assert.equal(
      runningProxy(await running(), "app.test").transport,
      undefined,
      "no settings: Caddy's default transport",
    );

    const r = await updateSettings({
      http: { upstreamDialTimeoutSeconds: 7, upstreamResponseHeaderTimeoutSeconds: 1 },
    });
    assert.deepEqual(r.settings!.http, {
      hstsMaxAgeSeconds: 31536000,
      upstreamDialTimeoutSeconds: 7,
      upstreamResponseHeaderTimeoutSeconds: 1,
    });
    await inSyncAt(r.configVersion);
    const t = runningProxy(await running(), "app.test").transport;
    assert.deepEqual(t, { protocol: "http", dial_timeout: "7s", response_header_timeout: "1s" });
    assert.deepEqual(runningProxy(await running(), "stalls.test").transport, t, "every host gets them");
    await inst.waitServes("app.test", /upstream=A/);

    // The stalled upstream never answers: Caddy gives up after the response header timeout
    // (the client waits far longer than that).
    const code = await slowGet(inst.ports.http, "stalls.test", 60_000);
    assert.ok(code === 502 || code === 504, `Caddy answers with a gateway error, got ${code}`);

    // Back to the defaults: the transport goes away again.
    const back = await updateSettings({});
    await inSyncAt(back.configVersion);
    assert.equal(runningProxy(await running(), "app.test").transport, undefined);
  });

  it("the HSTS max-age from the settings is what Caddy sends over HTTPS", async () => {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "hsts.key",
        "-out",
        "hsts.crt",
        "-days",
        "2",
        "-subj",
        "/CN=hsts.test",
        "-addext",
        "subjectAltName=DNS:hsts.test",
      ],
      { cwd: dir, stdio: "pipe" },
    );
    const cert = (
      await unary(
        inst.config.createCertificate.bind(inst.config),
        {
          certificate: Certificate.fromPartial({
            name: "hsts",
            type: CertificateType.CERTIFICATE_TYPE_IMPORTED,
            certificatePem: readFileSync(path.join(dir, "hsts.crt"), "utf8"),
            privateKeyPem: readFileSync(path.join(dir, "hsts.key"), "utf8"),
          }),
        },
        inst.adminToken,
      )
    ).certificate!;
    await createHost({
      name: "hsts",
      domains: ["hsts.test"],
      upstreams: [`127.0.0.1:${up.port}`],
      certificateId: cert.id,
      hstsEnabled: true,
      hstsSubdomains: true,
    });
    await inSyncAt(await inst.version());
    const before = await waitFor(
      async () => {
        const x = await httpsGet(inst.ports.https, "hsts.test");
        return x.status === 200 ? x : undefined;
      },
      "HTTPS for hsts.test",
      30_000,
      200,
    );
    assert.equal(
      before.headers["strict-transport-security"],
      "max-age=31536000; includeSubDomains",
      "default: one year",
    );

    const r = await updateSettings({ http: { hstsMaxAgeSeconds: 600 } });
    await inSyncAt(r.configVersion);
    const after = await waitFor(
      async () => {
        const x = await httpsGet(inst.ports.https, "hsts.test");
        return x.headers["strict-transport-security"] === "max-age=600; includeSubDomains" ? x : undefined;
      },
      "the new HSTS max-age",
      30_000,
      200,
    );
    assert.equal(after.status, 200);
    assert.ok(JSON.stringify(await running()).includes("max-age=600; includeSubDomains"));
    await updateSettings({});
  });

  it("refuses bad settings with INVALID_ARGUMENT naming the field and a viewer's update with PERMISSION_DENIED", async () => {
    const v = await inst.version();
    const before = await getSettings();
    const d = await expectStatus(
      updateSettings({ http: { upstreamDialTimeoutSeconds: 100000 } }),
      status.INVALID_ARGUMENT,
    );
    assert.match(d, /^settings\.http\.upstream_dial_timeout_seconds: /);
    const d2 = await expectStatus(
      updateSettings({ acme: { caUrl: "http://acme.example.com/dir" } }),
      status.INVALID_ARGUMENT,
    );
    assert.match(d2, /^settings\.acme\.ca_url: /);
    const { secret } = await unary(
      inst.account.createApiToken.bind(inst.account),
      CreateApiTokenRequest.fromPartial({ name: "viewer", role: Role.ROLE_VIEWER }),
      inst.adminToken,
    );
    await expectStatus(updateSettings({ general: { acmeEmail: "v@example.com" } }, secret), status.PERMISSION_DENIED);
    assert.equal(await inst.version(), v);
    assert.deepEqual(await getSettings(), before);
  });
});

const DEBIAN_CADDY = "/usr/bin/caddy";

describe(
  "L4 proxy hosts on Debian's Caddy (no layer4), the fallback",
  { skip: existsSync(DEBIAN_CADDY) ? false : `${DEBIAN_CADDY} not found (apt-get install caddy)` },
  () => {
    let inst: Instance;
    let up: Awaited<ReturnType<typeof startUpstream>>;

    before(async () => {
      up = await startUpstream("A");
      // CPM_CADDY_LAYER4 is unset: the renderer asks this Caddy (list-modules).
      inst = await Instance.start({ name: "l4-debian-caddy", env: { CPM_CADDY_BIN: DEBIAN_CADDY } });
      await api(inst).createHost({ name: "app", domains: ["app.test"], upstreams: [`127.0.0.1:${up.port}`] });
    });
    after(async () => {
      await stopCleanly(inst);
      await up?.close();
    });

    const createL4 = (h: DeepPartial<L4ProxyHost>) => api(inst).createL4(h);
    const updateL4 = (h: L4ProxyHost) => api(inst).updateL4(h);
    const deleteL4 = (id: string) => api(inst).deleteL4(id);
    const running = () => api(inst).running();
    const inSyncAt = (version: number) => api(inst).inSyncAt(version);

    it("L4 hosts on a Caddy without layer4: HTTP hosts keep being served, the render status warns, the renderer stays in sync", async () => {
      await inst.waitServes("app.test", /upstream=A/);
      const tcpPort = await freePort();
      const a = await createL4({
        name: "postgres",
        listenAddress: `127.0.0.1:${tcpPort}`,
        upstreams: [`127.0.0.1:${up.port}`],
      });
      let s = await inSyncAt(a.configVersion);
      assert.deepEqual(
        s.warnings.filter((w) => /L4/.test(w)),
        ["1 L4 proxy host not served: this Caddy has no layer4 module (caddy-l4)"],
      );
      await inst.waitServes("app.test", /upstream=A/);
      const cfg = await running();
      assert.equal(cfg.apps.layer4, undefined, "Caddy runs no layer4 app");
      assert.ok(cfg.apps.http.servers.http, "the HTTP server is there");

      const b = await createL4({
        name: "dns",
        protocol: L4Protocol.L4_PROTOCOL_UDP,
        listenAddress: ":5353",
        upstreams: ["127.0.0.1:53"],
      });
      s = await inSyncAt(b.configVersion);
      assert.deepEqual(
        s.warnings.filter((w) => /L4/.test(w)),
        ["2 L4 proxy hosts not served: this Caddy has no layer4 module (caddy-l4)"],
      );

      // A host on the same listener as another catch-all is refused; nothing changes.
      const v = await inst.version();
      const details = await expectStatus(
        createL4({ name: "second", listenAddress: `127.0.0.1:${tcpPort}`, upstreams: ["127.0.0.1:1"] }),
        status.ALREADY_EXISTS,
      );
      assert.match(details, new RegExp(`tcp/127\\.0\\.0\\.1:${tcpPort}`));
      assert.equal(await inst.version(), v);

      // Disabling one and deleting the other clear the warning; HTTP is served throughout.
      const off = await updateL4({ ...a.l4ProxyHost!, enabled: false });
      s = await inSyncAt(off.configVersion);
      assert.deepEqual(
        s.warnings.filter((w) => /L4/.test(w)),
        ["1 L4 proxy host not served: this Caddy has no layer4 module (caddy-l4)"],
      );
      const del = await deleteL4(b.l4ProxyHost!.id);
      s = await inSyncAt(del.configVersion);
      assert.deepEqual(
        s.warnings.filter((w) => /L4/.test(w)),
        [],
      );
      await inst.waitServes("app.test", /upstream=A/);
    });
  },
);
