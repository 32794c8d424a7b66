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

/** What a database's applied migrations mean for this build (`schemaCheck`). */
export type SchemaCheck =
  | { ok: true; pending: string[] }
  /**
   * The database holds migrations this build does not know: another release applied them, and
   * this build must not start on it. `unknown` in their order; `newer` when the newest of them
   * sorts after this build's last migration (a newer release wrote the database).
   */
  | { ok: false; unknown: string[]; newer: boolean };

/**
 * The decision a start makes from the names of the migrations applied to its database and the
 * ones this build carries: which to apply, or that the database belongs to another release.
 * Pure: `migrate` reads the names and carries it out.
 */
export function schemaCheck(applied: readonly string[], known: readonly string[]): SchemaCheck {
  const knownSet = new Set(known);
  const unknown = [...new Set(applied)].filter((n) => !knownSet.has(n)).sort();
  if (unknown.length) {
    const last = [...known].sort().at(-1);
    return { ok: false, unknown, newer: last === undefined || unknown.at(-1)! > last };
  }
  const appliedSet = new Set(applied);
  return { ok: true, pending: known.filter((n) => !appliedSet.has(n)) };
}

/**
 * A database this build must not touch: it holds migrations of another (a newer) release.
 * Thrown before anything is written to it.
 */
export class SchemaNewerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SchemaNewerError";
  }
}

/** How a migration row records the release that applied it (Prisma's `logs` column, unused for applied migrations). */
const APPLIED_BY = "applied by release ";

/**
 * The refusal's message: both schema versions (the database's newest migration and this build's
 * last), this build's release, and the release to run when the database says which one wrote it.
 */
export function schemaRefusal(
  check: Extract<SchemaCheck, { ok: false }>,
  known: readonly string[],
  release: string,
  appliedBy: ReadonlyMap<string, string> = new Map(),
): string {
  const theirs = check.unknown.at(-1)!;
  const ours = [...known].sort().at(-1) ?? "(none)";
  const by = appliedBy.get(theirs);
  const run = by ? `run release ${by} or later` : "run the release that wrote it or a later one";
  return check.newer
    ? `database schema ${theirs} is newer than this build's ${ours} (release ${release}): ${run}; the database was not changed`
    : `database schema has migration ${theirs}, which this build (release ${release}, schema ${ours}) does not know: ${run}; the database was not changed`;
}

/** The applied migrations, read without creating or changing anything (no table yet: none). */
async function readApplied(
  db: SqlRunner,
  dialect: "sqlite" | "postgresql",
): Promise<{ name: string; checksum: string; logs: string | null }[]> {
  const present =
    dialect === "sqlite"
      ? (await db.query(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_prisma_migrations'`, []))
          .length > 0
      : (await db.query(`SELECT to_regclass('"_prisma_migrations"') IS NOT NULL AS "present"`, []))[0]?.present ===
        true;
  if (!present) return [];
  const rows = await db.query(
    `SELECT "migration_name", "checksum", "logs" FROM "_prisma_migrations" WHERE "finished_at" IS NOT NULL AND "rolled_back_at" IS NULL`,
    [],
  );
  return rows.map((r) => ({
    name: String(r.migration_name),
    checksum: String(r.checksum),
    logs: typeof r.logs === "string" ? r.logs : null,
  }));
}

/**
 * Applies the migrations the database lacks, each in one transaction with its row in
 * `_prisma_migrations` (recording `release`), and returns their names. Reads the applied ones
 * first and writes nothing when the database holds a migration this build does not know
 * (SchemaNewerError) or an applied migration was edited.
 */
export async function migrate(
  db: SqlRunner,
  dialect: "sqlite" | "postgresql",
  migrations: Migration[],
  release: string,
): Promise<string[]> {
  const rows = await readApplied(db, dialect);
  const known = migrations.map((m) => m.name);
  const check = schemaCheck(
    rows.map((r) => r.name),
    known,
  );
  if (!check.ok) {
    const appliedBy = new Map<string, string>();
    for (const r of rows)
      if (r.logs?.startsWith(APPLIED_BY)) appliedBy.set(r.name, r.logs.slice(APPLIED_BY.length).trim());
    throw new SchemaNewerError(schemaRefusal(check, known, release, appliedBy));
  }
  const sums = new Map(rows.map((r) => [r.name, r.checksum]));
  for (const m of migrations) {
    const sum = sums.get(m.name);
    if (sum !== undefined && sum !== m.checksum)
      throw new Error(`migration ${m.name} was changed after it was applied to this database`);
  }
  await db.exec(TABLE_SQL[dialect]);
  const p = dialect === "postgresql" ? (i: number) => `$${i}` : () => "?";
  const pending = new Set(check.pending);
  const done: string[] = [];
  for (const m of migrations) {
    if (!pending.has(m.name)) continue;
    await db.transaction(async () => {
      await db.exec(m.sql);
      const now = new Date().toISOString();
      await db.query(
        `INSERT INTO "_prisma_migrations" ("id","checksum","finished_at","migration_name","logs","started_at","applied_steps_count") VALUES (${p(1)},${p(2)},${p(3)},${p(4)},${p(5)},${p(6)},1)`,
        [randomUUID(), m.checksum, now, m.name, `${APPLIED_BY}${release}`, now],
      );
    });
    done.push(m.name);
  }
  return done;
}
