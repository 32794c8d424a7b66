import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ProxyHost, Snapshot } from "@cpm/proto";
import {
  handshakeHeaders,
  knowsAllOf,
  peerFromHeaders,
  planSend,
  SELF,
  SILENT_PEER,
  type PeerInfo,
  type SendPlan,
} from "./compat.ts";
import { RELEASE } from "./release.ts";
import { SNAPSHOT_SCHEMA_VERSION, snapshotContentHash, validateSnapshot } from "./snapshot.ts";

const host = (id: string, compression = false) =>
  ProxyHost.fromPartial({
    id,
    name: `h-${id}`,
    domains: [`${id}.example.com`],
    upstreams: ["127.0.0.1:8080"],
    compression,
  });

const config = (...proxyHosts: ProxyHost[]) => ({ proxyHosts });

const CURRENT: PeerInfo = { release: "0.2.0", schemas: [2, 3], capabilities: ["proxy_host.compression"] };
const NEWER: PeerInfo = { release: "0.3.0", schemas: [3, 4], capabilities: ["proxy_host.compression", "x.y"] };
const TOO_NEW: PeerInfo = { release: "0.4.0", schemas: [4, 5], capabilities: [] };

describe("planSend", () => {
  const rows: { name: string; peer: PeerInfo; hosts: ProxyHost[]; want: SendPlan }[] = [
    { name: "a current slave gets schema 3", peer: CURRENT, hosts: [host("a", true)], want: { ok: true, schema: 3 } },
    {
      name: "a newer slave gets our newest schema",
      peer: NEWER,
      hosts: [host("a", true)],
      want: { ok: true, schema: 3 },
    },
    {
      name: "a silent (0.1.0) slave gets schema 2 while nothing uses compression",
      peer: SILENT_PEER,
      hosts: [host("a"), host("b")],
      want: { ok: true, schema: 2 },
    },
    {
      name: "a silent slave is incompatible once a host uses compression, naming it",
      peer: SILENT_PEER,
      hosts: [host("a"), host("b", true)],
      want: {
        ok: false,
        schema: 2,
        issues: [
          {
            code: "MISSING_CAPABILITY",
            capability: "proxy_host.compression",
            resources: ["proxy_host b (h-b)"],
            message: "the slave (release 0.1.0) does not serve proxy_host.compression, used by proxy_host b (h-b)",
          },
        ],
      },
    },
    {
      name: "a slave reading schema 3 but lacking the capability is incompatible too",
      peer: { release: "0.2.1", schemas: [3], capabilities: [] },
      hosts: [host("a", true)],
      want: {
        ok: false,
        schema: 3,
        issues: [
          {
            code: "MISSING_CAPABILITY",
            capability: "proxy_host.compression",
            resources: ["proxy_host a (h-a)"],
            message: "the slave (release 0.2.1) does not serve proxy_host.compression, used by proxy_host a (h-a)",
          },
        ],
      },
    },
    {
      name: "a slave two releases ahead reads no schema we write",
      peer: TOO_NEW,
      hosts: [host("a")],
      want: {
        ok: false,
        schema: 0,
        issues: [
          {
            code: "NO_COMMON_SCHEMA",
            capability: "",
            resources: [],
            message: "the slave (release 0.4.0) reads snapshot schemas 4, 5; this master writes 2, 3",
          },
        ],
      },
    },
  ];
  for (const r of rows) test(r.name, () => assert.deepEqual(planSend(r.peer, config(...r.hosts)), r.want));

  test("names five resources and counts the rest", () => {
    const plan = planSend(SILENT_PEER, config(...Array.from({ length: 8 }, (_, i) => host(`h${i}`, true))));
    assert.equal(plan.ok, false);
    const [issue] = plan.ok ? [] : plan.issues;
    assert.equal(issue?.resources.length, 8);
    assert.match(issue?.message ?? "", /proxy_host h4 \(h-h4\) and 3 more$/);
  });
});

describe("peerFromHeaders", () => {
  const from = (h: Record<string, string>) => peerFromHeaders((k) => h[k]);
  const rows: { name: string; headers: Record<string, string>; want: PeerInfo }[] = [
    { name: "no release header: the silent release 0.1.0", headers: {}, want: SILENT_PEER },
    {
      name: "a well-formed announcement",
      headers: {
        "cpm-release": "0.2.0",
        "cpm-snapshot-schemas": "3,2",
        "cpm-capabilities": "proxy_host.compression",
      },
      want: { release: "0.2.0", schemas: [2, 3], capabilities: ["proxy_host.compression"] },
    },
    {
      name: "hostile values are dropped, never passed on",
      headers: {
        "cpm-release": "0.2.0\n{$evil}",
        "cpm-snapshot-schemas": "2,x,99999,3,3",
        "cpm-capabilities": "ok.one,Bad Name,{http.request.host},ok.one",
      },
      want: { release: "unknown", schemas: [2, 3], capabilities: ["ok.one"] },
    },
    {
      name: "a release with no lists reads nothing",
      headers: { "cpm-release": "1.0.0-rc.1" },
      want: { release: "1.0.0-rc.1", schemas: [], capabilities: [] },
    },
  ];
  for (const r of rows) test(r.name, () => assert.deepEqual(from(r.headers), r.want));

  test("round-trips this build's own announcement", () => {
    const h = handshakeHeaders();
    assert.deepEqual(from(h), SELF);
    assert.equal(SELF.release, RELEASE);
    assert.ok(SELF.schemas.includes(SNAPSHOT_SCHEMA_VERSION));
    assert.ok(knowsAllOf(from(h)));
    assert.ok(!knowsAllOf(SILENT_PEER));
    assert.ok(knowsAllOf(NEWER));
  });
});

describe("a schema-2 snapshot", () => {
  test("is read, and hashes as its schema-3 twin when nothing uses compression", () => {
    const s = Snapshot.fromPartial({ schemaVersion: 2, masterInstanceId: "m", version: 1, proxyHosts: [host("a")] });
    s.contentSha256 = snapshotContentHash(s);
    assert.doesNotThrow(() => validateSnapshot(s));
    const twin = Snapshot.fromPartial({ ...s, schemaVersion: 3 });
    assert.equal(snapshotContentHash(twin), s.contentSha256);
  });
});
