import { readFileSync } from "node:fs";
import {
  credentials,
  Metadata,
  type CallOptions,
  type ChannelCredentials,
  type ClientOptions,
  type ServiceError,
} from "@grpc/grpc-js";

/**
 * Message limit between the services of one instance (snapshots travel whole). The sync
 * stream between instances has its own, operator-set limit (CPM_SYNC_MAX_MESSAGE_BYTES).
 */
export const INTERNAL_MAX_MESSAGE_BYTES = 512 * 1024 * 1024;

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
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 5_000,
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

/** Promise form of a generated unary client method, with bearer metadata and a deadline. */
export function unary<Req, Res>(method: UnaryMethod<Req, Res>, req: Req, token: string | undefined, deadlineMs = 10_000): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(req, withBearer(token), { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}
