import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LoadBalancingPolicy, Snapshot } from "@cpm/proto";
import { canonicalJson, sha256Hex } from "@cpm/core";
import { render } from "./index.ts";
import { assertCaddyAcceptsAll, cert, goldenConfigs, goldenTest, host, OPTS, shuffled, snapshot, type Json } from "./test-support.ts";

/** One golden case per feature. */
const CASES: Record<string, Snapshot> = {
  "basic": snapshot({ proxyHosts: [host("app", ["app.example.com"])] }),
  "domains-wildcards": snapshot({
    proxyHosts: [
      host("main", ["www.example.com", "*.example.com", "example.com", "*.dev.example.com", "*.a.dev.example.com"]),
      host("other", ["*.other.org", "api.other.org"]),
    ],
  }),
  "load-balancing": snapshot({
    proxyHosts: [
      host("lb-unspecified", ["unspecified.example.com"], { upstreams: ["a:80", "b:80"], loadBalancing: LoadBalancingPolicy.LOAD_BALANCING_POLICY_UNSPECIFIED }),
      host("lb-round-robin", ["round-robin.example.com"], { upstreams: ["a:80", "b:80"], loadBalancing: LoadBalancingPolicy.LOAD_BALANCING_POLICY_ROUND_ROBIN }),
      host("lb-least-conn", ["least-conn.example.com"], { upstreams: ["a:80", "b:80"], loadBalancing: LoadBalancingPolicy.LOAD_BALANCING_POLICY_LEAST_CONN }),
      host("lb-ip-hash", ["ip-hash.example.com"], { upstreams: ["a:80", "b:80"], loadBalancing: LoadBalancingPolicy.LOAD_BALANCING_POLICY_IP_HASH }),
      host("lb-first", ["first.example.com"], { upstreams: ["primary:80", "backup:80"], loadBalancing: LoadBalancingPolicy.LOAD_BALANCING_POLICY_FIRST }),
      host("lb-random", ["random.example.com"], { upstreams: ["a:80", "b:80"], loadBalancing: LoadBalancingPolicy.LOAD_BALANCING_POLICY_RANDOM }),
    ],
  }),
  "preserve-host-header": snapshot({
    proxyHosts: [
      host("preserve", ["preserve.example.com"], { preserveHostHeader: true }),
      host("rewrite", ["rewrite.example.com"], { preserveHostHeader: false }),
    ],
  }),
  "https-upstream": snapshot({
    proxyHosts: [
      host("verify", ["verify.example.com"], { upstreams: ["https://secure.internal:8443"] }),
      host("skip", ["skip.example.com"], { upstreams: ["https://10.0.0.5:8443", "https://[fd00::5]:8443"], skipHttpsHostnameValidation: true }),
      host("plain", ["plain.example.com"], { upstreams: ["http://plain.internal:80"], skipHttpsHostnameValidation: true }),
    ],
  }),
  "ssl-forced": snapshot({
    proxyHosts: [
      host("forced", ["secure.example.com"], { certificateId: "cert-secure", sslForced: true }),
      host("optional", ["both.example.com"], { certificateId: "cert-both", sslForced: false }),
    ],
    certificates: [cert("cert-secure", ["secure.example.com"]), cert("cert-both", ["both.example.com"])],
  }),
  "hsts": snapshot({
    proxyHosts: [
      host("hsts", ["hsts.example.com"], { certificateId: "cert-1", sslForced: true, hstsEnabled: true }),
      host("hsts-sub", ["hsts-sub.example.com"], { certificateId: "cert-1", sslForced: true, hstsEnabled: true, hstsSubdomains: true }),
    ],
    certificates: [cert("cert-1", ["hsts.example.com", "hsts-sub.example.com"])],
  }),
  "websocket": snapshot({
    proxyHosts: [
      host("ws-denied", ["denied.example.com"], { allowWebsocket: false }),
      host("ws-allowed", ["allowed.example.com"], { allowWebsocket: true }),
    ],
  }),
  "disabled-host": snapshot({
    proxyHosts: [
      host("on", ["on.example.com"], { enabled: true }),
      host("off", ["off.example.com"], { enabled: false, certificateId: "cert-off", sslForced: true }),
      host("default", ["default.example.com"]),
    ],
    certificates: [cert("cert-off", ["off.example.com"])],
  }),
  "empty": snapshot(),
};

const config = (s: Snapshot, opts = OPTS): Json => JSON.parse(render(s, opts).json);

/** Routes of a server, including the trailing 404 fallback. */
function routes(cfg: Json, server: "http" | "https"): Json[] {
  return cfg.apps.http.servers[server].routes;
}
function routeFor(cfg: Json, server: "http" | "https", domain: string): Json {
  const r = routes(cfg, server).find((x: Json) => x.match?.[0]?.host?.includes(domain));
  assert.ok(r, `no route for ${domain} on ${server}`);
  return r;
}
function handler(route: Json, name: string): Json {
  return route.handle.find((h: Json) => h.handler === name);
}
const isNotFound = (r: Json) => r.match === undefined && r.handle?.[0]?.handler === "static_response" && r.handle[0].status_code === 404;

/** CPM_CADDY_BIND: the HTTP and HTTPS servers listen on one address. */
const BOUND = { ...OPTS, bindAddress: "127.0.0.1" };

describe("render golden files", () => {
  for (const [name, snap] of Object.entries(CASES)) goldenTest(name, () => render(snap, OPTS).json);
  goldenTest("bind-address", () => render(CASES["ssl-forced"]!, BOUND).json);
});

describe("render features", () => {
  test("every config has both ports, the http server and the 404 fallback last", () => {
    for (const [name, snap] of Object.entries(CASES)) {
      const cfg = config(snap);
      assert.equal(cfg.apps.http.http_port, 8080, name);
      assert.equal(cfg.apps.http.https_port, 8443, name);
      assert.deepEqual(cfg.apps.http.servers.http.listen, [":8080"], name);
      assert.deepEqual(cfg.apps.http.servers.http.automatic_https, { disable: true }, name);
      assert.ok(isNotFound(routes(cfg, "http").at(-1)), `${name}: http server ends with the 404 route`);
      assert.equal(routes(cfg, "http").filter(isNotFound).length, 1, name);
      if (cfg.apps.http.servers.https) {
        assert.deepEqual(cfg.apps.http.servers.https.listen, [":8443"], name);
        assert.ok(isNotFound(routes(cfg, "https").at(-1)), `${name}: https server ends with the 404 route`);
      }
      for (const r of [...routes(cfg, "http"), ...(cfg.apps.http.servers.https ? routes(cfg, "https") : [])]) {
        if (!isNotFound(r)) assert.equal(r.terminal, true, `${name}: host routes are terminal`);
      }
    }
  });

  test("empty snapshot: only the 404 fallback on the http server, no https server", () => {
    const cfg = config(CASES.empty!);
    assert.deepEqual(Object.keys(cfg.apps.http.servers), ["http"]);
    assert.equal(routes(cfg, "http").length, 1);
    assert.equal(routes(cfg, "http")[0].handle[0].status_code, 404);
  });

  test("basic host: one route proxying to the upstream", () => {
    const cfg = config(CASES.basic!);
    assert.equal(cfg.apps.http.servers.https, undefined, "no certificate, no https server");
    assert.equal(routes(cfg, "http").length, 2);
    const r = routeFor(cfg, "http", "app.example.com");
    assert.deepEqual(r.match, [{ host: ["app.example.com"] }]);
    const rp = handler(r, "reverse_proxy");
    assert.deepEqual(rp.upstreams, [{ dial: "app.internal:8080" }]);
    assert.equal(r.handle.at(-1).handler, "reverse_proxy", "reverse_proxy is the last handler");
    assert.equal(rp.transport, undefined, "plain http upstream: no transport");
  });

  test("domains: exact names first, then wildcards from the deepest down", () => {
    const cfg = config(CASES["domains-wildcards"]!);
    const hosts = routes(cfg, "http").filter((r: Json) => !isNotFound(r)).map((r: Json) => r.match[0].host);
    assert.deepEqual(hosts, [
      ["api.other.org"],
      ["example.com", "www.example.com"],
      ["*.a.dev.example.com"],
      ["*.dev.example.com"],
      ["*.example.com"],
      ["*.other.org"],
    ]);
    // All routes of one host proxy to the same upstream.
    for (const d of ["example.com", "*.a.dev.example.com", "*.dev.example.com", "*.example.com"]) {
      assert.deepEqual(handler(routeFor(cfg, "http", d), "reverse_proxy").upstreams, [{ dial: "main.internal:8080" }], d);
    }
  });

  test("load balancing: each policy maps to Caddy's selection policy; upstream order is kept", () => {
    const cfg = config(CASES["load-balancing"]!);
    const want: [string, string][] = [
      ["unspecified.example.com", "round_robin"],
      ["round-robin.example.com", "round_robin"],
      ["least-conn.example.com", "least_conn"],
      ["ip-hash.example.com", "ip_hash"],
      ["first.example.com", "first"],
      ["random.example.com", "random"],
    ];
    for (const [d, policy] of want) {
      assert.deepEqual(handler(routeFor(cfg, "http", d), "reverse_proxy").load_balancing, { selection_policy: { policy } }, d);
    }
    assert.deepEqual(handler(routeFor(cfg, "http", "first.example.com"), "reverse_proxy").upstreams, [{ dial: "primary:80" }, { dial: "backup:80" }]);
  });

  test("preserve_host_header: off sets Host to the upstream, on passes the client's Host", () => {
    const cfg = config(CASES["preserve-host-header"]!);
    assert.equal(handler(routeFor(cfg, "http", "preserve.example.com"), "reverse_proxy").headers, undefined);
    assert.deepEqual(handler(routeFor(cfg, "http", "rewrite.example.com"), "reverse_proxy").headers, {
      request: { set: { Host: ["{http.reverse_proxy.upstream.hostport}"] } },
    });
  });

  test("https upstreams: TLS transport, verification skipped only when asked", () => {
    const cfg = config(CASES["https-upstream"]!);
    const verify = handler(routeFor(cfg, "http", "verify.example.com"), "reverse_proxy");
    assert.deepEqual(verify.transport, { protocol: "http", tls: {} });
    assert.deepEqual(verify.upstreams, [{ dial: "secure.internal:8443" }], "the dial address has no scheme");
    const skip = handler(routeFor(cfg, "http", "skip.example.com"), "reverse_proxy");
    assert.deepEqual(skip.transport, { protocol: "http", tls: { insecure_skip_verify: true } });
    assert.deepEqual(skip.upstreams, [{ dial: "10.0.0.5:8443" }, { dial: "[fd00::5]:8443" }]);
    const plain = handler(routeFor(cfg, "http", "plain.example.com"), "reverse_proxy");
    assert.equal(plain.transport, undefined, "skip_https_hostname_validation has no effect on http upstreams");
    assert.deepEqual(plain.upstreams, [{ dial: "plain.internal:80" }]);
  });

  test("ssl_forced: 308 to https on the http server, reverse_proxy on the https server", () => {
    const cfg = config(CASES["ssl-forced"]!);
    const https = cfg.apps.http.servers.https;
    assert.ok(https, "hosts with a certificate get an https server");
    // Certificates and redirects are explicit (render/tls.ts), so automatic HTTPS is off and TLS is on by policy.
    assert.deepEqual(https.automatic_https, { disable: true });
    assert.ok(Array.isArray(https.tls_connection_policies) && https.tls_connection_policies.length > 0);

    const redirect = routeFor(cfg, "http", "secure.example.com");
    assert.deepEqual(redirect.handle, [
      { handler: "static_response", status_code: 308, headers: { Location: ["https://{http.request.host}:8443{http.request.uri}"] } },
    ]);
    assert.ok(handler(routeFor(cfg, "https", "secure.example.com"), "reverse_proxy"));

    // Not forced: served on both servers, no redirect.
    const plain = routeFor(cfg, "http", "both.example.com");
    assert.ok(handler(plain, "reverse_proxy"));
    assert.equal(plain.handle.some((h: Json) => h.status_code === 308), false);
    assert.ok(handler(routeFor(cfg, "https", "both.example.com"), "reverse_proxy"));
  });

  test("HSTS: header only on https, includeSubDomains only when asked", () => {
    const cfg = config(CASES.hsts!);
    const sts = (d: string) => handler(routeFor(cfg, "https", d), "headers")?.response?.set?.["Strict-Transport-Security"];
    assert.deepEqual(sts("hsts.example.com"), ["max-age=31536000"]);
    assert.deepEqual(sts("hsts-sub.example.com"), ["max-age=31536000; includeSubDomains"]);
    assert.equal(routeFor(cfg, "https", "hsts.example.com").handle[0].handler, "headers", "HSTS header is set before proxying");
    for (const d of ["hsts.example.com", "hsts-sub.example.com"]) {
      const httpRoute = routeFor(cfg, "http", d);
      assert.equal(handler(httpRoute, "headers"), undefined, `${d}: no HSTS over plain http`);
    }
    // Without HSTS, no headers handler at all.
    const noHsts = config(CASES["ssl-forced"]!);
    assert.equal(handler(routeFor(noHsts, "https", "secure.example.com"), "headers"), undefined);
  });

  test("websockets: refused with 403 unless allowed", () => {
    const cfg = config(CASES.websocket!);
    const denied = routeFor(cfg, "http", "denied.example.com");
    const sub = handler(denied, "subroute");
    assert.ok(sub, "a subroute refuses upgrades");
    // Caddy proxies an upgrade whatever the token's case, so the refusal must match any case.
    assert.deepEqual(sub.routes[0].match, [{ header_regexp: { Upgrade: { pattern: "(?i)websocket" } } }]);
    const re = new RegExp(String(sub.routes[0].match[0].header_regexp.Upgrade.pattern).replace(/^\(\?i\)/, ""), "i");
    for (const v of ["websocket", "WebSocket", "WEBSOCKET"]) assert.match(v, re);
    assert.doesNotMatch("h2c", re);
    assert.equal(sub.routes[0].handle[0].status_code, 403);
    assert.ok(denied.handle.indexOf(sub) < denied.handle.indexOf(handler(denied, "reverse_proxy")), "refusal comes before the proxy");
    const allowed = routeFor(cfg, "http", "allowed.example.com");
    assert.equal(handler(allowed, "subroute"), undefined);
    assert.deepEqual(allowed.handle.map((h: Json) => h.handler), ["reverse_proxy"]);
  });

  test("disabled host: omitted everywhere; unset enabled means enabled", () => {
    const cfg = config(CASES["disabled-host"]!);
    const text = render(CASES["disabled-host"]!, OPTS).json;
    assert.equal(text.includes("off.example.com"), false);
    assert.equal(text.includes("off.internal"), false);
    assert.equal(cfg.apps.http.servers.https, undefined, "the only host with a certificate is disabled");
    assert.ok(routeFor(cfg, "http", "on.example.com"));
    assert.ok(routeFor(cfg, "http", "default.example.com"));
    assert.equal(routes(cfg, "http").length, 3);
  });
});

describe("render determinism and options", () => {
  /** Everything at once, so shuffling has something to reorder. */
  const all = (): Snapshot =>
    snapshot({
      proxyHosts: Object.values(CASES).flatMap((s) => s.proxyHosts),
      certificates: Object.values(CASES).flatMap((s) => s.certificates),
    });

  test("the same snapshot with shuffled lists renders identical bytes and sha256", () => {
    const base = render(all(), OPTS);
    for (let seed = 1; seed <= 20; seed++) {
      const s = all();
      s.proxyHosts = shuffled(s.proxyHosts, seed).map((h) => ({ ...h, domains: shuffled(h.domains, seed * 31) }));
      s.certificates = shuffled(s.certificates, seed * 7);
      s.version = 100 + seed;
      s.generatedAt = new Date(1_700_000_000_000 + seed);
      const r = render(s, OPTS);
      assert.equal(r.json, base.json, `seed ${seed}`);
      assert.equal(r.sha256, base.sha256, `seed ${seed}`);
    }
  });

  test("shuffling actually changed the input order", () => {
    const a = all().proxyHosts.map((h) => h.id);
    const b = shuffled(all().proxyHosts, 1).map((h) => h.id);
    assert.notDeepEqual(a, b);
  });

  test("json is canonical (sorted keys, no whitespace) and sha256 is its hash", () => {
    for (const [name, snap] of Object.entries(CASES)) {
      const r = render(snap, OPTS);
      assert.equal(r.json, canonicalJson(JSON.parse(r.json)), name);
      assert.equal(r.sha256, sha256Hex(r.json), name);
      assert.match(r.sha256, /^[0-9a-f]{64}$/);
    }
  });

  test("different content renders a different sha256", () => {
    assert.notEqual(render(CASES.basic!, OPTS).sha256, render(CASES.empty!, OPTS).sha256);
  });

  test("admin.listen equals opts.adminListen", () => {
    for (const adminListen of ["127.0.0.1:2019", "0.0.0.0:2999", "unix//run/caddy/admin.sock"]) {
      const cfg = config(CASES.basic!, { ...OPTS, adminListen });
      assert.equal(cfg.admin.listen, adminListen);
    }
    assert.equal(config(CASES.empty!).admin.listen, OPTS.adminListen);
  });

  test("ports come from the options", () => {
    const cfg = config(CASES["ssl-forced"]!, { ...OPTS, httpPort: 80, httpsPort: 443 });
    assert.deepEqual(cfg.apps.http.servers.http.listen, [":80"]);
    assert.deepEqual(cfg.apps.http.servers.https.listen, [":443"]);
    assert.equal(cfg.apps.http.http_port, 80);
    assert.equal(cfg.apps.http.https_port, 443);
  });

  test("a bind address goes into both servers' listen, with the ports; unset means every interface", () => {
    const bound = config(CASES["ssl-forced"]!, BOUND);
    assert.deepEqual(bound.apps.http.servers.http.listen, ["127.0.0.1:8080"]);
    assert.deepEqual(bound.apps.http.servers.https.listen, ["127.0.0.1:8443"]);
    assert.deepEqual(config(CASES["ssl-forced"]!, { ...OPTS, bindAddress: "[::1]" }).apps.http.servers.http.listen, ["[::1]:8080"]);
    assert.deepEqual(config(CASES["ssl-forced"]!).apps.http.servers.http.listen, [":8080"]);
  });

  test("render does not modify the snapshot", () => {
    const s = CASES["domains-wildcards"]!;
    const before = structuredClone(s);
    render(s, OPTS);
    assert.deepEqual(s, before);
  });
});

describe("caddy validate", () => {
  test("every golden config is accepted by caddy validate", (t) =>
    // Validate the exact bytes render produces (the golden files are checked against them above).
    assertCaddyAcceptsAll(t, "cpm-caddy-validate-", { ...goldenConfigs(CASES), "bind-address": () => render(CASES["ssl-forced"]!, BOUND).json }));
});
