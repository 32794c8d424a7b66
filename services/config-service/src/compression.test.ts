// A proxy host's compression through config-service: the API, the database column, the
// snapshot, a slave's apply, and a database of release 0.1.0 migrated forward.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { ProxyHost, Snapshot } from "@cpm/proto";
import { SNAPSHOT_SCHEMA_VERSION, snapshotContentHash } from "@cpm/core";
import { unary } from "@cpm/grpc-kit";
import { migrate, readMigrations, type SqlRunner } from "./migrate.ts";
import {
  ADMIN,
  freshSqliteUrl,
  harnessForEachTest,
  INTERNAL,
  startConfigService,
  type Harness,
} from "./test-support.ts";
import { sqlitePath } from "./db.ts";

const MIGRATIONS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../prisma/migrations");
const MIGRATION = "20261206000000_proxy_host_compression";

const host = (name: string, extra: Partial<ProxyHost> = {}) =>
  ProxyHost.fromPartial({ name, domains: [`${name}.example.com`], upstreams: ["10.0.0.1:8080"], ...extra });

const api = (h: Harness) => ({
  create: async (p: ProxyHost) =>
    (await unary(h.config.createProxyHost.bind(h.config), { proxyHost: p }, ADMIN)).proxyHost!,
  update: async (p: ProxyHost) =>
    (await unary(h.config.updateProxyHost.bind(h.config), { proxyHost: p }, ADMIN)).proxyHost!,
  get: async (id: string) => (await unary(h.config.getProxyHost.bind(h.config), { id }, ADMIN)).proxyHost!,
  snapshot: async () => (await unary(h.config.getSnapshot.bind(h.config), {}, ADMIN)).snapshot!,
  column: async (id: string) => (await h.db.proxyHost.findUniqueOrThrow({ where: { id } })).compression,
});

describe("proxy host compression", () => {
  let h!: Harness;
  harnessForEachTest({}, (started) => (h = started));

  it("is off by default, set by create and update, kept in its column and in the snapshot", async () => {
    const a = api(h);
    const plain = await a.create(host("plain"));
    assert.equal(plain.compression, false);
    assert.equal(await a.column(plain.id), false);

    const zipped = await a.create(host("zipped", { compression: true }));
    assert.equal((await a.get(zipped.id)).compression, true);
    assert.equal(await a.column(zipped.id), true);
    let snap = await a.snapshot();
    assert.deepEqual(snap.proxyHosts.map((x) => [x.name, x.compression]).sort(), [
      ["plain", false],
      ["zipped", true],
    ]);
    assert.equal(snap.contentSha256, snapshotContentHash(snap));

    await a.update({ ...zipped, compression: false });
    assert.equal((await a.get(zipped.id)).compression, false);
    assert.equal(await a.column(zipped.id), false);
    snap = await a.snapshot();
    assert.ok(snap.proxyHosts.every((x) => !x.compression));
    assert.equal(snap.contentSha256, snapshotContentHash(snap));
  });
});

describe("proxy host compression on a slave", () => {
  let h!: Harness;
  harnessForEachTest({ mode: "slave" }, (started) => (h = started));

  it("a snapshot that compresses is stored as it came, column included", async () => {
    const at = { createdAt: new Date("2026-12-01T00:00:00Z"), updatedAt: new Date("2026-12-01T00:00:00Z") };
    const s = Snapshot.fromPartial({
      schemaVersion: SNAPSHOT_SCHEMA_VERSION,
      masterInstanceId: "master-1",
      version: 3,
      proxyHosts: [
        host("zipped", { id: "11111111-1111-4111-8111-111111111111", compression: true, enabled: true, ...at }),
        host("plain", { id: "22222222-2222-4222-8222-222222222222", enabled: true, ...at }),
      ],
      settings: undefined,
    });
    s.contentSha256 = snapshotContentHash(s);
    await unary(h.internal.applySnapshot.bind(h.internal), { snapshot: s }, INTERNAL);
    const a = api(h);
    assert.equal((await a.get("11111111-1111-4111-8111-111111111111")).compression, true);
    assert.equal(await a.column("11111111-1111-4111-8111-111111111111"), true);
    assert.equal(await a.column("22222222-2222-4222-8222-222222222222"), false);
    const got = await a.snapshot();
    assert.deepEqual(
      [...got.proxyHosts].sort((x, y) => x.name.localeCompare(y.name)),
      [...s.proxyHosts].sort((x, y) => x.name.localeCompare(y.name)),
    );
  });
});

describe(`migration ${MIGRATION}`, () => {
  it("adds the column to a database of release 0.1.0 and keeps its proxy hosts, compression off", async () => {
    const url = freshSqliteUrl();
    const raw = new Database(sqlitePath(url));
    const runner: SqlRunner = {
      exec: async (sql) => void raw.exec(sql),
      query: async (sql, params) =>
        /^\s*select/i.test(sql)
          ? (raw.prepare(sql).all(...params) as Record<string, unknown>[])
          : (raw.prepare(sql).run(...params), []),
      transaction: async (fn) => {
        raw.exec("BEGIN");
        try {
          await fn();
          raw.exec("COMMIT");
        } catch (e) {
          raw.exec("ROLLBACK");
          throw e;
        }
      },
    };
    const before = readMigrations(MIGRATIONS).filter((m) => m.name < MIGRATION);
    assert.deepEqual(
      before.map((m) => m.name),
      ["20261125000000_init", "20261125020000_users"],
    );
    await migrate(runner, "sqlite", before, "0.1.0");
    // The row as release 0.1.0 writes it: the resource as proto JSON, without compression.
    const id = "33333333-3333-4333-8333-333333333333";
    const data = { id, name: "old", domains: ["old.example.com"], upstreams: ["10.0.0.1:8080"], enabled: true };
    const now = new Date("2026-11-30T00:00:00Z").getTime();
    raw
      .prepare(`INSERT INTO "ProxyHost" ("id","name","data","createdAt","updatedAt") VALUES (?,?,?,?,?)`)
      .run(id, "old", JSON.stringify(data), now, now);
    raw.prepare(`INSERT INTO "ProxyHostDomain" ("domain","proxyHostId") VALUES (?,?)`).run("old.example.com", id);
    raw.close();

    const h = await startConfigService({ databaseUrl: url });
    try {
      assert.deepEqual(h.applied, [MIGRATION]);
      const a = api(h);
      const old = await a.get(id);
      assert.deepEqual([old.name, old.domains, old.compression], ["old", ["old.example.com"], false]);
      assert.equal(await a.column(id), false);
      await a.update({ ...old, compression: true });
      assert.equal(await a.column(id), true);
    } finally {
      await h.close();
    }
  });
});
