import { backoffDelay } from "@cpm/core";
import { status } from "@grpc/grpc-js";

/**
 * While a slave refuses connections (down, or restarting), the link tries again this often:
 * a refused TCP connect costs next to nothing on either side, and a slave that comes back is
 * pushed within this interval (plus the TLS handshake) of its port opening.
 */
export const REFUSED_RETRY_MS = 200;
/** Any other failure (TLS handshake, a stream refused or broken): jittered exponential backoff, bounded at a second. */
export const RECONNECT_BASE_MS = 250;
export const RECONNECT_MAX_MS = 1_000;

/**
 * How one stream attempt ended: `answered` (the slave answered at least one snapshot),
 * `refused` (the TCP connection was refused: nothing listens on the slave's port yet),
 * `timeout` (the stream did not open within CPM_SYNC_CONNECT_TIMEOUT_MS: no answer at all, as
 * across a network cut), `failed` (anything else).
 */
export type StreamOutcome = "answered" | "refused" | "timeout" | "failed";

/** A stream error that means nothing listens on the slave's port (grpc-js keeps the socket error in the details). */
export function isConnectionRefused(err: { code?: number; details?: string; message?: string } | undefined): boolean {
  return err?.code === status.UNAVAILABLE && /ECONNREFUSED/.test(`${err.details ?? ""} ${err.message ?? ""}`);
}

/**
 * The wait before the next stream attempt, and the failure count it leaves: a fixed short
 * interval while connections are refused (the count is kept), none after an attempt that
 * timed out (the count is kept), the exponential backoff
 * otherwise (reset by an answered stream).
 */
export function nextReconnect(outcome: StreamOutcome, failures: number): { delayMs: number; failures: number } {
  if (outcome === "refused") return { delayMs: REFUSED_RETRY_MS, failures };
  // The attempt already waited its deadline, and the next one starts on a fresh channel: at once.
  if (outcome === "timeout") return { delayMs: 0, failures };
  const next = outcome === "answered" ? 0 : failures + 1;
  return { delayMs: backoffDelay(next, RECONNECT_BASE_MS, RECONNECT_MAX_MS), failures: next };
}
