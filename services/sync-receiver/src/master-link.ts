import { constants as http2 } from "node:http2";
import type { ServerDuplexStream } from "@grpc/grpc-js";

/** The receiver's HTTP/2 keepalive toward its master (CPM_RECEIVER_KEEPALIVE_TIME_MS / _TIMEOUT_MS). */
export interface ReceiverKeepalive {
  timeMs: number;
  timeoutMs: number;
}

/**
 * The longest a silent link (packets dropped both ways, no reset) keeps a master's stream
 * open here: a ping sent at most `timeMs` after the last answered one, then `timeoutMs`
 * without an answer.
 */
export const silentLinkBoundMs = (k: ReceiverKeepalive): number => k.timeMs + k.timeoutMs;

/**
 * How a master's stream ended, as the handler saw it: `ended` (the master half-closed it),
 * `shutdown` (this receiver is stopping), or `cancelled` with the HTTP/2 stream's RST code
 * (undefined when it could not be read).
 */
export type StreamEnd = { how: "ended" } | { how: "shutdown" } | { how: "cancelled"; rstCode: number | undefined };

/**
 * Why the master's stream ended, in the words of the receiver's status.
 *
 * grpc-js names no reason on the server side: a connection its keepalive dropped cancels the
 * calls on it like any other. What tells them apart is the stream's RST code: a master that
 * cancels its call or whose connection closes or resets leaves CANCEL (8) or INTERNAL_ERROR
 * (2); a session this server destroyed itself, which a receiver does only when a ping went
 * unanswered, leaves NO_ERROR (0) on a stream the master never ended.
 */
export function describeMasterLoss(end: StreamEnd, keepalive: ReceiverKeepalive): string {
  switch (end.how) {
    case "ended":
      return "the master closed the stream";
    case "shutdown":
      return "this receiver is shutting down";
    case "cancelled":
      if (end.rstCode === http2.NGHTTP2_NO_ERROR)
        return `no keepalive answer from the master for ${seconds(silentLinkBoundMs(keepalive))}; the link is silent (CPM_RECEIVER_KEEPALIVE_TIME_MS + CPM_RECEIVER_KEEPALIVE_TIMEOUT_MS)`;
      if (end.rstCode === http2.NGHTTP2_INTERNAL_ERROR) return "the connection to the master was reset";
      return "the master closed the stream";
  }
}

/** `30000` -> "30 s", `600` -> "0.6 s". */
export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(2))} s`;
}

/**
 * The RST code of the HTTP/2 stream under a grpc-js server call, once it closed. grpc-js
 * does not expose it: the call wraps its interceptors' calls, the innermost of which holds
 * the stream. Undefined when that shape changes (the status then says "closed", not why;
 * the receiver's keepalive test fails).
 */
export function rstCodeOf(call: ServerDuplexStream<unknown, unknown>): number | undefined {
  type Layer = { nextCall?: Layer; stream?: { rstCode?: unknown } };
  let layer = (call as unknown as { call?: Layer }).call;
  for (let depth = 0; layer && !layer.stream && depth < 16; depth++) layer = layer.nextCall;
  const code = layer?.stream?.rstCode;
  return typeof code === "number" ? code : undefined;
}
