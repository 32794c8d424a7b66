import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { L4Matcher, L4Protocol, L4ProxyHost, ProxyProtocolVersion, type DeepPartial } from "@cpm/proto";
import { assertValidationError } from "./test-support.ts";
import {
  instancePorts,
  l4Listener,
  l4ListenerConflict,
  listenersOverlap,
  normalizeL4ProxyHost,
  parseListenAddress,
  takesInstancePort,
} from "./l4.ts";

const { L4_PROTOCOL_TCP: TCP, L4_PROTOCOL_UDP: UDP, L4_PROTOCOL_UNSPECIFIED: PROTO_UNSPEC } = L4Protocol;
const {
  L4_MATCHER_NONE: NONE,
  L4_MATCHER_TLS_SNI: SNI,
  L4_MATCHER_HTTP_HOST: HOST,
  L4_MATCHER_PROXY_PROTOCOL: PP,
  L4_MATCHER_UNSPECIFIED: M_UNSPEC,
} = L4Matcher;
const { PROXY_PROTOCOL_VERSION_V1: V1, PROXY_PROTOCOL_VERSION_V2: V2 } = ProxyProtocolVersion;

const l4 = (over: DeepPartial<L4ProxyHost> = {}) =>
  L4ProxyHost.fromPartial({
    id: "id-1",
    name: "db",
    protocol: TCP,
    listenAddress: ":5432",
    upstreams: ["db.internal:5432"],
    ...over,
  });

describe("parseListenAddress", () => {
  const valid: [string, string][] = [
    [":5432", ":5432"],
    ["  :53 ", ":53"],
    ["0.0.0.0:80", "0.0.0.0:80"],
    ["127.0.0.1:1", "127.0.0.1:1"],
    ["[::1]:65535", "[::1]:65535"],
    ["[2001:DB8::1]:853", "[2001:db8::1]:853"],
    ["[::]:22", "[::]:22"],
  ];
  for (const [raw, want] of valid)
    test(`valid ${JSON.stringify(raw)}`, () => assert.equal(parseListenAddress(raw, "f").address, want));

  const invalid: [string, RegExp][] = [
    ["5432", /is not \[host\]:port/],
    ["", /is not \[host\]:port/],
    [":0", /port 0 is outside 1\.\.65535/],
    [":65536", /port 65536 is outside/],
    [":123456", /is not \[host\]:port/],
    ["db.example.com:5432", /must be an IP address/],
    ["localhost:5432", /must be an IP address/],
    ["::1:5432", /is not \[host\]:port/],
    ["[zz::1]:53", /invalid IPv6/],
    ["[10.0.0.1]:53", /invalid IPv6/],
    ["tcp/:5432", /must not name a network; set protocol/],
    ["1.2.3:80", /must be an IP address/],
  ];
  for (const [raw, detail] of invalid)
    test(`invalid ${JSON.stringify(raw)}`, () =>
      assertValidationError(() => parseListenAddress(raw, "x.listen_address"), "x.listen_address", detail));
});

describe("normalizeL4ProxyHost: valid hosts", () => {
  test("defaults: TCP, NONE, enabled, trimmed and canonical", () => {
    const n = normalizeL4ProxyHost(
      l4({
        name: "  db ",
        protocol: PROTO_UNSPEC,
        matcher: M_UNSPEC,
        listenAddress: " :5432",
        upstreams: [" DB.internal:5432 ", "[FD00::1]:5432"],
      }),
    );
    assert.equal(n.name, "db");
    assert.equal(n.protocol, TCP);
    assert.equal(n.matcher, NONE);
    assert.equal(n.listenAddress, ":5432");
    assert.deepEqual(n.upstreams, ["db.internal:5432", "[FD00::1]:5432"]);
    assert.equal(n.enabled, true);
    assert.equal(n.certificateId, "");
  });

  const cases: [string, DeepPartial<L4ProxyHost>][] = [
    ["TLS_SNI with wildcard", { matcher: SNI, matcherValues: ["A.example.com", "*.example.org"] }],
    ["HTTP_HOST", { matcher: HOST, matcherValues: ["web.example.com"] }],
    ["PROXY_PROTOCOL matcher with receive", { matcher: PP, proxyProtocolReceive: true }],
    ["NONE with receive and send v2", { proxyProtocolReceive: true, proxyProtocolVersion: V2 }],
    ["send v1 over TCP", { proxyProtocolVersion: V1 }],
    ["TLS termination with a certificate", { tlsTermination: true, certificateId: "cert-1" }],
    [
      "TLS termination with SNI",
      { matcher: SNI, matcherValues: ["db.example.com"], tlsTermination: true, certificateId: "cert-1" },
    ],
    ["UDP with NONE", { protocol: UDP, listenAddress: ":53", upstreams: ["10.0.0.53:53"] }],
    ["UDP sending v2", { protocol: UDP, listenAddress: ":53", upstreams: ["10.0.0.53:53"], proxyProtocolVersion: V2 }],
    ["disabled", { enabled: false }],
  ];
  for (const [name, over] of cases) {
    test(name, () => {
      const n = normalizeL4ProxyHost(l4(over));
      assert.equal(n.enabled, over.enabled ?? true);
      // Normalizing is idempotent.
      assert.deepEqual(normalizeL4ProxyHost(n), n);
    });
  }

  test("matcher values are lower-cased", () => {
    assert.deepEqual(normalizeL4ProxyHost(l4({ matcher: SNI, matcherValues: ["A.Example.COM"] })).matcherValues, [
      "a.example.com",
    ]);
  });
});

describe("normalizeL4ProxyHost: bad input names the field", () => {
  const cases: [string, DeepPartial<L4ProxyHost>, string, RegExp][] = [
    ["empty name", { name: " " }, "l4_proxy_host.name", /is required/],
    ["unknown protocol", { protocol: 7 as L4Protocol }, "l4_proxy_host.protocol", /not a known value/],
    ["unknown matcher", { matcher: 9 as L4Matcher }, "l4_proxy_host.matcher", /not a known value/],
    [
      "unknown proxy protocol version",
      { proxyProtocolVersion: 3 as ProxyProtocolVersion },
      "l4_proxy_host.proxy_protocol_version",
      /not a known value/,
    ],
    ["listen without port", { listenAddress: "5432" }, "l4_proxy_host.listen_address", /\[host\]:port/],
    ["listen port 0", { listenAddress: ":0" }, "l4_proxy_host.listen_address", /outside 1\.\.65535/],
    ["listen port too big", { listenAddress: ":70000" }, "l4_proxy_host.listen_address", /outside 1\.\.65535/],
    ["listen host name", { listenAddress: "db.local:5432" }, "l4_proxy_host.listen_address", /IP address/],
    ["no upstreams", { upstreams: [] }, "l4_proxy_host.upstreams", /at least one/],
    ["second upstream without port", { upstreams: ["a:1", "b"] }, "l4_proxy_host.upstreams[1]", /host:port/],
    ["upstream port 0", { upstreams: ["a:0"] }, "l4_proxy_host.upstreams[0]", /outside 1\.\.65535/],
    ["upstream with scheme", { upstreams: ["a:1", "tcp://b:2"] }, "l4_proxy_host.upstreams[1]", /without a scheme/],
    ["upstream with http scheme", { upstreams: ["http://b:2"] }, "l4_proxy_host.upstreams[0]", /without a scheme/],
    ["upstream bad host", { upstreams: ["a b:1"] }, "l4_proxy_host.upstreams[0]", /host:port/],
    ["duplicate upstream", { upstreams: ["a:1", "A:1"] }, "l4_proxy_host.upstreams[1]", /listed twice/],
    ["TLS_SNI without values", { matcher: SNI }, "l4_proxy_host.matcher_values", /at least one host name.*TLS_SNI/],
    ["HTTP_HOST without values", { matcher: HOST }, "l4_proxy_host.matcher_values", /HTTP_HOST/],
    [
      "TLS_SNI bad value",
      { matcher: SNI, matcherValues: ["ok.example.com", "bad name"] },
      "l4_proxy_host.matcher_values[1]",
      /not a valid host name/,
    ],
    [
      "HTTP_HOST duplicate value",
      { matcher: HOST, matcherValues: ["a.example.com", "A.example.com"] },
      "l4_proxy_host.matcher_values[1]",
      /listed twice/,
    ],
    [
      "NONE with values",
      { matcher: NONE, matcherValues: ["a.example.com"] },
      "l4_proxy_host.matcher_values",
      /must be empty for the NONE matcher/,
    ],
    ["unspecified matcher with values", { matcherValues: ["a.example.com"] }, "l4_proxy_host.matcher_values", /NONE/],
    [
      "PROXY_PROTOCOL with values",
      { matcher: PP, matcherValues: ["a.example.com"] },
      "l4_proxy_host.matcher_values",
      /PROXY_PROTOCOL/,
    ],
    [
      "UDP with TLS_SNI",
      { protocol: UDP, matcher: SNI, matcherValues: ["a.example.com"] },
      "l4_proxy_host.matcher",
      /needs TCP/,
    ],
    [
      "UDP with HTTP_HOST",
      { protocol: UDP, matcher: HOST, matcherValues: ["a.example.com"] },
      "l4_proxy_host.matcher",
      /needs TCP/,
    ],
    ["UDP with PROXY_PROTOCOL matcher", { protocol: UDP, matcher: PP }, "l4_proxy_host.matcher", /needs TCP/],
    [
      "UDP with TLS termination",
      { protocol: UDP, tlsTermination: true, certificateId: "c" },
      "l4_proxy_host.tls_termination",
      /UDP/,
    ],
    [
      "UDP receiving PROXY",
      { protocol: UDP, proxyProtocolReceive: true },
      "l4_proxy_host.proxy_protocol_receive",
      /TCP/,
    ],
    ["UDP sending PROXY v1", { protocol: UDP, proxyProtocolVersion: V1 }, "l4_proxy_host.proxy_protocol_version", /V2/],
    [
      "TLS termination without certificate",
      { tlsTermination: true },
      "l4_proxy_host.certificate_id",
      /required with tls_termination/,
    ],
    [
      "certificate without TLS termination",
      { certificateId: "cert-1" },
      "l4_proxy_host.certificate_id",
      /only used with tls_termination/,
    ],
    [
      "TLS termination with HTTP_HOST",
      { matcher: HOST, matcherValues: ["a.example.com"], tlsTermination: true, certificateId: "c" },
      "l4_proxy_host.tls_termination",
      /TLS_SNI/,
    ],
    [
      "receive with TLS_SNI",
      { matcher: SNI, matcherValues: ["a.example.com"], proxyProtocolReceive: true },
      "l4_proxy_host.proxy_protocol_receive",
      /TLS_SNI/,
    ],
    [
      "receive with HTTP_HOST",
      { matcher: HOST, matcherValues: ["a.example.com"], proxyProtocolReceive: true },
      "l4_proxy_host.proxy_protocol_receive",
      /HTTP_HOST/,
    ],
  ];
  for (const [name, over, field, detail] of cases) {
    test(name, () => assertValidationError(() => normalizeL4ProxyHost(l4(over)), field, detail));
  }

  test("the field prefix follows the caller (snapshot paths)", () => {
    assertValidationError(
      () => normalizeL4ProxyHost(l4({ upstreams: ["a:1", "nope"] }), "snapshot.l4_proxy_hosts[3]"),
      "snapshot.l4_proxy_hosts[3].upstreams[1]",
    );
  });
});

describe("listeners and conflicts between hosts", () => {
  const n = (id: string, over: DeepPartial<L4ProxyHost>) =>
    normalizeL4ProxyHost(l4({ id, name: `host ${id}`, ...over }));

  test("l4Listener: protocol and canonical address", () => {
    assert.deepEqual(l4Listener(n("a", {})), {
      protocol: "tcp",
      host: "",
      port: 5432,
      address: ":5432",
      network: "tcp/:5432",
    });
    assert.equal(l4Listener(n("b", { protocol: UDP, listenAddress: "[::1]:53" })).network, "udp/[::1]:53");
  });

  test("listenersOverlap: a wildcard and a single address on the same port and protocol", () => {
    const L = (protocol: L4Protocol, listenAddress: string) => l4Listener({ protocol, listenAddress });
    assert.equal(listenersOverlap(L(TCP, ":80"), L(TCP, "127.0.0.1:80")), true);
    assert.equal(listenersOverlap(L(TCP, "0.0.0.0:80"), L(TCP, ":80")), true);
    assert.equal(listenersOverlap(L(TCP, "[::]:80"), L(TCP, "[::1]:80")), true);
    assert.equal(listenersOverlap(L(TCP, ":80"), L(TCP, ":80")), false, "the same listener is shared, not overlapping");
    assert.equal(listenersOverlap(L(TCP, ":80"), L(UDP, ":80")), false);
    assert.equal(listenersOverlap(L(TCP, "10.0.0.1:80"), L(TCP, "10.0.0.2:80")), false);
    assert.equal(listenersOverlap(L(TCP, ":80"), L(TCP, ":81")), false);
  });

  const conflicts: [string, DeepPartial<L4ProxyHost>, DeepPartial<L4ProxyHost>, string | undefined, RegExp?][] = [
    ["two NONE on one listener", {}, {}, "l4_proxy_host.matcher", /tcp\/:5432 already has a NONE host: "host other"/],
    ["NONE and unspecified matcher on one listener", { matcher: M_UNSPEC }, {}, "l4_proxy_host.matcher", /NONE/],
    ["two PROXY_PROTOCOL on one listener", { matcher: PP }, { matcher: PP }, "l4_proxy_host.matcher", /PROXY_PROTOCOL/],
    [
      "same SNI on one listener",
      { matcher: SNI, matcherValues: ["x.example.com", "a.example.com"] },
      { matcher: SNI, matcherValues: ["a.example.com"] },
      "l4_proxy_host.matcher_values[1]",
      /"a\.example\.com" is already matched on listener tcp\/:5432/,
    ],
    [
      "same Host on one listener",
      { matcher: HOST, matcherValues: ["a.example.com"] },
      { matcher: HOST, matcherValues: ["a.example.com"] },
      "l4_proxy_host.matcher_values[0]",
    ],
    [
      "wildcard listener beside a single address",
      { listenAddress: "127.0.0.1:5432" },
      { listenAddress: ":5432", matcher: SNI, matcherValues: ["a.example.com"] },
      "l4_proxy_host.listen_address",
      /overlaps tcp\/:5432/,
    ],
    ["NONE beside SNI: fine", {}, { matcher: SNI, matcherValues: ["a.example.com"] }, undefined],
    [
      "SNI and Host with the same name: fine",
      { matcher: HOST, matcherValues: ["a.example.com"] },
      { matcher: SNI, matcherValues: ["a.example.com"] },
      undefined,
    ],
    ["NONE and PROXY_PROTOCOL: fine", { matcher: PP }, {}, undefined],
    ["two NONE, one disabled: fine", { enabled: false }, {}, undefined],
    ["two NONE, the other disabled: fine", {}, { enabled: false }, undefined],
    ["same port, TCP and UDP: fine", { protocol: UDP }, {}, undefined],
    [
      "two single addresses on one port: fine",
      { listenAddress: "10.0.0.1:5432" },
      { listenAddress: "10.0.0.2:5432" },
      undefined,
    ],
  ];
  for (const [name, mine, theirs, field, detail] of conflicts) {
    test(name, () => {
      const got = l4ListenerConflict(n("me", mine), [n("other", theirs)]);
      if (field === undefined) return assert.equal(got, undefined);
      assert.ok(got, "expected a conflict");
      assert.equal(got[0], field);
      if (detail) assert.match(got[1], detail);
    });
  }

  test("a host never conflicts with itself (update)", () => {
    const h = n("me", {});
    assert.equal(l4ListenerConflict(h, [h]), undefined);
  });
});

describe("instancePorts / takesInstancePort", () => {
  const ports = instancePorts({ httpPort: 80, httpsPort: 443, adminListen: "127.0.0.1:2019" });
  const on = (protocol: "tcp" | "udp", address: string) =>
    takesInstancePort(
      l4Listener({
        protocol: protocol === "udp" ? L4Protocol.L4_PROTOCOL_UDP : L4Protocol.L4_PROTOCOL_TCP,
        listenAddress: address,
      }),
      ports,
    )?.what;
  test("HTTP, HTTPS, HTTP/3 and the admin API's address are taken", () => {
    assert.equal(on("tcp", ":80"), "HTTP port");
    assert.equal(on("tcp", "10.0.0.1:443"), "HTTPS port");
    assert.equal(on("udp", ":443"), "HTTPS port (HTTP/3)");
    assert.equal(on("tcp", "127.0.0.1:2019"), "admin API port");
    assert.equal(on("tcp", ":2019"), "admin API port");
  });
  test("other ports, UDP on the HTTP port and the admin port on another address are free", () => {
    assert.equal(on("tcp", ":8080"), undefined);
    assert.equal(on("udp", ":80"), undefined);
    assert.equal(on("tcp", "10.0.0.1:2019"), undefined);
  });
  test("with a bind address, the HTTP port on another address is free", () => {
    const bound = instancePorts({
      httpPort: 80,
      httpsPort: 443,
      bindAddress: "10.0.0.1",
      adminListen: "127.0.0.1:2019",
    });
    assert.equal(
      takesInstancePort(l4Listener({ protocol: L4Protocol.L4_PROTOCOL_TCP, listenAddress: "10.0.0.2:80" }), bound),
      undefined,
    );
    assert.equal(
      takesInstancePort(l4Listener({ protocol: L4Protocol.L4_PROTOCOL_TCP, listenAddress: ":80" }), bound)?.what,
      "HTTP port",
    );
  });
});
