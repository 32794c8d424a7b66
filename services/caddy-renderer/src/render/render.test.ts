import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { AccessList, CertificateIssuance, LoadBalancingPolicy, Snapshot, type ProxyHost } from "@cpm/proto";
import { canonicalCopied, canonicalJson, sha256Hex } from "@cpm/core";
import { render, RenderMemo } from "./index.ts";
import {
  assertCaddyAcceptsAll,
  cert,
  goldenConfigs,
  goldenPath,
  goldenTest,
  handlersFor,
  host,
  OPTS,
  proxyFor,
  shuffled,
  snapshot,
  parseConfig,
  pretty,
  type CaddyConfig,
  type Handler,
  type Route,
} from "./test-support.ts";

/** One golden case per feature. */
const CASES: Record<string, Snapshot> = {
  basic: snapshot({ proxyHosts: [host("app", ["app.example.com"])] }),
  "domains-wildcards": snapshot({
    proxyHosts: [
      host("main", ["www.example.com", "*.example.com", "example.com", "*.dev.example.com", "*.a.dev.example.com"]),
      host("other", ["*.other.org", "api.other.org"]),
    ],
  }),
  "load-balancing": snapshot({
    proxyHosts: [
      host("lb-unspecified", ["unspecified.example.com"], {
        upstreams: ["a:80", "b:80"],
        loadBalancing: LoadBalancingPolicy.LOAD_BALANCING_POLICY_UNSPECIFIED,
      }),
      host("lb-round-robin", ["round-robin.example.com"], {
        upstreams: ["a:80", "b:80"],
        loadBalancing: LoadBalancingPolicy.LOAD_BALANCING_POLICY_ROUND_ROBIN,
      }),
      host("lb-least-conn", ["least-conn.example.com"], {
        upstreams: ["a:80", "b:80"],
        loadBalancing: LoadBalancingPolicy.LOAD_BALANCING_POLICY_LEAST_CONN,
      }),
      host("lb-ip-hash", ["ip-hash.example.com"], {
        upstreams: ["a:80", "b:80"],
        loadBalancing: LoadBalancingPolicy.LOAD_BALANCING_POLICY_IP_HASH,
      }),
      host("lb-first", ["first.example.com"], {
        upstreams: ["primary:80", "backup:80"],
        loadBalancing: LoadBalancingPolicy.LOAD_BALANCING_POLICY_FIRST,
      }),
      host("lb-random", ["random.example.com"], {
        upstreams: ["a:80", "b:80"],
        loadBalancing: LoadBalancingPolicy.LOAD_BALANCING_POLICY_RANDOM,
      }),
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
      host("skip", ["skip.example.com"], {
        upstreams: ["https://10.0.0.5:8443", "https://[fd00::5]:8443"],
        skipHttpsHostnameValidation: true,
      }),
      host("plain", ["plain.example.com"], {
        upstreams: ["http://plain.internal:80"],
        skipHttpsHostnameValidation: true,
      }),
    ],
  }),
  "ssl-forced": snapshot({
    proxyHosts: [
      host("forced", ["secure.example.com"], { certificateId: "cert-secure", sslForced: true }),
      host("optional", ["both.example.com"], { certificateId: "cert-both", sslForced: false }),
    ],
    certificates: [cert("cert-secure", ["secure.example.com"]), cert("cert-both", ["both.example.com"])],
  }),
  hsts: snapshot({
    proxyHosts: [
      host("hsts", ["hsts.example.com"], { certificateId: "cert-1", sslForced: true, hstsEnabled: true }),
      host("hsts-sub", ["hsts-sub.example.com"], {
        certificateId: "cert-1",
        sslForced: true,
        hstsEnabled: true,
        hstsSubdomains: true,
      }),
    ],
    certificates: [cert("cert-1", ["hsts.example.com", "hsts-sub.example.com"])],
  }),
  websocket: snapshot({
    proxyHosts: [
      host("ws-denied", ["denied.example.com"], { allowWebsocket: false }),
      host("ws-allowed", ["allowed.example.com"], { allowWebsocket: true }),
    ],
  }),
  compression: snapshot({
    proxyHosts: [
      host("zip-a", ["zip-a.example.com"], { compression: true, upstreams: ["shared.internal:8080"] }),
      host("zip-b", ["zip-b.example.com"], { compression: true, upstreams: ["shared.internal:8080"] }),
      host("unzipped", ["unzipped.example.com"], { compression: false, upstreams: ["shared.internal:8080"] }),
      host("zip-tls", ["zip-tls.example.com"], { compression: true, certificateId: "cert-zip", sslForced: true }),
    ],
    certificates: [cert("cert-zip", ["zip-tls.example.com"])],
  }),
  "disabled-host": snapshot({
    proxyHosts: [
      host("on", ["on.example.com"], { enabled: true }),
      host("off", ["off.example.com"], { enabled: false, certificateId: "cert-off", sslForced: true }),
      host("default", ["default.example.com"]),
    ],
    certificates: [cert("cert-off", ["off.example.com"])],
  }),
  empty: snapshot(),
};

const config = (s: Snapshot, opts = OPTS): CaddyConfig => parseConfig(render(s, opts).json);

/** The one HTTP server's routes, the trailing 404 fallback included. */
const routes = (cfg: CaddyConfig): Route[] => cfg.apps.http.servers.http.routes;
const isNotFound = (r: Route) =>
  r.match === undefined && r.handle?.[0]?.handler === "static_response" && r.handle[0].status_code === 404;
const NOT_FOUND = {
  handler: "static_response",
  status_code: 404,
  body: "No proxy host is configured for this domain.\n",
};
const WS_REFUSED = {
  handler: "static_response",
  status_code: 403,
  body: "Websocket upgrades are not allowed for this host.\n",
};
const names = (hs: Handler[]) => hs.map((h) => h.handler);
/** Plain HTTP on a server with TLS: Caddy's HTTP/3 advertisement is removed first. */
const DROP_ALT_SVC = { handler: "headers", response: { delete: ["Alt-Svc"] } };
const tlsOn = (cfg: CaddyConfig) => cfg.apps.http.servers.http.listen.length > 1;

/** CPM_CADDY_BIND: the HTTP and HTTPS listeners bind one address. */
const BOUND = { ...OPTS, bindAddress: "127.0.0.1" };

describe("render golden files", () => {
  for (const [name, snap] of Object.entries(CASES)) goldenTest(name, () => render(snap, OPTS).json);
  goldenTest("bind-address", () => render(CASES["ssl-forced"]!, BOUND).json);
});

describe("render features", () => {
  test("every config has both ports, one server and the 404 fallback last", () => {
    for (const [name, snap] of Object.entries(CASES)) {
      const cfg = config(snap);
      assert.equal(cfg.apps.http.http_port, 8080, name);
      assert.equal(cfg.apps.http.https_port, 8443, name);
      assert.deepEqual(Object.keys(cfg.apps.http.servers), ["http"], name);
      assert.deepEqual(cfg.apps.http.servers.http.automatic_https, { disable: true }, name);
      assert.ok(isNotFound(routes(cfg).at(-1)!), `${name}: the server ends with the 404 route`);
      assert.equal(routes(cfg).filter(isNotFound).length, 1, name);
      const tls = snap.proxyHosts.some((h) => h.enabled !== false && h.certificateId);
      assert.deepEqual(
        cfg.apps.http.servers.http.listen,
        tls ? [":8080", ":8443"] : [":8080"],
        `${name}: the HTTPS port only with a certificate`,
      );
      assert.equal(
        Array.isArray(cfg.apps.http.servers.http.tls_connection_policies),
        tls,
        `${name}: TLS policies only with a certificate`,
      );
    }
  });

  test("unknown host names get 404 over HTTP and HTTPS", () => {
    for (const [name, snap] of Object.entries(CASES)) {
      const cfg = config(snap);
      assert.deepEqual(
        handlersFor(cfg, { host: "unknown.example.net", https: true, upgrade: "websocket" }),
        [NOT_FOUND],
        name,
      );
      assert.deepEqual(
        handlersFor(cfg, { host: "unknown.example.net", upgrade: "websocket" }),
        tlsOn(cfg) ? [DROP_ALT_SVC, NOT_FOUND] : [NOT_FOUND],
        name,
      );
    }
  });

  test("empty snapshot: only the 404 fallback, no HTTPS listener", () => {
    const cfg = config(CASES.empty!);
    assert.deepEqual(routes(cfg), [{ handle: [NOT_FOUND] }]);
    assert.deepEqual(cfg.apps.http.servers.http.listen, [":8080"]);
  });

  test("basic host: one route proxying to the upstream, nothing a default would do", () => {
    const cfg = config(CASES.basic!);
    assert.deepEqual(cfg.apps.http.servers.http.listen, [":8080"], "no certificate, no HTTPS listener");
    assert.deepEqual(proxyFor(cfg, "app.example.com"), {
      handler: "reverse_proxy",
      upstreams: [{ dial: "app.internal:8080" }],
      // One upstream: the Host the placeholder would give, written out.
      headers: { request: { set: { Host: ["app.internal:8080"] } } },
    });
    assert.deepEqual(
      names(handlersFor(cfg, { host: "APP.example.com" })),
      ["reverse_proxy"],
      "host names match whatever their case",
    );
    assert.deepEqual(handlersFor(cfg, { host: "app.example.com", upgrade: "websocket" }), [WS_REFUSED]);
  });

  test("domains: exact names win over wildcards; a wildcard stands for one label", () => {
    const cfg = config(CASES["domains-wildcards"]!);
    const upstream = (d: string) => proxyFor(cfg, d).upstreams[0]!.dial;
    for (const d of ["example.com", "www.example.com", "x.example.com", "x.dev.example.com", "y.a.dev.example.com"])
      assert.equal(upstream(d), "main.internal:8080", d);
    for (const d of ["api.other.org", "x.other.org"]) assert.equal(upstream(d), "other.internal:8080", d);
    for (const d of ["x.y.example.com", "other.org", "a.b.other.org"])
      assert.deepEqual(handlersFor(cfg, { host: d }), [NOT_FOUND], d);
  });

  test("an exact name of one host under another host's wildcard is served by its own host, whatever the grouping", () => {
    const s = snapshot({
      proxyHosts: [
        host("wild", ["*.example.com"], { allowWebsocket: false }),
        host("exact", ["b.example.com"], { allowWebsocket: true }),
        host("twin", ["c.example.com"], { allowWebsocket: false, upstreams: ["wild.internal:8080"] }),
      ],
    });
    const cfg = config(s);
    assert.equal(proxyFor(cfg, "b.example.com").upstreams[0]!.dial, "exact.internal:8080");
    assert.deepEqual(
      names(handlersFor(cfg, { host: "b.example.com", upgrade: "websocket" })),
      ["reverse_proxy"],
      "b allows websockets, the wildcard does not",
    );
    assert.deepEqual(handlersFor(cfg, { host: "x.example.com", upgrade: "websocket" }), [WS_REFUSED]);
    // "twin" proxies like "wild": one route lists both, and still leaves b.example.com out.
    const rp = routes(cfg).filter((r) => r.handle[0]!.handler === "reverse_proxy");
    assert.equal(rp.length, 2);
    assert.deepEqual(rp.find((r) => r.match[0]!.host.includes("*.example.com"))!.match, [
      { host: ["*.example.com", "c.example.com"], not: [{ host: ["b.example.com"] }] },
    ]);
  });

  test("hosts that proxy the same way share one route", () => {
    const s = snapshot({
      proxyHosts: ["a", "b", "c"].map((id) => host(id, [`${id}.example.com`], { upstreams: ["shared.internal:80"] })),
    });
    const cfg = config(s);
    assert.equal(routes(cfg).length, 3, "the websocket refusal, the proxy, the 404");
    for (const id of ["a", "b", "c"])
      assert.equal(proxyFor(cfg, `${id}.example.com`).upstreams[0]!.dial, "shared.internal:80");
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
    for (const [d, policy] of want)
      assert.deepEqual(proxyFor(cfg, d).load_balancing, { selection_policy: { policy } }, d);
    assert.deepEqual(proxyFor(cfg, "first.example.com").upstreams, [{ dial: "primary:80" }, { dial: "backup:80" }]);
    assert.equal(
      proxyFor(config(CASES.basic!), "app.example.com").load_balancing,
      undefined,
      "one upstream: any policy picks it",
    );
  });

  test("preserve_host_header: off sets Host to the upstream, on passes the client's Host", () => {
    const cfg = config(CASES["preserve-host-header"]!);
    assert.equal(proxyFor(cfg, "preserve.example.com").headers, undefined);
    assert.deepEqual(proxyFor(cfg, "rewrite.example.com").headers, {
      request: { set: { Host: ["rewrite.internal:8080"] } },
    });
    const multi = config(snapshot({ proxyHosts: [host("m", ["m.example.com"], { upstreams: ["a:80", "b:80"] })] }));
    assert.deepEqual(
      proxyFor(multi, "m.example.com").headers,
      { request: { set: { Host: ["{http.reverse_proxy.upstream.hostport}"] } } },
      "several upstreams: the chosen one's",
    );
  });

  test("https upstreams: TLS transport, verification skipped only when asked", () => {
    const cfg = config(CASES["https-upstream"]!);
    const verify = proxyFor(cfg, "verify.example.com");
    assert.deepEqual(verify.transport, { protocol: "http", tls: {} });
    assert.deepEqual(verify.upstreams, [{ dial: "secure.internal:8443" }], "the dial address has no scheme");
    const skip = proxyFor(cfg, "skip.example.com");
    assert.deepEqual(skip.transport, { protocol: "http", tls: { insecure_skip_verify: true } });
    assert.deepEqual(skip.upstreams, [{ dial: "10.0.0.5:8443" }, { dial: "[fd00::5]:8443" }]);
    const plain = proxyFor(cfg, "plain.example.com");
    assert.equal(plain.transport, undefined, "skip_https_hostname_validation has no effect on http upstreams");
    assert.deepEqual(plain.upstreams, [{ dial: "plain.internal:80" }]);
  });

  test("ssl_forced: 308 to https over HTTP, proxied over HTTPS", () => {
    const cfg = config(CASES["ssl-forced"]!);
    assert.ok(
      cfg.apps.http.servers.http.tls_connection_policies.length > 0,
      "hosts with a certificate get TLS on the HTTPS listener",
    );
    for (const upgrade of [undefined, "websocket"]) {
      assert.deepEqual(handlersFor(cfg, { host: "secure.example.com", upgrade }), [
        DROP_ALT_SVC,
        {
          handler: "static_response",
          status_code: 308,
          headers: { Location: ["https://{http.request.host}:8443{http.request.uri}"] },
        },
      ]);
    }
    assert.ok(proxyFor(cfg, "secure.example.com", true));
    // Not forced: served on both, no redirect.
    assert.deepEqual(names(handlersFor(cfg, { host: "both.example.com" })), ["headers", "reverse_proxy"]);
    assert.deepEqual(names(handlersFor(cfg, { host: "both.example.com", https: true })), ["reverse_proxy"]);
    // The default port needs none in the Location.
    const std = config(CASES["ssl-forced"]!, { ...OPTS, httpPort: 80, httpsPort: 443 });
    assert.deepEqual(handlersFor(std, { host: "secure.example.com" })[1]!.headers.Location, [
      "https://{http.request.host}{http.request.uri}",
    ]);
  });

  test("a host without a certificate answers HTTPS like an unknown host (404), when others have one", () => {
    const s = snapshot({
      proxyHosts: [host("plain", ["plain.example.com"]), host("tls", ["tls.example.com"], { certificateId: "c" })],
      certificates: [cert("c", ["tls.example.com"])],
    });
    const cfg = config(s);
    assert.deepEqual(handlersFor(cfg, { host: "plain.example.com", https: true }), [NOT_FOUND]);
    assert.deepEqual(
      names(handlersFor(cfg, { host: "plain.example.com" })),
      ["headers", "reverse_proxy"],
      "plain HTTP without the HTTP/3 advertisement",
    );
    assert.ok(proxyFor(cfg, "plain.example.com"));
    assert.ok(proxyFor(cfg, "tls.example.com", true));
  });

  test("HSTS: header only over HTTPS, before anything answers; includeSubDomains only when asked", () => {
    const cfg = config(CASES.hsts!);
    const sts = (d: string, https: boolean) =>
      handlersFor(cfg, { host: d, https }).find((h) => h.handler === "headers")?.response?.set?.[
        "Strict-Transport-Security"
      ];
    assert.deepEqual(sts("hsts.example.com", true), ["max-age=31536000"]);
    assert.deepEqual(sts("hsts-sub.example.com", true), ["max-age=31536000; includeSubDomains"]);
    assert.deepEqual(names(handlersFor(cfg, { host: "hsts.example.com", https: true })), ["headers", "reverse_proxy"]);
    assert.deepEqual(
      names(handlersFor(cfg, { host: "hsts.example.com", https: true, upgrade: "websocket" })),
      ["headers", "static_response"],
      "the refusal carries it too",
    );
    for (const d of ["hsts.example.com", "hsts-sub.example.com"])
      assert.equal(sts(d, false), undefined, `${d}: no HSTS over plain http`);
    const noHsts = config(CASES["ssl-forced"]!);
    assert.deepEqual(names(handlersFor(noHsts, { host: "secure.example.com", https: true })), ["reverse_proxy"]);
  });

  test("websockets: refused with 403 unless allowed, whatever the token's case", () => {
    const cfg = config(CASES.websocket!);
    for (const upgrade of ["websocket", "WebSocket", "WEBSOCKET"])
      assert.deepEqual(handlersFor(cfg, { host: "denied.example.com", upgrade }), [WS_REFUSED], upgrade);
    assert.deepEqual(names(handlersFor(cfg, { host: "denied.example.com", upgrade: "h2c" })), ["reverse_proxy"]);
    assert.deepEqual(names(handlersFor(cfg, { host: "denied.example.com" })), ["reverse_proxy"]);
    assert.deepEqual(names(handlersFor(cfg, { host: "allowed.example.com", upgrade: "websocket" })), ["reverse_proxy"]);
  });

  test("disabled host: omitted everywhere; unset enabled means enabled", () => {
    const cfg = config(CASES["disabled-host"]!);
    const text = render(CASES["disabled-host"]!, OPTS).json;
    assert.equal(text.includes("off.example.com"), false);
    assert.equal(text.includes("off.internal"), false);
    assert.deepEqual(cfg.apps.http.servers.http.listen, [":8080"], "the only host with a certificate is disabled");
    assert.ok(proxyFor(cfg, "on.example.com"));
    assert.ok(proxyFor(cfg, "default.example.com"));
    assert.deepEqual(handlersFor(cfg, { host: "off.example.com" }), [NOT_FOUND]);
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
    assert.deepEqual(cfg.apps.http.servers.http.listen, [":80", ":443"]);
    assert.equal(cfg.apps.http.http_port, 80);
    assert.equal(cfg.apps.http.https_port, 443);
  });

  test("a bind address goes into both listeners, with the ports; unset means every interface", () => {
    assert.deepEqual(config(CASES["ssl-forced"]!, BOUND).apps.http.servers.http.listen, [
      "127.0.0.1:8080",
      "127.0.0.1:8443",
    ]);
    assert.deepEqual(config(CASES["ssl-forced"]!, { ...OPTS, bindAddress: "[::1]" }).apps.http.servers.http.listen, [
      "[::1]:8080",
      "[::1]:8443",
    ]);
    assert.deepEqual(config(CASES["ssl-forced"]!).apps.http.servers.http.listen, [":8080", ":8443"]);
  });

  test("render does not modify the snapshot", () => {
    const s = CASES["domains-wildcards"]!;
    const before = structuredClone(s);
    render(s, OPTS);
    assert.deepEqual(s, before);
  });
});

describe("compression", () => {
  const ENCODE = { handler: "encode", encodings: { zstd: {}, gzip: {} }, prefer: ["zstd", "gzip"] };

  test("a compressing host's proxy comes after Caddy's encode handler (zstd, then gzip)", () => {
    const cfg = config(CASES.compression!);
    for (const [name, https] of [
      ["zip-a.example.com", false],
      ["zip-b.example.com", false],
      ["zip-tls.example.com", true],
    ] as const) {
      const hs = handlersFor(cfg, { host: name, https });
      assert.deepEqual(hs.slice(-2), [ENCODE, proxyFor(cfg, name, https)], name);
    }
    assert.ok(!names(handlersFor(cfg, { host: "unzipped.example.com" })).includes("encode"));
    // The same proxy with and without compression: two routes, the compressing hosts in one.
    const encoded = routes(cfg).filter((r) => r.handle[0]?.handler === "encode");
    assert.equal(encoded.length, 2);
  });

  test("a configuration that compresses nowhere renders the bytes it rendered before compression existed", () => {
    // The golden files of these cases were written before ProxyHost had a compression field.
    for (const [name, snap] of Object.entries(CASES)) {
      if (name === "compression") continue;
      const off = { ...snap, proxyHosts: snap.proxyHosts.map((h) => ({ ...h, compression: false })) };
      assert.equal(pretty(render(off, OPTS).json), readFileSync(goldenPath(name), "utf8"), name);
      const without = {
        ...snap,
        proxyHosts: snap.proxyHosts.map((h) => {
          const known: Partial<ProxyHost> = { ...h };
          delete known.compression;
          return known as ProxyHost;
        }),
      };
      assert.equal(render(without, OPTS).json, render(off, OPTS).json, `${name}, hosts without the field`);
    }
  });
});

describe("caddy validate", () => {
  test("every golden config is accepted by caddy validate", (t) =>
    // Validate the exact bytes render produces (the golden files are checked against them above).
    assertCaddyAcceptsAll(t, "cpm-caddy-validate-", {
      ...goldenConfigs(CASES),
      "bind-address": () => render(CASES["ssl-forced"]!, BOUND).json,
    }));
});

describe("render of snapshots that share resource objects (as decoded one after the other)", () => {
  test("equals a render of fresh objects, over random edits of hosts, access lists and settings", () => {
    let seed = 11;
    const pick = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n);
    const acl = (id: string, allow: string) => AccessList.fromPartial({ id, name: id, allow: [allow] });
    let hosts = Array.from({ length: 12 }, (_, i) =>
      host(`h${i}`, [`h${i}.example.com`], {
        upstreams: [`10.0.0.${i % 3}:80`],
        accessListId: i % 4 === 0 ? "office" : "",
      }),
    );
    let acls = [acl("office", "10.1.0.0/16")];
    let certs = [cert("c", ["h1.example.com"])];
    let settings = snapshot().settings;
    const memo = new RenderMemo();
    for (let step = 0; step < 120; step++) {
      const i = pick(hosts.length);
      switch (pick(6)) {
        case 0:
          hosts = hosts.map((h, j) => (j === i ? { ...h, upstreams: [`10.0.1.${step % 5}:80`] } : h));
          break;
        case 1:
          hosts = hosts.map((h, j) =>
            j === i
              ? {
                  ...h,
                  sslForced: !h.sslForced,
                  hstsEnabled: step % 2 === 0,
                  certificateId: h.certificateId ? "" : "c",
                }
              : h,
          );
          break;
        case 2:
          acls = [acl("office", `10.${step % 7}.0.0/16`)];
          break;
        case 3:
          settings = Snapshot.fromPartial({
            settings: { http: { hstsMaxAgeSeconds: 100 + step, upstreamDialTimeoutSeconds: step % 3 } },
          }).settings;
          break;
        case 4:
          hosts = hosts.map((h, j) =>
            j === i ? { ...h, allowWebsocket: !h.allowWebsocket, accessListId: h.accessListId ? "" : "office" } : h,
          );
          break;
        default:
          certs = step % 2 ? [] : [cert("c", ["h1.example.com"])];
          hosts = certs.length ? hosts : hosts.map((h) => (h.certificateId ? { ...h, certificateId: "" } : h));
      }
      // The objects of the previous step, as SnapshotDecoder gives them; fromPartial would copy.
      const s: Snapshot = { ...snapshot(), proxyHosts: hosts, accessLists: acls, certificates: certs, settings };
      assert.equal(render(s, OPTS, memo).json, render(structuredClone(s), OPTS, new RenderMemo()).json, `step ${step}`);
    }
  });

  test("a host changed, added or removed among 2,000 is rendered as a patch of the last render", () => {
    const memo = new RenderMemo();
    let hosts = Array.from({ length: 2000 }, (_, i) =>
      host(`h${String(i).padStart(5, "0")}`, [`h${i}.example.com`], {
        upstreams: [i % 5 === 0 ? `10.1.${i >> 8}.${i & 255}:80` : "10.0.0.1:80"],
      }),
    );
    const rendered = () => {
      const s: Snapshot = { ...snapshot(), proxyHosts: hosts };
      const before = { ...memo.patches };
      const json = render(s, OPTS, memo).json;
      assert.equal(json, render(structuredClone(s), OPTS, new RenderMemo()).json, "the bytes of a render from nothing");
      const p = memo.patches;
      return {
        indexes: p.indexes - before.indexes,
        groupings: p.groupings - before.groupings,
        hostLists: p.hostLists - before.hostLists,
        routesKept: p.routesKept - before.routesKept,
      };
    };
    assert.deepEqual(rendered(), { indexes: 0, groupings: 0, hostLists: 0, routesKept: 0 }, "the first render");
    const edits: [string, () => void][] = [
      [
        "a host renamed",
        () => (hosts = hosts.map((h, i) => (i === 7 ? { ...h, domains: ["renamed.example.com"] } : h))),
      ],
      [
        "a host added",
        () => (hosts = [...hosts, host("h99999", ["added.example.com"], { upstreams: ["10.0.0.1:80"] })]),
      ],
      ["a host removed", () => (hosts = hosts.filter((_, i) => i !== 11))],
    ];
    for (const [name, edit] of edits) {
      edit();
      const got = rendered();
      // One index; both parts' groupings; the large groups' host lists patched; every other route kept.
      assert.equal(got.indexes, 1, `${name}: the domain index patched`);
      assert.equal(got.groupings, 2, `${name}: both groupings patched`);
      assert.ok(got.hostLists >= 1, `${name}: a large group's host list patched`);
      assert.ok(got.routesKept >= 390, `${name}: the routes of unchanged groups kept (${got.routesKept})`);
    }
  });

  test("a one-host change is written from the kept JSON: nothing on the way to it is copied sorted", () => {
    // Every shape of config object on the path to the kept parts: certificates (the tls and pki
    // apps), HTTPS forced, layer4, a slave's challenge route, the Alt-Svc route.
    const opts = { ...OPTS, layer4: true, servesMasterIssued: true, masterHttpAddress: "10.0.0.9:80" };
    const memo = new RenderMemo();
    let hosts = Array.from({ length: 2000 }, (_, i) =>
      host(`h${String(i).padStart(5, "0")}`, [`h${i}.example.com`], {
        upstreams: [i % 2 ? `10.1.${i >> 8}.${i & 255}:80` : "10.0.0.1:80"],
        certificateId: i % 3 ? "c" : "",
        sslForced: i % 3 === 1,
      }),
    );
    const s = () =>
      ({
        ...snapshot({
          l4ProxyHosts: [{ id: "l4", name: "db", listenAddress: ":5432", upstreams: ["db.internal:5432"] }],
        }),
        proxyHosts: hosts,
        // Ordered by every node, this slave too: the tls app is there.
        certificates: [
          { ...cert("c", ["*.example.com"]), issuance: CertificateIssuance.CERTIFICATE_ISSUANCE_EACH_NODE },
        ],
      }) as Snapshot;
    render(s(), opts, memo);
    for (let step = 0; step < 3; step++) {
      hosts = hosts.map((h, i) => (i === 7 * step ? { ...h, upstreams: [`10.2.0.${step}:80`] } : h));
      const before = canonicalCopied.bytes;
      const { json } = render(s(), opts, memo);
      const copied = canonicalCopied.bytes - before;
      assert.equal(json, render(structuredClone(s()), { ...opts }, new RenderMemo()).json, `step ${step}: bytes`);
      assert.ok(json.includes(`10.2.0.${step}:80`) && json.includes('"automate"') && json.includes('"layer4"'));
      assert.ok(copied < json.length / 100, `step ${step}: ${copied} of ${json.length} bytes copied sorted`);
    }
  });

  test("equals a render from nothing, over random edits of the domains, hosts and groups of 300 hosts", () => {
    for (const wildcards of [false, true]) {
      let seed = wildcards ? 5 : 3;
      const pick = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n);
      const memo = new RenderMemo();
      let next = 300;
      let hosts = Array.from({ length: 300 }, (_, i) =>
        host(`h${String(i).padStart(4, "0")}`, [`h${i}.example.com`], {
          // Most hosts share one upstream (one large group), some have their own.
          upstreams: [i % 10 === 0 ? `10.0.2.${i}:80` : "10.0.0.1:80"],
          certificateId: i % 3 === 0 ? "c" : "",
        }),
      );
      for (let step = 0; step < 400; step++) {
        const i = pick(hosts.length);
        const j = pick(hosts.length);
        const edit = (k: number, over: Partial<ProxyHost>) =>
          (hosts = hosts.map((h, x) => (x === k ? { ...h, ...over } : h)));
        switch (pick(9)) {
          case 0:
            edit(i, { domains: [`n${step}.example.com`] });
            break;
          case 1:
            edit(i, {
              domains: [`n${step}.example.com`, `www.n${step}.example.com`, hosts[i]!.domains[0] ?? "x.test"],
            });
            break;
          case 2: {
            // Two hosts trade their names (each valid after the step).
            const [a, b] = [hosts[i]!.domains, hosts[j]!.domains];
            edit(i, { domains: b });
            edit(j, { domains: a });
            break;
          }
          case 3:
            edit(i, { upstreams: [pick(2) ? "10.0.0.1:80" : `10.0.3.${step % 9}:80`] });
            break;
          case 4:
            edit(i, { enabled: !hosts[i]!.enabled });
            break;
          case 5:
            edit(i, { domains: [] });
            break;
          case 6:
            if (pick(2)) hosts = [...hosts, host(`h${String(next++).padStart(4, "0")}`, [`new${step}.example.com`])];
            else hosts = hosts.filter((_, x) => x !== i);
            break;
          case 7:
            // A name another host lists too (an invalid snapshot, still rendered the same way).
            edit(i, { domains: [hosts[j]!.domains[0] ?? "y.test"] });
            break;
          default:
            edit(i, { domains: [wildcards && pick(2) ? `*.example.com` : `w${step}.example.com`], sslForced: true });
        }
        for (let k = 0; k < pick(3); k++) edit(pick(hosts.length), { compression: pick(2) === 0 });
        const s: Snapshot = { ...snapshot(), proxyHosts: hosts, certificates: [cert("c", ["*.example.com"])] };
        assert.equal(
          render(s, OPTS, memo).json,
          render(structuredClone(s), OPTS, new RenderMemo()).json,
          `${wildcards ? "with" : "without"} wildcards, step ${step}`,
        );
      }
    }
  });
});
