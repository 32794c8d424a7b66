import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import { openDatabase } from "./db.ts";
import { directDataVersion } from "./sqlite-connection.ts";
import { sqliteDataVersion } from "./store.ts";

const dir = mkdtempSync(path.join(tmpdir(), "cpm-sqlite-conn-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("PRAGMA data_version asked of Prisma's own SQLite connection", () => {
  it("is answered without Prisma, stays put on this client's commits and moves on another connection's", async () => {
    const file = path.join(dir, "a.db");
    const { db } = await openDatabase(`file:${file}`);
    try {
      const first = directDataVersion(db);
      assert.notEqual(first, undefined, "the connection is at hand once the client has connected");
      assert.equal(await sqliteDataVersion(db), first);
      await db.instance.create({ data: { id: 1, instanceId: "i", version: 0, versionCommittedAt: new Date() } });
      assert.equal(directDataVersion(db), first, "a commit on the same connection does not move it");
      const other = new Database(file);
      other.prepare("UPDATE Instance SET version = 7 WHERE id = 1").run();
      other.close();
      const moved = directDataVersion(db);
      assert.notEqual(moved, first, "another connection's commit moves it");
      const viaPrisma = (await db.$queryRawUnsafe<{ data_version: bigint }[]>("PRAGMA data_version"))[0]!.data_version;
      assert.equal(viaPrisma, moved, "the same answer as asking through Prisma (same connection)");
    } finally {
      await db.$disconnect();
    }
    assert.equal(directDataVersion(db), undefined, "a closed connection is not asked");
  });
});
