import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  AccessList,
  Certificate,
  CertificateType,
  L4Matcher,
  L4ProxyHost,
  LoadBalancingPolicy,
  ProxyHost,
  Settings,
  Snapshot,
  type DeepPartial,
} from "@cpm/proto";
import { assertValidationError } from "./test-support.ts";
import {
  ChunkDigestMemo,
  contentDigests,
  PATCH_CHECK_MAX_CHANGED,
  contentHashOfChunks,
  contentHashOfDigests,
  endsChunk,
  sameValue,
  SNAPSHOT_SCHEMA_VERSION,
  snapshotContentHash,
  SnapshotCheckMemo,
  validateSnapshot,
  validateSnapshotContent,
  type ContentDigests,
} from "./snapshot.ts";

const host = (id: string, domains: string[], over: DeepPartial<ProxyHost> = {}) =>
  ProxyHost.fromPartial({ id, name: `host ${id}`, domains, upstreams: [`${id}:8080`], ...over });
const cert = (id: string, over: DeepPartial<Certificate> = {}) =>
  // Managed: an imported one needs a real PEM chain and key (certificates.test.ts covers those).
  Certificate.fromPartial({
    id,
    name: `cert ${id}`,
    type: CertificateType.CERTIFICATE_TYPE_MANAGED,
    domainNames: ["example.com"],
    ...over,
  });
const acl = (id: string, over: DeepPartial<AccessList> = {}) =>
  AccessList.fromPartial({ id, name: `acl ${id}`, allow: ["10.0.0.0/8"], ...over });
const l4 = (id: string, over: DeepPartial<L4ProxyHost> = {}) =>
  L4ProxyHost.fromPartial({ id, name: `l4 ${id}`, listenAddress: ":5432", upstreams: ["db:5432"], ...over });

const HASH = `$2b$10$${"a".repeat(53)}`;

/** A valid snapshot: three hosts, two certificates, two access lists, one L4 host, settings. */
function content(): Snapshot {
  return Snapshot.fromPartial({
    schemaVersion: SNAPSHOT_SCHEMA_VERSION,
    masterInstanceId: "master-1",
    version: 7,
    generatedAt: new Date("2024-05-01T10:00:00Z"),
    proxyHosts: [
      host("h1", ["a.example.com", "*.a.example.com"], { certificateId: "c1", sslForced: true }),
      host("h2", ["b.example.com"], { accessListId: "acl1" }),
      host("h3", ["c.example.com"], { certificateId: "c2", accessListId: "acl2", enabled: false }),
    ],
    l4ProxyHosts: [l4("l1", { certificateId: "c1", tlsTermination: true })],
    certificates: [cert("c1"), cert("c2")],
    accessLists: [acl("acl1"), acl("acl2")],
    settings: Settings.fromPartial({ general: { primaryDomain: "example.com", acmeEmail: "ops@example.com" } }),
  });
}

/** Applies `edit` to a valid snapshot and seals it with the matching content hash. */
function sealed(edit: (s: Snapshot) => void = () => {}): Snapshot {
  const s = content();
  edit(s);
  s.contentSha256 = snapshotContentHash(s);
  return s;
}

/** Digests with each kind's map read into a plain Map (a patched check's are PatchedMaps), to compare with deepEqual. */
function plainDigests(d: ContentDigests): ContentDigests {
  return {
    proxyHosts: new Map(d.proxyHosts),
    l4ProxyHosts: new Map(d.l4ProxyHosts),
    certificates: new Map(d.certificates),
    accessLists: new Map(d.accessLists),
    settings: d.settings,
  };
}

describe("snapshotContentHash", () => {
  test("is 64 lower-case hex characters", () => {
    assert.match(snapshotContentHash(content()), /^[0-9a-f]{64}$/);
  });

  test("is independent of the order of every list", () => {
    const a = content();
    const b = content();
    b.proxyHosts.reverse();
    b.certificates.reverse();
    b.accessLists.reverse();
    b.l4ProxyHosts = [l4("l0"), ...b.l4ProxyHosts];
    a.l4ProxyHosts = [...a.l4ProxyHosts, l4("l0")];
    assert.notDeepEqual(
      a.proxyHosts.map((h) => h.id),
      b.proxyHosts.map((h) => h.id),
    );
    assert.equal(snapshotContentHash(a), snapshotContentHash(b));
  });

  test("is independent of version, generatedAt, master id and the stored hash", () => {
    const a = content();
    const b = content();
    b.version = 999;
    b.generatedAt = new Date("2030-01-01T00:00:00Z");
    b.masterInstanceId = "someone-else";
    b.contentSha256 = "deadbeef";
    b.schemaVersion = 1;
    assert.equal(snapshotContentHash(a), snapshotContentHash(b));
    // Only the content fields matter: a bare Content object hashes the same.
    const { proxyHosts, l4ProxyHosts, certificates, accessLists, settings } = a;
    assert.equal(
      snapshotContentHash({ proxyHosts, l4ProxyHosts, certificates, accessLists, settings }),
      snapshotContentHash(a),
    );
  });

  const changes: [string, (s: Snapshot) => void][] = [
    ["a domain", (s) => (s.proxyHosts[1]!.domains = ["b2.example.com"])],
    ["domain order inside a host", (s) => s.proxyHosts[0]!.domains.reverse()],
    ["an upstream", (s) => (s.proxyHosts[0]!.upstreams = ["h1:8081"])],
    ["a flag", (s) => (s.proxyHosts[1]!.allowWebsocket = true)],
    ["compression", (s) => (s.proxyHosts[0]!.compression = true)],
    ["enabled", (s) => (s.proxyHosts[2]!.enabled = true)],
    ["load balancing", (s) => (s.proxyHosts[0]!.loadBalancing = 3)],
    ["a host id", (s) => (s.proxyHosts[0]!.id = "h1b")],
    ["a host added", (s) => s.proxyHosts.push(host("h4", ["d.example.com"]))],
    ["a host removed", (s) => s.proxyHosts.pop()],
    ["a certificate's PEM", (s) => (s.certificates[0]!.certificatePem = "PEM other")],
    ["a certificate's private key", (s) => (s.certificates[1]!.privateKeyPem = "KEY other")],
    ["an access list rule", (s) => (s.accessLists[0]!.allow = ["192.168.0.0/16"])],
    [
      "an access list user",
      (s) => (s.accessLists[0]!.users = [{ username: "u", passwordHash: "$2b$x", password: "" }]),
    ],
    ["an L4 host", (s) => (s.l4ProxyHosts[0]!.listenAddress = ":6543")],
    ["settings", (s) => (s.settings!.general!.acmeEmail = "other@example.com")],
    ["settings removed", (s) => (s.settings = undefined)],
  ];
  for (const [what, edit] of changes) {
    test(`changes when ${what} changes`, () => {
      const before = snapshotContentHash(content());
      const s = content();
      edit(s);
      assert.notEqual(snapshotContentHash(s), before);
    });
  }

  test("does not sort or modify the caller's lists", () => {
    const s = content();
    s.proxyHosts.reverse();
    const ids = s.proxyHosts.map((h) => h.id);
    snapshotContentHash(s);
    assert.deepEqual(
      s.proxyHosts.map((h) => h.id),
      ids,
    );
  });
});

describe("snapshotContentHash across releases", () => {
  // Proxy hosts as release 0.1.0 (commit a7c653b) hashed them: every ProxyHost field it knew,
  // set and unset. HASH_0_1_0 is what that release's snapshotContentHash answered for them.
  const hosts0_1_0 = () => [
    host("h1", ["a.example.com", "*.a.example.com"], { certificateId: "c1", sslForced: true }),
    host("h2", ["b.example.com"], { accessListId: "acl1" }),
    host("h3", ["c.example.com"], { certificateId: "c2", accessListId: "acl2", enabled: false }),
    host("h4", ["d.example.com"], {
      upstreams: ["https://h4a:8443", "h4b:8080"],
      certificateId: "c1",
      sslForced: true,
      hstsEnabled: true,
      hstsSubdomains: true,
      allowWebsocket: true,
      preserveHostHeader: true,
      skipHttpsHostnameValidation: true,
      loadBalancing: LoadBalancingPolicy.LOAD_BALANCING_POLICY_LEAST_CONN,
      enabled: true,
      createdAt: new Date("2026-01-02T03:04:05Z"),
      updatedAt: new Date("2026-02-03T04:05:06Z"),
    }),
  ];
  const HASH_0_1_0 = "6b3bb2fa07f6e7a69df32d1a34a843a16376f731e1b545302c02864062531182";
  const hashOf = (proxyHosts: ProxyHost[]) => snapshotContentHash(Snapshot.fromPartial({ proxyHosts }));

  test("of hosts that do not compress is the hash release 0.1.0 gives them", () => {
    const hosts = hosts0_1_0();
    assert.ok(hosts.every((h) => h.compression === false));
    assert.equal(hashOf(hosts), HASH_0_1_0);
  });

  test("of hosts decoded without the compression field (as 0.1.0 decodes them) is the same", () => {
    const hosts = hosts0_1_0();
    for (const h of hosts) delete (h as Partial<ProxyHost>).compression;
    assert.ok(hosts.every((h) => !("compression" in h)));
    assert.equal(hashOf(hosts), HASH_0_1_0);
  });

  test("changes when one host compresses, and the host object is left as it was", () => {
    const hosts = hosts0_1_0();
    hosts[3]!.compression = true;
    assert.notEqual(hashOf(hosts), HASH_0_1_0);
    assert.equal(hosts[3]!.compression, true);
    hosts[3]!.compression = false;
    assert.equal(hashOf(hosts), HASH_0_1_0);
  });
});

describe("validateSnapshot", () => {
  test("accepts a valid snapshot", () => {
    assert.doesNotThrow(() => validateSnapshot(sealed()));
  });

  test("accepts an empty snapshot", () => {
    const s = Snapshot.fromPartial({ schemaVersion: SNAPSHOT_SCHEMA_VERSION, masterInstanceId: "m", version: 1 });
    s.contentSha256 = snapshotContentHash(s);
    assert.doesNotThrow(() => validateSnapshot(s));
  });

  test("accepts lists in any order with the same hash", () => {
    const s = sealed();
    s.proxyHosts.reverse();
    s.certificates.reverse();
    assert.doesNotThrow(() => validateSnapshot(s));
  });

  const bad: { name: string; edit: (s: Snapshot) => void; field: string; detail?: RegExp }[] = [
    {
      name: "schema_version 1 (the format before chunk digests)",
      edit: (s) => (s.schemaVersion = 1),
      field: "snapshot.schema_version",
      detail: /1 is not supported \(this build reads 2 and 3\)/,
    },
    {
      name: "schema_version 4 (a newer release's)",
      edit: (s) => (s.schemaVersion = 4),
      field: "snapshot.schema_version",
      detail: /4 is not supported \(this build reads 2 and 3\)/,
    },
    {
      name: "schema_version 2 carrying a proxy host's compression (schema 3)",
      edit: (s) => {
        s.schemaVersion = 2;
        s.proxyHosts[0]!.compression = true;
      },
      field: "snapshot.schema_version",
      detail: /2 cannot carry proxy_host\.compression \(schema 3 or later\), used by proxy_host /,
    },
    { name: "schema_version 0 (unset)", edit: (s) => (s.schemaVersion = 0), field: "snapshot.schema_version" },
    {
      name: "missing master id",
      edit: (s) => (s.masterInstanceId = ""),
      field: "snapshot.master_instance_id",
      detail: /is required/,
    },
    { name: "version 0", edit: (s) => (s.version = 0), field: "snapshot.version", detail: /must be positive/ },
    { name: "negative version", edit: (s) => (s.version = -3), field: "snapshot.version", detail: /must be positive/ },
    { name: "NaN version", edit: (s) => (s.version = Number.NaN), field: "snapshot.version" },
    {
      name: "duplicate proxy host id",
      edit: (s) => (s.proxyHosts[2]!.id = "h1"),
      field: "snapshot.proxy_hosts[2].id",
      detail: /"h1" appears twice/,
    },
    {
      name: "missing proxy host id",
      edit: (s) => (s.proxyHosts[1]!.id = ""),
      field: "snapshot.proxy_hosts[1].id",
      detail: /is required/,
    },
    {
      name: "duplicate certificate id",
      edit: (s) => s.certificates.push(cert("c1")),
      field: "snapshot.certificates[2].id",
      detail: /"c1" appears twice/,
    },
    {
      name: "duplicate access list id",
      edit: (s) => (s.accessLists[1]!.id = "acl1"),
      field: "snapshot.access_lists[1].id",
      detail: /appears twice/,
    },
    {
      name: "duplicate L4 host id",
      edit: (s) => s.l4ProxyHosts.push(l4("l1")),
      field: "snapshot.l4_proxy_hosts[1].id",
      detail: /appears twice/,
    },
    {
      name: "invalid proxy host (bad domain)",
      edit: (s) => (s.proxyHosts[1]!.domains = ["ok.example.com", "not valid"]),
      field: "snapshot.proxy_hosts[1].domains[1]",
      detail: /not a valid host name/,
    },
    {
      name: "invalid proxy host (bad upstream)",
      edit: (s) => (s.proxyHosts[0]!.upstreams = ["nope"]),
      field: "snapshot.proxy_hosts[0].upstreams[0]",
    },
    {
      name: "a domain on two hosts",
      edit: (s) => s.proxyHosts[2]!.domains.push("a.example.com"),
      field: "snapshot.proxy_hosts[2].domains[1]",
      detail: /"a\.example\.com" is also served by proxy host "h1"/,
    },
    {
      name: "a domain on two hosts, differing in case",
      edit: (s) => (s.proxyHosts[1]!.domains = ["A.Example.com"]),
      field: "snapshot.proxy_hosts[1].domains[0]",
      detail: /also served by proxy host "h1"/,
    },
    {
      name: "a wildcard domain on two hosts",
      edit: (s) => s.proxyHosts[1]!.domains.push("*.a.example.com"),
      field: "snapshot.proxy_hosts[1].domains[1]",
      detail: /also served/,
    },
    {
      name: "dangling certificate_id",
      edit: (s) => (s.proxyHosts[1]!.certificateId = "c-missing"),
      field: "snapshot.proxy_hosts[1].certificate_id",
      detail: /certificate "c-missing" is not in the snapshot/,
    },
    {
      name: "certificate removed while still used",
      edit: (s) => s.certificates.splice(1, 1),
      field: "snapshot.proxy_hosts[2].certificate_id",
      detail: /"c2" is not in the snapshot/,
    },
    {
      name: "dangling access_list_id",
      edit: (s) => (s.proxyHosts[0]!.accessListId = "acl-missing"),
      field: "snapshot.proxy_hosts[0].access_list_id",
      detail: /access list "acl-missing" is not in the snapshot/,
    },
    {
      name: "dangling L4 certificate_id",
      edit: (s) => (s.l4ProxyHosts[0]!.certificateId = "c9"),
      field: "snapshot.l4_proxy_hosts[0].certificate_id",
      detail: /certificate "c9" is not in the snapshot/,
    },
    // What the slave's database would refuse on commit (unique names; listeners), refused before anything is applied.
    {
      name: "two proxy hosts with one name",
      edit: (s) => (s.proxyHosts[2]!.name = "host h1"),
      field: "snapshot.proxy_hosts[2].name",
      detail: /"host h1" is also the name of snapshot\.proxy_hosts\[0\]/,
    },
    {
      name: "two proxy hosts with one name after trimming",
      edit: (s) => (s.proxyHosts[1]!.name = "  host h1 "),
      field: "snapshot.proxy_hosts[1].name",
      detail: /names are unique/,
    },
    {
      name: "two certificates with one name",
      edit: (s) => (s.certificates[1]!.name = "cert c1"),
      field: "snapshot.certificates[1].name",
      detail: /"cert c1" is also the name of snapshot\.certificates\[0\]/,
    },
    {
      name: "two access lists with one name",
      edit: (s) => (s.accessLists[1]!.name = "acl acl1"),
      field: "snapshot.access_lists[1].name",
      detail: /is also the name of snapshot\.access_lists\[0\]/,
    },
    {
      name: "two L4 hosts with one name",
      edit: (s) => s.l4ProxyHosts.push(l4("l2", { name: "l4 l1", listenAddress: ":6000" })),
      field: "snapshot.l4_proxy_hosts[1].name",
      detail: /is also the name of snapshot\.l4_proxy_hosts\[0\]/,
    },
    {
      name: "two L4 catch-all hosts on one listener",
      edit: (s) => s.l4ProxyHosts.push(l4("l2")),
      field: "snapshot.l4_proxy_hosts[1].matcher",
      detail: /listener tcp\/:5432 already has a NONE host: "l4 l1"/,
    },
    {
      name: "L4 listeners that cannot both be bound",
      edit: (s) => s.l4ProxyHosts.push(l4("l2", { listenAddress: "127.0.0.1:5432" })),
      field: "snapshot.l4_proxy_hosts[1].listen_address",
      detail: /overlaps tcp\/:5432/,
    },
    {
      name: "one TLS_SNI value twice on one listener",
      edit: (s) =>
        s.l4ProxyHosts.push(
          l4("l2", { listenAddress: ":443", matcher: L4Matcher.L4_MATCHER_TLS_SNI, matcherValues: ["db.example.com"] }),
          l4("l3", {
            listenAddress: ":443",
            matcher: L4Matcher.L4_MATCHER_TLS_SNI,
            matcherValues: ["x.example.com", "db.example.com"],
          }),
        ),
      field: "snapshot.l4_proxy_hosts[2].matcher_values[1]",
      detail: /"db\.example\.com" is already matched on listener tcp\/:443 by L4 proxy host "l4 l2"/,
    },
    // Values Caddy would expand, and control characters, refused by the shared normalizers.
    {
      name: "placeholder in a basic-auth username",
      edit: (s) =>
        (s.accessLists[0]!.users = [{ username: "{env.CPM_ADMIN_TOKEN}", passwordHash: HASH, password: "" }]),
      field: "snapshot.access_lists[0].users[0].username",
      detail: /contains "\{" or "\}", which Caddy would read as a placeholder/,
    },
    {
      name: "placeholder in the ACME e-mail",
      edit: (s) => (s.settings!.general!.acmeEmail = "{env.CPM_INTERNAL_TOKEN}@example.com"),
      field: "snapshot.settings.general.acme_email",
      detail: /placeholder/,
    },
    {
      name: "placeholder in a certificate id",
      edit: (s) => (s.certificates[0]!.id = "{env.X}"),
      field: "snapshot.certificates[0].id",
      detail: /placeholder/,
    },
    {
      name: "control character in a proxy host name",
      edit: (s) => (s.proxyHosts[0]!.name = "a\u001b[31m"),
      field: "snapshot.proxy_hosts[0].name",
      detail: /control character \(U\+001B\)/,
    },
    {
      name: "zone id in a domain",
      edit: (s) => (s.proxyHosts[0]!.domains = ["fe80::1%eth0"]),
      field: "snapshot.proxy_hosts[0].domains[0]",
      detail: /zone/,
    },
    {
      name: "zone id in an L4 listen address",
      edit: (s) => (s.l4ProxyHosts[0]!.listenAddress = "[fe80::1%eth0]:80"),
      field: "snapshot.l4_proxy_hosts[0].listen_address",
      detail: /zone/,
    },
  ];
  for (const { name, edit, field, detail } of bad) {
    test(`${name} -> ${field}`, () => {
      const s = sealed(edit);
      assertValidationError(() => validateSnapshot(s), field, detail);
    });
  }

  test("a content_sha256 that does not match the content", () => {
    const s = sealed();
    s.proxyHosts[0]!.upstreams = ["h1:9999"]; // content changed after sealing
    assertValidationError(() => validateSnapshot(s), "snapshot.content_sha256", /does not match/);
  });

  test("a missing content_sha256", () => {
    const s = sealed();
    s.contentSha256 = "";
    assertValidationError(() => validateSnapshot(s), "snapshot.content_sha256");
  });

  test("an upper-case content_sha256 does not match (hex is lower-case)", () => {
    const s = sealed();
    s.contentSha256 = s.contentSha256.toUpperCase();
    assertValidationError(() => validateSnapshot(s), "snapshot.content_sha256");
  });

  test("the field prefix is the caller's", () => {
    const s = sealed((x) => (x.version = 0));
    assertValidationError(() => validateSnapshot(s, "push.snapshot"), "push.snapshot.version");
  });

  test("a disabled host still owns its domains", () => {
    // h3 is disabled; reusing its domain elsewhere is still a conflict.
    const s = sealed((x) => x.proxyHosts[1]!.domains.push("c.example.com"));
    assertValidationError(
      () => validateSnapshot(s),
      "snapshot.proxy_hosts[2].domains[0]",
      /also served by proxy host "h2"/,
    );
  });
});

describe("validateSnapshotContent with the normalized resources of earlier calls", () => {
  test("still checks across resources: a domain two known hosts share is refused", () => {
    const normalized = new WeakMap<object, unknown>();
    const s = content();
    validateSnapshotContent(s, "snapshot", normalized);
    assert.ok(normalized.has(s.proxyHosts[0]!), "each resource's normalized form is kept");
    // The same host objects, one of them now next to a new host serving its domain.
    const next = { ...s, proxyHosts: [...s.proxyHosts, host("h4", ["b.example.com"])] };
    assertValidationError(
      () => validateSnapshotContent(next, "snapshot", normalized),
      "snapshot.proxy_hosts[3].domains[0]",
      /also served by proxy host "h2"/,
    );
  });

  test("normalizes a resource it has not seen", () => {
    const normalized = new WeakMap<object, unknown>();
    validateSnapshotContent(content(), "snapshot", normalized);
    const bad = { ...content(), proxyHosts: [host("h9", ["not a host name"])] };
    assertValidationError(
      () => validateSnapshotContent(bad, "snapshot", normalized),
      "snapshot.proxy_hosts[0].domains[0]",
    );
  });
});

describe("validateSnapshot with a SnapshotCheckMemo (resources unchanged since the last valid snapshot)", () => {
  /** A deterministic generator (mulberry32), so a failing sequence can be replayed from its seed. */
  const random = (seed: number) => {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  };
  /** As it arrives over the wire: freshly decoded objects, none shared with an earlier snapshot. */
  const wire = (s: Snapshot) => Snapshot.decode(Snapshot.encode(s).finish());
  const sealedWire = (edit?: (s: Snapshot) => void) => {
    const s = wire(sealed(edit));
    s.contentSha256 = snapshotContentHash(s);
    return wire(s);
  };

  test("after random edits, its digests and verdict equal a full recomputation", () => {
    const seed = Number(process.env.CPM_TEST_SEED ?? 20261126);
    const rnd = random(seed);
    const memo = new SnapshotCheckMemo();
    let s = content();
    let next = 100;
    for (let step = 0; step < 300; step++) {
      const r = rnd();
      const hosts = s.proxyHosts;
      if (r < 0.3 && hosts.length) {
        const i = Math.floor(rnd() * hosts.length);
        hosts[i] = { ...hosts[i]!, upstreams: [`u${step}:80`], allowWebsocket: rnd() < 0.5 };
      } else if (r < 0.5) {
        const id = `h${next++}`;
        hosts.push(host(id, [`${id}.example.com`]));
      } else if (r < 0.6 && hosts.length > 1) {
        hosts.splice(Math.floor(rnd() * hosts.length), 1);
      } else if (r < 0.7) {
        s.accessLists[0] = { ...s.accessLists[0]!, allow: [`10.${step % 256}.0.0/16`] };
      } else if (r < 0.8) {
        s.settings = Settings.fromPartial({ general: { primaryDomain: `p${step}.example.com` } });
      } else if (r < 0.9 && hosts.length) {
        const i = Math.floor(rnd() * hosts.length);
        hosts[i] = { ...hosts[i]!, name: `renamed ${step}` };
      }
      s = wire(s);
      s.contentSha256 = snapshotContentHash(s);
      const arrived = wire(s);
      const digests = validateSnapshot(arrived, "snapshot", memo);
      assert.deepEqual(
        digests,
        contentDigests(arrived),
        `seed ${seed}, step ${step}: the digests equal a full recomputation`,
      );
      // What is refused without the memo is refused with it.
      const tampered = wire(s);
      tampered.proxyHosts[0] = { ...tampered.proxyHosts[0]!, upstreams: ["tampered:1"] };
      assert.throws(
        () => validateSnapshot(tampered, "snapshot", memo),
        /content_sha256/,
        `seed ${seed}, step ${step}: a content hash that does not match is refused`,
      );
    }
  });

  test("a known resource changed into an invalid one is refused", () => {
    const memo = new SnapshotCheckMemo();
    validateSnapshot(sealedWire(), "snapshot", memo);
    const bad = sealedWire((s) => void (s.proxyHosts[1] = { ...s.proxyHosts[1]!, domains: ["not a host name"] }));
    assertValidationError(() => validateSnapshot(bad, "snapshot", memo), "snapshot.proxy_hosts[1].domains[0]");
  });

  test("still checks across resources: two known hosts made to share a domain are refused", () => {
    const memo = new SnapshotCheckMemo();
    validateSnapshot(sealedWire(), "snapshot", memo);
    const clash = sealedWire((s) => void s.proxyHosts.push(host("h9", ["b.example.com"])));
    assertValidationError(() => validateSnapshot(clash, "snapshot", memo), "snapshot.proxy_hosts[3].domains[0]");
  });

  test("a snapshot that fails leaves the memo as it was; one snapshot's resources are kept", () => {
    const memo = new SnapshotCheckMemo();
    const first = sealedWire();
    validateSnapshot(first, "snapshot", memo);
    const size = memo.size();
    assert.equal(
      size,
      first.proxyHosts.length + first.l4ProxyHosts.length + first.certificates.length + first.accessLists.length,
    );
    const wrong = sealedWire((s) => void s.proxyHosts.push(host("h9", ["z.example.com"])));
    wrong.contentSha256 = "0".repeat(64);
    assert.throws(() => validateSnapshot(wrong, "snapshot", memo), /content_sha256/);
    assert.equal(memo.size(), size);
    validateSnapshot(
      sealedWire((s) => void s.proxyHosts.splice(0, 1)),
      "snapshot",
      memo,
    );
    assert.equal(memo.size(), size - 1, "a resource absent from the last valid snapshot is forgotten");
  });
});

describe("sameValue", () => {
  test("equal decoded messages are the same; any difference in a member, element or type is not", () => {
    const a = () => ({
      id: "h1",
      domains: ["a.test", "b.test"],
      at: new Date(5),
      nested: { n: 1, flag: false },
      raw: new Uint8Array([1, 2]),
    });
    assert.ok(sameValue(a(), a()));
    assert.ok(!sameValue(a(), { ...a(), domains: ["a.test"] }));
    assert.ok(!sameValue(a(), { ...a(), domains: ["b.test", "a.test"] }), "order matters");
    assert.ok(!sameValue(a(), { ...a(), at: new Date(6) }));
    assert.ok(!sameValue(a(), { ...a(), nested: { n: 1, flag: true } }));
    assert.ok(!sameValue(a(), { ...a(), raw: new Uint8Array([1, 3]) }));
    assert.ok(!sameValue(a(), { ...a(), extra: undefined }), "a member present on one side only");
    assert.ok(!sameValue({ n: 1 }, { n: "1" }));
    assert.ok(!sameValue([1], { 0: 1 }));
    assert.ok(!sameValue(null, {}));
  });
});

describe("validateSnapshot of an object already found valid", () => {
  test("is not checked again: the digests of the first check come back (one check per object, per process)", () => {
    const s = sealed();
    const first = validateSnapshot(s, "snapshot", new SnapshotCheckMemo());
    assert.equal(validateSnapshot(s), first);
    assert.equal(validateSnapshot(s, "snapshot", new SnapshotCheckMemo()), first);
  });

  test("an equal but other object is checked on its own", () => {
    const s = sealed();
    const first = validateSnapshot(s);
    const copy = structuredClone(s);
    assert.notEqual(validateSnapshot(copy), first);
    assert.deepEqual(validateSnapshot(copy), first);
  });

  test("an invalid object stays invalid on every call", () => {
    const s = sealed();
    s.contentSha256 = "0".repeat(64);
    for (let i = 0; i < 2; i++) assert.throws(() => validateSnapshot(s), /snapshot\.content_sha256: does not match/);
  });
});

describe("contentHashOfDigests with a ChunkDigestMemo", () => {
  const hex = (n: number, prefix: string) => (prefix + n.toString(16).padStart(64, "a")).slice(0, 64);
  // 200 resources; every 10th digest ends a chunk (starts "0", then a digit below 8).
  const base = new Map(
    Array.from({ length: 200 }, (_, i) => [`id${String(i).padStart(3, "0")}`, hex(i, i % 10 === 9 ? "01" : "f")]),
  );
  const digestsOf = (proxyHosts: Map<string, string>) => ({
    proxyHosts,
    l4ProxyHosts: new Map<string, string>(),
    certificates: new Map<string, string>(),
    accessLists: new Map<string, string>(),
    settings: "s".repeat(64),
  });
  const edit = (f: (m: Map<string, string>) => void) => {
    const m = new Map(base);
    f(m);
    return m;
  };
  const cases: [string, Map<string, string>, number][] = [
    ["the same digests: no chunk hashed", base, 0],
    ["one digest changed: its chunk only", edit((m) => m.set("id105", hex(1, "e"))), 1],
    ["a digest that now ends a chunk: that chunk splits in two", edit((m) => m.set("id104", hex(2, "02"))), 2],
    ["a resource added inside a chunk", edit((m) => m.set("id0505", hex(3, "e"))), 1],
    ["a resource removed", edit((m) => m.delete("id150")), 1],
  ];
  for (const [name, changed, hashed] of cases) {
    test(name, () => {
      assert.ok(endsChunk(hex(9, "01")) && !endsChunk(hex(9, "f")), "the test's digests end chunks where meant");
      const memo = new ChunkDigestMemo();
      assert.equal(contentHashOfDigests(digestsOf(base), undefined, memo), contentHashOfDigests(digestsOf(base)));
      const before = memo.hashed;
      assert.equal(
        contentHashOfDigests(digestsOf(changed), undefined, memo),
        contentHashOfDigests(digestsOf(changed)),
        "the same hash as without the memo",
      );
      assert.equal(memo.hashed - before, hashed, "chunks hashed again");
    });
  }
});

describe("ChunkDigestMemo.patch: a few resources changed in place", () => {
  const ids = Array.from({ length: 100 }, (_, i) => `id${String(i).padStart(3, "0")}`);
  const ending = (n: number) => `07${n.toString(16).padStart(62, "a")}`;
  const inner = (n: number) => `f${n.toString(16).padStart(63, "a")}`;
  // Chunks end after id009, id019, ... id099: ten chunks of ten.
  const base = new Map(ids.map((id, i) => [id, i % 10 === 9 ? ending(i) : inner(i)]));
  const digestsOf = (proxyHosts: ReadonlyMap<string, string>): ContentDigests => ({
    proxyHosts,
    l4ProxyHosts: new Map(),
    certificates: new Map(),
    accessLists: new Map(),
    settings: "s".repeat(64),
  });
  /** A memo whose last hash was of `base`, walked in `ids` order. */
  const memoOf = () => {
    const memo = new ChunkDigestMemo();
    const was = digestsOf(base);
    contentHashOfDigests(was, { proxyHosts: ids }, memo);
    return { memo, was };
  };
  // [name, changes (id -> new digest), chunks hashed again]
  const cases: [string, Record<string, string>, number][] = [
    ["a digest inside a chunk", { id045: inner(1000) }, 1],
    ["two digests in one chunk", { id041: inner(1001), id048: inner(1002) }, 1],
    ["digests in two chunks", { id005: inner(1003), id095: inner(1004) }, 2],
    ["the digest that ends a chunk, still ending it", { id049: ending(1005) }, 1],
    ["a digest that no longer ends its chunk: it joins the next", { id049: inner(1006) }, 1],
    ["a digest that now ends a chunk: it splits in two", { id044: ending(1007) }, 2],
    ["the last resource no longer ends a chunk: the tail", { id099: inner(1008) }, 1],
    ["the first resource", { id000: ending(1009) }, 2],
    [
      "every chunk end gone but one",
      Object.fromEntries(ids.filter((_, i) => i % 10 === 9 && i < 90).map((id, i) => [id, inner(2000 + i)])),
      1,
    ],
  ];
  for (const [name, changes, hashed] of cases) {
    test(name, () => {
      const { memo, was } = memoOf();
      const now = { ...was, proxyHosts: new Map([...base, ...Object.entries(changes)]) };
      const before = memo.hashed;
      const patch = memo.patch(now, was, { proxyHosts: Object.keys(changes) });
      assert.ok(patch, "patched");
      assert.equal(
        contentHashOfChunks(patch.chunks, now.settings),
        contentHashOfDigests(now),
        "the hash of a walk over every id",
      );
      assert.equal(memo.hashed - before, hashed, "chunks hashed again");
    });
  }

  test("random changes, one patch on another, give the hash of a walk over every id", () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      const size = random(150);
      const order = Array.from({ length: size }, (_, i) => `r${String(i).padStart(3, "0")}`);
      const digest = () => (random(4) === 0 ? ending(random(1e9)) : inner(random(1e9)));
      let current = digestsOf(new Map(order.map((id) => [id, digest()])));
      const memo = new ChunkDigestMemo();
      contentHashOfDigests(current, { proxyHosts: order }, memo);
      for (let step = 0; step < 4 && size > 0; step++) {
        const changes = new Map(Array.from({ length: 1 + random(5) }, () => [order[random(size)]!, digest()] as const));
        const now = { ...current, proxyHosts: new Map([...current.proxyHosts, ...changes]) };
        const patch = memo.patch(now, current, { proxyHosts: [...changes.keys()] });
        assert.ok(patch, `round ${round}, step ${step}: patched`);
        assert.equal(
          contentHashOfChunks(patch.chunks, now.settings),
          contentHashOfDigests(now),
          `round ${round}, step ${step}: ${size} resources, ${changes.size} changed`,
        );
        patch.adopt();
        current = now;
      }
    }
  });

  test("refused when the last hash was not of those digests, or an id is not among them", () => {
    const { memo, was } = memoOf();
    const now = { ...was, proxyHosts: new Map([...base, ["id010", inner(1)]]) };
    assert.equal(memo.patch(now, digestsOf(new Map(base)), { proxyHosts: ["id010"] }), undefined, "other digests");
    assert.equal(
      memo.patch({ ...now, certificates: new Map() }, was, { proxyHosts: ["id010"] }),
      undefined,
      "another kind's map",
    );
    assert.equal(memo.patch(now, was, { proxyHosts: ["id100"] }), undefined, "an id added");
    assert.ok(memo.patch(now, was, { proxyHosts: ["id010"] }));
  });

  test("a patch not adopted leaves the memo on the last hash", () => {
    const { memo, was } = memoOf();
    const rejected = { ...was, proxyHosts: new Map([...base, ["id010", inner(1)]]) };
    assert.ok(memo.patch(rejected, was, { proxyHosts: ["id010"] }));
    const now = { ...was, proxyHosts: new Map([...base, ["id020", inner(2)]]) };
    const patch = memo.patch(now, was, { proxyHosts: ["id020"] });
    assert.ok(patch);
    assert.equal(contentHashOfChunks(patch.chunks, now.settings), contentHashOfDigests(now));
  });
});

describe("SnapshotCheckMemo.patchCheck: a few hosts changed in place, the rest the same objects", () => {
  const wire = (s: Snapshot) => Snapshot.decode(Snapshot.encode(s).finish());
  /** A memo that checked the sealed content in full, and that snapshot. */
  const checked = () => {
    const memo = new SnapshotCheckMemo();
    const p = sealed();
    validateSnapshot(p, "snapshot", memo);
    return { memo, p };
  };
  /** `p`'s next version as a decoder hands it: new arrays, every resource `edit` leaves alone the same object. */
  const next = (p: Snapshot, edit: (s: Snapshot) => void) => {
    const s: Snapshot = {
      ...p,
      version: p.version + 1,
      proxyHosts: [...p.proxyHosts],
      l4ProxyHosts: [...p.l4ProxyHosts],
      certificates: [...p.certificates],
      accessLists: [...p.accessLists],
    };
    edit(s);
    s.contentSha256 = snapshotContentHash(s);
    return s;
  };
  const setHost = (i: number, over: Partial<ProxyHost>) => (s: Snapshot) => {
    s.proxyHosts[i] = { ...s.proxyHosts[i]!, ...over };
  };
  const both =
    (...edits: ((s: Snapshot) => void)[]) =>
    (s: Snapshot) =>
      edits.forEach((e) => e(s));
  const refusal = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return (e as Error).message;
    }
    return undefined;
  };

  // [name, edit, how it is checked: patched, in full (valid), or refused]
  const cases: [string, (s: Snapshot) => void, "patched" | "full" | "refused"][] = [
    ["an upstream changed", setHost(1, { upstreams: ["other:8080"] }), "patched"],
    ["a host serves another new domain", setHost(1, { domains: ["new.example.com"] }), "patched"],
    [
      "a domain moves from one host to another",
      both(setHost(1, { domains: ["c.example.com"] }), setHost(2, { domains: ["d.example.com"] })),
      "patched",
    ],
    [
      "the settings changed",
      (s) => (s.settings = Settings.fromPartial({ general: { primaryDomain: "p.example.com" } })),
      "patched",
    ],
    ["a domain an unchanged host serves", setHost(1, { domains: ["a.example.com"] }), "refused"],
    [
      "two changed hosts take the same domain",
      both(setHost(1, { domains: ["x.example.com"] }), setHost(2, { domains: ["x.example.com"] })),
      "refused",
    ],
    ["a domain twice in one host", setHost(1, { domains: ["y.example.com", "y.example.com"] }), "refused"],
    ["a domain that is not one", setHost(1, { domains: ["not a domain"] }), "refused"],
    ["a certificate that is not in the snapshot", setHost(1, { certificateId: "c9" }), "refused"],
    ["a host renamed", setHost(1, { name: "renamed" }), "full"],
    ["a host renamed as another is named", setHost(1, { name: "host h1" }), "refused"],
    ["an id changed", setHost(1, { id: "h9" }), "full"],
    ["an id that another host has", setHost(1, { id: "h1" }), "refused"],
    [
      "a certificate changed",
      (s) => (s.certificates[1] = { ...s.certificates[1]!, domainNames: ["x.example.com"] }),
      "full",
    ],
    ["a host added", (s) => s.proxyHosts.push(host("h4", ["e.example.com"])), "full"],
    ["a host removed", (s) => s.proxyHosts.pop(), "full"],
    ["the version zero", both(setHost(1, { upstreams: ["z:1"] }), (s) => (s.version = 0)), "refused"],
  ];
  for (const [name, edit, how] of cases) {
    test(`${name}: ${how}`, () => {
      const { memo, p } = checked();
      const s = next(p, edit);
      const full = refusal(() => validateSnapshot(wire(s)));
      const before = memo.patched;
      const got = refusal(() => validateSnapshot(s, "snapshot", memo));
      assert.equal(got, full, "refused exactly as a check without the memo refuses it");
      if (how === "refused") assert.ok(got, "refused");
      else {
        assert.equal(got, undefined, "valid");
        assert.deepEqual(
          plainDigests(validateSnapshot(s, "snapshot", memo)),
          contentDigests(s),
          "the digests of a full recomputation",
        );
      }
      assert.equal(memo.patched - before, how === "patched" ? 1 : 0, "checked by a patch of the last check");
    });
  }

  test("patches follow one another, each against the last valid snapshot", () => {
    const { memo, p } = checked();
    const a = next(p, setHost(1, { domains: ["n1.example.com"] }));
    validateSnapshot(a, "snapshot", memo);
    // Refused: the memo keeps `a` as the last valid snapshot.
    assert.throws(() => validateSnapshot(next(a, setHost(2, { domains: ["n1.example.com"] })), "snapshot", memo));
    const b = next(a, setHost(2, { domains: ["b.example.com"] })); // b.example.com was freed by `a`
    validateSnapshot(b, "snapshot", memo);
    const tampered = next(b, setHost(0, { upstreams: ["t:1"] }));
    tampered.contentSha256 = b.contentSha256;
    assert.throws(() => validateSnapshot(tampered, "snapshot", memo), /content_sha256/);
    const c = next(b, setHost(0, { domains: ["n1.example.com"] }));
    assert.throws(
      () => validateSnapshot(c, "snapshot", memo),
      /proxy_hosts\[1\]\.domains\[0\]: "n1\.example\.com" is also served by proxy host "h1"/,
    );
    assert.equal(memo.patched, 2);
    assert.equal(memo.chunks.patched, 2, "the content hash of each patched check patched, not walked");
  });

  test("after random edits, valid and not, it refuses exactly what a check without the memo refuses", () => {
    const seed = Number(process.env.CPM_TEST_SEED ?? 20261207);
    let a = seed >>> 0;
    const rnd = () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
    const domains = ["a.example.com", "b.example.com", "c.example.com", "p.example.com", "q.example.com", "bad domain"];
    const { memo, p } = checked();
    let base = p;
    let valid = 0;
    for (let step = 0; step < 400; step++) {
      const edits = Array.from({ length: 1 + Math.floor(rnd() * 2) }, () => {
        const i = Math.floor(rnd() * base.proxyHosts.length);
        const r = rnd();
        if (r < 0.3) return setHost(i, { upstreams: [`u${step}:80`] });
        if (r < 0.6) return setHost(i, { domains: [pick(domains)] });
        if (r < 0.7) return setHost(i, { name: pick(["host h1", "host h2", "host h3", `n${step}`]) });
        if (r < 0.8) return setHost(i, { certificateId: pick(["c1", "c2", "c9", ""]) });
        if (r < 0.9) return setHost(i, { accessListId: pick(["acl1", "acl2", "acl9", ""]) });
        return (s: Snapshot) =>
          (s.settings = Settings.fromPartial({ general: { primaryDomain: `s${step}.example.com` } }));
      });
      const s = next(base, both(...edits));
      const full = refusal(() => validateSnapshot(wire(s)));
      const got = refusal(() => validateSnapshot(s, "snapshot", memo));
      assert.equal(got, full, `seed ${seed}, step ${step}: the same verdict`);
      if (got === undefined) {
        assert.deepEqual(
          plainDigests(validateSnapshot(s, "snapshot", memo)),
          contentDigests(s),
          `seed ${seed}, step ${step}: digests`,
        );
        base = s;
        valid++;
      }
    }
    assert.ok(valid > 50 && memo.patched > 50, `enough valid steps (${valid}) and patches (${memo.patched})`);
  });

  test(`more than ${PATCH_CHECK_MAX_CHANGED} changed hosts: checked in full`, () => {
    const memo = new SnapshotCheckMemo();
    const many = Array.from({ length: PATCH_CHECK_MAX_CHANGED + 1 }, (_, i) => host(`m${i}`, [`m${i}.example.com`]));
    const p = sealed((s) => s.proxyHosts.push(...many));
    validateSnapshot(p, "snapshot", memo);
    const s = next(p, (x) => (x.proxyHosts = x.proxyHosts.map((h) => ({ ...h, upstreams: ["n:1"] }))));
    assert.deepEqual(plainDigests(validateSnapshot(s, "snapshot", memo)), contentDigests(s));
    assert.equal(memo.patched, 0);
  });
});
