import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { RELEASE } from "@cpm/core";
import { ConnectionKeepingSQLiteAdapter, keepConnectionOf } from "./sqlite-connection.ts";
import { PrismaClient } from "./generated/prisma/client.ts";
import { migrate, readMigrations, type SqlRunner } from "./migrate.ts";

export type Db = InstanceType<typeof PrismaClient>;

const prismaDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../prisma");

/** Path of a SQLite `file:` URL (relative paths are relative to the working directory). */
export function sqlitePath(url: string): string {
  return path.resolve(url.replace(/^file:/, "").replace(/\?.*$/, ""));
}

export interface OpenOptions {
  /**
   * SQLite only: called with the text of every statement Prisma's connection runs (better-sqlite3's
   * `verbose`), transaction statements included. For measuring (`npm run bench:write`); unset, nothing is traced.
   */
  onStatement?: (sql: string) => void;
}

/**
 * Opens the database named by DATABASE_URL, applies pending migrations, and returns
 * a Prisma client on the matching driver adapter.
 */
export async function openDatabase(
  databaseUrl: string,
  opts: OpenOptions = {},
): Promise<{ db: Db; applied: string[]; dialect: "sqlite" | "postgresql" }> {
  if (databaseUrl.startsWith("file:")) {
    const file = sqlitePath(databaseUrl);
    mkdirSync(path.dirname(file), { recursive: true });
    const raw = new Database(file);
    raw.pragma("foreign_keys = ON");
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
    let applied: string[];
    try {
      // migrate reads the applied migrations before it writes anything, the journal mode included:
      // a database of a newer release is left as it was.
      applied = await migrate(runner, "sqlite", readMigrations(path.join(prismaDir, "migrations")), RELEASE);
      raw.pragma("journal_mode = WAL");
    } finally {
      raw.close();
    }
    const onStatement = opts.onStatement;
    const adapter = new ConnectionKeepingSQLiteAdapter({
      url: `file:${file}`,
      ...(onStatement && { verbose: (sql: unknown) => onStatement(String(sql)) }),
    });
    const db = new PrismaClient({ adapter });
    keepConnectionOf(db, adapter);
    await db.$executeRawUnsafe("PRAGMA foreign_keys = ON");
    // WAL with synchronous=NORMAL: a commit is not fsynced; the WAL is at checkpoints. The
    // database stays consistent after a crash; a power loss can lose the last commits, and the
    // version with them (an instance restarts on an earlier version; see README, Durability).
    await db.$executeRawUnsafe("PRAGMA synchronous = NORMAL");
    await db.$queryRawUnsafe("PRAGMA busy_timeout = 5000");
    return { db, applied, dialect: "sqlite" };
  }
  // PostgreSQL's driver and client are loaded only here: a SQLite instance does not carry them (about 10 MiB).
  const [{ default: pg }, { PrismaPg }, { PrismaClient: PgPrismaClient }] = await Promise.all([
    import("pg"),
    import("@prisma/adapter-pg"),
    import("./generated/prisma-pg/client.ts"),
  ]);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const runner: SqlRunner = {
      exec: async (sql) => void (await client.query(sql)),
      query: async (sql, params) => (await client.query<Record<string, unknown>>(sql, params)).rows,
      transaction: async (fn) => {
        await client.query("BEGIN");
        try {
          await fn();
          await client.query("COMMIT");
        } catch (e) {
          await client.query("ROLLBACK");
          throw e;
        }
      },
    };
    const applied = await migrate(
      runner,
      "postgresql",
      readMigrations(path.join(prismaDir, "postgresql", "migrations")),
      RELEASE,
    );
    // The PostgreSQL client is generated from the same model (prisma/postgresql/schema.prisma),
    // so its API is the SQLite client's; only the provider differs.
    const db = new PgPrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl }) }) as unknown as Db;
    return { db, applied, dialect: "postgresql" };
  } finally {
    await client.end();
  }
}
