import { Prisma } from "../generated/prisma/client.ts";
import type { Db } from "../db.ts";

/** A stored proxy host row as a page reads it: its name (the sort key) and its data. */
export interface HostRow {
  name: string;
  data: string;
}

/**
 * The proxy hosts whose name or one of whose domains contains `query` (ignoring case: ASCII
 * letters on SQLite, all letters on PostgreSQL; domains are stored lower case), by name, after
 * the name `after`, at most `limit` of them (all when undefined). Plain SQL, the same on SQLite
 * and PostgreSQL: Prisma's `contains` leaves `%` and `_` as wildcards on SQLite, here they are
 * escaped. Names are unique and indexed, so a page is one range read of the name index; the
 * filter reads the name column and the domain table only, never a host's data.
 */
export async function searchHosts(
  db: Db,
  query: string,
  after: string | undefined,
  limit: number | undefined,
): Promise<HostRow[]> {
  const conditions = [matching(query), after === undefined ? undefined : Prisma.sql`p."name" > ${after}`];
  const where = conditions.filter((c) => c !== undefined);
  return db.$queryRaw<HostRow[]>`
    SELECT p."name", p."data" FROM "ProxyHost" p
    ${where.length ? Prisma.sql`WHERE ${Prisma.join(where, " AND ")}` : Prisma.empty}
    ORDER BY p."name"
    ${limit === undefined ? Prisma.empty : Prisma.sql`LIMIT ${limit}`}`;
}

/** How many proxy hosts match `query` (see searchHosts). */
export async function countHosts(db: Db, query: string): Promise<number> {
  const match = matching(query);
  const rows = await db.$queryRaw<{ n: bigint | number }[]>`
    SELECT COUNT(*) AS n FROM "ProxyHost" p ${match ? Prisma.sql`WHERE ${match}` : Prisma.empty}`;
  return Number(rows[0]!.n);
}

/** The SQL condition on `p` for `query`; undefined when it is empty (everything matches). */
function matching(query: string): Prisma.Sql | undefined {
  if (!query) return undefined;
  const pattern = `%${query.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  return Prisma.sql`(LOWER(p."name") LIKE ${pattern} ESCAPE '\\' OR EXISTS (
    SELECT 1 FROM "ProxyHostDomain" d WHERE d."proxyHostId" = p."id" AND d."domain" LIKE ${pattern} ESCAPE '\\'))`;
}
