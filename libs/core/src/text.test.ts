// The shared text rule (text.ts) as every normalizer applies it: control characters in every
// name and label, zone ids in every address, placeholder braces in every value Caddy reads.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AccessList, Certificate, CertificateType, L4Matcher, L4ProxyHost, ProxyHost, Settings } from "@cpm/proto";
import { normalizeAccessList } from "./access-lists.ts";
import { normalizeCertificate } from "./certificates.ts";
import { normalizeL4ProxyHost } from "./l4.ts";
import { normalizeSettings } from "./settings.ts";
import { checkCaddyText, checkId, checkNoControl } from "./text.ts";
import { assertValidationError } from "./test-support.ts";
import { normalizeProxyHost } from "./validation.ts";

const HASH = `$2b$10$${"a".repeat(53)}`;

/** One case: a field path and a function that normalizes a valid resource with `value` put into that field. */
type Case = [field: string, withValue: (value: string) => unknown];

const proxyHost = (over: Partial<ProxyHost>) => () =>
  normalizeProxyHost(
    ProxyHost.fromPartial({ name: "site", domains: ["a.example.com"], upstreams: ["10.0.0.1:80"], ...over }),
  );
const l4Host = (over: Partial<L4ProxyHost>) => () =>
  normalizeL4ProxyHost(
    L4ProxyHost.fromPartial({ name: "db", listenAddress: ":5432", upstreams: ["10.0.0.2:5432"], ...over }),
  );
const sniHost = (over: Partial<L4ProxyHost>) =>
  l4Host({ listenAddress: ":443", matcher: L4Matcher.L4_MATCHER_TLS_SNI, matcherValues: ["db.example.com"], ...over });
const certificate = (over: Partial<Certificate>) => () =>
  normalizeCertificate(
    Certificate.fromPartial({
      name: "c",
      type: CertificateType.CERTIFICATE_TYPE_MANAGED,
      domainNames: ["a.example.com"],
      ...over,
    }),
  );
const accessList = (over: Partial<AccessList>) => () =>
  normalizeAccessList(
    AccessList.fromPartial({
      name: "office",
      users: [{ username: "ops", passwordHash: HASH }],
      allow: ["10.0.0.0/8"],
      ...over,
    }),
  );
const settings =
  (general: Partial<Settings["general"]>, acme: Partial<Settings["acme"]> = {}) =>
  () =>
    normalizeSettings(Settings.fromPartial({ general, acme }));

/** Every name, label and description: control characters are refused. */
const LABELS: Case[] = [
  ["proxy_host.name", (v) => proxyHost({ name: v })()],
  ["l4_proxy_host.name", (v) => l4Host({ name: v })()],
  ["certificate.name", (v) => certificate({ name: v })()],
  ["access_list.name", (v) => accessList({ name: v })()],
  ["access_list.description", (v) => accessList({ description: v })()],
  [
    "access_list.users[0].username",
    (v) => accessList({ users: [{ username: v, passwordHash: HASH, password: "" }] })(),
  ],
];

/** Every address (host names, IPs, host:port, CIDRs): zone ids are refused. */
const ADDRESSES: [field: string, withValue: (value: string) => unknown, zoned: string][] = [
  ["proxy_host.domains[0]", (v) => proxyHost({ domains: [v] })(), "fe80::1%eth0"],
  ["proxy_host.upstreams[0]", (v) => proxyHost({ upstreams: [v] })(), "[fe80::1%eth0]:80"],
  ["l4_proxy_host.listen_address", (v) => l4Host({ listenAddress: v })(), "[fe80::1%eth0]:80"],
  ["l4_proxy_host.upstreams[0]", (v) => l4Host({ upstreams: [v] })(), "[fe80::1%25eth0]:5432"],
  ["l4_proxy_host.matcher_values[0]", (v) => sniHost({ matcherValues: [v] })(), "fe80::1%eth0"],
  ["certificate.domain_names[0]", (v) => certificate({ domainNames: [v] })(), "fe80::1%eth0"],
  ["access_list.allow[0]", (v) => accessList({ allow: [v] })(), "fe80::1%eth0"],
  ["access_list.deny[0]", (v) => accessList({ deny: [v] })(), "fe80::%eth0/64"],
  ["settings.general.primary_domain", (v) => settings({ primaryDomain: v })(), "fe80::1%eth0"],
];

/** Every free-form value the renderer writes into Caddy's config: placeholder braces are refused. */
const CADDY_VALUES: Case[] = [
  [
    "access_list.users[0].username",
    (v) => accessList({ users: [{ username: v, passwordHash: HASH, password: "" }] })(),
  ],
  ["settings.general.acme_email", (v) => settings({ acmeEmail: `${v}@example.com` })()],
  ["settings.general.acme_email", (v) => settings({ acmeEmail: `ops@${v}.example.com` })()],
  ["settings.acme.ca_url", (v) => settings({}, { caUrl: `https://acme.example.com/${v}` })()],
  ["settings.acme.ca_url", (v) => settings({}, { caUrl: `https://acme.example.com/dir?x=${v}` })()],
  ["settings.acme.ca_url", (v) => settings({}, { caUrl: `https://${v}.example.com/dir` })()],
  ["proxy_host.domains[0]", (v) => proxyHost({ domains: [v] })()],
  ["proxy_host.upstreams[0]", (v) => proxyHost({ upstreams: [`${v}:80`] })()],
  ["proxy_host.id", (v) => proxyHost({ id: v })()],
  ["proxy_host.certificate_id", (v) => proxyHost({ certificateId: v })()],
  ["proxy_host.access_list_id", (v) => proxyHost({ accessListId: v })()],
  ["l4_proxy_host.id", (v) => l4Host({ id: v })()],
  ["l4_proxy_host.listen_address", (v) => l4Host({ listenAddress: `${v}:5432` })()],
  ["l4_proxy_host.upstreams[0]", (v) => l4Host({ upstreams: [`${v}:5432`] })()],
  ["l4_proxy_host.matcher_values[0]", (v) => sniHost({ matcherValues: [v] })()],
  ["l4_proxy_host.certificate_id", (v) => l4Host({ tlsTermination: true, certificateId: v })()],
  ["certificate.id", (v) => certificate({ id: v })()],
  ["certificate.domain_names[0]", (v) => certificate({ domainNames: [v] })()],
  ["access_list.id", (v) => accessList({ id: v })()],
  ["access_list.allow[0]", (v) => accessList({ allow: [v] })()],
  ["settings.general.primary_domain", (v) => settings({ primaryDomain: v })()],
];

const CONTROLS: [string, string][] = [
  ["NUL", "\u0000"],
  ["TAB", "\t"],
  ["LF", "\n"],
  ["CR", "\r"],
  ["ESC", "\u001b"],
  ["DEL", "\u007f"],
  ["C1 NEL", "\u0085"],
  ["C1 CSI", "\u009b"],
  ["LINE SEPARATOR", "\u2028"],
  ["PARAGRAPH SEPARATOR", "\u2029"],
];

const PLACEHOLDERS = ["{env.CPM_ADMIN_TOKEN}", "x{http.request.header.X-User}", "{file./etc/passwd}", "a}b", "{"];

describe("control characters in names and labels", () => {
  for (const [field, withValue] of LABELS) {
    test(`${field}: a plain value is accepted`, () => assert.doesNotThrow(() => withValue("Office web-1 (ops)")));
    for (const [what, c] of CONTROLS) {
      test(`${field}: ${what} is refused`, () =>
        assertValidationError(() => withValue(`a${c}b`), field, /control character \(U\+[0-9A-F]{4}\)/));
    }
  }
});

describe("zone ids in addresses", () => {
  for (const [field, withValue, zoned] of ADDRESSES) {
    test(`${field}: ${JSON.stringify(zoned)} is refused`, () =>
      assertValidationError(() => withValue(zoned), field, /zone id/));
  }
});

describe("placeholder braces in values Caddy reads", () => {
  for (const [field, withValue] of CADDY_VALUES) {
    for (const p of PLACEHOLDERS) {
      test(`${field}: ${JSON.stringify(p)} is refused`, () =>
        assertValidationError(
          () => withValue(p),
          field,
          /contains "\{" or "\}", which Caddy would read as a placeholder/,
        ));
    }
  }

  test("the ACME e-mail from the attack is refused, naming the field", () =>
    assertValidationError(
      () => settings({ acmeEmail: "{env.CPM_INTERNAL_TOKEN}.{env.CPM_ADMIN_TOKEN}@example.com" })(),
      "settings.general.acme_email",
      /placeholder/,
    ));

  test("ca_url comes back without white space, braces or control characters", () => {
    const out = normalizeSettings(Settings.fromPartial({ acme: { caUrl: "  https://acme.example.com/dir?x=1  " } }));
    assert.equal(out.acme!.caUrl, "https://acme.example.com/dir?x=1");
    for (const bad of [
      "https://acme.exa\nmple.com/dir",
      "https://acme.example.com/d ir",
      "https://acme.example.com/\tdir",
    ]) {
      assertValidationError(
        () => normalizeSettings(Settings.fromPartial({ acme: { caUrl: bad } })),
        "settings.acme.ca_url",
      );
    }
  });
});

describe("text rule primitives", () => {
  test("checkCaddyText accepts ordinary text, including non-ASCII", () =>
    assert.doesNotThrow(() => checkCaddyText("Zoë ops-1 $%&", "f")));
  test("checkNoControl allows braces (labels are never Caddy values)", () =>
    assert.doesNotThrow(() => checkNoControl("team {a}", "f")));
  test("checkId accepts UUIDs and refuses spaces and slashes", () => {
    assert.equal(checkId("3f2b8c1e-6a4d-4b8e-9f0a-1c2d3e4f5a6b", "f"), "3f2b8c1e-6a4d-4b8e-9f0a-1c2d3e4f5a6b");
    assertValidationError(() => checkId("a b", "f"), "f", /is not an id/);
    assertValidationError(() => checkId("../x", "f"), "f", /is not an id/);
    assertValidationError(() => checkId("x".repeat(129), "f"), "f", /is not an id/);
  });
});
