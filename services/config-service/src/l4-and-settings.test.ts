// Service-level tests of L4 proxy hosts and settings: the real gRPC server in-process on
// 127.0.0.1:0, a temporary SQLite file per test, the generated grpc-js clients. Every
// assertion is about what an API client sees: status codes, messages, data and versions.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Certificate,
  CertificateType,
  ConfigServiceClient,
  L4Matcher,
  L4Protocol,
  L4ProxyHost,
  ProxyProtocolVersion,
  Role,
  Settings,
  type DeepPartial,
} from "@cpm/proto";
import { snapshotContentHash, validateSnapshot } from "@cpm/core";
import { status, unary } from "@cpm/grpc-kit";
import { certificateRow } from "./store.ts";
import { ADMIN, expectStatus, harnessForEachTest, INTERNAL, startConfigService, type Harness } from "./test-support.ts";

const { L4_PROTOCOL_TCP: TCP, L4_PROTOCOL_UDP: UDP } = L4Protocol;
const {
  L4_MATCHER_NONE: NONE,
  L4_MATCHER_TLS_SNI: SNI,
  L4_MATCHER_HTTP_HOST: HOST,
  L4_MATCHER_PROXY_PROTOCOL: PP,
} = L4Matcher;

const ROOT_PEM = `-----BEGIN CERTIFICATE-----
MIIBkDCCATegAwIBAgIUTB03SXNh8wvKEGJrHyj0dT3OGigwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSQ1BNIFRlc3QgQUNNRSBSb290MCAXDTI2MTEyNTEzNDY0OVoY
DzIxMjYxMTAxMTM0NjQ5WjAdMRswGQYDVQQDDBJDUE0gVGVzdCBBQ01FIFJvb3Qw
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASxlcH/ihNA9QgNMlfEzgdCJbYRgwfQ
SPpEM5Z9Azqi4pjjWlCyKvGd7GiTMUDcm6GcJlqkOfY6+Ey1hfqtop2ao1MwUTAd
BgNVHQ4EFgQULKG9oCv4AQPIpCYL59P/CBHKiAUwHwYDVR0jBBgwFoAULKG9oCv4
AQPIpCYL59P/CBHKiAUwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBE
AiAixC4ze87oh75kuZvxO/DKDVN93S6W1xVYG87YPWRcmQIgEo/xsINvAZdkDb8C
BNf3RnMvqKXllJsnDReprknYJLg=
-----END CERTIFICATE-----
`;

const l4 = (name: string, over: DeepPartial<L4ProxyHost> = {}) =>
  L4ProxyHost.fromPartial({ name, protocol: TCP, listenAddress: ":5432", upstreams: ["10.0.0.5:5432"], ...over });

const api = (h: Harness) => ({
  create: (host: L4ProxyHost | undefined, token = ADMIN) =>
    unary(h.config.createL4ProxyHost.bind(h.config), { l4ProxyHost: host }, token),
  get: (id: string, token = ADMIN) => unary(h.config.getL4ProxyHost.bind(h.config), { id }, token),
  list: async (token = ADMIN) => (await unary(h.config.listL4ProxyHosts.bind(h.config), {}, token)).l4ProxyHosts,
  update: (host: L4ProxyHost | undefined, token = ADMIN) =>
    unary(h.config.updateL4ProxyHost.bind(h.config), { l4ProxyHost: host }, token),
  delete: (id: string, token = ADMIN) => unary(h.config.deleteL4ProxyHost.bind(h.config), { id }, token),
  getSettings: async (token = ADMIN) => (await unary(h.config.getSettings.bind(h.config), {}, token)).settings!,
  updateSettings: (settings: Settings | undefined, token = ADMIN) =>
    unary(h.config.updateSettings.bind(h.config), { settings }, token),
  snapshot: async () => (await unary(h.config.getSnapshot.bind(h.config), {}, ADMIN)).snapshot!,
  apply: (snapshot: Parameters<ConfigServiceClient["applySnapshot"]>[0]["snapshot"]) =>
    unary(h.internal.applySnapshot.bind(h.internal), { snapshot }, INTERNAL),
  version: async () => (await unary(h.config.getInstanceInfo.bind(h.config), {}, ADMIN)).version,
  viewer: async () =>
    (
      await unary(
        h.account.createApiToken.bind(h.account),
        { name: "viewer", role: Role.ROLE_VIEWER, expiresAt: undefined, userId: "" },
        ADMIN,
      )
    ).secret,
});

/** A certificate row straight in the database (certificate CRUD is another resource's API). */
async function addCertificate(h: Harness, id: string): Promise<void> {
  const c = Certificate.fromPartial({
    id,
    name: `cert ${id}`,
    type: CertificateType.CERTIFICATE_TYPE_MANAGED,
    domainNames: ["db.example.com"],
    autoRenew: true,
  });
  await h.db.certificate.create({ data: certificateRow(c, new Date()) });
  h.store.invalidate();
}

describe("L4 proxy hosts", () => {
  let h: Harness;
  let c: ReturnType<typeof api>;
  harnessForEachTest({}, (started) => {
    h = started;
    c = api(h);
  });

  it("creates, gets, lists, updates and deletes, each write bumping the version by exactly one", async () => {
    const v0 = await c.version();
    const created = await c.create(
      l4("postgres", { listenAddress: " :5432 ", upstreams: ["DB.internal:5432", "10.0.0.6:5432"] }),
    );
    assert.equal(created.configVersion, v0 + 1);
    const p = created.l4ProxyHost!;
    assert.ok(p.id, "server assigns an id");
    assert.equal(p.listenAddress, ":5432", "listen address is canonical");
    assert.deepEqual(p.upstreams, ["db.internal:5432", "10.0.0.6:5432"]);
    assert.equal(p.matcher, NONE, "unset matcher is stored as NONE");
    assert.equal(p.protocol, TCP);
    assert.equal(p.enabled, true);
    assert.ok(p.createdAt instanceof Date && p.updatedAt instanceof Date);
    assert.deepEqual((await c.get(p.id)).l4ProxyHost, p);

    const dns = await c.create(
      l4("dns", {
        protocol: UDP,
        listenAddress: "127.0.0.1:53",
        upstreams: ["10.0.0.53:53"],
        proxyProtocolVersion: ProxyProtocolVersion.PROXY_PROTOCOL_VERSION_V2,
      }),
    );
    assert.equal(dns.configVersion, v0 + 2);
    assert.deepEqual(
      (await c.list()).map((x) => x.name),
      ["dns", "postgres"],
      "listed by name",
    );

    await new Promise((r) => setTimeout(r, 5));
    const updated = await c.update({ ...p, upstreams: ["10.0.0.7:5432"], proxyProtocolReceive: true });
    assert.equal(updated.configVersion, v0 + 3);
    assert.deepEqual(updated.l4ProxyHost!.upstreams, ["10.0.0.7:5432"]);
    assert.equal(updated.l4ProxyHost!.proxyProtocolReceive, true);
    assert.deepEqual(updated.l4ProxyHost!.createdAt, p.createdAt, "created_at is kept");
    assert.ok(updated.l4ProxyHost!.updatedAt!.getTime() > p.updatedAt.getTime());
    assert.deepEqual((await c.get(p.id)).l4ProxyHost, updated.l4ProxyHost);

    const del = await c.delete(p.id);
    assert.equal(del.configVersion, v0 + 4);
    await expectStatus(c.get(p.id), status.NOT_FOUND);
    assert.deepEqual(
      (await c.list()).map((x) => x.name),
      ["dns"],
    );

    const snap = await c.snapshot();
    assert.equal(snap.version, v0 + 4);
    assert.deepEqual(snap.l4ProxyHosts, [dns.l4ProxyHost]);
    validateSnapshot(snap);
  });

  it("answers unknown ids with NOT_FOUND and missing ones with INVALID_ARGUMENT, writing nothing", async () => {
    const v = await c.version();
    assert.match(await expectStatus(c.get("nope"), status.NOT_FOUND), /L4 proxy host "nope" not found/);
    await expectStatus(c.update({ ...l4("x"), id: "nope" }), status.NOT_FOUND);
    await expectStatus(c.delete("nope"), status.NOT_FOUND);
    assert.match(await expectStatus(c.get(""), status.INVALID_ARGUMENT), /^id:/);
    assert.match(await expectStatus(c.delete(""), status.INVALID_ARGUMENT), /^id:/);
    assert.match(await expectStatus(c.update(l4("x")), status.INVALID_ARGUMENT), /^l4_proxy_host\.id:/);
    assert.match(await expectStatus(c.create(undefined), status.INVALID_ARGUMENT), /^l4_proxy_host:/);
    assert.equal(await c.version(), v);
  });

  describe("bad input: INVALID_ARGUMENT naming the field, nothing written", () => {
    const cases: [string, DeepPartial<L4ProxyHost>, string][] = [
      ["empty name", { name: "" }, "l4_proxy_host.name"],
      ["listen address without port", { listenAddress: "5432" }, "l4_proxy_host.listen_address"],
      ["listen port out of range", { listenAddress: ":65536" }, "l4_proxy_host.listen_address"],
      ["listen on a host name", { listenAddress: "db.example.com:5432" }, "l4_proxy_host.listen_address"],
      ["no upstream", { upstreams: [] }, "l4_proxy_host.upstreams"],
      ["second upstream bad", { upstreams: ["10.0.0.1:1", "10.0.0.2"] }, "l4_proxy_host.upstreams[1]"],
      ["upstream with a scheme", { upstreams: ["tcp://10.0.0.1:1"] }, "l4_proxy_host.upstreams[0]"],
      ["TLS_SNI without values", { matcher: SNI }, "l4_proxy_host.matcher_values"],
      [
        "HTTP_HOST bad value",
        { matcher: HOST, matcherValues: ["ok.example.com", "not ok"] },
        "l4_proxy_host.matcher_values[1]",
      ],
      ["NONE with values", { matcher: NONE, matcherValues: ["a.example.com"] }, "l4_proxy_host.matcher_values"],
      ["PROXY_PROTOCOL with values", { matcher: PP, matcherValues: ["a.example.com"] }, "l4_proxy_host.matcher_values"],
      ["UDP with TLS_SNI", { protocol: UDP, matcher: SNI, matcherValues: ["a.example.com"] }, "l4_proxy_host.matcher"],
      [
        "UDP with HTTP_HOST",
        { protocol: UDP, matcher: HOST, matcherValues: ["a.example.com"] },
        "l4_proxy_host.matcher",
      ],
      [
        "UDP with TLS termination",
        { protocol: UDP, tlsTermination: true, certificateId: "cert-1" },
        "l4_proxy_host.tls_termination",
      ],
      [
        "UDP with PROXY v1",
        { protocol: UDP, proxyProtocolVersion: ProxyProtocolVersion.PROXY_PROTOCOL_VERSION_V1 },
        "l4_proxy_host.proxy_protocol_version",
      ],
      ["TLS termination without certificate", { tlsTermination: true }, "l4_proxy_host.certificate_id"],
      [
        "TLS termination with an unknown certificate",
        { tlsTermination: true, certificateId: "missing" },
        "l4_proxy_host.certificate_id",
      ],
      [
        "receive PROXY with TLS_SNI",
        { matcher: SNI, matcherValues: ["a.example.com"], proxyProtocolReceive: true },
        "l4_proxy_host.proxy_protocol_receive",
      ],
      ["unknown protocol", { protocol: 9 as L4Protocol }, "l4_proxy_host.protocol"],
    ];
    for (const [name, over, field] of cases) {
      it(name, async () => {
        const v = await c.version();
        const details = await expectStatus(c.create(l4("bad", over)), status.INVALID_ARGUMENT);
        assert.ok(details.startsWith(`${field}: `), `"${details}" should start with "${field}: "`);
        assert.equal(await c.version(), v, "the version does not move");
        assert.deepEqual(await c.list(), []);
      });
    }

    it("on update too, and the stored host is unchanged", async () => {
      const { l4ProxyHost: p } = await c.create(l4("db"));
      const v = await c.version();
      const details = await expectStatus(
        c.update({ ...p!, upstreams: ["10.0.0.1:5432", "nope"] }),
        status.INVALID_ARGUMENT,
      );
      assert.match(details, /^l4_proxy_host\.upstreams\[1\]: /);
      assert.equal(await c.version(), v);
      assert.deepEqual((await c.get(p!.id)).l4ProxyHost, p);
    });
  });

  describe("rules between resources", () => {
    it("takes an existing certificate for TLS termination", async () => {
      await addCertificate(h, "cert-1");
      const { l4ProxyHost: p } = await c.create(
        l4("tls-db", {
          matcher: SNI,
          matcherValues: ["db.example.com"],
          tlsTermination: true,
          certificateId: "cert-1",
        }),
      );
      assert.equal(p!.certificateId, "cert-1");
      validateSnapshot(await c.snapshot());
    });

    const conflicts: [string, DeepPartial<L4ProxyHost>, DeepPartial<L4ProxyHost>, RegExp][] = [
      [
        "the same name",
        { listenAddress: ":1000" },
        { listenAddress: ":2000" },
        /^l4_proxy_host\.name: an L4 proxy host named "taken" already exists/,
      ],
      [
        "a second catch-all on a listener",
        {},
        {},
        /^l4_proxy_host\.matcher: listener tcp\/:5432 already has a NONE host: "taken"/,
      ],
      [
        "an SNI name already matched on the listener",
        { matcher: SNI, matcherValues: ["a.example.com"] },
        { matcher: SNI, matcherValues: ["b.example.com", "A.example.com"] },
        /^l4_proxy_host\.matcher_values\[1\]: "a\.example\.com" is already matched on listener tcp\/:5432/,
      ],
      [
        "a second PROXY_PROTOCOL host",
        { matcher: PP },
        { matcher: PP },
        /^l4_proxy_host\.matcher: listener tcp\/:5432 already has a PROXY_PROTOCOL host/,
      ],
      [
        "a single address beside every address",
        { listenAddress: ":5432" },
        { listenAddress: "127.0.0.1:5432", matcher: SNI, matcherValues: ["x.example.com"] },
        /^l4_proxy_host\.listen_address: tcp\/127\.0\.0\.1:5432 overlaps tcp\/:5432/,
      ],
    ];
    for (const [name, first, second, message] of conflicts) {
      it(`refuses ${name} with ALREADY_EXISTS; nothing written`, async () => {
        await c.create(l4("taken", first));
        const v = await c.version();
        const details = await expectStatus(
          c.create(l4(name === "the same name" ? "taken" : "second", second)),
          status.ALREADY_EXISTS,
        );
        assert.match(details, message);
        assert.equal(await c.version(), v);
        assert.equal((await c.list()).length, 1);
      });
    }

    it("lets hosts share a listener by matcher, and a disabled host holds no listener", async () => {
      await c.create(l4("catch-all"));
      await c.create(l4("sni", { matcher: SNI, matcherValues: ["a.example.com"] }));
      await c.create(l4("host", { matcher: HOST, matcherValues: ["a.example.com"] }));
      await c.create(l4("pp", { matcher: PP, proxyProtocolReceive: true }));
      await c.create(l4("udp", { protocol: UDP }));
      const off = (await c.create(l4("spare", { enabled: false }))).l4ProxyHost!;
      const v = await c.version();
      const details = await expectStatus(c.update({ ...off, enabled: true }), status.ALREADY_EXISTS);
      assert.match(details, /already has a NONE host: "catch-all"/);
      assert.equal(await c.version(), v);
      // Moving it to its own port is fine.
      await c.update({ ...off, enabled: true, listenAddress: ":5433" });
      assert.equal(await c.version(), v + 1);
      validateSnapshot(await c.snapshot());
    });

    it("an update may keep its own listener and matcher values", async () => {
      const { l4ProxyHost: p } = await c.create(l4("sni", { matcher: SNI, matcherValues: ["a.example.com"] }));
      const u = await c.update({ ...p!, upstreams: ["10.0.0.9:5432"] });
      assert.deepEqual(u.l4ProxyHost!.matcherValues, ["a.example.com"]);
    });
  });

  it("a viewer reads L4 hosts but cannot write them", async () => {
    const viewer = await c.viewer();
    const { l4ProxyHost: p } = await c.create(l4("db"));
    const v = await c.version();
    assert.deepEqual(await c.list(viewer), [p]);
    assert.deepEqual((await c.get(p!.id, viewer)).l4ProxyHost, p);
    await expectStatus(c.create(l4("v"), viewer), status.PERMISSION_DENIED);
    await expectStatus(c.update({ ...p!, name: "x" }, viewer), status.PERMISSION_DENIED);
    await expectStatus(c.delete(p!.id, viewer), status.PERMISSION_DENIED);
    await expectStatus(c.list(""), status.UNAUTHENTICATED);
    assert.equal(await c.version(), v);
  });
});

describe("settings", () => {
  let h: Harness;
  let c: ReturnType<typeof api>;
  harnessForEachTest({}, (started) => {
    h = started;
    c = api(h);
  });

  const DEFAULTS = {
    general: { primaryDomain: "", acmeEmail: "" },
    acme: { caUrl: "", caRootPem: "" },
    http: { hstsMaxAgeSeconds: 31536000, upstreamDialTimeoutSeconds: 0, upstreamResponseHeaderTimeoutSeconds: 0 },
  };

  it("starts with the defaults", async () => {
    assert.deepEqual(await c.getSettings(), DEFAULTS);
  });

  it("round-trips an update, bumps the version once, and the snapshot carries it", async () => {
    const v = await c.version();
    const want = {
      general: { primaryDomain: "proxy.example.com", acmeEmail: "ops@example.com" },
      acme: { caUrl: "https://acme.example.com/directory", caRootPem: ROOT_PEM },
      http: { hstsMaxAgeSeconds: 600, upstreamDialTimeoutSeconds: 7, upstreamResponseHeaderTimeoutSeconds: 45 },
    };
    const r = await c.updateSettings(
      Settings.fromPartial({
        general: { primaryDomain: " Proxy.Example.com ", acmeEmail: "ops@EXAMPLE.com" },
        acme: { caUrl: "https://acme.example.com/directory", caRootPem: `\n${ROOT_PEM}` },
        http: want.http,
      }),
    );
    assert.equal(r.configVersion, v + 1);
    assert.deepEqual(r.settings, want, "the answer is the normalized settings");
    assert.deepEqual(await c.getSettings(), want);
    assert.equal(await c.version(), v + 1);
    const snap = await c.snapshot();
    assert.equal(snap.version, v + 1);
    assert.deepEqual(snap.settings, want);
    validateSnapshot(snap);

    // Whole replacement: what is left out returns to its default.
    const r2 = await c.updateSettings(Settings.fromPartial({ general: { acmeEmail: "other@example.com" } }));
    assert.equal(r2.configVersion, v + 2);
    assert.deepEqual(await c.getSettings(), {
      ...DEFAULTS,
      general: { primaryDomain: "", acmeEmail: "other@example.com" },
    });

    // An explicit HSTS max-age of 0 survives the round trip.
    await c.updateSettings(Settings.fromPartial({ http: { hstsMaxAgeSeconds: 0 } }));
    assert.equal((await c.getSettings()).http!.hstsMaxAgeSeconds, 0);
  });

  describe("bad settings: INVALID_ARGUMENT naming the field, nothing written", () => {
    const cases: [string, DeepPartial<Settings> | undefined, string][] = [
      ["no settings at all", undefined, "settings"],
      ["bad e-mail", { general: { acmeEmail: "not-an-email" } }, "settings.general.acme_email"],
      ["bad primary domain", { general: { primaryDomain: "bad domain" } }, "settings.general.primary_domain"],
      ["plain http CA", { acme: { caUrl: "http://acme.example.com/dir" } }, "settings.acme.ca_url"],
      ["not a URL", { acme: { caUrl: "acme" } }, "settings.acme.ca_url"],
      [
        "bad PEM",
        { acme: { caRootPem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----" } },
        "settings.acme.ca_root_pem",
      ],
      ["HSTS too long", { http: { hstsMaxAgeSeconds: 63072001 } }, "settings.http.hsts_max_age_seconds"],
      [
        "dial timeout too long",
        { http: { upstreamDialTimeoutSeconds: 100000 } },
        "settings.http.upstream_dial_timeout_seconds",
      ],
      [
        "header timeout too long",
        { http: { upstreamResponseHeaderTimeoutSeconds: 3601 } },
        "settings.http.upstream_response_header_timeout_seconds",
      ],
    ];
    for (const [name, s, field] of cases) {
      it(name, async () => {
        await c.updateSettings(Settings.fromPartial({ general: { acmeEmail: "keep@example.com" } }));
        const v = await c.version();
        const before = await c.getSettings();
        const details = await expectStatus(
          c.updateSettings(s === undefined ? undefined : Settings.fromPartial(s)),
          status.INVALID_ARGUMENT,
        );
        assert.ok(details.startsWith(`${field}: `), `"${details}" should start with "${field}: "`);
        assert.equal(await c.version(), v, "the version does not move");
        assert.deepEqual(await c.getSettings(), before);
      });
    }
  });

  it("a viewer reads settings but cannot update them", async () => {
    const viewer = await c.viewer();
    const v = await c.version();
    assert.deepEqual(await c.getSettings(viewer), DEFAULTS);
    const details = await expectStatus(
      c.updateSettings(Settings.fromPartial({ general: { acmeEmail: "v@example.com" } }), viewer),
      status.PERMISSION_DENIED,
    );
    assert.ok(details.length > 0);
    assert.equal(await c.version(), v);
    assert.deepEqual(await c.getSettings(), DEFAULTS);
    await expectStatus(c.getSettings(""), status.UNAUTHENTICATED);
  });
});

describe("L4 hosts and settings on a slave", () => {
  it("are applied from a master's snapshot with the same content hash, and refused as local writes", async () => {
    const master = await startConfigService({ mode: "standalone" });
    const slave = await startConfigService({ mode: "slave" });
    try {
      const m = api(master);
      const s = api(slave);
      await addCertificate(master, "cert-1");
      await m.create(
        l4("db", {
          tlsTermination: true,
          certificateId: "cert-1",
          proxyProtocolVersion: ProxyProtocolVersion.PROXY_PROTOCOL_VERSION_V2,
        }),
      );
      await m.create(l4("dns", { protocol: UDP, listenAddress: ":53" }));
      await m.updateSettings(
        Settings.fromPartial({ general: { acmeEmail: "ops@example.com" }, http: { upstreamDialTimeoutSeconds: 4 } }),
      );
      const snap = await m.snapshot();

      const first = await s.apply(snap);
      assert.deepEqual(first, { version: snap.version, changed: true });
      const again = await s.apply(snap);
      assert.deepEqual(
        again,
        { version: snap.version, changed: false },
        "the stored content hashes the same as the master's",
      );
      const held = await s.snapshot();
      assert.equal(held.contentSha256, snap.contentSha256);
      assert.equal(held.contentSha256, snapshotContentHash(held));
      assert.deepEqual(await s.list(), await m.list());
      assert.deepEqual(await s.getSettings(), await m.getSettings());

      // A master that never wrote settings: the slave keeps that too.
      const fresh = await startConfigService({ mode: "standalone" });
      try {
        const f = api(fresh);
        await f.create(l4("only"));
        const snap2 = await f.snapshot();
        assert.equal(snap2.settings!.http, undefined, "no http row until settings are written");
        await s.apply(snap2);
        assert.deepEqual(await s.apply(snap2), { version: snap2.version, changed: false });
      } finally {
        await fresh.close();
      }

      const v = await s.version();
      await expectStatus(s.create(l4("local", { listenAddress: ":9999" })), status.FAILED_PRECONDITION);
      await expectStatus(s.updateSettings(Settings.fromPartial({})), status.FAILED_PRECONDITION);
      assert.equal(await s.version(), v);
    } finally {
      await master.close();
      await slave.close();
    }
  });
});
