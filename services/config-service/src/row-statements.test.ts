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
import {
  COLUMNS,
  MissingRowError,
  prismaRowStatements,
  refusedByStoredRows,
  rowStatementsOn,
  sqliteValue,
  type RowStatements,
} from "./row-statements.ts";
import { directConnection } from "./sqlite-connection.ts";
import { insertRows } from "./deferred-inserts.ts";
import { ConfigStore, proxyHostRow, type Tx } from "./store.ts";

const dir = mkdtempSync(path.join(tmpdir(), "cpm-row-statements-"));
after(() => rmSync(dir, { recursive: true, force: true }));

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

/** A store on a database file of its own, with the first words of every statement SQLite ran. */
async function tracedStore(name: string) {
  const statements: string[] = [];
  const { db } = await openDatabase(`file:${path.join(dir, `${name}.db`)}`, {
    onStatement: (sql) => statements.push(sql),
  });
  const store = new ConfigStore(db, createLogger("test", "silent"), { dialect: "sqlite" });
  await store.init();
  return {
    db,
    store,
    /** The writes SQLite ran since the last call, as their first three words. */
    writes: () =>
      statements
        .splice(0)
        .filter((q) => /^\s*(INSERT|UPDATE|DELETE)/.test(q))
        .map((q) => q.trim().split(/\s+/).slice(0, 3).join(" ")),
  };
}

// One contract, two ways: each must write what Prisma reads back as its own rows.
const ways: [string, (db: Db, tx: Tx) => RowStatements][] = [
  ["prepared on Prisma's own SQLite connection", (db) => rowStatementsOn(directConnection(db)!)],
  ["through Prisma on the transaction", (_db, tx) => prismaRowStatements(tx)],
];
for (const [way, statementsOf] of ways) {
  describe(`row statements ${way}`, () => {
    let db: Db;
    before(async () => {
      ({ db } = await tracedStore(`rows-${ways.findIndex(([w]) => w === way)}`));
      assert.ok(directConnection(db), "the connection is at hand on SQLite");
    });
    after(async () => db.$disconnect());
    const inTransaction = <T>(fn: (rows: RowStatements) => Promise<T>) =>
      db.$transaction((tx) => fn(statementsOf(db, tx)));

    it("write rows that Prisma reads back exactly as given, dates, booleans and nulls included", async () => {
      await inTransaction(async (rows) => {
        await rows.insert("proxyHost", [proxyHostRow(host(1), at), proxyHostRow(host(2), at)]);
        await rows.insert("proxyHostDomain", [{ domain: "row2.test", proxyHostId: "row-2" }]);
      });
      for (const n of [1, 2])
        assert.deepEqual(
          await db.proxyHost.findUniqueOrThrow({ where: { id: `row-${n}` } }),
          proxyHostRow(host(n), at),
        );
      const many = Array.from({ length: 130 }, (_, i) => ({ domain: `many${i}.test`, proxyHostId: "row-2" }));
      await inTransaction((rows) => rows.insert("proxyHostDomain", many));
      assert.equal(await db.proxyHostDomain.count({ where: { proxyHostId: "row-2" } }), 131, "130 rows more");

      const later = new Date("2026-12-07T05:00:00.000Z");
      const changed = proxyHostRow(host(1, { upstreams: ["10.0.0.9:81"], compression: true }), at);
      await inTransaction(async (rows) => {
        assert.equal(await rows.updateProxyHost({ ...changed, updatedAt: later }), 1);
        assert.equal(
          await rows.updateProxyHost({ ...changed, id: "no-such-host" }),
          0,
          "an unknown id changes nothing",
        );
      });
      assert.deepEqual(await db.proxyHost.findUniqueOrThrow({ where: { id: "row-1" } }), {
        ...changed,
        updatedAt: later,
      });

      await inTransaction(async (rows) => {
        await rows.deleteDomainsOf(["row-1"]);
        await rows.deleteProxyHosts(["row-2"]);
      });
      assert.deepEqual(await db.proxyHost.findMany({ select: { id: true } }), [{ id: "row-1" }]);
      assert.equal(await db.proxyHostDomain.count(), 0, "row-1's domains deleted, row-2's gone with it");
    });

    it("bump and set the version as Prisma reads it; a broken constraint rolls the transaction back", async () => {
      const before = await db.instance.findUniqueOrThrow({ where: { id: 1 } });
      const at2 = new Date("2026-12-07T06:00:00.000Z");
      const bumped = await inTransaction((rows) => rows.bumpVersion(3, at2));
      const expected = { ...before, version: before.version + 3, versionCommittedAt: at2 };
      const { id: _id, ...instanceRow } = expected;
      assert.deepEqual(bumped, instanceRow);
      assert.deepEqual(await db.instance.findUniqueOrThrow({ where: { id: 1 } }), expected);
      await inTransaction((rows) => rows.setVersion(40, at2, "master-7"));
      assert.deepEqual(await db.instance.findUniqueOrThrow({ where: { id: 1 } }), {
        ...expected,
        version: 40,
        masterInstanceId: "master-7",
      });

      await assert.rejects(
        inTransaction(async (rows) => {
          await rows.bumpVersion(1, new Date());
          await rows.insert("proxyHost", [proxyHostRow(host(3, { name: "row-1" }), at)]); // name taken
        }),
        (err) => refusedByStoredRows(err),
      );
      await assert.rejects(
        inTransaction((rows) =>
          rows.insert("proxyHostDomain", [{ domain: "orphan.test", proxyHostId: "no-such-host" }]),
        ),
        (err) => refusedByStoredRows(err),
      );
      assert.equal((await db.instance.findUniqueOrThrow({ where: { id: 1 } })).version, 40, "no bump kept");
      assert.equal(await db.proxyHost.count({ where: { id: "row-3" } }), 0);
      assert.equal(await db.proxyHostDomain.count({ where: { domain: "orphan.test" } }), 0);
    });
  });
}

describe("the store on SQLite", () => {
  it("commits a new row and the version bump by the prepared statements, not Prisma's compiled ones", async () => {
    const { db, store, writes } = await tracedStore("commit");
    try {
      writes();
      const { version } = await store.write((tx) => insertRows(tx, "proxyHost", [proxyHostRow(host(10), at)]));
      // Prisma's compiled statements name `main`.`ProxyHost`.
      assert.deepEqual(writes(), ['INSERT INTO "ProxyHost"', 'UPDATE "Instance" SET']);
      assert.equal((await db.instance.findUniqueOrThrow({ where: { id: 1 } })).version, version);
      assert.equal((await db.proxyHost.findUniqueOrThrow({ where: { id: "row-10" } })).name, "row-10");
    } finally {
      await db.$disconnect();
    }
  });

  it("applies a slave's snapshots by them: changed, added and removed hosts, and names swapped between two (every row replaced)", async () => {
    const { db, store, writes } = await tracedStore("slave");
    try {
      const snap = (version: number, hosts: ProxyHost[]) => {
        const x = Snapshot.fromPartial({
          schemaVersion: SNAPSHOT_SCHEMA_VERSION,
          version,
          masterInstanceId: "master-0001",
          proxyHosts: hosts,
        });
        return { ...x, contentSha256: snapshotContentHash(x) };
      };
      const [a, b, c] = [20, 21, 22].map((n) => host(n, { createdAt: at, updatedAt: at })) as [
        ProxyHost,
        ProxyHost,
        ProxyHost,
      ];
      const stored = async () => (await new ConfigStore(db, createLogger("test", "silent")).snapshot()).proxyHosts;
      const applied = async (x: Snapshot) => {
        writes();
        await applySnapshot(store, x);
        return writes();
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
        (await db.proxyHostDomain.findMany({ orderBy: { domain: "asc" } })).map((d) => d.domain),
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
      assert.equal((await db.instance.findUniqueOrThrow({ where: { id: 1 } })).version, 3);
    } finally {
      await db.$disconnect();
    }
  });
});
