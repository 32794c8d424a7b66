import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LoadBalancingPolicy, ProxyHost, type DeepPartial } from "@cpm/proto";
import { assertValidationError } from "./test-support.ts";
import { checkHostName, checkName, normalizeProxyHost, parseUpstream, type ParsedUpstream } from "./validation.ts";

describe("checkHostName", () => {
  const valid: [string, string][] = [
    ["example.com", "example.com"],
    ["sub.example.com", "sub.example.com"],
    ["*.example.com", "*.example.com"],
    ["localhost", "localhost"],
    ["a-b.example", "a-b.example"],
    ["xn--bcher-kva.example", "xn--bcher-kva.example"],
    ["1.example.com", "1.example.com"],
    ["EXAMPLE.Com", "example.com"],
    ["*.Example.COM", "*.example.com"],
    ["  example.com  ", "example.com"],
    ["10.0.0.1", "10.0.0.1"],
    ["::1", "::1"],
    ["2001:DB8::1", "2001:db8::1"],
    [`${"a".repeat(63)}.com`, `${"a".repeat(63)}.com`],
  ];
  for (const [input, want] of valid) {
    test(`valid: ${JSON.stringify(input)} -> ${want}`, () => assert.equal(checkHostName(input, "f"), want));
  }

  const invalid: [string, string][] = [
    ["exa mple.com", "space"],
    ["-a.com", "leading hyphen"],
    ["a-.com", "trailing hyphen"],
    ["a..com", "empty label"],
    [".example.com", "leading dot"],
    ["example.com.", "trailing dot"],
    ["*.*.com", "double wildcard"],
    ["foo.*.com", "wildcard not leftmost"],
    ["*example.com", "wildcard without dot"],
    ["*", "bare wildcard"],
    ["a_b.com", "underscore"],
    ["exämple.com", "non-ASCII"],
    ["http://example.com", "scheme"],
    ["example.com:80", "port"],
    [`${"a".repeat(64)}.com`, "label > 63 chars"],
    [Array.from({ length: 51 }, () => "abcd").join("."), "name > 253 chars"],
  ];
  for (const [input, why] of invalid) {
    test(`invalid (${why}): ${JSON.stringify(input.length > 40 ? `${input.slice(0, 40)}...` : input)}`, () =>
      assertValidationError(() => checkHostName(input, "x.domains[0]"), "x.domains[0]", /is not a valid host name/));
  }

  test("empty and blank are rejected as empty", () => {
    assertValidationError(() => checkHostName("", "d"), "d", /must not be empty/);
    assertValidationError(() => checkHostName("   ", "d"), "d", /must not be empty/);
  });

  test("wildcard: false rejects a wildcard", () => {
    assertValidationError(() => checkHostName("*.example.com", "u", { wildcard: false }), "u", /not a valid host name/);
    assert.equal(checkHostName("example.com", "u", { wildcard: false }), "example.com");
  });
});

describe("parseUpstream", () => {
  const valid: [string, ParsedUpstream][] = [
    ["backend:8080", { scheme: "http", host: "backend", port: 8080, dial: "backend:8080" }],
    ["http://10.0.0.1:80", { scheme: "http", host: "10.0.0.1", port: 80, dial: "10.0.0.1:80" }],
    ["https://api.internal:8443", { scheme: "https", host: "api.internal", port: 8443, dial: "api.internal:8443" }],
    ["[::1]:80", { scheme: "http", host: "[::1]", port: 80, dial: "[::1]:80" }],
    ["https://[2001:db8::1]:443", { scheme: "https", host: "[2001:db8::1]", port: 443, dial: "[2001:db8::1]:443" }],
    ["Backend.Local:1", { scheme: "http", host: "backend.local", port: 1, dial: "backend.local:1" }],
    ["  app:3000  ", { scheme: "http", host: "app", port: 3000, dial: "app:3000" }],
    ["app:65535", { scheme: "http", host: "app", port: 65535, dial: "app:65535" }],
  ];
  for (const [input, want] of valid) {
    test(`valid: ${JSON.stringify(input)}`, () => assert.deepEqual(parseUpstream(input, "u"), want));
  }

  const invalid: [string, string, RegExp][] = [
    ["backend", "no port", /is not host:port/],
    ["http://backend", "scheme, no port", /is not host:port/],
    ["backend:0", "port 0", /port 0 is outside 1\.\.65535/],
    ["backend:70000", "port 70000", /port 70000 is outside 1\.\.65535/],
    ["backend:123456", "six-digit port", /is not host:port/],
    ["ftp://x:1", "ftp scheme", /is not host:port/],
    ["backend:80/path", "path", /is not host:port/],
    ["http://backend:80/", "trailing slash", /is not host:port/],
    ["::1:80", "unbracketed IPv6", /is not host:port/],
    ["[::1]", "bracketed IPv6, no port", /is not host:port/],
    ["[1.2.3.4]:80", "IPv4 in brackets", /invalid IPv6 address/],
    ["[1::2::3]:80", "malformed IPv6", /invalid IPv6 address/],
    ["a b:80", "space", /is not host:port/],
    ["-bad:80", "bad host name", /is not a valid host name/],
    ["*.example.com:80", "wildcard host", /is not a valid host name/],
    ["", "empty", /is not host:port/],
  ];
  for (const [input, why, detail] of invalid) {
    test(`invalid (${why}): ${JSON.stringify(input)}`, () =>
      assertValidationError(() => parseUpstream(input, "h.upstreams[2]"), "h.upstreams[2]", detail));
  }
});

describe("checkName", () => {
  test("trims, requires, limits to 200 characters", () => {
    assert.equal(checkName("  My host ", "n"), "My host");
    assert.equal(checkName("x".repeat(200), "n"), "x".repeat(200));
    assertValidationError(() => checkName("  ", "n"), "n", /is required/);
    assertValidationError(() => checkName("x".repeat(201), "n"), "n", /longer than 200/);
  });
});

describe("normalizeProxyHost", () => {
  const base = {
    id: "ph-1",
    name: "App",
    domains: ["app.example.com"],
    upstreams: ["app:8080"],
  } satisfies DeepPartial<ProxyHost>;
  const host = (over: DeepPartial<ProxyHost> = {}) => ProxyHost.fromPartial({ ...base, ...over });

  const errors: { name: string; over: DeepPartial<ProxyHost>; field: string; detail?: RegExp }[] = [
    { name: "empty name", over: { name: "" }, field: "proxy_host.name", detail: /is required/ },
    { name: "blank name", over: { name: "   " }, field: "proxy_host.name", detail: /is required/ },
    { name: "name > 200 chars", over: { name: "n".repeat(201) }, field: "proxy_host.name", detail: /longer than 200/ },
    { name: "no domains", over: { domains: [] }, field: "proxy_host.domains", detail: /at least one domain/ },
    {
      name: "101 domains",
      over: { domains: Array.from({ length: 101 }, (_, i) => `d${i}.example.com`) },
      field: "proxy_host.domains",
      detail: /at most 100/,
    },
    {
      name: "bad first domain",
      over: { domains: ["bad domain"] },
      field: "proxy_host.domains[0]",
      detail: /"bad domain" is not a valid host name/,
    },
    {
      name: "bad second domain",
      over: { domains: ["ok.example.com", "-bad.example.com"] },
      field: "proxy_host.domains[1]",
      detail: /not a valid host name/,
    },
    {
      name: "empty domain",
      over: { domains: ["ok.example.com", "x.example.com", ""] },
      field: "proxy_host.domains[2]",
      detail: /must not be empty/,
    },
    {
      name: "duplicate domain",
      over: { domains: ["a.example.com", "b.example.com", "a.example.com"] },
      field: "proxy_host.domains[2]",
      detail: /"a\.example\.com" is listed twice/,
    },
    {
      name: "duplicate domain differing only in case",
      over: { domains: ["A.example.com", "a.EXAMPLE.com"] },
      field: "proxy_host.domains[1]",
      detail: /listed twice/,
    },
    { name: "no upstreams", over: { upstreams: [] }, field: "proxy_host.upstreams", detail: /at least one upstream/ },
    {
      name: "upstream without port",
      over: { upstreams: ["app"] },
      field: "proxy_host.upstreams[0]",
      detail: /is not host:port/,
    },
    {
      name: "second upstream port 0",
      over: { upstreams: ["a:1", "b:0"] },
      field: "proxy_host.upstreams[1]",
      detail: /port 0/,
    },
    {
      name: "mixed http:// and https:// upstreams",
      over: { upstreams: ["http://a:80", "https://b:443"] },
      field: "proxy_host.upstreams",
      detail: /mixes http and https/,
    },
    {
      name: "mixed implicit http and https upstreams",
      over: { upstreams: ["https://a:443", "b:80"] },
      field: "proxy_host.upstreams",
      detail: /mixes http and https/,
    },
    {
      name: "unknown load balancing policy",
      over: { loadBalancing: 42 as LoadBalancingPolicy },
      field: "proxy_host.load_balancing",
      detail: /42 is not a known value/,
    },
    {
      name: "UNRECOGNIZED load balancing policy",
      over: { loadBalancing: LoadBalancingPolicy.UNRECOGNIZED },
      field: "proxy_host.load_balancing",
    },
    {
      name: "ssl_forced without certificate_id",
      over: { sslForced: true },
      field: "proxy_host.ssl_forced",
      detail: /needs certificate_id/,
    },
    {
      name: "ssl_forced with a blank certificate_id",
      over: { sslForced: true, certificateId: "  " },
      field: "proxy_host.ssl_forced",
      detail: /needs certificate_id/,
    },
    {
      name: "hsts_enabled without certificate_id",
      over: { hstsEnabled: true },
      field: "proxy_host.hsts_enabled",
      detail: /needs certificate_id/,
    },
    {
      name: "hsts_subdomains without hsts_enabled",
      over: { certificateId: "c1", hstsSubdomains: true },
      field: "proxy_host.hsts_subdomains",
      detail: /needs hsts_enabled/,
    },
  ];
  for (const { name, over, field, detail } of errors) {
    test(`${name} -> ${field}`, () => assertValidationError(() => normalizeProxyHost(host(over)), field, detail));
  }

  test("the field prefix is the caller's", () => {
    assertValidationError(
      () => normalizeProxyHost(host({ domains: ["ok.com", "b a.com"] }), "snapshot.proxy_hosts[3]"),
      "snapshot.proxy_hosts[3].domains[1]",
    );
  });

  test("normalized output: trimmed, lower-cased, canonical upstreams, other fields kept", () => {
    const input = host({
      name: "  My App ",
      domains: [" App.Example.COM ", "*.Example.com"],
      upstreams: ["http://App:8080", " 10.0.0.2:9000 "],
      certificateId: " cert-1 ",
      accessListId: " acl-1 ",
      sslForced: true,
      hstsEnabled: true,
      hstsSubdomains: true,
      allowWebsocket: true,
      preserveHostHeader: true,
      loadBalancing: LoadBalancingPolicy.LOAD_BALANCING_POLICY_IP_HASH,
    });
    const copy = structuredClone(input);
    const n = normalizeProxyHost(input);
    assert.deepEqual(n, {
      ...copy,
      name: "My App",
      domains: ["app.example.com", "*.example.com"],
      upstreams: ["app:8080", "10.0.0.2:9000"],
      certificateId: "cert-1",
      accessListId: "acl-1",
      enabled: true,
    });
    assert.deepEqual(input, copy, "the input is not modified");
  });

  test("https upstreams keep their scheme; http:// is dropped", () => {
    assert.deepEqual(normalizeProxyHost(host({ upstreams: ["https://A:443", "https://[::1]:8443"] })).upstreams, [
      "https://a:443",
      "https://[::1]:8443",
    ]);
    assert.deepEqual(normalizeProxyHost(host({ upstreams: ["http://a:80", "[::1]:81"] })).upstreams, [
      "a:80",
      "[::1]:81",
    ]);
  });

  test("enabled defaults to true when unset, and false stays false", () => {
    assert.equal(host().enabled, undefined);
    assert.equal(normalizeProxyHost(host()).enabled, true);
    assert.equal(normalizeProxyHost(host({ enabled: false })).enabled, false);
    assert.equal(normalizeProxyHost(host({ enabled: true })).enabled, true);
  });

  test("every known load balancing policy is accepted", () => {
    for (const lb of Object.values(LoadBalancingPolicy)) {
      if (typeof lb !== "number" || lb === LoadBalancingPolicy.UNRECOGNIZED) continue;
      assert.equal(normalizeProxyHost(host({ loadBalancing: lb })).loadBalancing, lb);
    }
  });

  test("ssl_forced and HSTS with subdomains are accepted with a certificate", () => {
    const n = normalizeProxyHost(
      host({ certificateId: "c1", sslForced: true, hstsEnabled: true, hstsSubdomains: true }),
    );
    assert.equal(n.sslForced, true);
    assert.equal(n.hstsSubdomains, true);
  });
});
