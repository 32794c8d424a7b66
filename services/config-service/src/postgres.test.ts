import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { status } from "@grpc/grpc-js";
import { AccountServiceClient, ConfigServiceClient, ProxyHost, Role } from "@cpm/proto";
import { SNAPSHOT_SCHEMA_VERSION, snapshotContentHash } from "@cpm/core";
import { unary } from "@cpm/grpc-kit";
import { expectStatus, startConfigService, type Harness } from "./test-support.ts";
import { tokenCacheOf } from "./token-cache.ts";

/**
 * The same service on PostgreSQL (adapter-pg, migrations applied by the service itself).
 * Needs CPM_TEST_POSTGRES_URL: a server URL whose user may create databases; `.ci/run`
 * installs and starts Debian's PostgreSQL and sets it.
 */
const BASE = process.env.CPM_TEST_POSTGRES_URL;
const ADMIN = "postgres-test-admin-token-0123456789";
const INTERNAL = "postgres-test-internal-token-0123456789";

describe(
  "config-service on PostgreSQL",
  { skip: BASE ? false : "CPM_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against" },
  () => {
    const dbName = `cpm_test_${process.pid}_${Date.now()}`;
    let url: string;
    let h: Harness | undefined;
    let config: ConfigServiceClient;
    let account: AccountServiceClient;

    const admin = async (sql: string) => {
      const c = new pg.Client({ connectionString: BASE });
      await c.connect();
      try {
        await c.query(sql);
      } finally {
        await c.end();
      }
    };

    before(async () => {
      await admin(`CREATE DATABASE "${dbName}"`);
      const u = new URL(BASE!);
      u.pathname = `/${dbName}`;
      url = u.toString();
    });

    after(async () => {
      await h?.close();
      await admin(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    });

    /** Starts the service on the test database; returns the migrations it applied. */
    const start = async (mode: "standalone" | "slave") => {
      h = await startConfigService({ mode, databaseUrl: url, adminToken: ADMIN, internalToken: INTERNAL });
      ({ config, account } = h);
      return h.applied;
    };

    const stop = () => h!.close();

    it("migrates, bumps one version per write, enforces unique domains, and keeps users", async () => {
      const applied = await start("standalone");
      assert.ok(applied.length >= 2, `migrations applied: ${applied.join(", ")}`);
      const create = (name: string, domain: string) =>
        unary(
          config.createProxyHost.bind(config),
          { proxyHost: ProxyHost.fromPartial({ name, domains: [domain], upstreams: ["127.0.0.1:8080"] }) },
          ADMIN,
        );
      const a = await create("a", "a.pg.test");
      assert.equal(a.configVersion, 1);
      assert.equal((await create("b", "b.pg.test")).configVersion, 2);
      assert.match(await expectStatus(create("c", "A.pg.test"), status.ALREADY_EXISTS), /a\.pg\.test/);
      await unary(config.deleteProxyHost.bind(config), { id: a.proxyHost!.id }, ADMIN);
      const info = await unary(config.getInstanceInfo.bind(config), {}, ADMIN);
      assert.equal(info.version, 3);
      const snap = (await unary(config.getSnapshot.bind(config), {}, ADMIN)).snapshot!;
      assert.deepEqual(
        snap.proxyHosts.map((h) => h.name),
        ["b"],
      );
      const u = await unary(
        account.createUser.bind(account),
        { username: "pg-viewer", role: Role.ROLE_VIEWER, password: "" },
        ADMIN,
      );
      assert.equal(u.user!.username, "pg-viewer");
      await stop();
      // A restart on the same database applies no migration twice and keeps the version.
      assert.deepEqual(await start("standalone"), []);
      assert.equal((await unary(config.getInstanceInfo.bind(config), {}, ADMIN)).version, 3);
      await stop();
    });

    it("lists proxy hosts in pages by name and searches names and domains ignoring case, wildcards plain", async () => {
      await start("standalone");
      const ids: string[] = [];
      for (const [name, domain] of [
        ["Shop", "shop.pg-list.test"],
        ["api", "api.pg-list.test"],
        ["50%_off", "sale.pg-list.test"],
        ["Ärger", "aerger.pg-list.test"],
      ] as const) {
        const r = await unary(
          config.createProxyHost.bind(config),
          { proxyHost: ProxyHost.fromPartial({ name, domains: [domain], upstreams: ["127.0.0.1:8080"] }) },
          ADMIN,
        );
        ids.push(r.proxyHost!.id);
      }
      const list = (pageSize: number, query: string, pageToken = "") =>
        unary(config.listProxyHosts.bind(config), { pageSize, pageToken, query }, ADMIN);
      const names = (r: { proxyHosts: ProxyHost[] }) => r.proxyHosts.map((x) => x.name).sort();
      assert.deepEqual(names(await list(0, "SHOP")), ["Shop"]);
      assert.deepEqual(names(await list(0, "äRGER")), ["Ärger"], "PostgreSQL folds every letter's case");
      assert.deepEqual(names(await list(0, "%_")), ["50%_off"]);
      assert.deepEqual(names(await list(0, "p_a")), []);
      const seen: string[] = [];
      let token = "";
      do {
        const r = await list(3, "pg-list", token);
        assert.equal(r.totalSize, 4);
        seen.push(...r.proxyHosts.map((x) => x.name));
        token = r.nextPageToken;
      } while (token);
      assert.deepEqual([...seen].sort(), ["50%_off", "api", "Shop", "Ärger"].sort());
      assert.match(await expectStatus(list(3, "", "bad"), status.INVALID_ARGUMENT), /^page_token: /);
      for (const id of ids) await unary(config.deleteProxyHost.bind(config), { id }, ADMIN);
      await stop();
    });

    it("checks API tokens against the database on every call (nothing cached): revoke, demote and disable take effect at once", async () => {
      await start("standalone");
      const user = (
        await unary(
          account.createUser.bind(account),
          { username: "pg-ops", role: Role.ROLE_ADMIN, password: "" },
          ADMIN,
        )
      ).user!;
      const create = (name: string) =>
        unary(
          account.createApiToken.bind(account),
          { name, role: Role.ROLE_ADMIN, expiresAt: undefined, userId: user.id },
          ADMIN,
        );
      const write = (token: string, name: string) =>
        unary(
          config.createProxyHost.bind(config),
          { proxyHost: ProxyHost.fromPartial({ name, domains: [`${name}.pg.test`], upstreams: ["127.0.0.1:9"] }) },
          token,
        );
      const revoked = await create("pg-revoked");
      const kept = await create("pg-kept");
      await write(revoked.secret, "by-revoked");
      await unary(account.revokeApiToken.bind(account), { id: revoked.apiToken!.id }, ADMIN);
      await expectStatus(write(revoked.secret, "after-revoke"), status.UNAUTHENTICATED);
      // A change made by another connection is seen as well.
      const other = new pg.Client({ connectionString: url });
      await other.connect();
      try {
        assert.equal((await other.query(`UPDATE "User" SET role = 'viewer' WHERE id = $1`, [user.id])).rowCount, 1);
      } finally {
        await other.end();
      }
      await expectStatus(write(kept.secret, "after-demote"), status.PERMISSION_DENIED);
      await unary(
        account.updateUser.bind(account),
        { id: user.id, role: Role.ROLE_VIEWER, disabled: true, password: "" },
        ADMIN,
      );
      await expectStatus(
        unary(config.listProxyHosts.bind(config), { pageSize: 0, pageToken: "", query: "" }, kept.secret),
        status.UNAUTHENTICATED,
      );
      assert.deepEqual(tokenCacheOf(h!.db).size(), { tokens: 0, misses: 0 });
      await stop();
    });

    it("applies a master's snapshot as a slave, idempotently, refusing older versions", async () => {
      await start("slave");
      const content = {
        proxyHosts: [
          ProxyHost.fromPartial({
            id: "h1",
            name: "from-master",
            domains: ["m.pg.test"],
            upstreams: ["127.0.0.1:9"],
            enabled: true,
          }),
        ],
        l4ProxyHosts: [],
        certificates: [],
        accessLists: [],
      };
      const base = (await unary(config.getSnapshot.bind(config), {}, ADMIN)).snapshot!;
      const snapshot = {
        ...base,
        ...content,
        settings: base.settings,
        schemaVersion: SNAPSHOT_SCHEMA_VERSION,
        masterInstanceId: "master-pg",
        version: 10,
      };
      snapshot.contentSha256 = snapshotContentHash(snapshot);
      assert.deepEqual(await unary(h!.internal.applySnapshot.bind(h!.internal), { snapshot }, INTERNAL), {
        version: 10,
        changed: true,
      });
      assert.deepEqual(await unary(h!.internal.applySnapshot.bind(h!.internal), { snapshot }, INTERNAL), {
        version: 10,
        changed: false,
      });
      await expectStatus(
        unary(h!.internal.applySnapshot.bind(h!.internal), { snapshot: { ...snapshot, version: 9 } }, INTERNAL),
        status.FAILED_PRECONDITION,
      );
      const hosts = (await unary(config.listProxyHosts.bind(config), { pageSize: 0, pageToken: "", query: "" }, ADMIN))
        .proxyHosts;
      assert.deepEqual(
        hosts.map((h) => h.name),
        ["from-master"],
      );
      await stop();
    });
  },
);
