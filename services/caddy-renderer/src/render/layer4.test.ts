import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import {
  Certificate,
  CertificateType,
  L4Matcher,
  L4Protocol,
  L4ProxyHost,
  ProxyHost,
  ProxyProtocolVersion,
  Snapshot,
  type DeepPartial,
} from "@cpm/proto";
import { canonicalJson } from "@cpm/core";
import { findCaddyBinary, listsLayer4, probeLayer4 } from "../probe.ts";
import { render, type RenderOptions } from "./index.ts";
import {
  assertCaddyAccepts,
  CADDY,
  caddyValidate,
  cert as managed,
  DEBIAN_CADDY,
  goldenTest,
  makeSelfSigned,
  OPTS as WITHOUT_L4,
  runCaddy,
  shuffled,
  snapshot,
  parseConfig,
  type CaddyConfig,
  type L4Route,
  type L4Server,
} from "./test-support.ts";

const WITH_L4: RenderOptions = { ...WITHOUT_L4, layer4: true };
/** CPM_CADDY_BIND=127.0.0.1 */
const BOUND_L4: RenderOptions = { ...WITH_L4, bindAddress: "127.0.0.1" };

const { L4_PROTOCOL_UDP: UDP } = L4Protocol;
const { L4_MATCHER_TLS_SNI: SNI, L4_MATCHER_HTTP_HOST: HOST, L4_MATCHER_PROXY_PROTOCOL: PP } = L4Matcher;
const { PROXY_PROTOCOL_VERSION_V1: V1, PROXY_PROTOCOL_VERSION_V2: V2 } = ProxyProtocolVersion;

const l4 = (id: string, over: DeepPartial<L4ProxyHost> = {}) =>
  L4ProxyHost.fromPartial({
    id,
    name: `l4 ${id}`,
    listenAddress: ":5432",
    upstreams: [`${id}.internal:5432`],
    ...over,
  });
const web = (id: string, domains: string[]) =>
  ProxyHost.fromPartial({ id, name: `host ${id}`, domains, upstreams: [`${id}.internal:8080`] });
const imported = (id: string, domainNames: string[]) =>
  Certificate.fromPartial({
    id,
    name: `cert ${id}`,
    type: CertificateType.CERTIFICATE_TYPE_IMPORTED,
    domainNames,
    certificatePem: "PEM",
    privateKeyPem: "KEY",
  });

/** One golden case per feature, rendered with the layer4 module. */
const WITH: Record<string, Snapshot> = {
  "l4-none": snapshot({
    l4ProxyHosts: [l4("postgres", { upstreams: ["pg-1.internal:5432", "pg-2.internal:5432"] })],
  }),
  "l4-tls-sni": snapshot({
    l4ProxyHosts: [
      l4("fallback"),
      l4("db-a", { matcher: SNI, matcherValues: ["db-a.example.com", "*.a.example.com"] }),
      l4("db-b", { matcher: SNI, matcherValues: ["db-b.example.com"] }),
      l4("deep", { matcher: SNI, matcherValues: ["*.x.a.example.com"] }),
    ],
  }),
  "l4-http-host": snapshot({
    l4ProxyHosts: [
      l4("site-1", { listenAddress: ":8000", matcher: HOST, matcherValues: ["one.example.com"] }),
      l4("site-2", { listenAddress: ":8000", matcher: HOST, matcherValues: ["two.example.com", "*.two.example.com"] }),
    ],
  }),
  "l4-proxy-protocol": snapshot({
    l4ProxyHosts: [
      l4("from-lb", { listenAddress: ":6379", matcher: PP, proxyProtocolReceive: true }),
      l4("direct", { listenAddress: ":6379", proxyProtocolVersion: V1 }),
      l4("receive-send", { listenAddress: "127.0.0.1:7000", proxyProtocolReceive: true, proxyProtocolVersion: V2 }),
      l4("pass-through", { listenAddress: "127.0.0.1:7001", matcher: PP }),
    ],
  }),
  "l4-tls-termination": snapshot({
    l4ProxyHosts: [
      l4("managed", { listenAddress: ":6380", tlsTermination: true, certificateId: "cert-managed" }),
      l4("imported", {
        listenAddress: ":6381",
        matcher: SNI,
        matcherValues: ["imp.example.com"],
        tlsTermination: true,
        certificateId: "cert-imported",
        proxyProtocolVersion: V2,
      }),
    ],
    certificates: [
      managed("cert-managed", ["redis.example.com", "redis-2.example.com"]),
      imported("cert-imported", ["imp.example.com"]),
    ],
  }),
  "l4-udp": snapshot({
    l4ProxyHosts: [
      l4("dns", { protocol: UDP, listenAddress: ":53", upstreams: ["10.0.0.53:53", "10.0.0.54:53"] }),
      l4("syslog", {
        protocol: UDP,
        listenAddress: "[::1]:514",
        upstreams: ["[fd00::514]:514"],
        proxyProtocolVersion: V2,
      }),
      l4("dns-tcp", { listenAddress: ":53", upstreams: ["10.0.0.53:53"] }),
    ],
  }),
};

/** Golden cases rendered without the layer4 module. */
const WITHOUT: Record<string, Snapshot> = {
  "l4-without-layer4": snapshot({
    proxyHosts: [web("app", ["app.example.com"])],
    l4ProxyHosts: [
      l4("postgres"),
      l4("dns", { protocol: UDP, listenAddress: ":53" }),
      l4("off", { listenAddress: ":9999", enabled: false }),
      l4("tls", { listenAddress: ":6380", tlsTermination: true, certificateId: "cert-l4" }),
    ],
    certificates: [managed("cert-l4", ["l4.example.com"])],
  }),
};

/** Listeners with and without an address, rendered with a bind address. */
const BOUND_EXAMPLE = snapshot({
  l4ProxyHosts: [
    l4("any-address"),
    l4("dns", { protocol: UDP, listenAddress: ":53" }),
    l4("pinned", { listenAddress: "10.0.0.1:6432" }),
  ],
});

const cfg = (s: Snapshot, opts = WITH_L4): CaddyConfig => parseConfig(render(s, opts).json);
const servers = (s: Snapshot, opts = WITH_L4): Record<string, L4Server> => cfg(s, opts).apps.layer4.servers;
const handlers = (route: L4Route) => route.handle.map((h) => h.handler);

describe("layer4 golden files", () => {
  for (const [name, snap] of Object.entries(WITH)) goldenTest(name, () => render(snap, WITH_L4).json);
  for (const [name, snap] of Object.entries(WITHOUT)) goldenTest(name, () => render(snap, WITHOUT_L4).json);
  goldenTest("l4-bind-address", () => render(BOUND_EXAMPLE, BOUND_L4).json);
});

describe("layer4 rendering (Caddy with caddy-l4)", () => {
  test("no L4 hosts, or only disabled ones: no layer4 app and no warning", () => {
    for (const s of [snapshot(), snapshot({ l4ProxyHosts: [l4("off", { enabled: false })] })]) {
      const r = render(s, WITH_L4);
      assert.equal(parseConfig(r.json).apps.layer4, undefined);
      assert.deepEqual(r.warnings, []);
    }
  });

  test("NONE: one server per listener, every upstream dialed over the listener's protocol", () => {
    const s = servers(WITH["l4-none"]!);
    assert.deepEqual(Object.keys(s), ["l4-tcp-5432"]);
    assert.deepEqual(s["l4-tcp-5432"]!.listen, ["tcp/:5432"]);
    assert.deepEqual(s["l4-tcp-5432"]!.routes, [
      {
        handle: [
          { handler: "proxy", upstreams: [{ dial: ["tcp/pg-1.internal:5432"] }, { dial: ["tcp/pg-2.internal:5432"] }] },
        ],
      },
    ]);
    assert.deepEqual(render(WITH["l4-none"]!, WITH_L4).warnings, []);
  });

  test("TLS_SNI: hosts share the listener; exact names, then wildcards deepest first, the catch-all last", () => {
    const routes = servers(WITH["l4-tls-sni"]!)["l4-tcp-5432"]!.routes;
    assert.deepEqual(
      routes.map((r) => r.match?.[0]?.tls?.sni ?? "catch-all"),
      [["db-a.example.com"], ["db-b.example.com"], ["*.x.a.example.com"], ["*.a.example.com"], "catch-all"],
    );
    assert.deepEqual(routes[0]!.handle[0]!.upstreams, [{ dial: ["tcp/db-a.internal:5432"] }]);
    assert.deepEqual(
      routes[3]!.handle[0]!.upstreams,
      [{ dial: ["tcp/db-a.internal:5432"] }],
      "both name groups of db-a proxy to db-a",
    );
    assert.deepEqual(routes[4]!.handle[0]!.upstreams, [{ dial: ["tcp/fallback.internal:5432"] }]);
    assert.equal(routes[4]!.match, undefined);
  });

  test("HTTP_HOST: the http matcher takes a list of matcher sets with host", () => {
    const routes = servers(WITH["l4-http-host"]!)["l4-tcp-8000"]!.routes;
    assert.deepEqual(
      routes.map((r) => r.match),
      [
        [{ http: [{ host: ["one.example.com"] }] }],
        [{ http: [{ host: ["two.example.com"] }] }],
        [{ http: [{ host: ["*.two.example.com"] }] }],
      ],
    );
  });

  test("PROXY protocol: receive is a handler before the proxy; send is the proxy's version; the matcher comes before the catch-all", () => {
    const s = servers(WITH["l4-proxy-protocol"]!);
    assert.deepEqual(Object.keys(s).sort(), ["l4-tcp-127.0.0.1-7000", "l4-tcp-127.0.0.1-7001", "l4-tcp-6379"]);
    const shared = s["l4-tcp-6379"]!.routes;
    assert.deepEqual(shared[0]!.match, [{ proxy_protocol: {} }]);
    assert.deepEqual(handlers(shared[0]!), ["proxy_protocol", "proxy"]);
    assert.equal(shared[0]!.handle[1]!.proxy_protocol, undefined, "receiving does not mean sending");
    assert.equal(shared[1]!.match, undefined);
    assert.deepEqual(handlers(shared[1]!), ["proxy"]);
    assert.equal(shared[1]!.handle[0]!.proxy_protocol, "v1");
    const both = s["l4-tcp-127.0.0.1-7000"]!;
    assert.deepEqual(both.listen, ["tcp/127.0.0.1:7000"]);
    assert.deepEqual(handlers(both.routes[0]!), ["proxy_protocol", "proxy"]);
    assert.equal(both.routes[0]!.handle[1]!.proxy_protocol, "v2");
    const pass = s["l4-tcp-127.0.0.1-7001"]!.routes[0]!;
    assert.deepEqual(pass.match, [{ proxy_protocol: {} }]);
    assert.deepEqual(handlers(pass), ["proxy"], "without receive the header passes through to the upstream");
  });

  test("TLS termination: tls handler before the proxy; imported certificates pinned by tag, managed ones by SNI", () => {
    const s = servers(WITH["l4-tls-termination"]!);
    const m = s["l4-tcp-6380"]!.routes[0]!;
    assert.deepEqual(handlers(m), ["tls", "proxy"]);
    assert.deepEqual(m.handle[0]!.connection_policies, [{ default_sni: "redis.example.com" }]);
    const i = s["l4-tcp-6381"]!.routes[0]!;
    assert.deepEqual(i.match, [{ tls: { sni: ["imp.example.com"] } }]);
    assert.deepEqual(handlers(i), ["tls", "proxy"]);
    assert.deepEqual(i.handle[0]!.connection_policies, [
      { certificate_selection: { any_tag: ["cpm-cert-cert-imported"] } },
    ]);
    assert.equal(i.handle[1]!.proxy_protocol, "v2");
    // The certificates reach the tls app (render/tls.ts) because layer4 uses them.
    const tls = cfg(WITH["l4-tls-termination"]!).apps.tls;
    assert.ok(tls, "the tls app is rendered for L4 certificates");
    assert.ok(JSON.stringify(tls).includes("redis.example.com"));
    assert.ok(JSON.stringify(tls).includes("cpm-cert-cert-imported"));
  });

  test("UDP: udp/ listen and dial; TCP on the same port is another server", () => {
    const s = servers(WITH["l4-udp"]!);
    assert.deepEqual(s["l4-udp-53"]!.listen, ["udp/:53"]);
    assert.deepEqual(s["l4-udp-53"]!.routes[0]!.handle[0]!.upstreams, [
      { dial: ["udp/10.0.0.53:53"] },
      { dial: ["udp/10.0.0.54:53"] },
    ]);
    assert.deepEqual(s["l4-udp-[::1]-514"]!.listen, ["udp/[::1]:514"]);
    assert.deepEqual(s["l4-udp-[::1]-514"]!.routes[0]!.handle[0], {
      handler: "proxy",
      upstreams: [{ dial: ["udp/[fd00::514]:514"] }],
      proxy_protocol: "v2",
    });
    assert.deepEqual(s["l4-tcp-53"]!.listen, ["tcp/:53"]);
  });

  test("the HTTP config is the same with or without L4 hosts", () => {
    for (const snap of [...Object.values(WITH), ...Object.values(WITHOUT)]) {
      const a = cfg(snap);
      const b = cfg({ ...snap, l4ProxyHosts: [] });
      assert.deepEqual(a.apps.http, b.apps.http);
    }
  });

  test("a listener on this instance's HTTP, HTTPS, HTTP/3 or admin port is left out with a warning; the others are served", () => {
    const s = snapshot({
      l4ProxyHosts: [
        l4("on-http", { listenAddress: ":8080" }),
        l4("on-https", { listenAddress: "10.0.0.1:8443" }),
        l4("on-h3", { protocol: UDP, listenAddress: ":8443" }),
        l4("on-admin", { listenAddress: "0.0.0.0:2019" }),
        l4("beside-admin", { listenAddress: "10.0.0.1:2019" }),
        l4("udp-on-http", { protocol: UDP, listenAddress: ":8080" }),
        l4("fine", { listenAddress: ":5432" }),
      ],
    });
    const r = render(s, WITH_L4);
    assert.deepEqual(r.warnings, [
      'L4 proxy host "l4 on-admin" not served: tcp/0.0.0.0:2019 takes this instance\'s admin API port (port 2019)',
      'L4 proxy host "l4 on-h3" not served: udp/:8443 takes this instance\'s HTTPS port (HTTP/3) (port 8443)',
      'L4 proxy host "l4 on-http" not served: tcp/:8080 takes this instance\'s HTTP port (port 8080)',
      'L4 proxy host "l4 on-https" not served: tcp/10.0.0.1:8443 takes this instance\'s HTTPS port (port 8443)',
    ]);
    assert.deepEqual(Object.keys(parseConfig(r.json).apps.layer4.servers).sort(), [
      "l4-tcp-10.0.0.1-2019",
      "l4-tcp-5432",
      "l4-udp-8080",
    ]);
    // With every host taken, no layer4 app at all.
    const none = render(snapshot({ l4ProxyHosts: [l4("on-http", { listenAddress: ":8080" })] }), WITH_L4);
    assert.equal(parseConfig(none.json).apps.layer4, undefined);
    assert.equal(none.warnings.length, 1);
  });

  test("with a bind address, listeners written without one bind to it; those with one keep it", () => {
    const s = servers(BOUND_EXAMPLE, BOUND_L4);
    assert.deepEqual(s["l4-tcp-5432"]!.listen, ["tcp/127.0.0.1:5432"]);
    assert.deepEqual(s["l4-udp-53"]!.listen, ["udp/127.0.0.1:53"]);
    assert.deepEqual(s["l4-tcp-10.0.0.1-6432"]!.listen, ["tcp/10.0.0.1:6432"]);
    assert.deepEqual(servers(BOUND_EXAMPLE)["l4-tcp-5432"]!.listen, ["tcp/:5432"], "unset: every interface");
  });

  test("with a bind address, the HTTP/HTTPS ports are taken on that address and on every address only", () => {
    const s = snapshot({
      l4ProxyHosts: [
        l4("on-http", { listenAddress: ":8080" }),
        l4("on-bound-https", { listenAddress: "127.0.0.1:8443" }),
        l4("on-every-https", { listenAddress: "0.0.0.0:8443" }),
        l4("beside-http", { listenAddress: "10.0.0.1:8080" }),
      ],
    });
    const r = render(s, BOUND_L4);
    assert.deepEqual(r.warnings, [
      'L4 proxy host "l4 on-bound-https" not served: tcp/127.0.0.1:8443 takes this instance\'s HTTPS port (port 8443)',
      'L4 proxy host "l4 on-every-https" not served: tcp/0.0.0.0:8443 takes this instance\'s HTTPS port (port 8443)',
      'L4 proxy host "l4 on-http" not served: tcp/:8080 takes this instance\'s HTTP port (port 8080)',
    ]);
    assert.deepEqual(Object.keys(parseConfig(r.json).apps.layer4.servers), ["l4-tcp-10.0.0.1-8080"]);
  });

  test("hosts a snapshot should never hold are left out with a warning instead of breaking the config", () => {
    const s = snapshot({
      l4ProxyHosts: [
        l4("bad-upstream", { upstreams: ["no-port"] }),
        l4("a-first", { listenAddress: ":7000" }),
        l4("b-second", { listenAddress: ":7000" }),
        l4("c-overlap", { listenAddress: "127.0.0.1:7000", matcher: SNI, matcherValues: ["x.example.com"] }),
        l4("no-cert", { listenAddress: ":7001", tlsTermination: true, certificateId: "gone" }),
      ],
    });
    const r = render(s, WITH_L4);
    assert.deepEqual(r.warnings, [
      'L4 proxy host "l4 b-second" not served: listener tcp/:7000 already has a NONE host: "l4 a-first" (use a matcher to share a listener)',
      'L4 proxy host "l4 bad-upstream" not served: l4_proxy_host.upstreams[0]: "no-port" is not host:port (optionally http:// or https://)',
      'L4 proxy host "l4 c-overlap" not served: tcp/127.0.0.1:7000 overlaps tcp/:7000 of L4 proxy host "l4 a-first" (same port, one on every address)',
      'L4 proxy host "l4 no-cert" not served: its certificate "gone" is not in the configuration',
    ]);
    const s4 = parseConfig(r.json).apps.layer4.servers;
    assert.deepEqual(Object.keys(s4), ["l4-tcp-7000"]);
    assert.deepEqual(s4["l4-tcp-7000"]!.routes[0]!.handle[0]!.upstreams, [{ dial: ["tcp/a-first.internal:5432"] }]);
  });

  test("deterministic: shuffled host lists render the same bytes", () => {
    const all = snapshot({
      l4ProxyHosts: Object.values(WITH)
        .flatMap((s) => s.l4ProxyHosts)
        .filter((h, i, xs) => xs.findIndex((x) => x.id === h.id) === i),
      certificates: Object.values(WITH).flatMap((s) => s.certificates),
    });
    const base = render(all, WITH_L4);
    assert.notDeepEqual(
      shuffled(all.l4ProxyHosts, 1).map((h) => h.id),
      all.l4ProxyHosts.map((h) => h.id),
      "shuffling reorders",
    );
    for (let seed = 1; seed <= 10; seed++) {
      const s = {
        ...all,
        l4ProxyHosts: shuffled(all.l4ProxyHosts, seed),
        certificates: shuffled(all.certificates, seed * 7),
      };
      const r = render(s, WITH_L4);
      assert.equal(r.json, base.json, `seed ${seed}`);
      assert.deepEqual(r.warnings, base.warnings);
    }
    assert.equal(base.json, canonicalJson(JSON.parse(base.json)));
  });
});

describe("layer4 rendering (Caddy without caddy-l4)", () => {
  test("the layer4 app is left out and one warning counts the enabled L4 hosts", () => {
    const r = render(WITHOUT["l4-without-layer4"]!, WITHOUT_L4);
    const c = parseConfig(r.json);
    assert.equal(c.apps.layer4, undefined);
    assert.ok(!r.json.includes("postgres.internal"), "no L4 host appears anywhere");
    assert.ok(!r.json.includes("l4.example.com"), "certificates only L4 hosts use are not managed");
    assert.deepEqual(r.warnings, ["3 L4 proxy hosts not served: this Caddy has no layer4 module (caddy-l4)"]);
    const one = render(snapshot({ l4ProxyHosts: [l4("x")] }), WITHOUT_L4);
    assert.deepEqual(one.warnings, ["1 L4 proxy host not served: this Caddy has no layer4 module (caddy-l4)"]);
  });

  test("the config is exactly the one without L4 hosts (HTTP hosts unaffected)", () => {
    const s = WITHOUT["l4-without-layer4"]!;
    const without = { ...s, l4ProxyHosts: [], certificates: [] };
    assert.equal(render(s, WITHOUT_L4).json, render(without, WITHOUT_L4).json);
    assert.ok(
      cfg(s, WITHOUT_L4).apps.http.servers.http.routes.some((r) => r.match?.[0]?.host?.includes("app.example.com")),
    );
  });
});

describe("caddy validate", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "cpm-caddy-validate-l4-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("Debian's Caddy (no layer4): the config with L4 hosts present is accepted", async (t) => {
    if (!existsSync(DEBIAN_CADDY))
      return t.skip(`${DEBIAN_CADDY} not found (apt-get install caddy): cannot check the fallback without layer4`);
    if ((await probeLayer4({ configured: undefined, caddyBin: DEBIAN_CADDY })).layer4)
      return t.skip(`${DEBIAN_CADDY} has layer4: this test is about a Caddy without it`);
    await assertCaddyAccepts(
      dir,
      "l4-without-layer4",
      render(WITHOUT["l4-without-layer4"]!, WITHOUT_L4).json,
      "the config",
      DEBIAN_CADDY,
    );
  });

  test("why: Debian's Caddy refuses a config holding apps.layer4", async (t) => {
    if (!existsSync(DEBIAN_CADDY)) return t.skip(`${DEBIAN_CADDY} not found (apt-get install caddy)`);
    if ((await probeLayer4({ configured: undefined, caddyBin: DEBIAN_CADDY })).layer4)
      return t.skip(`${DEBIAN_CADDY} has layer4`);
    await assert.rejects(
      caddyValidate(dir, "l4-none", render(WITH["l4-none"]!, WITH_L4).json, DEBIAN_CADDY),
      (e: { stderr?: string }) => {
        assert.match(e.stderr ?? "", /layer4/);
        return true;
      },
    );
  });

  test("the project's Caddy with caddy-l4 accepts every layer4 golden case (imported certificates made real)", async (t) => {
    if (!(await probeLayer4({ configured: undefined, caddyBin: CADDY })).layer4)
      return t.skip(`${CADDY} has no layer4 module: run npm run caddy:build`);
    const real = makeSelfSigned(dir, "imp.example.com", ["DNS:imp.example.com"]);
    for (const [name, snap] of Object.entries(WITH)) {
      const certificates = snap.certificates.map((c) =>
        c.type === CertificateType.CERTIFICATE_TYPE_IMPORTED
          ? { ...c, certificatePem: real.cert, privateKeyPem: real.key }
          : c,
      );
      await assertCaddyAccepts(dir, name, render({ ...snap, certificates }, WITH_L4).json);
    }
    await assertCaddyAccepts(dir, "l4-bind-address", render(BOUND_EXAMPLE, BOUND_L4).json);
  });
});

describe("layer4 probe", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "cpm-probe-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const fake = (name: string, script: string) => {
    const d = path.join(dir, name);
    mkdirSync(d, { recursive: true });
    const bin = path.join(d, "caddy");
    writeFileSync(bin, `#!/bin/sh\n${script}\n`);
    chmodSync(bin, 0o755);
    return { dir: d, bin };
  };

  test("listsLayer4 looks for the module ID layer4 on a line of its own", () => {
    assert.equal(listsLayer4("http\nlayer4\nlayer4.handlers.proxy\n"), true);
    assert.equal(listsLayer4("  layer4  \r\n"), true);
    assert.equal(listsLayer4("http\ncaddy.listeners.layer4\nlayer4.handlers.proxy\n"), false);
    assert.equal(listsLayer4(""), false);
  });

  test("CPM_CADDY_LAYER4 wins without running anything", async () => {
    assert.equal((await probeLayer4({ configured: true, caddyBin: "/nonexistent/caddy" })).layer4, true);
    assert.equal((await probeLayer4({ configured: false, caddyBin: fake("has", "echo layer4").bin })).layer4, false);
  });

  test("unset: asks `caddy list-modules` (CPM_CADDY_BIN, else PATH)", async () => {
    const has = fake("with-l4", 'test "$1" = list-modules && printf "http\\nlayer4\\nlayer4.handlers.proxy\\n"');
    const lacks = fake("without-l4", 'test "$1" = list-modules && printf "http\\ntls\\n"');
    const broken = fake("broken", "exit 3");
    assert.equal((await probeLayer4({ configured: undefined, caddyBin: has.bin })).layer4, true);
    assert.equal((await probeLayer4({ configured: undefined, caddyBin: lacks.bin })).layer4, false);
    const b = await probeLayer4({ configured: undefined, caddyBin: broken.bin });
    assert.equal(b.layer4, false);
    assert.match(b.reason, /failed/);
    assert.equal(
      (
        await probeLayer4({
          configured: undefined,
          caddyBin: undefined,
          pathEnv: `${path.join(dir, "nothing")}:${has.dir}`,
        })
      ).layer4,
      true,
    );
    assert.equal(
      (await probeLayer4({ configured: undefined, caddyBin: undefined, pathEnv: `${lacks.dir}:${has.dir}` })).layer4,
      false,
      "the first caddy on PATH",
    );
  });

  test("no binary found: assume no layer4", async () => {
    const r = await probeLayer4({ configured: undefined, caddyBin: undefined, pathEnv: path.join(dir, "empty") });
    assert.equal(r.layer4, false);
    assert.match(r.reason, /no caddy binary/);
    assert.equal(findCaddyBinary("/nonexistent/caddy"), undefined);
  });

  test("the project's Caddy (or Debian's 2.6.2, without layer4) answers", async (t) => {
    if (!existsSync(CADDY)) return t.skip(`${CADDY} not found`);
    const r = await probeLayer4({ configured: undefined, caddyBin: CADDY });
    assert.match(r.reason, /list-modules" (lists|does not list) layer4/);
    const { stdout } = await runCaddy(["list-modules"]);
    assert.equal(r.layer4, /^layer4$/m.test(stdout));
  });
});
