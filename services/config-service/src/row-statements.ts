import type Database from "better-sqlite3";
import type { proxyHostRow, Tx } from "./store.ts";

/**
 * The rows the write path writes most: a proxy host's and its domains' (a write's create and
 * update, a slave's apply), and the instance's version (every commit). Two ways, one contract:
 * - on SQLite with Prisma's connection at hand (`rowStatementsOn`), statements prepared once and
 *   run on that connection inside the transaction Prisma has opened on it. Prisma compiles every
 *   statement anew in WebAssembly (about half a millisecond each here); these run in
 *   microseconds, synchronously, so they land between the transaction's BEGIN and COMMIT like
 *   Prisma's own. Values are bound as Prisma's SQLite adapter binds them (a date as ISO-8601 with
 *   `+00:00`, a boolean as 1 or 0), so Prisma reads back exactly what it would have written;
 * - elsewhere (PostgreSQL, or the connection not at hand), through Prisma on the transaction
 *   (`prismaRowStatements`).
 * A constraint a statement breaks throws and rolls the transaction back either way.
 */
export interface RowStatements {
  /** Inserts `rows` into `table`, in order. */
  insert(table: DirectTable, rows: readonly object[]): Promise<void>;
  /** Rewrites every column of the proxy host row with `row.id`; the number of rows changed (0 or 1). */
  updateProxyHost(row: ProxyHostRow): Promise<number>;
  /** Deletes the proxy hosts `ids` (their domain rows go with them: ON DELETE CASCADE). */
  deleteProxyHosts(ids: readonly string[]): Promise<void>;
  /** Deletes the domain rows of the proxy hosts `ids`. */
  deleteDomainsOf(ids: readonly string[]): Promise<void>;
  /** Adds `by` to the version, sets its commit time, and returns the instance row. */
  bumpVersion(by: number, now: Date): Promise<InstanceRow>;
  /** Sets the version, its commit time and the master (a slave's apply). */
  setVersion(version: number, now: Date, masterInstanceId: string): Promise<void>;
}

export type ProxyHostRow = ReturnType<typeof proxyHostRow>;

/** A row a write expected to change was not there (Prisma's P2025 on the same write). */
export class MissingRowError extends Error {
  constructor(table: string, id: string) {
    super(`${table} ${JSON.stringify(id)} is not stored`);
    this.name = "MissingRowError";
  }
}

/**
 * Whether `err` is a write refused by the rows as stored (a unique or foreign key constraint, a
 * row missing), from Prisma (P2002, P2003, P2025) or from a prepared statement; a caller may then
 * take another way (a slave's apply replaces every row instead).
 */
export function refusedByStoredRows(err: unknown): boolean {
  if (err instanceof MissingRowError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return false;
  return code === "P2002" || code === "P2003" || code === "P2025" || code.startsWith("SQLITE_CONSTRAINT");
}

export interface InstanceRow {
  instanceId: string;
  version: number;
  versionCommittedAt: Date;
  masterInstanceId: string;
}

/**
 * The columns each table's rows are written with, in the order they are bound: every column of
 * the model (a test compares them with the schema's, so a migration that adds one fails it
 * until it is written here too).
 */
export const COLUMNS = {
  proxyHost: ["id", "name", "data", "certificateId", "accessListId", "compression", "createdAt", "updatedAt"],
  proxyHostDomain: ["domain", "proxyHostId"],
} as const;
export type DirectTable = keyof typeof COLUMNS;

/** The SQLite table of each Prisma model named above (the schema's model names). */
const TABLE_NAMES: Record<DirectTable, string> = { proxyHost: "ProxyHost", proxyHostDomain: "ProxyHostDomain" };

/** A value as Prisma's better-sqlite3 adapter binds it (its default `iso8601` timestamps). */
export function sqliteValue(v: unknown): unknown {
  if (v === undefined) return null;
  if (v instanceof Date) return v.toISOString().replace("Z", "+00:00");
  if (typeof v === "boolean") return v ? 1 : 0;
  return v;
}

const quote = (name: string) => `"${name}"`;

/** Rows one INSERT statement takes at most (8 columns each: far below SQLite's bound-variable limit). */
const ROWS_PER_INSERT = 64;
/** The proxy host columns an update rewrites, in the order they are bound (its id comes last). */
const PROXY_HOST_SET = COLUMNS.proxyHost.filter((c) => c !== "id");

class PreparedRowStatements implements RowStatements {
  /** Per table, the INSERT of k rows, prepared the first time k rows go in together. */
  private readonly inserts = new Map<string, Database.Statement>();
  private readonly update: Database.Statement;
  private readonly deleteHost: Database.Statement;
  private readonly deleteDomains: Database.Statement;
  private readonly bump: Database.Statement;
  private readonly set: Database.Statement;

  constructor(private readonly connection: Database.Database) {
    this.update = connection.prepare(
      `UPDATE "ProxyHost" SET ${PROXY_HOST_SET.map((c) => `${quote(c)} = ?`).join(", ")} WHERE "id" = ?`,
    );
    this.deleteHost = connection.prepare(`DELETE FROM "ProxyHost" WHERE "id" = ?`);
    this.deleteDomains = connection.prepare(`DELETE FROM "ProxyHostDomain" WHERE "proxyHostId" = ?`);
    // The adapter opens its connection with safe integers (BigInt); the version is an Int column.
    this.bump = connection
      .prepare(
        `UPDATE "Instance" SET "version" = "version" + ?, "versionCommittedAt" = ? WHERE "id" = 1 ` +
          `RETURNING "instanceId", "version", "versionCommittedAt", "masterInstanceId"`,
      )
      .safeIntegers(false);
    this.set = connection.prepare(
      `UPDATE "Instance" SET "version" = ?, "versionCommittedAt" = ?, "masterInstanceId" = ? WHERE "id" = 1`,
    );
  }

  private insertOf(table: DirectTable, k: number): Database.Statement {
    const key = `${table}:${k}`;
    let stmt = this.inserts.get(key);
    if (!stmt) {
      const columns = COLUMNS[table];
      const tuple = `(${columns.map(() => "?").join(", ")})`;
      stmt = this.connection.prepare(
        `INSERT INTO ${quote(TABLE_NAMES[table])} (${columns.map(quote).join(", ")}) VALUES ${Array(k).fill(tuple).join(", ")}`,
      );
      this.inserts.set(key, stmt);
    }
    return stmt;
  }

  async insert(table: DirectTable, rows: readonly object[]): Promise<void> {
    const columns = COLUMNS[table];
    for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
      const chunk = rows.slice(i, i + ROWS_PER_INSERT);
      this.insertOf(table, chunk.length).run(
        chunk.flatMap((row) => columns.map((c) => sqliteValue((row as Record<string, unknown>)[c]))),
      );
    }
  }

  async updateProxyHost(row: ProxyHostRow): Promise<number> {
    return this.update.run([...PROXY_HOST_SET.map((c) => sqliteValue(row[c])), row.id]).changes;
  }

  async deleteProxyHosts(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.deleteHost.run(id);
  }

  async deleteDomainsOf(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.deleteDomains.run(id);
  }

  async bumpVersion(by: number, now: Date): Promise<InstanceRow> {
    const r = this.bump.get([by, sqliteValue(now)]) as
      { instanceId: string; version: number; versionCommittedAt: string; masterInstanceId: string } | undefined;
    if (!r) throw new MissingRowError("Instance", "1");
    return { ...r, versionCommittedAt: new Date(r.versionCommittedAt) };
  }

  async setVersion(version: number, now: Date, masterInstanceId: string): Promise<void> {
    if (this.set.run(version, sqliteValue(now), masterInstanceId).changes !== 1)
      throw new MissingRowError("Instance", "1");
  }
}

type CreateMany = (args: { data: unknown[] }) => Promise<unknown>;

/** The same rows through Prisma on `tx` (PostgreSQL, or SQLite without its connection at hand). */
export function prismaRowStatements(tx: Tx): RowStatements {
  return {
    insert: async (table, rows) =>
      void (await (tx[table] as unknown as { createMany: CreateMany }).createMany({ data: [...rows] })),
    updateProxyHost: async (row) =>
      (await tx.proxyHost.updateMany({ where: { id: row.id }, data: { ...row, id: undefined } })).count,
    deleteProxyHosts: async (ids) => void (await tx.proxyHost.deleteMany({ where: { id: { in: [...ids] } } })),
    deleteDomainsOf: async (ids) =>
      void (await tx.proxyHostDomain.deleteMany({ where: { proxyHostId: { in: [...ids] } } })),
    bumpVersion: async (by, now) => {
      const { instanceId, version, versionCommittedAt, masterInstanceId } = await tx.instance.update({
        where: { id: 1 },
        data: { version: { increment: by }, versionCommittedAt: now },
      });
      return { instanceId, version, versionCommittedAt, masterInstanceId };
    },
    setVersion: async (version, now, masterInstanceId) =>
      void (await tx.instance.update({
        where: { id: 1 },
        data: { version, versionCommittedAt: now, masterInstanceId },
      })),
  };
}

const prepared = new WeakMap<Database.Database, RowStatements>();

/** The statements prepared on `connection`, once per connection. */
export function rowStatementsOn(connection: Database.Database): RowStatements {
  let s = prepared.get(connection);
  if (!s) prepared.set(connection, (s = new PreparedRowStatements(connection)));
  return s;
}

/**
 * The row statements for `tx`, a transaction of `db`: prepared on SQLite's connection when it is
 * at hand (`connection`, see sqlite-connection.ts), through Prisma on `tx` otherwise.
 */
export function rowStatementsFor(tx: Tx, connection: Database.Database | undefined): RowStatements {
  return connection ? rowStatementsOn(connection) : prismaRowStatements(tx);
}
