/**
 * Failed sign-ins, limited per key (a client address, a username): a pure state machine, so
 * the same rule serves config-service's SignIn and the web console, and a table tests it.
 *
 * A key may fail `maxFailures` times within `windowMs` of its first failure; the failure that
 * reaches the limit locks it for `lockMs` after that failure, during which every attempt is
 * refused without being checked. A success forgets the key; a window that passed without
 * reaching the limit starts over.
 */
export interface SignInLimit {
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly lockMs: number;
}

/** What is remembered of one key's failures. */
export interface FailureRecord {
  readonly failures: number;
  /** When the first failure of this window happened (ms since the epoch). */
  readonly first: number;
  /** When the last one happened. */
  readonly last: number;
}

/** Per username: five wrong passwords in 15 minutes lock the user's sign-in for 5 minutes. */
export const USER_SIGN_IN_LIMIT: SignInLimit = Object.freeze({
  maxFailures: 5,
  windowMs: 15 * 60_000,
  lockMs: 5 * 60_000,
});
/** Per client address: twenty failures in 15 minutes (any usernames) lock that address for 5 minutes. */
export const ADDRESS_SIGN_IN_LIMIT: SignInLimit = Object.freeze({
  maxFailures: 20,
  windowMs: 15 * 60_000,
  lockMs: 5 * 60_000,
});

/** The record that still counts at `now`, or undefined when it has expired. */
function live(rec: FailureRecord | undefined, now: number, limit: SignInLimit): FailureRecord | undefined {
  if (!rec) return undefined;
  if (rec.failures >= limit.maxFailures) return now - rec.last < limit.lockMs ? rec : undefined;
  return now - rec.first < limit.windowMs ? rec : undefined;
}

/** Whether an attempt may be checked at `now`; when not, how long until it may. */
export function signInAllowed(
  rec: FailureRecord | undefined,
  now: number,
  limit: SignInLimit,
): { ok: true } | { ok: false; retryAfterMs: number } {
  const r = live(rec, now, limit);
  if (r && r.failures >= limit.maxFailures) return { ok: false, retryAfterMs: r.last + limit.lockMs - now };
  return { ok: true };
}

/** The record after a failed attempt at `now`. */
export function afterFailure(rec: FailureRecord | undefined, now: number, limit: SignInLimit): FailureRecord {
  const r = live(rec, now, limit);
  return r ? { failures: r.failures + 1, first: r.first, last: now } : { failures: 1, first: now, last: now };
}

/**
 * The records of many keys, in memory, with the rule above. Expired records are dropped as
 * the map grows, so a flood of distinct keys costs memory only within one window.
 */
export class SignInLimiter {
  private readonly records = new Map<string, FailureRecord>();

  constructor(
    private readonly limit: SignInLimit,
    private readonly maxKeys = 100_000,
  ) {}

  check(key: string, now = Date.now()): { ok: true } | { ok: false; retryAfterMs: number } {
    return signInAllowed(this.records.get(key), now, this.limit);
  }

  fail(key: string, now = Date.now()): void {
    if (this.records.size >= this.maxKeys) this.prune(now);
    this.records.set(key, afterFailure(this.records.get(key), now, this.limit));
  }

  succeed(key: string): void {
    this.records.delete(key);
  }

  private prune(now: number): void {
    for (const [k, r] of this.records) if (!live(r, now, this.limit)) this.records.delete(k);
    // Still full: the oldest go first (a Map iterates in insertion order).
    for (const k of this.records.keys()) {
      if (this.records.size < this.maxKeys) break;
      this.records.delete(k);
    }
  }
}
