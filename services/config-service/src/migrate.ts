import { createHash, randomUUID } from "node:crypto";
import { readdirSync, readFileSync, existsSync } from "node:fs";
import path from "node:path";

/**
 * Applies the committed migrations at start-up, recording them in Prisma's own
 * `_prisma_migrations` table (same columns, checksums and names) so `prisma migrate
 * status` agrees. The service does this itself because Prisma 6.19's JavaScript schema
 * engine cannot run `migrate deploy` against PostgreSQL, and a service must not shell
 * out to a CLI at start.
 */
export interface SqlRunner {
  /** Runs several statements. */
  exec(sql: string): Promise<void>;
  query(sql: string, params: unknown[]): Promise<Record<string, unknown>[]>;
  transaction(fn: () => Promise<void>): Promise<void>;
}

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

export function readMigrations(dir: string): Migration[] {
  if (!existsSync(dir)) throw new Error(`migrations folder ${dir} is missing`);
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(path.join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    });
}

const TABLE_SQL = {
  sqlite: `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id" TEXT PRIMARY KEY NOT NULL, "checksum" TEXT NOT NULL, "finished_at" DATETIME,
    "migration_name" TEXT NOT NULL, "logs" TEXT, "rolled_back_at" DATETIME,
    "started_at" DATETIME NOT NULL DEFAULT current_timestamp, "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0)`,
  postgresql: `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id" VARCHAR(36) PRIMARY KEY NOT NULL, "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), "applied_steps_count" INTEGER NOT NULL DEFAULT 0)`,
};

/** Returns the names of the migrations it applied. Refuses a database whose applied migration was edited. */
export async function migrate(
  db: SqlRunner,
  dialect: "sqlite" | "postgresql",
  migrations: Migration[],
): Promise<string[]> {
  await db.exec(TABLE_SQL[dialect]);
  const rows = await db.query(
    `SELECT "migration_name", "checksum" FROM "_prisma_migrations" WHERE "finished_at" IS NOT NULL AND "rolled_back_at" IS NULL`,
    [],
  );
  const applied = new Map(rows.map((r) => [String(r.migration_name), String(r.checksum)]));
  const done: string[] = [];
  const p = dialect === "postgresql" ? (i: number) => `$${i}` : () => "?";
  for (const m of migrations) {
    const sum = applied.get(m.name);
    if (sum !== undefined) {
      if (sum !== m.checksum) throw new Error(`migration ${m.name} was changed after it was applied to this database`);
      continue;
    }
    await db.transaction(async () => {
      await db.exec(m.sql);
      const now = new Date().toISOString();
      await db.query(
        `INSERT INTO "_prisma_migrations" ("id","checksum","finished_at","migration_name","started_at","applied_steps_count") VALUES (${p(1)},${p(2)},${p(3)},${p(4)},${p(5)},1)`,
        [randomUUID(), m.checksum, now, m.name, now],
      );
    });
    done.push(m.name);
  }
  return done;
}
