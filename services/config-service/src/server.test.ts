// Service-level tests of config-service: the real gRPC server in-process on 127.0.0.1:0,
// a temporary SQLite file per test, and the generated grpc-js clients. Every assertion is
// about what an API client sees: status codes, messages, returned data and versions.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  AcmeSettings,
  GeneralSettings,
  InstanceMode as ProtoMode,
  ProxyHost,
  Role,
  Snapshot,
  SyncRequest,
  type WatchConfigResponse,
} from "@cpm/proto";
import { snapshotContentHash, SNAPSHOT_SCHEMA_VERSION } from "@cpm/core";
import { ConfigClient, status, unary, withBearer } from "@cpm/grpc-kit";
import type { CommitNotice } from "@cpm/snapshot-wire";
import { createLogger } from "@cpm/core";
import { ApiTokens } from "./tokens.ts";
import { ADMIN, expectStatus, harnessForEachTest, INTERNAL, type Harness } from "./test-support.ts";

/** No token: withBearer sends no authorization metadata for "" (undefined would pick a helper's default). */
const NONE = "";

function host(name: string, domains: string[], extra: Partial<ProxyHost> = {}): ProxyHost {
  return ProxyHost.fromPartial({ name, domains, upstreams: ["10.0.0.1:8080"], ...extra });
}

// Thin call helpers over the generated clients (admin token unless told otherwise).
const api = (h: Harness) => ({
  create: (proxyHost: ProxyHost | undefined, token: string = ADMIN) =>
    unary(h.config.createProxyHost.bind(h.config), { proxyHost }, token),
  get: (id: string, token: string = ADMIN) => unary(h.config.getProxyHost.bind(h.config), { id }, token),
  list: async (token: string = ADMIN) =>
    (await unary(h.config.listProxyHosts.bind(h.config), { pageSize: 0, pageToken: "", query: "" }, token)).proxyHosts,
  update: (proxyHost: ProxyHost | undefined, token: string = ADMIN) =>
    unary(h.config.updateProxyHost.bind(h.config), { proxyHost }, token),
  delete: (id: string, token: string = ADMIN) => unary(h.config.deleteProxyHost.bind(h.config), { id }, token),
  snapshot: (token: string = ADMIN) => unary(h.config.getSnapshot.bind(h.config), {}, token),
  apply: (snapshot: Snapshot | undefined, token: string = INTERNAL) =>
    unary(h.internal.applySnapshot.bind(h.internal), { snapshot }, token),
  /** ApplySnapshot on the public listener, as an API client would try it. */
  applyPublic: (snapshot: Snapshot | undefined, token: string) =>
    unary(h.config.applySnapshot.bind(h.config), { snapshot }, token),
  info: () => unary(h.config.getInstanceInfo.bind(h.config), {}, ADMIN),
  version: async () => (await unary(h.config.getInstanceInfo.bind(h.config), {}, ADMIN)).version,
  createToken: (name: string, role: Role, token: string = ADMIN) =>
    unary(h.account.createApiToken.bind(h.account), { name, role, expiresAt: undefined, userId: "" }, token),
  listTokens: async (token: string = ADMIN) =>
    (await unary(h.account.listApiTokens.bind(h.account), {}, token)).apiTokens,
  revokeToken: (id: string, token: string = ADMIN) => unary(h.account.revokeApiToken.bind(h.account), { id }, token),
});

/** A WatchConfig stream with the admin token that records what arrives. */
function watch(h: Harness, includeSnapshot = false) {
  const stream = h.config.watchConfig({ includeSnapshot }, withBearer(ADMIN));
  const seen: WatchConfigResponse[] = [];
  const waiters: (() => void)[] = [];
  let streamError: { code?: number; details?: string } | undefined;
  let cancelled = false;
  const wake = () => waiters.splice(0).forEach((w) => w());
  stream.on("data", (m: WatchConfigResponse) => {
    seen.push(m);
    wake();
  });
  stream.on("error", (e: { code?: number; details?: string }) => {
    if (!cancelled) streamError = e;
    wake();
  });
  return {
    seen,
    /** Waits until `n` messages arrived (5 s at most). */
    async waitFor(n: number): Promise<void> {
      const deadline = Date.now() + 5000;
      while (seen.length < n) {
        if (streamError) assert.fail(`watch stream failed: ${streamError.code} ${streamError.details}`);
        if (Date.now() > deadline) assert.fail(`only ${seen.length} of ${n} watch messages arrived`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
    cancel(): void {
      cancelled = true;
      stream.cancel();
    },
  };
}

describe("config-service (standalone)", () => {
  let h: Harness;
  let c: ReturnType<typeof api>;
  harnessForEachTest({ mode: "standalone" }, (started) => {
    h = started;
    c = api(h);
  });

  describe("proxy host CRUD", () => {
    it("creates, gets, lists, updates and deletes, each write bumping the version by exactly one", async () => {
      const v0 = await c.version();
      assert.equal(v0, 0);

      const created = await c.create(host("app", ["App.Example.com"], { upstreams: ["http://10.0.0.1:8080"] }));
      assert.equal(created.configVersion, v0 + 1);
      const h1 = created.proxyHost!;
      assert.ok(h1.id, "server assigns an id");
      assert.equal(h1.name, "app");
      assert.deepEqual(h1.domains, ["app.example.com"], "domains are normalized to lower case");
      assert.deepEqual(h1.upstreams, ["10.0.0.1:8080"], "upstreams are canonical");
      assert.equal(h1.enabled, true, "unset enabled defaults to true");
      assert.ok(h1.createdAt instanceof Date && h1.updatedAt instanceof Date);
      assert.equal(await c.version(), v0 + 1);

      const got = (await c.get(h1.id)).proxyHost!;
      assert.deepEqual(got, h1);

      const second = await c.create(host("api", ["api.example.com"]));
      assert.equal(second.configVersion, v0 + 2);
      const listed = await c.list();
      assert.deepEqual(
        listed.map((x) => x.name),
        ["api", "app"],
      );

      await new Promise((r) => setTimeout(r, 5)); // so updated_at can differ from created_at
      const updated = await c.update({
        ...h1,
        name: "app-renamed",
        upstreams: ["10.0.0.2:9090", "10.0.0.3:9090"],
        domains: ["app.example.com", "www.app.example.com"],
        createdAt: new Date(0), // a client cannot rewrite history
      });
      assert.equal(updated.configVersion, v0 + 3);
      const u = updated.proxyHost!;
      assert.equal(u.id, h1.id, "update keeps the id");
      assert.equal(u.createdAt?.getTime(), h1.createdAt.getTime(), "update keeps created_at");
      assert.ok(u.updatedAt!.getTime() > h1.createdAt.getTime(), "update moves updated_at");
      assert.equal(u.name, "app-renamed");
      assert.deepEqual(u.upstreams, ["10.0.0.2:9090", "10.0.0.3:9090"]);
      assert.deepEqual((await c.get(h1.id)).proxyHost, u);
      assert.equal(await c.version(), v0 + 3);

      const deleted = await c.delete(h1.id);
      assert.equal(deleted.configVersion, v0 + 4);
      assert.equal(await c.version(), v0 + 4);
      const msg = await expectStatus(c.get(h1.id), status.NOT_FOUND);
      assert.match(msg, new RegExp(h1.id));
      assert.deepEqual(
        (await c.list()).map((x) => x.name),
        ["api"],
      );

      // The deleted host's domains are free again.
      const again = await c.create(host("app-again", ["www.app.example.com", "app.example.com"]));
      assert.equal(again.configVersion, v0 + 5);
    });

    it("answers NOT_FOUND for update and delete of an unknown id, without a version bump", async () => {
      await c.create(host("one", ["one.example.com"]));
      const v = await c.version();
      await expectStatus(c.update(host("ghost", ["ghost.example.com"], { id: "no-such-id" })), status.NOT_FOUND);
      await expectStatus(c.delete("no-such-id"), status.NOT_FOUND);
      assert.equal(await c.version(), v);
    });
  });

  describe("bad input", () => {
    const cases: { name: string; field: string; call: (c: ReturnType<typeof api>) => Promise<unknown> }[] = [
      {
        name: "invalid second domain",
        field: "proxy_host.domains[1]",
        call: (c) => c.create(host("bad-domain", ["ok.example.com", "not a domain!"])),
      },
      {
        name: "upstream without a port",
        field: "proxy_host.upstreams[0]",
        call: (c) => c.create(host("bad-upstream", ["up.example.com"], { upstreams: ["10.0.0.1"] })),
      },
      {
        name: "blank name",
        field: "proxy_host.name",
        call: (c) => c.create(host("   ", ["blank.example.com"])),
      },
      {
        name: "certificate that does not exist",
        field: "proxy_host.certificate_id",
        call: (c) => c.create(host("no-cert", ["cert.example.com"], { certificateId: "missing-cert" })),
      },
      {
        name: "update without id",
        field: "proxy_host.id",
        call: (c) => c.update(host("no-id", ["noid.example.com"])),
      },
      {
        name: "create without proxy_host",
        field: "proxy_host",
        call: (c) => c.create(undefined),
      },
      {
        name: "update without proxy_host",
        field: "proxy_host",
        call: (c) => c.update(undefined),
      },
    ];
    for (const tc of cases) {
      it(`${tc.name}: INVALID_ARGUMENT starting with ${tc.field}, version unchanged`, async () => {
        const existing = await c.create(host("existing", ["existing.example.com"]));
        const v = await c.version();
        const msg = await expectStatus(tc.call(c), status.INVALID_ARGUMENT);
        assert.ok(msg.startsWith(`${tc.field}: `), `message should start with "${tc.field}: ", got: ${msg}`);
        assert.equal(await c.version(), v);
        assert.deepEqual(await c.list(), [existing.proxyHost]);
      });
    }
  });

  describe("conflicts", () => {
    it("refuses a domain served by another host (ALREADY_EXISTS naming the domain)", async () => {
      await c.create(host("first", ["shared.example.com"]));
      const v = await c.version();
      const msg = await expectStatus(
        c.create(host("second", ["own.example.com", "shared.example.com"])),
        status.ALREADY_EXISTS,
      );
      assert.ok(msg.startsWith("proxy_host.domains[1]: "), msg);
      assert.match(msg, /shared\.example\.com/);
      assert.match(msg, /"first"/);
      assert.equal(await c.version(), v);
      assert.deepEqual(
        (await c.list()).map((x) => x.name),
        ["first"],
      );
    });

    it("refuses a domain that differs only in case", async () => {
      await c.create(host("upper", ["A.example.com"]));
      const v = await c.version();
      const msg = await expectStatus(c.create(host("lower", ["a.example.com"])), status.ALREADY_EXISTS);
      assert.match(msg, /a\.example\.com/i);
      const msg2 = await expectStatus(c.create(host("mixed", ["a.EXAMPLE.com"])), status.ALREADY_EXISTS);
      assert.match(msg2, /a\.example\.com/i);
      assert.equal(await c.version(), v);
    });

    it("refuses a second host with the same name", async () => {
      await c.create(host("dup", ["dup1.example.com"]));
      const v = await c.version();
      const msg = await expectStatus(c.create(host("dup", ["dup2.example.com"])), status.ALREADY_EXISTS);
      assert.ok(msg.startsWith("proxy_host.name: "), msg);
      assert.match(msg, /"dup"/);
      assert.equal(await c.version(), v);
      assert.equal((await c.list()).length, 1);
    });

    it("refuses an update that takes another host's domain or name", async () => {
      await c.create(host("a", ["a.example.com"]));
      const b = (await c.create(host("b", ["b.example.com"]))).proxyHost!;
      const v = await c.version();
      const msg = await expectStatus(
        c.update({ ...b, domains: ["b.example.com", "A.EXAMPLE.COM"] }),
        status.ALREADY_EXISTS,
      );
      assert.match(msg, /a\.example\.com/);
      await expectStatus(c.update({ ...b, name: "a" }), status.ALREADY_EXISTS);
      assert.equal(await c.version(), v);
      assert.deepEqual((await c.get(b.id)).proxyHost, b);
    });
  });

  describe("authentication and authorization", () => {
    it("answers UNAUTHENTICATED without a token or with a wrong one, and writes nothing", async () => {
      for (const token of [NONE, "wrong-token"]) {
        await expectStatus(c.create(host("x", ["x.example.com"]), token), status.UNAUTHENTICATED);
        await expectStatus(c.list(token), status.UNAUTHENTICATED);
        await expectStatus(c.snapshot(token), status.UNAUTHENTICATED);
        await expectStatus(c.listTokens(token), status.UNAUTHENTICATED);
        await expectStatus(c.createToken("sneaky", Role.ROLE_ADMIN, token), status.UNAUTHENTICATED);
      }
      assert.equal(await c.version(), 0);
      assert.deepEqual(await c.list(), []);
      assert.deepEqual(
        (await c.listTokens()).map((t) => t.name),
        ["bootstrap"],
      );
    });

    it("lets a viewer read but not write or take a snapshot; a revoked token is refused", async () => {
      const existing = (await c.create(host("seen", ["seen.example.com"]))).proxyHost!;
      const { apiToken, secret } = await c.createToken("reader", Role.ROLE_VIEWER);
      assert.ok(secret);
      assert.equal(apiToken?.role, Role.ROLE_VIEWER);
      assert.equal(apiToken?.revoked, false);
      assert.ok(secret.startsWith(apiToken.prefix));
      const v = await c.version();

      assert.deepEqual(await c.list(secret), [existing]);
      assert.deepEqual((await c.get(existing.id, secret)).proxyHost, existing);
      const who = await unary(h.account.whoAmI.bind(h.account), {}, secret);
      assert.deepEqual(
        { tokenName: who.tokenName, role: who.role, username: who.username },
        { tokenName: "reader", role: Role.ROLE_VIEWER, username: "admin" },
      );

      await expectStatus(c.create(host("viewer-made", ["viewer.example.com"]), secret), status.PERMISSION_DENIED);
      await expectStatus(c.update({ ...existing, name: "renamed" }, secret), status.PERMISSION_DENIED);
      await expectStatus(c.delete(existing.id, secret), status.PERMISSION_DENIED);
      await expectStatus(c.snapshot(secret), status.PERMISSION_DENIED);
      await expectStatus(c.createToken("escalate", Role.ROLE_ADMIN, secret), status.PERMISSION_DENIED);
      assert.equal(await c.version(), v);
      assert.deepEqual(await c.list(), [existing]);

      await c.revokeToken(apiToken.id);
      await expectStatus(c.list(secret), status.UNAUTHENTICATED);
      await expectStatus(c.get(existing.id, secret), status.UNAUTHENTICATED);
      const listed = await c.listTokens();
      assert.equal(listed.find((t) => t.id === apiToken.id)?.revoked, true);
    });

    it("ensures the bootstrap admin token idempotently", async () => {
      // The harness already called ensure(ADMIN) once, as main.ts does on start; start "again".
      await h.tokens.ensure(ADMIN);
      await new ApiTokens(h.db).ensure(ADMIN);
      const tokens = await c.listTokens();
      assert.equal(tokens.length, 1);
      assert.equal(tokens[0]!.name, "bootstrap");
      assert.equal(tokens[0]!.role, Role.ROLE_ADMIN);
      assert.equal(tokens[0]!.revoked, false);
      const who = await unary(h.account.whoAmI.bind(h.account), {}, ADMIN);
      assert.deepEqual(
        { tokenName: who.tokenName, role: who.role, username: who.username },
        { tokenName: "bootstrap", role: Role.ROLE_ADMIN, username: "admin" },
      );
    });
  });

  describe("GetSnapshot", () => {
    it("returns the current version, a matching content hash and the hosts, and nothing about tokens", async () => {
      const a = (await c.create(host("a", ["a.example.com"]))).proxyHost!;
      const b = (await c.create(host("b", ["b.example.com"], { allowWebsocket: true }))).proxyHost!;
      await c.createToken("other", Role.ROLE_ADMIN);
      const info = await c.info();

      const snap = (await c.snapshot()).snapshot!;
      assert.ok(snap);
      assert.equal(snap.version, info.version);
      assert.equal(snap.version, 2);
      assert.equal(snap.schemaVersion, SNAPSHOT_SCHEMA_VERSION);
      assert.equal(snap.masterInstanceId, info.instanceId);
      assert.equal(snap.contentSha256, snapshotContentHash(snap));
      assert.match(snap.contentSha256, /^[0-9a-f]{64}$/);
      assert.deepEqual(
        [...snap.proxyHosts].sort((x, y) => x.name.localeCompare(y.name)),
        [a, b],
      );

      // The message has no place for tokens or users, and none leak into the bytes.
      assert.deepEqual(Object.keys(Snapshot.fromPartial({})).sort(), [
        "accessLists",
        "certificates",
        "contentSha256",
        "generatedAt",
        "l4ProxyHosts",
        "masterInstanceId",
        "proxyHosts",
        "schemaVersion",
        "settings",
        "version",
      ]);
      assert.deepEqual(Object.keys(snap).sort(), Object.keys(Snapshot.fromPartial({})).sort());
      const wire = Buffer.from(Snapshot.encode(snap).finish()).toString("latin1");
      for (const s of [ADMIN, "bootstrap", "other"]) assert.ok(!wire.includes(s), `snapshot bytes contain ${s}`);

      // The same content gives the same hash on a second read; a write changes both.
      const again = (await c.snapshot()).snapshot!;
      assert.equal(again.contentSha256, snap.contentSha256);
      await c.delete(a.id);
      const later = (await c.snapshot()).snapshot!;
      assert.equal(later.version, 3);
      assert.notEqual(later.contentSha256, snap.contentSha256);
    });
  });

  describe("WatchConfig", () => {
    it("sends the current version first, then each committed version in order", async () => {
      await c.create(host("pre", ["pre.example.com"]));
      const start = await c.version();
      const w = watch(h);
      try {
        await w.waitFor(1);
        const seen = w.seen;
        assert.equal(seen[0]!.version, start);
        const snap = (await c.snapshot()).snapshot!;
        assert.equal(seen[0]!.contentSha256, snap.contentSha256);

        const w1 = await c.create(host("w1", ["w1.example.com"]));
        const w2 = await c.create(host("w2", ["w2.example.com"]));
        await w.waitFor(3);
        await new Promise((r) => setTimeout(r, 50)); // nothing extra arrives
        assert.deepEqual(
          seen.map((m) => m.version),
          [start, w1.configVersion, w2.configVersion],
        );
        assert.deepEqual([w1.configVersion, w2.configVersion], [start + 1, start + 2]);
        assert.equal(seen[2]!.contentSha256, (await c.snapshot()).snapshot!.contentSha256);
        assert.notEqual(seen[1]!.contentSha256, seen[0]!.contentSha256);
      } finally {
        w.cancel();
      }
    });

    it("with include_snapshot, carries each current version's snapshot: the bytes GetSnapshot serves", async () => {
      await c.create(host("pre", ["pre.example.com"]));
      const w = watch(h, true);
      try {
        await w.waitFor(1);
        const w1 = await c.create(host("w1", ["w1.example.com"]));
        await w.waitFor(2);
        const [first, second] = w.seen;
        assert.deepEqual([first!.version, second!.version], [w1.configVersion - 1, w1.configVersion]);
        assert.equal(second!.snapshot?.version, w1.configVersion);
        assert.equal(second!.snapshot?.contentSha256, second!.contentSha256);
        assert.deepEqual(second!.snapshot.proxyHosts.map((p) => p.name).sort(), ["pre", "w1"]);
        assert.deepEqual(second!.snapshot, (await c.snapshot()).snapshot);
        assert.equal(first!.snapshot?.version, first!.version);
        assert.deepEqual(
          first!.snapshot.proxyHosts.map((p) => p.name),
          ["pre"],
        );
      } finally {
        w.cancel();
      }
    });

    it("without include_snapshot, sends notices only", async () => {
      const w = watch(h);
      try {
        await w.waitFor(1);
        await c.create(host("n1", ["n1.example.com"]));
        await w.waitFor(2);
        assert.deepEqual(
          w.seen.map((m) => m.snapshot),
          [undefined, undefined],
        );
      } finally {
        w.cancel();
      }
    });

    it("gives the dispatcher's client (internal token) each commit with its snapshot frame, the bytes of GetSnapshot", async () => {
      await c.create(host("f0", ["f0.example.com"]));
      const client = new ConfigClient(h.internalAddress, INTERNAL);
      const stop = new AbortController();
      const seen: CommitNotice[] = [];
      void client.watch((n) => seen.push(n), createLogger("test", "silent"), stop.signal, { withSnapshot: true });
      try {
        const waitFor = async (n: number) => {
          for (let i = 0; i < 500 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 10));
          assert.ok(seen.length >= n, `${n} notices, got ${seen.length}`);
        };
        await waitFor(1);
        const w1 = await c.create(host("f1", ["f1.example.com"]));
        await waitFor(2);
        const n = seen[1]!;
        assert.equal(n.version, w1.configVersion);
        assert.equal(n.snapshotFrame?.version, w1.configVersion);
        assert.equal(n.snapshotFrame?.contentSha256, n.contentSha256);
        const fetched = await client.getSnapshotFrame();
        assert.deepEqual(fetched.frame, n.snapshotFrame.frame, "one encoding, the same bytes for both");
        assert.deepEqual(SyncRequest.decode(n.snapshotFrame.frame).snapshot, (await c.snapshot()).snapshot);
      } finally {
        stop.abort();
        client.close();
      }
    });

    it("refuses include_snapshot to a viewer token (the snapshot holds private keys), not the notices", async () => {
      const viewer = (await c.createToken("watcher", Role.ROLE_VIEWER)).secret;
      const refused = h.config.watchConfig({ includeSnapshot: true }, withBearer(viewer));
      const err = await new Promise<{ code?: number; details?: string }>((resolve) => {
        refused.on("data", () => resolve({ code: -1 }));
        refused.on("error", resolve);
      });
      assert.equal(err.code, status.PERMISSION_DENIED);
      assert.match(err.details ?? "", /^include_snapshot: needs an admin token/);
      const plain = h.config.watchConfig({ includeSnapshot: false }, withBearer(viewer));
      const first = await new Promise<WatchConfigResponse>((resolve, reject) => {
        plain.on("data", resolve);
        plain.on("error", reject);
      });
      plain.cancel();
      plain.on("error", () => undefined);
      assert.equal(first.snapshot, undefined);
      assert.equal(first.version, await c.version());
    });

    it("refuses a watch without a token", async () => {
      const stream = h.config.watchConfig({ includeSnapshot: false }, withBearer(NONE));
      const err = await new Promise<{ code?: number }>((resolve) => {
        stream.on("data", () => resolve({ code: -1 }));
        stream.on("error", resolve);
      });
      assert.equal(err.code, status.UNAUTHENTICATED);
    });
  });

  describe("concurrency", () => {
    it("commits a burst of 20 concurrent creates as 20 consecutive versions", async () => {
      const start = await c.version();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => c.create(host(`burst-${i}`, [`burst-${i}.example.com`]))),
      );
      const versions = results.map((r) => r.configVersion).sort((x, y) => x - y);
      assert.equal(new Set(versions).size, 20, "versions are distinct");
      assert.deepEqual(
        versions,
        Array.from({ length: 20 }, (_, i) => start + 1 + i),
      );
      assert.equal(await c.version(), start + 20);
      assert.equal((await c.list()).length, 20);
      assert.equal((await c.snapshot()).snapshot!.version, start + 20);
    });
  });

  describe("ApplySnapshot outside a slave", () => {
    it("answers FAILED_PRECONDITION in standalone mode, even with the internal token", async () => {
      const snap = masterSnapshot(5);
      const msg = await expectStatus(c.apply(snap), status.FAILED_PRECONDITION);
      assert.match(msg, /slave/);
      assert.equal(await c.version(), 0);
      assert.deepEqual(await c.list(), []);
    });
  });
});

/** A snapshot as a master ("m1") sends it: canonical content and its hash. */
function masterSnapshot(version: number, hosts: ProxyHost[] = [masterHost()]): Snapshot {
  const content = {
    proxyHosts: hosts,
    l4ProxyHosts: [],
    certificates: [],
    accessLists: [],
    settings: { general: GeneralSettings.fromPartial({}), acme: AcmeSettings.fromPartial({}), http: undefined },
  };
  return {
    schemaVersion: SNAPSHOT_SCHEMA_VERSION,
    masterInstanceId: "m1",
    version,
    generatedAt: new Date("2026-01-02T03:04:05.678Z"),
    contentSha256: snapshotContentHash(content),
    ...content,
  };
}

function masterHost(): ProxyHost {
  return ProxyHost.fromPartial({
    id: "11111111-1111-4111-8111-111111111111",
    name: "from-master",
    domains: ["master.example.com"],
    upstreams: ["10.1.0.1:8080"],
    enabled: true,
    createdAt: new Date("2026-01-01T00:00:00.000Z"),
    updatedAt: new Date("2026-01-01T00:00:00.000Z"),
  });
}

describe("config-service (slave)", () => {
  let h: Harness;
  let c: ReturnType<typeof api>;
  harnessForEachTest({ mode: "slave" }, (started) => {
    h = started;
    c = api(h);
  });

  it("refuses writes to synced resources with FAILED_PRECONDITION naming the master; reads and tokens work", async () => {
    await c.apply(masterSnapshot(5));
    const applied = await c.list();
    assert.equal(applied.length, 1);
    const existing = applied[0]!;

    const m1 = await expectStatus(c.create(host("local", ["local.example.com"])), status.FAILED_PRECONDITION);
    assert.match(m1, /master/);
    const m2 = await expectStatus(c.update({ ...existing, name: "renamed" }), status.FAILED_PRECONDITION);
    assert.match(m2, /master/);
    const m3 = await expectStatus(c.delete(existing.id), status.FAILED_PRECONDITION);
    assert.match(m3, /master/);

    assert.deepEqual(await c.list(), [existing]);
    assert.equal(await c.version(), 5);

    const { secret, apiToken } = await c.createToken("slave-viewer", Role.ROLE_VIEWER);
    assert.ok(secret);
    assert.equal(apiToken?.name, "slave-viewer");
    assert.deepEqual(await c.list(secret), [existing]);
    assert.equal(await c.version(), 5, "token writes are not synced and do not bump the version");

    const info = await c.info();
    assert.equal(info.mode, ProtoMode.INSTANCE_MODE_SLAVE);
  });

  it("applies a master's snapshot: idempotent, refuses older versions and bad hashes, internal only", async () => {
    const v5 = masterSnapshot(5);
    const r1 = await c.apply(v5);
    assert.deepEqual(r1, { version: 5, changed: true });
    assert.deepEqual(await c.list(), v5.proxyHosts);
    const info = await c.info();
    assert.equal(info.version, 5);
    assert.equal(info.masterInstanceId, "m1");
    const snap = (await c.snapshot()).snapshot!;
    assert.equal(snap.version, 5);
    assert.equal(snap.contentSha256, v5.contentSha256, "the slave holds exactly the master's content");

    // The same snapshot again: nothing to do.
    assert.deepEqual(await c.apply(v5), { version: 5, changed: false });
    assert.equal(await c.version(), 5);

    // An older version from the same master is refused.
    const v4 = masterSnapshot(4, []);
    const older = await expectStatus(c.apply(v4), status.FAILED_PRECONDITION);
    assert.match(older, /4/);
    assert.equal(await c.version(), 5);
    assert.deepEqual(await c.list(), v5.proxyHosts);

    // A snapshot whose hash does not match its content is refused.
    const bad = { ...masterSnapshot(6, []), contentSha256: "0".repeat(64) };
    const badMsg = await expectStatus(c.apply(bad), status.INVALID_ARGUMENT);
    assert.ok(badMsg.startsWith("snapshot.content_sha256: "), badMsg);
    assert.equal(await c.version(), 5);
    assert.deepEqual(await c.list(), v5.proxyHosts);

    // A missing snapshot names the field too.
    const missing = await expectStatus(c.apply(undefined), status.INVALID_ARGUMENT);
    assert.ok(missing.startsWith("snapshot: "), missing);

    // Only the instance's own services may apply, not an API token (even an admin one), and
    // only on the internal listener: the public API does not know the internal token.
    await expectStatus(c.apply(masterSnapshot(7, []), ADMIN), status.UNAUTHENTICATED);
    await expectStatus(c.applyPublic(masterSnapshot(7, []), ADMIN), status.PERMISSION_DENIED);
    await expectStatus(c.applyPublic(masterSnapshot(7, []), INTERNAL), status.UNAUTHENTICATED);
    await expectStatus(c.apply(masterSnapshot(7, []), NONE), status.UNAUTHENTICATED);
    assert.equal(await c.version(), 5);
    assert.deepEqual(await c.list(), v5.proxyHosts);

    // A newer version replaces the content.
    const v7 = masterSnapshot(7, []);
    assert.deepEqual(await c.apply(v7), { version: 7, changed: true });
    assert.deepEqual(await c.list(), []);
  });

  it("repairs a database changed behind its back when the same version is applied again", async () => {
    const v5 = masterSnapshot(5);
    assert.deepEqual(await c.apply(v5), { version: 5, changed: true });
    await h.db.proxyHost.deleteMany();
    assert.deepEqual(await c.list(), []);
    // The service caches snapshots per commit; a restarted service would read the tampered rows.
    h.store.invalidate();
    // A watcher that connects now sees the tampered content (same version, other hash)...
    const w = watch(h);
    try {
      await w.waitFor(1);
      assert.equal(w.seen[0]!.version, 5);
      assert.notEqual(w.seen[0]!.contentSha256, v5.contentSha256);

      assert.deepEqual(await c.apply(v5), { version: 5, changed: true });
      assert.deepEqual(await c.list(), v5.proxyHosts);
      assert.equal(await c.version(), 5);
      assert.equal((await c.snapshot()).snapshot!.contentSha256, v5.contentSha256);
      // ...and hears the repair: same version, the master's content hash.
      await w.waitFor(2);
      assert.deepEqual(
        w.seen.map((m) => m.version),
        [5, 5],
      );
      assert.equal(w.seen[1]!.contentSha256, v5.contentSha256);
      assert.deepEqual(await c.apply(v5), { version: 5, changed: false });
    } finally {
      w.cancel();
    }
  });
});
