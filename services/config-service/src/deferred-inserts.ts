import { prismaRowStatements, type ProxyHostRow, type RowStatements } from "./row-statements.ts";
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

/**
 * New rows waiting for the end of a transaction, so a group commit of many creates inserts
 * them with one statement per table instead of one or two per write: Prisma compiles every
 * statement anew (about 0.7 ms for a one-row insert here, 2 ms for sixteen rows). They go in
 * through `statements`: prepared ones on SQLite (row-statements.ts), Prisma's elsewhere.
 */
export class DeferredInserts {
  private readonly rows = new Map<DeferrableTable, unknown[]>();

  constructor(readonly statements: RowStatements) {}

  add<T extends DeferrableTable>(table: T, rows: readonly RowOf<T>[]): void {
    const kept = this.rows.get(table);
    if (kept) kept.push(...rows);
    else this.rows.set(table, [...rows]);
  }

  /** Inserts every waiting row, parents first; nothing waits afterwards. */
  async flush(): Promise<void> {
    if (this.rows.size === 0) return;
    for (const table of TABLES) {
      const rows = this.rows.get(table);
      if (!rows) continue;
      this.rows.delete(table);
      await this.statements.insert(table, rows as object[]);
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
      await deferred.flush();
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
  else await prismaRowStatements(tx).insert(table, rows as readonly object[]);
}

/**
 * Rewrites the stored proxy host `row.id` with `row` (rows waiting on `tx` go in first), by the
 * statements of the store's transaction when `tx` is its deferring client, through Prisma
 * otherwise. The number of rows changed.
 */
export async function updateProxyHostRow(tx: Tx, row: ProxyHostRow): Promise<number> {
  const deferred = deferredOf.get(tx);
  if (!deferred) return prismaRowStatements(tx).updateProxyHost(row);
  await deferred.flush();
  return deferred.statements.updateProxyHost(row);
}
