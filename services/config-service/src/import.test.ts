// ImportConfig against the real server in-process: one committed version per import, the
// dry-run difference, names as identity and references, field-named errors that write nothing.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  AccessListSatisfy,
  CertificateType,
  L4Protocol,
  Role,
  type ConfigDocument,
  type DeepPartial,
  ConfigDocument as Doc,
  type ImportConfigResponse,
} from "@cpm/proto";
import { status, unary } from "@cpm/grpc-kit";
import { createLogger } from "@cpm/core";
import { ConfigStore } from "./store.ts";
import {
  ADMIN,
  expectStatus,
  harnessForEachTest,
  selfSignedCertificate,
  startConfigService,
  type Harness,
} from "./test-support.ts";

const site = selfSignedCertificate("site.test");

function document(over: DeepPartial<ConfigDocument> = {}): ConfigDocument {
  return Doc.fromPartial({
    certificates: [
      {
        name: "site",
        type: CertificateType.CERTIFICATE_TYPE_IMPORTED,
        certificatePem: site.cert,
        privateKeyPem: site.key,
      },
    ],
    accessLists: [
      {
        name: "office",
        allow: ["203.0.113.0/24"],
        users: [{ username: "ops", password: "a long passphrase" }],
        satisfy: AccessListSatisfy.ACCESS_LIST_SATISFY_ANY,
      },
    ],
    proxyHosts: [
      {
        name: "www",
        domains: ["site.test"],
        upstreams: ["10.0.0.5:8080"],
        certificateId: "site",
        accessListId: "office",
        sslForced: true,
      },
      { name: "api", domains: ["api.example.com"], upstreams: ["10.0.0.6:8080"] },
    ],
    l4ProxyHosts: [
      { name: "db", protocol: L4Protocol.L4_PROTOCOL_TCP, listenAddress: ":5432", upstreams: ["10.0.0.7:5432"] },
    ],
    settings: { general: { acmeEmail: "ops@example.com" } },
    ...over,
  });
}

describe("ImportConfig", () => {
  let h: Harness;
  harnessForEachTest({}, (started) => (h = started));
  const call = (config: ConfigDocument, dryRun = false, token = ADMIN) =>
    unary(h.config.importConfig.bind(h.config), { config, dryRun }, token);
  const version = async () => (await unary(h.config.getInstanceInfo.bind(h.config), {}, ADMIN)).version;
  const hosts = async () =>
    (await unary(h.config.listProxyHosts.bind(h.config), { pageSize: 0, pageToken: "", query: "" }, ADMIN)).proxyHosts;
  const diffOf = (r: ImportConfigResponse) => ({
    proxyHosts: r.proxyHosts,
    l4ProxyHosts: r.l4ProxyHosts,
    certificates: r.certificates,
    accessLists: r.accessLists,
    settingsChanged: r.settingsChanged,
  });
  const none = { added: [], changed: [], removed: [] };

  it("the served snapshot after an import equals a fresh read of the database (content hash and resources)", async () => {
    await h.store.snapshot(); // the in-memory content is loaded before the import
    await call(document());
    await call(document({ proxyHosts: [{ name: "api", domains: ["api.example.com"], upstreams: ["10.0.0.9:8080"] }] }));
    const served = await h.store.snapshot();
    const fresh = await new ConfigStore(h.db, createLogger("test", "silent")).snapshot();
    assert.equal(served.contentSha256, fresh.contentSha256);
    assert.deepEqual(
      served.proxyHosts.map((x) => x.upstreams),
      [["10.0.0.9:8080"]],
    );
    assert.deepEqual(fresh.proxyHosts, served.proxyHosts);
  });

  it("into an empty instance: everything added in one committed version, references resolved by name", async () => {
    assert.equal(await version(), 0);
    const r = await call(document());
    assert.deepEqual(diffOf(r), {
      proxyHosts: { added: ["api", "www"], changed: [], removed: [] },
      l4ProxyHosts: { added: ["db"], changed: [], removed: [] },
      certificates: { added: ["site"], changed: [], removed: [] },
      accessLists: { added: ["office"], changed: [], removed: [] },
      settingsChanged: true,
    });
    assert.equal(r.committed, true);
    assert.equal(r.configVersion, 1);
    assert.equal(await version(), 1);
    const snap = (await unary(h.config.getSnapshot.bind(h.config), {}, ADMIN)).snapshot!;
    const www = snap.proxyHosts.find((x) => x.name === "www")!;
    assert.equal(www.certificateId, snap.certificates[0]!.id);
    assert.equal(www.accessListId, snap.accessLists[0]!.id);
    assert.match(snap.accessLists[0]!.users[0]!.passwordHash, /^\$2[aby]\$/);
    assert.equal(snap.certificates[0]!.privateKeyPem, site.key);
  });

  it("dry run: added, changed and removed per kind, nothing written", async () => {
    await call(document());
    const next = document();
    next.proxyHosts = [
      { ...next.proxyHosts[0]!, upstreams: ["10.0.0.9:8080"] },
      { ...next.proxyHosts[1]!, name: "api-v2" },
    ];
    next.l4ProxyHosts = [];
    const before = await hosts();
    const r = await call(next, true);
    assert.deepEqual(diffOf(r), {
      proxyHosts: { added: ["api-v2"], changed: ["www"], removed: ["api"] },
      l4ProxyHosts: { added: [], changed: [], removed: ["db"] },
      certificates: none,
      accessLists: { added: [], changed: ["office"], removed: [] },
      settingsChanged: false,
    });
    assert.equal(r.committed, false);
    assert.equal(r.configVersion, 1);
    assert.equal(await version(), 1);
    assert.deepEqual(await hosts(), before);

    const applied = await call(next);
    assert.deepEqual(diffOf(applied), diffOf(r));
    assert.equal(applied.configVersion, 2);
    assert.deepEqual(
      (await hosts()).map((x) => [x.name, x.upstreams]),
      [
        ["api-v2", ["10.0.0.6:8080"]],
        ["www", ["10.0.0.9:8080"]],
      ],
    );
    // Updated in place: the id stays.
    assert.equal((await hosts()).find((x) => x.name === "www")!.id, before.find((x) => x.name === "www")!.id);
  });

  it("without a key or password, keeps the stored key and hash; an identical import commits nothing", async () => {
    await call(document());
    const snap = (await unary(h.config.getSnapshot.bind(h.config), {}, ADMIN)).snapshot!;
    const again = document({
      certificates: [{ name: "site", type: CertificateType.CERTIFICATE_TYPE_IMPORTED, certificatePem: site.cert }],
      accessLists: [
        {
          name: "office",
          allow: ["203.0.113.0/24"],
          users: [{ username: "ops" }],
          satisfy: AccessListSatisfy.ACCESS_LIST_SATISFY_ANY,
        },
      ],
    });
    const r = await call(again);
    assert.deepEqual(diffOf(r), {
      proxyHosts: none,
      l4ProxyHosts: none,
      certificates: none,
      accessLists: none,
      settingsChanged: false,
    });
    assert.equal(r.committed, false);
    assert.equal(await version(), 1);
    const after = (await unary(h.config.getSnapshot.bind(h.config), {}, ADMIN)).snapshot!;
    assert.equal(after.contentSha256, snap.contentSha256);
  });

  it("bad input: INVALID_ARGUMENT naming the field, nothing written", async () => {
    await call(document());
    const before = await hosts();
    const cases: [DeepPartial<ConfigDocument>, RegExp][] = [
      [
        { proxyHosts: [{ name: "a", domains: ["exa mple.com"], upstreams: ["10.0.0.1:80"] }] },
        /^config\.proxy_hosts\[0\]\.domains\[0\]: /,
      ],
      [
        { proxyHosts: [{ name: "a", domains: ["a.example.com"], upstreams: ["10.0.0.1:80"], certificateId: "nope" }] },
        /^config\.proxy_hosts\[0\]\.certificate_id: no certificate named "nope"/,
      ],
      [
        {
          proxyHosts: [
            { name: "a", domains: ["a.example.com"], upstreams: ["10.0.0.1:80"] },
            { name: "a", domains: ["b.example.com"], upstreams: ["10.0.0.1:80"] },
          ],
        },
        /^config\.proxy_hosts\[1\]\.name: "a" is also the name/,
      ],
      [
        {
          proxyHosts: [
            { name: "a", domains: ["a.example.com"], upstreams: ["10.0.0.1:80"] },
            { name: "b", domains: ["A.example.com"], upstreams: ["10.0.0.1:80"] },
          ],
        },
        /^config\.proxy_hosts\[1\]\.domains\[0\]: "a\.example\.com" is also served by proxy host "a"/,
      ],
      [
        { accessLists: [{ name: "new", users: [{ username: "x" }] }] },
        /^config\.access_lists\[0\]\.users\[0\]\.password: is required for a new user/,
      ],
      [
        {
          certificates: [{ name: "other", type: CertificateType.CERTIFICATE_TYPE_IMPORTED, certificatePem: site.cert }],
        },
        /^config\.certificates\[0\]\.private_key_pem/,
      ],
      [{ settings: { general: { acmeEmail: "not an e-mail" } } }, /^config\.settings\.general\.acme_email: /],
    ];
    for (const [over, expected] of cases) {
      const msg = await expectStatus(call(Doc.fromPartial(over)), status.INVALID_ARGUMENT);
      assert.match(msg, expected);
    }
    assert.equal(await version(), 1);
    assert.deepEqual(await hosts(), before);
  });

  it("admin only", async () => {
    const { secret } = await unary(
      h.account.createApiToken.bind(h.account),
      { name: "reader", role: Role.ROLE_VIEWER, expiresAt: undefined, userId: "" },
      ADMIN,
    );
    await expectStatus(call(document(), true, secret), status.PERMISSION_DENIED);
    assert.equal(await version(), 0);
  });
});

describe("ImportConfig on a slave", () => {
  it("is refused like every synced write", async () => {
    const slave = await startConfigService({ mode: "slave" });
    try {
      const msg = await expectStatus(
        unary(slave.config.importConfig.bind(slave.config), { config: document(), dryRun: false }, ADMIN),
        status.FAILED_PRECONDITION,
      );
      assert.match(msg, /managed by the master/);
    } finally {
      await slave.close();
    }
  });
});
