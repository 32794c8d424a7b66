import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ProxyHost, Snapshot } from "@cpm/proto";
import { createLogger, SNAPSHOT_SCHEMA_VERSION, snapshotContentHash } from "@cpm/core";
import { applySnapshot } from "./apply.ts";
import { openDatabase, type Db } from "./db.ts";
import { Prisma } from "./generated/prisma/client.ts";
import { COLUMNS, MissingRowError, refusedByStoredRows, rowStatementsOn, sqliteValue } from "./row-statements.ts";
import { directConnection } from "./sqlite-connection.ts";
import { ConfigStore, proxyHostRow } from "./store.ts";

const dir = mkdtempSync(path.join(tmpdir(), "cpm-row-statements-"));
after(() => rmSync(dir, { recursive: true, force: true }));

class RolledBack extends Error {}

describe("sqliteValue: a value bound as Prisma's SQLite adapter binds it", () => {
  const cases: [string, unknown, unknown][] = [
    ["a date: ISO-8601 with +00:00", new Date("2026-12-07T01:02:03.004Z"), "2026-12-07T01:02:03.004+00:00"],
    ["true", true, 1],
    ["false", false, 0],
    ["null", null, null],
    ["undefined (a column left out)", undefined, null],
    ["a string, as it is", "h'1\"; DROP TABLE x", "h'1\"; DROP TABLE x"],
    ["a number", 7, 7],
  ];
  for (const [name, input, want] of cases) it(name, () => assert.deepEqual(sqliteValue(input), want));
});

describe("the prepared statements' columns", () => {
  it("are every column of each model they write, so a new column cannot be left out", () => {
    assert.deepEqual([...COLUMNS.proxyHost].sort(), Object.values(Prisma.ProxyHostScalarFieldEnum).sort());
    assert.deepEqual([...COLUMNS.proxyHostDomain].sort(), Object.values(Prisma.ProxyHostDomainScalarFieldEnum).sort());
  });
});

describe("refusedByStoredRows: a write the stored rows refuse, by Prisma or by a prepared statement", () => {
  const cases: [string, unknown, boolean][] = [
    ["Prisma: unique constraint", { code: "P2002" }, true],
    ["Prisma: foreign key constraint", { code: "P2003" }, true],
    ["Prisma: record to update not found", { code: "P2025" }, true],
    ["SQLite: unique constraint", { code: "SQLITE_CONSTRAINT_UNIQUE" }, true],
    ["SQLite: primary key", { code: "SQLITE_CONSTRAINT_PRIMARYKEY" }, true],
    ["SQLite: foreign key", { code: "SQLITE_CONSTRAINT_FOREIGNKEY" }, true],
    ["a missing row", new MissingRowError("ProxyHost", "x"), true],
    ["SQLite: database locked", { code: "SQLITE_BUSY" }, false],
    ["Prisma: another error", { code: "P1001" }, false],
    ["no code", new Error("boom"), false],
    ["not an object", "P2002", false],
    ["null", null, false],
  ];
  for (const [name, err, want] of cases) it(name, () => assert.equal(refusedByStoredRows(err), want));
});

describe("row statements on Prisma's own SQLite connection", () => {
  let db: Db;
  let store: ConfigStore;
  before(async () => {
    ({ db } = await openDatabase(`file:${path.join(dir, "rows.db")}`));
    store = new ConfigStore(db, createLogger("test", "silent"), { dialect: "sqlite" });
    await store.init();
  });
  after(async () => db.$disconnect());

  const host = (n: number, over: Partial<ProxyHost> = {}) =>
    ProxyHost.fromPartial({
      id: `row-${n}`,
      name: `row-${n}`,
      domains: [`row${n}.test`],
      upstreams: ["10.0.0.1:80"],
      compression: n % 2 === 0,
      ...over,
    });
  const at = new Date("2026-12-07T01:02:03.004Z");

  it("writes rows that Prisma reads back exactly as it reads its own", async () => {
    const conn = directConnection(db);
    assert.ok(conn, "the connection is at hand on SQLite");
    const rows = rowStatementsOn(conn);
    await db.proxyHost.createMany({ data: [proxyHostRow(host(1), at)] });
    await db.$transaction(async () => {
      rows.insert("proxyHost", [proxyHostRow(host(2), at)]);
      rows.insert("proxyHostDomain", [{ domain: "row2.test", proxyHostId: "row-2" }]);
    });
    assert.deepEqual(
      await db.proxyHost.findUniqueOrThrow({ where: { id: "row-1" } }),
      proxyHostRow(host(1), at),
      "Prisma's own row reads back as given",
    );
    assert.deepEqual(
      await db.proxyHost.findUniqueOrThrow({ where: { id: "row-2" } }),
      proxyHostRow(host(2), at),
      "so does the prepared statement's: dates, booleans and nulls included",
    );
    assert.deepEqual(await db.proxyHostDomain.findMany({ where: { proxyHostId: "row-2" } }), [
      { domain: "row2.test", proxyHostId: "row-2" },
    ]);

    const many = Array.from({ length: 130 }, (_, i) => ({ domain: `many${i}.test`, proxyHostId: "row-2" }));
    await db.$transaction(async () => rows.insert("proxyHostDomain", many));
    assert.equal(
      await db.proxyHostDomain.count({ where: { proxyHostId: "row-2" } }),
      131,
      "130 rows in three statements",
    );

    const later = new Date("2026-12-07T05:00:00.000Z");
    const changed = proxyHostRow(host(1, { upstreams: ["10.0.0.9:81"], compression: true }), at);
    await db.$transaction(async () => {
      assert.equal(rows.updateProxyHost({ ...changed, updatedAt: later }), 1);
      assert.equal(rows.updateProxyHost({ ...changed, id: "no-such-host" }), 0, "an unknown id changes nothing");
    });
    const updated = await db.proxyHost.findUniqueOrThrow({ where: { id: "row-1" } });
    assert.deepEqual(updated, { ...changed, updatedAt: later });
  });

  it("bumps the version as Prisma reads it, and a broken constraint rolls the whole transaction back", async () => {
    const rows = rowStatementsOn(directConnection(db)!);
    const before = await db.instance.findUniqueOrThrow({ where: { id: 1 } });
    const at2 = new Date("2026-12-07T06:00:00.000Z");
    const bumped = await db.$transaction(async () => rows.bumpVersion(3, at2));
    assert.deepEqual(bumped, {
      instanceId: before.instanceId,
      version: before.version + 3,
      versionCommittedAt: at2,
      masterInstanceId: before.masterInstanceId,
    });
    assert.deepEqual(await db.instance.findUniqueOrThrow({ where: { id: 1 } }), {
      ...before,
      version: before.version + 3,
      versionCommittedAt: at2,
    });

    await assert.rejects(
      db.$transaction(async () => {
        rows.bumpVersion(1, new Date());
        rows.insert("proxyHost", [proxyHostRow(host(3, { name: "row-1" }), at)]); // name taken
      }),
      /UNIQUE constraint failed: ProxyHost.name/,
    );
    await assert.rejects(
      db.$transaction(async () => {
        rows.insert("proxyHostDomain", [{ domain: "orphan.test", proxyHostId: "no-such-host" }]);
        throw new RolledBack();
      }),
      /FOREIGN KEY constraint failed|RolledBack/,
    );
    assert.equal(
      (await db.instance.findUniqueOrThrow({ where: { id: 1 } })).version,
      before.version + 3,
      "no bump kept",
    );
    assert.equal(await db.proxyHost.count({ where: { id: "row-3" } }), 0);
    assert.equal(await db.proxyHostDomain.count({ where: { domain: "orphan.test" } }), 0);
  });

  it("carry the store's commit: a new row and the version bump, not Prisma's compiled statements", async () => {
    const statements: string[] = [];
    const { db: traced } = await openDatabase(`file:${path.join(dir, "traced.db")}`, {
      onStatement: (sql) => statements.push(sql),
    });
    try {
      const s = new ConfigStore(traced, createLogger("test", "silent"), { dialect: "sqlite" });
      await s.init();
      const row = proxyHostRow(host(10), at);
      statements.length = 0;
      const { version } = await s.write(async (tx) => {
        const { insertRows } = await import("./deferred-inserts.ts");
        await insertRows(tx, "proxyHost", [row]);
      });
      const written = statements.filter((q) => /INSERT|UPDATE/.test(q));
      assert.deepEqual(
        written.map((q) => q.trim().split(/\s+/).slice(0, 3).join(" ")),
        ['INSERT INTO "ProxyHost"', 'UPDATE "Instance" SET'],
        "the prepared statements, not Prisma's compiled ones (which name `main`.`ProxyHost`)",
      );
      assert.equal((await traced.instance.findUniqueOrThrow({ where: { id: 1 } })).version, version);
      assert.equal((await traced.proxyHost.findUniqueOrThrow({ where: { id: "row-10" } })).name, "row-10");
    } finally {
      await traced.$disconnect();
    }
  });
  it("carry a slave's apply: changed, added and removed hosts, and names swapped between two (every row replaced)", async () => {
    const statements: string[] = [];
    const { db: slave } = await openDatabase(`file:${path.join(dir, "slave.db")}`, {
      onStatement: (sql) => statements.push(sql),
    });
    try {
      const s = new ConfigStore(slave, createLogger("test", "silent"), { dialect: "sqlite" });
      await s.init();
      const master = "master-0001";
      const snap = (version: number, hosts: ProxyHost[]) => {
        const x = Snapshot.fromPartial({
          schemaVersion: SNAPSHOT_SCHEMA_VERSION,
          version,
          masterInstanceId: master,
          proxyHosts: hosts,
        });
        return { ...x, contentSha256: snapshotContentHash(x) };
      };
      const a = host(20, { createdAt: at, updatedAt: at });
      const b = host(21, { createdAt: at, updatedAt: at });
      const c = host(22, { createdAt: at, updatedAt: at });
      const stored = async () => (await new ConfigStore(slave, createLogger("test", "silent")).snapshot()).proxyHosts;
      const applied = async (x: Snapshot) => {
        statements.length = 0;
        await applySnapshot(s, x);
        return statements
          .filter((q) => /^\s*(INSERT|UPDATE|DELETE)/.test(q))
          .map((q) => q.trim().split(/\s+/).slice(0, 3).join(" "));
      };

      assert.deepEqual(await applied(snap(1, [a, b])), [
        'INSERT INTO "ProxyHost"',
        'INSERT INTO "ProxyHostDomain"',
        'UPDATE "Instance" SET',
      ]);
      const a2 = { ...a, upstreams: ["10.0.0.2:80"], domains: ["row20b.test"] };
      assert.deepEqual(await applied(snap(2, [a2, c])), [
        'DELETE FROM "ProxyHost"',
        'DELETE FROM "ProxyHostDomain"',
        'UPDATE "ProxyHost" SET',
        'INSERT INTO "ProxyHost"',
        'INSERT INTO "ProxyHostDomain"',
        'UPDATE "Instance" SET',
      ]);
      assert.deepEqual(await stored(), [a2, c], "the database holds the snapshot's hosts");
      assert.deepEqual(
        (await slave.proxyHostDomain.findMany({ orderBy: { domain: "asc" } })).map((d) => d.domain),
        ["row20b.test", "row22.test"],
        "the removed host's domain rows went with it, the changed host's were rewritten",
      );

      // Swapped names cannot be written in place (the first update breaks the unique name):
      // the prepared statement's constraint error sends the apply to replacing every row.
      const swapped = [
        { ...a2, name: c.name },
        { ...c, name: a2.name },
      ];
      await applied(snap(3, swapped));
      assert.deepEqual(await stored(), swapped);
      assert.equal((await slave.instance.findUniqueOrThrow({ where: { id: 1 } })).version, 3);
    } finally {
      await slave.$disconnect();
    }
  });
});
