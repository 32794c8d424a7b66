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

/**
 * What the link's sockets saw before the stream ended: how long nothing was read, and
 * whether something (a ping, a snapshot) was written after the last byte read.
 */
export interface Silence {
  silentForMs: number;
  unansweredWrite: boolean;
}

type StreamError = Error & { code?: number; details?: string };

/**
 * Why a stream to a slave ended, in the words of the status.
 *
 * grpc-js reports a connection its keepalive dropped as UNAVAILABLE "Connection dropped", the
 * same as one the slave closed. The sockets tell them apart: a keepalive drop follows a ping
 * written and not answered for `timeoutMs`, with nothing read since; a slave that closes its
 * connection had answered the last ping.
 */
export function describeStreamError(err: StreamError, silence: Silence | undefined, keepalive: LinkKeepalive): string {
  if (
    err.code === status.UNAVAILABLE &&
    silence?.unansweredWrite &&
    silence.silentForMs >= keepalive.timeoutMs &&
    /connection dropped/i.test(err.details ?? err.message)
  )
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
