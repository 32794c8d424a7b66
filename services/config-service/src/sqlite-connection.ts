import type Database from "better-sqlite3";
import { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";

/**
 * Prisma's SQLite adapter that keeps the better-sqlite3 connection it opens, so that a question
 * Prisma would compile a query plan for (in WebAssembly, every time) can be asked of that very
 * connection directly: `PRAGMA data_version`, asked before every API call (the token cache) and
 * every commit (the in-memory content), answers in microseconds instead of about half a
 * millisecond. Same connection, so the same answer: data_version moves only on commits made by
 * other connections. When the adapter does not expose its connection, nothing is kept and the
 * callers ask through Prisma as before.
 */
export class ConnectionKeepingSQLiteAdapter extends PrismaBetterSQLite3 {
  private connection: Database.Database | undefined;

  override async connect(): ReturnType<PrismaBetterSQLite3["connect"]> {
    const adapter = await super.connect();
    const client = (adapter as unknown as { client?: unknown }).client;
    this.connection = isConnection(client) ? client : undefined;
    return adapter;
  }

  /** Prisma's connection while it is open; undefined when it is not at hand (not open yet, or closed). */
  openConnection(): Database.Database | undefined {
    const c = this.connection;
    return c?.open ? c : undefined;
  }

  /** PRAGMA data_version of Prisma's connection; undefined when that connection is not at hand. */
  dataVersion(): bigint | number | undefined {
    return this.openConnection()?.pragma("data_version", { simple: true }) as bigint | number | undefined;
  }
}

function isConnection(x: unknown): x is Database.Database {
  return typeof x === "object" && x !== null && typeof (x as { pragma?: unknown }).pragma === "function" && "open" in x;
}

/** Per Prisma client, the adapter that keeps its connection (set by openDatabase on SQLite). */
const adapters = new WeakMap<object, ConnectionKeepingSQLiteAdapter>();

export function keepConnectionOf(db: object, adapter: ConnectionKeepingSQLiteAdapter): void {
  adapters.set(db, adapter);
}

/** `db`'s PRAGMA data_version asked of its connection directly; undefined when it cannot be (ask through Prisma). */
export function directDataVersion(db: object): bigint | number | undefined {
  return adapters.get(db)?.dataVersion();
}

/**
 * `db`'s own better-sqlite3 connection, the one its transactions run on; undefined when it cannot
 * be had (not SQLite, not connected yet, or closed): then callers go through Prisma.
 */
export function directConnection(db: object): Database.Database | undefined {
  return adapters.get(db)?.openConnection();
}
