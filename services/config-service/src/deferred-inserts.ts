import type { RowStatements } from "./row-statements.ts";
import type { Tx } from "./store.ts";

/**
 * The tables whose new rows a write may leave for the end of its transaction (a proxy host's
 * create and its domains), parents before children: foreign keys are checked at each statement,
 * so a parent created in the same transaction is inserted first.
 */
const TABLES = ["proxyHost", "proxyHostDomain"] as const;
export type DeferrableTable = (typeof TABLES)[number];
type RowOf<T extends DeferrableTable> = NonNullable<Parameters<Tx[T]["createMany"]>[0]>["data"] extends infer D
  ? D extends readonly (infer R)[]
    ? R
    : D
  : never;
type CreateMany = (args: { data: unknown[] }) => Promise<unknown>;

/**
 * New rows waiting for the end of a transaction, so a group commit of many creates inserts
 * them with one statement per table instead of one or two per write: Prisma compiles every
 * statement anew (about 0.7 ms for a one-row insert here, 2 ms for sixteen rows). With
 * `direct` (SQLite, its connection at hand) they go in by statements prepared once instead.
 */
export class DeferredInserts {
  private readonly rows = new Map<DeferrableTable, unknown[]>();

  constructor(readonly direct?: RowStatements) {}

  add<T extends DeferrableTable>(table: T, rows: readonly RowOf<T>[]): void {
    const kept = this.rows.get(table);
    if (kept) kept.push(...rows);
    else this.rows.set(table, [...rows]);
  }

  /** Inserts every waiting row, parents first; nothing waits afterwards. */
  async flush(tx: Tx): Promise<void> {
    if (this.rows.size === 0) return;
    for (const table of TABLES) {
      const rows = this.rows.get(table);
      if (!rows) continue;
      this.rows.delete(table);
      if (this.direct) this.direct.insert(table, rows as Record<string, unknown>[]);
      else await (tx[table] as unknown as { createMany: CreateMany }).createMany({ data: rows });
    }
  }
}

const deferredOf = new WeakMap<object, DeferredInserts>();

/**
 * `tx` as write callbacks get it: rows given to insertRows wait in `deferred` until the store
 * flushes them at the end of the transaction, and any other statement on it sends them first,
 * so every statement sees every row written before it, as without deferring.
 */
export function deferringTx(tx: Tx, deferred: DeferredInserts): Tx {
  const sendingFirst =
    (f: (...args: unknown[]) => unknown, self: object) =>
    async (...args: unknown[]) => {
      await deferred.flush(tx);
      return f.apply(self, args);
    };
  const delegates = new Map<PropertyKey, unknown>();
  const proxy = new Proxy(tx, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop);
      if (typeof value === "function") return sendingFirst(value as never, target);
      if (value === null || typeof value !== "object") return value;
      let delegate = delegates.get(prop);
      if (!delegate) {
        delegate = new Proxy(value, {
          get(model, method) {
            const f: unknown = Reflect.get(model, method);
            return typeof f === "function" ? sendingFirst(f as never, model) : f;
          },
        });
        delegates.set(prop, delegate);
      }
      return delegate;
    },
  });
  deferredOf.set(proxy, deferred);
  return proxy;
}

/** Inserts `rows` into `table`: at the end of the transaction when `tx` defers (deferringTx), else now. */
export async function insertRows<T extends DeferrableTable>(
  tx: Tx,
  table: T,
  rows: readonly RowOf<T>[],
): Promise<void> {
  if (rows.length === 0) return;
  const deferred = deferredOf.get(tx);
  if (deferred) deferred.add(table, rows);
  else await (tx[table] as unknown as { createMany: CreateMany }).createMany({ data: [...rows] });
}

type ProxyHostRow = RowOf<"proxyHost">;

/**
 * Rewrites the stored proxy host `row.id` with `row`: by the prepared statement when `tx` is the
 * store's transaction on SQLite with its connection at hand (rows waiting before it go in
 * first), through Prisma otherwise. The number of rows changed.
 */
export async function updateProxyHostRow(tx: Tx, row: ProxyHostRow): Promise<number> {
  const deferred = deferredOf.get(tx);
  const direct = deferred?.direct;
  if (deferred && direct) {
    await deferred.flush(tx);
    return direct.updateProxyHost(row);
  }
  const { count } = await tx.proxyHost.updateMany({ where: { id: row.id }, data: { ...row, id: undefined } });
  return count;
}
