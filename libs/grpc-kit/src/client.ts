import { readFileSync } from "node:fs";
import {
  credentials,
  Metadata,
  type CallOptions,
  type ChannelCredentials,
  type ClientOptions,
  type ServiceError,
} from "@grpc/grpc-js";
import { injectTraceContext } from "./tracing.ts";

/**
 * Largest message a service sends, and a client accepts from a service of its own
 * instance (a master's snapshot can outgrow what its slaves accept). What a listener
 * reads is bounded separately and tighter: see `snapshotReceiveLimit`.
 */
export const INTERNAL_MAX_MESSAGE_BYTES = 512 * 1024 * 1024;

/** Room for the request around a snapshot (ApplySnapshotRequest, LoadSnapshotRequest, RenderRequest). */
export const SNAPSHOT_MESSAGE_MARGIN_BYTES = 1024 * 1024;

/**
 * Receive limit of the listeners that take whole snapshots (config-service's internal
 * listener, the renderer): the largest snapshot a slave accepts (CPM_SYNC_MAX_MESSAGE_BYTES)
 * plus a margin, so nothing larger than what sync can carry is ever read.
 */
export const snapshotReceiveLimit = (syncMaxMessageBytes: number): number =>
  syncMaxMessageBytes + SNAPSHOT_MESSAGE_MARGIN_BYTES;

export interface ChannelOptions {
  /** Use TLS; verify against `caFile` or the system roots. */
  tls?: boolean;
  caFile?: string;
  maxMessageBytes?: number;
}

export function channelCredentials(opts: ChannelOptions): ChannelCredentials {
  if (!opts.tls) return credentials.createInsecure();
  return credentials.createSsl(opts.caFile ? readFileSync(opts.caFile) : null);
}

export function clientOptions(opts: ChannelOptions): ClientOptions {
  const max = opts.maxMessageBytes ?? INTERNAL_MAX_MESSAGE_BYTES;
  return {
    "grpc.max_receive_message_length": max,
    "grpc.max_send_message_length": max,
    "grpc.keepalive_time_ms": 15_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
    // Peers are the instance's own services and its slaves: one that comes back is reached
    // within about a second, never after a long exponential wait.
    "grpc.initial_reconnect_backoff_ms": 250,
    "grpc.max_reconnect_backoff_ms": 1_000,
  };
}

export function withBearer(token: string | undefined): Metadata {
  const md = new Metadata();
  if (token) md.set("authorization", `Bearer ${token}`);
  return md;
}

type UnaryMethod<Req, Res> = (
  req: Req,
  md: Metadata,
  options: Partial<CallOptions>,
  cb: (err: ServiceError | null, res: Res) => void,
) => unknown;

/** Promise form of a generated unary client method, with bearer metadata, the active trace context and a deadline. */
export function unary<Req, Res>(
  method: UnaryMethod<Req, Res>,
  req: Req,
  token: string | undefined,
  deadlineMs = 10_000,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(req, injectTraceContext(withBearer(token)), { deadline: Date.now() + deadlineMs }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}
