import type { Db } from "./db.ts";
import { sqliteDataVersion } from "./store.ts";

/** What the API token check needs to know about one stored token and its user. */
export interface TokenFacts {
  name: string;
  role: string;
  userId: string | null;
  /** Milliseconds since the epoch; compared with the clock on every call. */
  expiresAt: number | null;
  revoked: boolean;
  user: { role: string; disabled: boolean; username: string } | null;
}

/** At most this many unknown token hashes are remembered (a client retrying a wrong token). */
export const MAX_REMEMBERED_MISSES = 256;

/**
 * The stored facts of API tokens, by token hash, so that checking a token is a lookup in
 * memory. Valid only while nothing changed users or tokens:
 * - every write to them through this process ends with `invalidate()` (see `writing`);
 * - on SQLite, a commit by another connection (an operator with sqlite3, a second process)
 *   changes `PRAGMA data_version` of this process's connection: when it moved since the cache
 *   was filled, the cache is emptied first (one cheap query per check instead of the join).
 * On PostgreSQL there is no such cheap question: nothing is cached, every check reads.
 *
 * One cache per database client (`tokenCacheOf`): every ApiTokens and Users of the process on
 * that client share it, so a write through any of them is seen by all checks.
 */
export class TokenCache {
  private readonly tokens = new Map<string, TokenFacts>();
  private readonly misses = new Set<string>();
  /** Moves on every invalidation; a read that saw it move does not fill the cache. */
  private generation = 0;
  /** SQLite's data_version when the cache was last emptied; undefined before the first check. */
  private dataVersion: bigint | number | undefined;
  private enabled = false;

  constructor(private readonly db: Db) {}

  /** Caches from now on (SQLite only: its data_version tells when another connection wrote). */
  enable(): void {
    this.enabled = true;
  }

  /** Forgets everything (a user or token was written, or may have been). */
  invalidate(): void {
    this.generation++;
    this.tokens.clear();
    this.misses.clear();
  }

  /**
   * Runs a write to users or tokens, then invalidates, also when it failed: a check running
   * meanwhile on the same connection can have read the rows of its open transaction.
   */
  async writing<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } finally {
      this.invalidate();
    }
  }

  /** The facts of the token with hash `tokenHash` (undefined: no such token); `read` asks the database. */
  async lookup(tokenHash: string, read: () => Promise<TokenFacts | undefined>): Promise<TokenFacts | undefined> {
    if (!this.enabled) return read();
    const version = await sqliteDataVersion(this.db);
    if (version !== this.dataVersion) {
      this.invalidate();
      this.dataVersion = version;
    }
    // Read after data_version was seen: a commit elsewhere from now on moves it, so nothing read is missed.
    const generation = this.generation;
    const hit = this.tokens.get(tokenHash);
    if (hit) return hit;
    if (this.misses.has(tokenHash)) return undefined;
    const facts = await read();
    if (generation === this.generation) {
      if (facts) this.tokens.set(tokenHash, facts);
      else this.rememberMiss(tokenHash);
    }
    return facts;
  }

  /** How many token hashes are remembered, found and unknown (for tests and diagnostics). */
  size(): { tokens: number; misses: number } {
    return { tokens: this.tokens.size, misses: this.misses.size };
  }

  private rememberMiss(tokenHash: string): void {
    if (this.misses.size >= MAX_REMEMBERED_MISSES) this.misses.delete(this.misses.values().next().value!);
    this.misses.add(tokenHash);
  }
}

const caches = new WeakMap<Db, TokenCache>();

/** The token cache of database client `db` (made at first use; caching is off until enabled). */
export function tokenCacheOf(db: Db): TokenCache {
  let c = caches.get(db);
  if (!c) caches.set(db, (c = new TokenCache(db)));
  return c;
}
