/** One configuration state of the master: its version and content hash. */
export interface StateKey {
  version: number;
  contentSha256: string;
}

/** What a slave link knows when it decides whether to push. */
export interface LinkView {
  connected: boolean;
  /** A snapshot is on its way and unanswered. */
  inFlight: boolean;
  /** The master's current state (version 0: nothing committed yet). */
  want: StateKey;
  acked: StateKey | undefined;
  /** NACKed as not retryable (invalid, stale, refused by Caddy, superseded). */
  refused: StateKey | undefined;
  /** Too large to send (here or at the slave). */
  tooLarge: StateKey | undefined;
  /** Uses what the slave's release cannot serve (see planSend in @cpm/core). */
  incompatible: StateKey | undefined;
  /** NACKed as retryable: not resent before `notBefore` (epoch ms). */
  retry: (StateKey & { notBefore: number }) | undefined;
  /** A push is due regardless of what the slave has (reconnect, periodic push, TriggerFullSync). */
  force: boolean;
  now: number;
}

export type SendDecision =
  | { send: true }
  | {
      send: false;
      reason:
        "not-connected" | "in-flight" | "nothing-committed" | "too-large" | "incompatible" | "up-to-date" | "refused";
    }
  | { send: false; reason: "backoff"; retryInMs: number };

const same = (a: StateKey | undefined, b: StateKey) =>
  a !== undefined && a.version === b.version && a.contentSha256 === b.contentSha256;

/**
 * Whether a link sends the master's current state now. Pure: the link does the sending and
 * arms a timer for `retryInMs`. A state the slave refused for good is never resent by itself;
 * a retryable one only once its backoff has passed; a forced push overrides both, but never
 * sends a state known to be too large or one the slave cannot serve.
 */
export function decideSend(v: LinkView): SendDecision {
  if (!v.connected) return { send: false, reason: "not-connected" };
  if (v.inFlight) return { send: false, reason: "in-flight" };
  if (v.want.version === 0) return { send: false, reason: "nothing-committed" };
  if (same(v.tooLarge, v.want)) return { send: false, reason: "too-large" };
  if (same(v.incompatible, v.want)) return { send: false, reason: "incompatible" };
  if (v.force) return { send: true };
  if (same(v.acked, v.want)) return { send: false, reason: "up-to-date" };
  if (same(v.refused, v.want)) return { send: false, reason: "refused" };
  if (v.retry && same(v.retry, v.want) && v.now < v.retry.notBefore)
    return { send: false, reason: "backoff", retryInMs: v.retry.notBefore - v.now };
  return { send: true };
}
