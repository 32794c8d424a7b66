import type { EventEmitter } from "node:events";
import type { Http2Session } from "node:http2";
import type { Server } from "@grpc/grpc-js";

/** HTTP/2's receive window until the receiver widens it, for a connection and for each stream. */
export const HTTP2_DEFAULT_WINDOW_BYTES = 65_535;

/** The widest receive window a server gives (a snapshot of about 100,000 hosts). */
export const MAX_RECEIVE_WINDOW_BYTES = 16 * 1024 * 1024;

/**
 * The receive window of a server that reads messages of up to `maxReceiveBytes` (pure): room for
 * one whole message, up to MAX_RECEIVE_WINDOW_BYTES. With HTTP/2's 64 KiB a master wrote the
 * first 64 KiB of a snapshot and the rest only once the slave's window update reached it, after
 * whatever its event loop did next (its own render of the same change: 2 to 9 ms at 1,000 hosts).
 */
export function receiveWindowBytes(maxReceiveBytes: number): number {
  return Math.max(HTTP2_DEFAULT_WINDOW_BYTES, Math.min(maxReceiveBytes, MAX_RECEIVE_WINDOW_BYTES));
}

/**
 * Gives every connection `server` accepts a receive window of `bytes`, for the connection and
 * for each of its streams. grpc-js has an option for this on its clients
 * (`grpc-node.flow_control_window`), none on its servers: this wraps the method with which its
 * Server makes each HTTP/2 server (grpc-js 1.14), before any is made. Returns false, and
 * changes nothing, when that method is not there (the window stays HTTP/2's default).
 */
export function widenReceiveWindow(server: Server, bytes: number): boolean {
  const target = server as unknown as { createHttp2Server?: (credentials: unknown) => EventEmitter };
  const create = target.createHttp2Server;
  if (typeof create !== "function") return false;
  target.createHttp2Server = function (this: unknown, credentials: unknown) {
    const http2Server = create.call(this, credentials);
    http2Server.on("session", (session: Http2Session) => {
      try {
        session.setLocalWindowSize(bytes);
        session.settings({ initialWindowSize: bytes });
      } catch {
        // A session already closing: it receives nothing more.
      }
    });
    return http2Server;
  };
  return true;
}
