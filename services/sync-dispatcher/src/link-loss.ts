import { status } from "@grpc/grpc-js";

/** The link's HTTP/2 keepalive toward a slave (CPM_SYNC_KEEPALIVE_TIME_MS / _TIMEOUT_MS). */
export interface LinkKeepalive {
  timeMs: number;
  timeoutMs: number;
}

/**
 * The longest a silent link (packets dropped both ways, no reset) goes unnoticed: a ping is
 * sent at most `timeMs` after the last answered one, and the link is dropped `timeoutMs`
 * after it if no answer came.
 */
export const silentLinkBoundMs = (k: LinkKeepalive): number => k.timeMs + k.timeoutMs;

type StreamError = Error & { code?: number; details?: string; keepalive?: boolean };

/**
 * Why a stream to a slave ended, in the words of the status. A connection its keepalive ended
 * (a ping unanswered for `timeoutMs`; see SlaveConnection) is named as such, not as the
 * "Connection dropped" of a slave that closed its connection.
 */
export function describeStreamError(err: StreamError, keepalive: LinkKeepalive): string {
  if (err.keepalive)
    return `no keepalive answer from the slave for ${seconds(silentLinkBoundMs(keepalive))}; the link is silent (CPM_SYNC_KEEPALIVE_TIME_MS + CPM_SYNC_KEEPALIVE_TIMEOUT_MS); connecting again`;
  const name = err.code !== undefined ? (status[err.code] ?? `code ${err.code}`) : "error";
  if (err.code === status.UNAUTHENTICATED)
    return `UNAUTHENTICATED: the slave refused the sync token (${err.details ?? err.message})`;
  if (err.code === status.RESOURCE_EXHAUSTED)
    return `RESOURCE_EXHAUSTED: the slave refused the snapshot as too large (${err.details ?? err.message}); raise CPM_SYNC_MAX_MESSAGE_BYTES on the slave`;
  return `${name}: ${err.details ?? err.message}`;
}

/** `2000` -> "2 s", `1500` -> "1.5 s", `300` -> "0.3 s". */
export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(2))} s`;
}
