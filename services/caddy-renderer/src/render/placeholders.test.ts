// No user or peer string becomes Caddy code: for EVERY string field of every resource and of
// the settings (found by walking a full valid snapshot, so a field added later is covered
// without touching this file), a value carrying a Caddy placeholder is either refused by
// validateSnapshot (the same normalizers as the API) naming that field, or never reaches the
// rendered JSON. Also: hosts whose upstreams point at this instance's own ports are left out.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { inspect } from "node:util";
import {
  AccessList,
  AccessListSatisfy,
  Certificate,
  CertificateType,
  L4Matcher,
  L4Protocol,
  L4ProxyHost,
  ProxyProtocolVersion,
  Settings,
  type Snapshot,
} from "@cpm/proto";
import { loadConfig, reservedAddresses, snapshotContentHash, validateSnapshot, ValidationError } from "@cpm/core";
import { render, type RenderOptions } from "./index.ts";
import { host, makeSelfSigned as selfSigned, OPTS, parseConfig, snapshot } from "./test-support.ts";

const work = mkdtempSync(path.join(tmpdir(), "cpm-render-placeholders-test-"));
after(() => rmSync(work, { recursive: true, force: true }));

const site = selfSigned(work, "secure.test", ["DNS:secure.test", "DNS:*.secure.test"]);
const acmeRoot = selfSigned(work, "Private ACME root", ["DNS:acme.internal"]).cert;
const HASH = `$2b$10$${"N".repeat(53)}`;

const RENDER: RenderOptions = { ...OPTS, layer4: true, tlsFilesDir: path.join(work, "tls") };

/** A valid snapshot that uses every resource and every setting, so each string field is rendered or checked. */
function fixture(): Snapshot {
  return snapshot({
    proxyHosts: [
      host("h1", ["secure.test", "*.secure.test"], {
        upstreams: ["https://10.0.0.1:8443", "https://app.internal:8443"],
        certificateId: "c-imported",
        accessListId: "acl-1",
        sslForced: true,
        hstsEnabled: true,
      }),
      host("h2", ["www.example.org"], {
        upstreams: ["10.0.0.2:80"],
        certificateId: "c-managed",
        accessListId: "acl-1",
      }),
    ],
    certificates: [
      Certificate.fromPartial({
        id: "c-imported",
        name: "site",
        type: CertificateType.CERTIFICATE_TYPE_IMPORTED,
        domainNames: ["secure.test", "*.secure.test"],
        certificatePem: site.cert,
        privateKeyPem: site.key,
      }),
      Certificate.fromPartial({
        id: "c-managed",
        name: "www",
        type: CertificateType.CERTIFICATE_TYPE_MANAGED,
        domainNames: ["www.example.org"],
        autoRenew: true,
      }),
    ],
    accessLists: [
      AccessList.fromPartial({
        id: "acl-1",
        name: "office",
        description: "office and on-call",
        users: [{ username: "ops", passwordHash: HASH, password: "" }],
        allow: ["10.0.0.0/8"],
        deny: ["10.9.0.0/16"],
        satisfy: AccessListSatisfy.ACCESS_LIST_SATISFY_ANY,
      }),
    ],
    l4ProxyHosts: [
      L4ProxyHost.fromPartial({
        id: "l1",
        name: "tls db",
        protocol: L4Protocol.L4_PROTOCOL_TCP,
        listenAddress: ":9443",
        upstreams: ["10.0.0.3:5432"],
        matcher: L4Matcher.L4_MATCHER_TLS_SNI,
        matcherValues: ["db.secure.test"],
        tlsTermination: true,
        certificateId: "c-imported",
      }),
      L4ProxyHost.fromPartial({
        id: "l2",
        name: "dns",
        protocol: L4Protocol.L4_PROTOCOL_UDP,
        listenAddress: "127.0.0.1:5353",
        upstreams: ["10.0.0.4:53"],
        proxyProtocolVersion: ProxyProtocolVersion.PROXY_PROTOCOL_VERSION_V2,
      }),
    ],
    settings: Settings.fromPartial({
      general: { primaryDomain: "example.org", acmeEmail: "ops@example.org" },
      acme: { caUrl: "https://acme.internal/directory", caRootPem: acmeRoot },
      http: { hstsMaxAgeSeconds: 600, upstreamDialTimeoutSeconds: 5, upstreamResponseHeaderTimeoutSeconds: 30 },
    }),
  });
}

type Segment = string | number;
const CONTENT = ["proxyHosts", "l4ProxyHosts", "certificates", "accessLists", "settings"] as const;

/** Every string (and first element of every string list) under the snapshot's content, nested too. */
function stringFields(s: Snapshot): Segment[][] {
  const out: Segment[][] = [];
  const walk = (v: unknown, at: Segment[]) => {
    if (typeof v === "string") out.push(at);
    else if (Array.isArray(v)) {
      if (v.length > 0 && v.every((x) => typeof x === "string")) out.push([...at, 0]);
      else v.forEach((x, i) => walk(x, [...at, i]));
    } else if (v !== null && typeof v === "object" && !(v instanceof Date)) {
      for (const [k, x] of Object.entries(v)) walk(x, [...at, k]);
    }
  };
  for (const key of CONTENT) walk(s[key], [key]);
  return out;
}

/** The field path as validation errors spell it: snapshot.proxy_hosts[0].certificate_id. */
const fieldPath = (at: Segment[]) =>
  `snapshot${at.map((p) => (typeof p === "number" ? `[${p}]` : `.${p.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`)).join("")}`;

function withValue(at: Segment[], edit: (old: string) => string): Snapshot {
  const s = fixture();
  // Walks the snapshot's own objects and arrays by the path stringFields found.
  type Node = Record<Segment, unknown>;
  let parent = s as unknown as Node;
  for (const p of at.slice(0, -1)) parent = parent[p] as Node;
  const last = at[at.length - 1]!;
  parent[last] = edit(parent[last] as string);
  s.contentSha256 = snapshotContentHash(s);
  return s;
}

const PAYLOADS = ["{env.CPM_ADMIN_TOKEN}", "x{http.request.header.X-User}", "{file./etc/passwd}"];
const EXPANDED = ["{env.", "{file.", "{http.request.header", "CPM_ADMIN_TOKEN", "X-User}", "/etc/passwd"];
const PLACES: [string, (old: string, p: string) => string][] = [
  ["instead of", (_old, p) => p],
  ["before", (old, p) => `${p}${old}`],
  ["after", (old, p) => `${old}${p}`],
];

describe("a placeholder in any string field never reaches Caddy", () => {
  const fields = stringFields(fixture());

  test("the fixture is valid and renders every kind of value", () => {
    const s = fixture();
    s.contentSha256 = snapshotContentHash(s);
    validateSnapshot(s);
    const r = render(s, RENDER);
    const cfg = parseConfig(r.json);
    assert.deepEqual(r.warnings, []);
    assert.ok(cfg.apps.tls.certificates.load_pem[0]!.certificate.includes("BEGIN CERTIFICATE"));
    const issuer = cfg.apps.tls.automation.policies.find((p) => p.issuers[0]!.module === "acme")!.issuers[0]!;
    assert.equal(issuer.email, "ops@example.org");
    assert.equal(issuer.ca, "https://acme.internal/directory");
    assert.match(r.json, /"username":"ops"/);
    assert.deepEqual(Object.keys(cfg.apps.layer4.servers).sort(), ["l4-tcp-9443", "l4-udp-127.0.0.1-5353"]);
    for (const e of EXPANDED) assert.ok(!r.json.includes(e), `the fixture itself renders ${e}`);
  });

  test("the walk finds the fields of every resource and of the settings", () => {
    const names = new Set(fields.map(fieldPath));
    for (const f of [
      "snapshot.proxy_hosts[0].domains[0]",
      "snapshot.proxy_hosts[0].upstreams[0]",
      "snapshot.proxy_hosts[0].certificate_id",
      "snapshot.l4_proxy_hosts[0].listen_address",
      "snapshot.l4_proxy_hosts[0].matcher_values[0]",
      "snapshot.certificates[0].private_key_pem",
      "snapshot.access_lists[0].users[0].username",
      "snapshot.access_lists[0].users[0].password_hash",
      "snapshot.access_lists[0].deny[0]",
      "snapshot.settings.general.acme_email",
      "snapshot.settings.acme.ca_url",
      "snapshot.settings.acme.ca_root_pem",
    ]) {
      assert.ok(names.has(f), `${f} not found by the walk: ${[...names].join(", ")}`);
    }
  });

  for (const at of fields) {
    const field = fieldPath(at);
    test(field, () => {
      for (const payload of PAYLOADS) {
        for (const [where, place] of PLACES) {
          const s = withValue(at, (old) => place(old, payload));
          let refused: unknown;
          try {
            validateSnapshot(s);
          } catch (e) {
            refused = e;
          }
          if (refused !== undefined) {
            assert.ok(
              refused instanceof ValidationError,
              `${payload} ${where} the value: not a ValidationError: ${inspect(refused)}`,
            );
            assert.ok(
              refused.message.startsWith(`${field}: `) || refused.message.startsWith(`${field}[`),
              `${payload} ${where} the value: ${refused.message}`,
            );
            continue;
          }
          const json = render(s, RENDER).json;
          for (const e of EXPANDED)
            assert.ok(!json.includes(e), `${payload} ${where} the value was accepted and rendered (${e})`);
        }
      }
    });
  }
});

describe("upstreams that point at this instance (judged by its own ports)", () => {
  const reserved = reservedAddresses(loadConfig({ CPM_DATA_DIR: work }));
  const opts: RenderOptions = { ...RENDER, reservedUpstreams: reserved };

  test("a proxy host with an upstream on Caddy's admin API is left out with a warning; the others are served", () => {
    const s = snapshot({
      proxyHosts: [host("a", ["a.test"], { upstreams: ["10.0.0.1:80", "localhost:2019"] }), host("b", ["b.test"])],
    });
    const r = render(s, opts);
    assert.deepEqual(r.warnings, [
      `proxy host "host a" not served: upstreams[1]: "localhost:2019" points at this instance's Caddy admin API (CPM_CADDY_ADMIN_LISTEN); an upstream must not`,
    ]);
    assert.ok(!r.json.includes("localhost:2019"));
    assert.ok(!r.json.includes('"a.test"'));
    assert.ok(r.json.includes('"b.test"'));
    assert.equal(render(s, RENDER).warnings.length, 0, "without reserved addresses the host is served");
  });

  test("the same host objects are judged again against another instance's ports, warnings in name order", () => {
    const s = snapshot({
      proxyHosts: [
        host("z", ["z.test"], { name: "zeta", upstreams: ["localhost:2019"] }),
        host("a", ["a.test"], { name: "alpha", upstreams: ["127.0.0.1:2019"] }),
        host("b", ["b.test"], { upstreams: ["localhost:9999"] }),
      ],
    });
    assert.deepEqual(
      render(s, opts).warnings.map((w) => w.slice(0, w.indexOf(":"))),
      ['proxy host "alpha" not served', 'proxy host "zeta" not served'],
    );
    const elsewhere = reservedAddresses(loadConfig({ CPM_DATA_DIR: work, CADDY_API_URL: "http://127.0.0.1:9999" }));
    const r = render(s, { ...RENDER, reservedUpstreams: elsewhere });
    assert.deepEqual(
      r.warnings.map((w) => w.slice(0, w.indexOf(":"))),
      ['proxy host "host b" not served'],
      "admin on 9999: host b is refused, the others are served",
    );
    assert.ok(r.json.includes('"a.test"') && r.json.includes('"z.test"') && !r.json.includes('"b.test"'));
  });

  test("a disabled proxy host gets no warning", () => {
    const r = render(
      snapshot({ proxyHosts: [host("a", ["a.test"], { upstreams: ["127.0.0.1:50051"], enabled: false })] }),
      opts,
    );
    assert.deepEqual(r.warnings, []);
  });

  test("an L4 host with an upstream on a CPM port is left out with a warning", () => {
    const l4 = (id: string, listenAddress: string, upstreams: string[]) =>
      L4ProxyHost.fromPartial({ id, name: `l4 ${id}`, listenAddress, upstreams });
    const r = render(
      snapshot({ l4ProxyHosts: [l4("x", ":6000", ["[::1]:50443"]), l4("y", ":6001", ["10.0.0.1:6001"])] }),
      opts,
    );
    assert.deepEqual(r.warnings, [
      `L4 proxy host "l4 x" not served: upstreams[0]: "[::1]:50443" points at this instance's sync-receiver (CPM_SYNC_LISTEN); an upstream must not`,
    ]);
    assert.deepEqual(Object.keys(parseConfig(r.json).apps.layer4.servers), ["l4-tcp-6001"]);
  });
});
