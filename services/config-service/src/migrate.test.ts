import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { migrate, schemaCheck, schemaRefusal, SchemaNewerError, type Migration, type SqlRunner } from "./migrate.ts";

const A = "20261125000000_init";
const B = "20261125020000_users";
const C = "20261206000000_proxy_host_compression";
const FUTURE = "20270101000000_x";

describe("schemaCheck: what a start does with the database's applied migrations", () => {
  const cases: {
    name: string;
    applied: string[];
    known: string[];
    expect: ReturnType<typeof schemaCheck>;
  }[] = [
    {
      name: "an empty database gets every migration",
      applied: [],
      known: [A, B],
      expect: { ok: true, pending: [A, B] },
    },
    { name: "an up-to-date database gets none", applied: [A, B], known: [A, B], expect: { ok: true, pending: [] } },
    {
      name: "a database of the previous release gets the new one",
      applied: [A, B],
      known: [A, B, C],
      expect: { ok: true, pending: [C] },
    },
    {
      name: "a missing older migration is applied too",
      applied: [B],
      known: [A, B, C],
      expect: { ok: true, pending: [A, C] },
    },
    {
      name: "a migration after this build's last: newer",
      applied: [A, B, FUTURE],
      known: [A, B],
      expect: { ok: false, unknown: [FUTURE], newer: true },
    },
    {
      name: "this build's last migration still pending and a newer one applied: newer",
      applied: [A, B, FUTURE],
      known: [A, B, C],
      expect: { ok: false, unknown: [FUTURE], newer: true },
    },
    {
      name: "an unknown migration that sorts before this build's last: not ours, not newer",
      applied: [A, "20261201000000_branch"],
      known: [A, B, C],
      expect: { ok: false, unknown: ["20261201000000_branch"], newer: false },
    },
    {
      name: "several unknown: sorted, the newest last",
      applied: [A, "20280101000000_y", FUTURE],
      known: [A, B],
      expect: { ok: false, unknown: [FUTURE, "20280101000000_y"], newer: true },
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(schemaCheck(c.applied, c.known), c.expect));

  it("the refusal names both schema versions, this release and the one to run", () => {
    const check = schemaCheck([A, B, FUTURE], [A, B, C]);
    assert.equal(check.ok, false);
    if (check.ok) return;
    assert.equal(
      schemaRefusal(check, [A, B, C], "0.2.0", new Map([[FUTURE, "0.3.0"]])),
      `database schema ${FUTURE} is newer than this build's ${C} (release 0.2.0): run release 0.3.0 or later; the database was not changed`,
    );
    assert.match(schemaRefusal(check, [A, B, C], "0.2.0"), /run the release that wrote it or a later one/);
  });
});

describe("migrate on SQLite", () => {
  const migrations: Migration[] = [
    { name: A, sql: `CREATE TABLE "a" ("id" INTEGER PRIMARY KEY)`, checksum: "a" },
    { name: B, sql: `CREATE TABLE "b" ("id" INTEGER PRIMARY KEY)`, checksum: "b" },
  ];
  const runner = (raw: Database.Database): SqlRunner => ({
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
  });

  it("applies, records the release, and refuses a newer database without writing to it", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "cpm-migrate-"));
    const file = path.join(dir, "cpm.db");
    try {
      let raw = new Database(file);
      assert.deepEqual(await migrate(runner(raw), "sqlite", migrations, "0.2.0"), [A, B]);
      assert.deepEqual(await migrate(runner(raw), "sqlite", migrations, "0.2.0"), []);
      const logs = raw.prepare(`SELECT "logs" FROM "_prisma_migrations" ORDER BY "migration_name"`).all();
      assert.deepEqual(logs, [{ logs: "applied by release 0.2.0" }, { logs: "applied by release 0.2.0" }]);
      // A newer release's migration (a stand-in row), then this build started on it.
      raw
        .prepare(
          `INSERT INTO "_prisma_migrations" ("id","checksum","finished_at","migration_name","logs","started_at","applied_steps_count") VALUES ('f','f',current_timestamp,?,'applied by release 0.3.0',current_timestamp,1)`,
        )
        .run(FUTURE);
      raw.close();
      const before = createHash("sha256").update(readFileSync(file)).digest("hex");
      raw = new Database(file);
      const more = [...migrations, { name: C, sql: `CREATE TABLE "c" ("id" INTEGER PRIMARY KEY)`, checksum: "c" }];
      await assert.rejects(
        migrate(runner(raw), "sqlite", more, "0.2.0"),
        (e: unknown) =>
          e instanceof SchemaNewerError &&
          e.message.startsWith(
            `database schema ${FUTURE} is newer than this build's ${C} (release 0.2.0): run release 0.3.0 or later`,
          ),
      );
      raw.close();
      assert.equal(createHash("sha256").update(readFileSync(file)).digest("hex"), before, "the file is unchanged");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses an edited migration before applying any other", async () => {
    const raw = new Database(":memory:");
    await migrate(runner(raw), "sqlite", migrations.slice(0, 1), "0.2.0");
    const edited = [{ ...migrations[0]!, checksum: "edited" }, migrations[1]!];
    await assert.rejects(migrate(runner(raw), "sqlite", edited, "0.2.0"), /was changed after it was applied/);
    assert.deepEqual(raw.prepare(`SELECT count(*) AS n FROM sqlite_master WHERE name = 'b'`).get(), { n: 0 });
    raw.close();
  });
});
