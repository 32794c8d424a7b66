import { Metadata } from "@grpc/grpc-js";
import {
  Snapshot,
  type ApplySnapshotResponse,
  type GetInstanceInfoResponse,
  type LoadSnapshotResponse,
  type RecordCertificateIssuanceRequest,
  type RecordCertificateIssuanceResponse,
  type RenderStatus,
} from "@cpm/proto";
import { IncomingSnapshot, readSnapshotFrame, type CommitNotice, type SnapshotFrame } from "@cpm/snapshot-wire";
import { portKey, type InstanceConfig, type Logger, type PortRegistry } from "@cpm/core";
import { bearerToken, INTERNAL, secretsEqual, unauthenticated, type Authenticate } from "./auth.ts";
import { ConfigClient, RendererClient } from "./clients.ts";
import { toServiceError } from "./errors.ts";
import { RemoteAuthenticator } from "./remote-auth.ts";
import type { CallContext } from "./server.ts";

/**
 * A request that carries a snapshot: the message; a frame already encoded (a message whose
 * field 1 is the snapshot, as a slave's receiver got it from its master), sent as it is; or
 * the receiver's IncomingSnapshot, sent as its frame over gRPC and read as its one decoded
 * message in process.
 */
export type SnapshotPayload = { snapshot: Snapshot } | Buffer | IncomingSnapshot;

/** The snapshot a payload carries, decoded at most once (an IncomingSnapshot keeps its decoding). */
export function payloadSnapshot(payload: SnapshotPayload): Snapshot {
  if (payload instanceof IncomingSnapshot) return payload.snapshot();
  if (Buffer.isBuffer(payload)) return Snapshot.decode(readSnapshotFrame(payload, "snapshot").message);
  return payload.snapshot;
}

/** What the other services of an instance call on config-service: ConfigClient over gRPC, or config-service itself in process. */
export interface ConfigPort {
  /** The current snapshot. */
  getSnapshot(deadlineMs?: number): Promise<Snapshot>;
  /** The current snapshot as config-service encoded it. */
  getSnapshotFrame(deadlineMs?: number): Promise<SnapshotFrame>;
  /** A slave's commit of its master's snapshot. */
  applySnapshot(payload: SnapshotPayload, deadlineMs?: number): Promise<ApplySnapshotResponse>;
  /** What this instance's Caddy obtained for a master-issued certificate (master or standalone). */
  recordCertificateIssuance(
    req: RecordCertificateIssuanceRequest,
    deadlineMs?: number,
  ): Promise<RecordCertificateIssuanceResponse>;
  instanceInfo(): Promise<GetInstanceInfoResponse>;
  /**
   * Follows committed versions until `signal` aborts: `onCommit` gets the current version at
   * once and every commit after it. `withSnapshot` is the dispatcher's: over gRPC a notice of
   * the then current version carries its snapshot frame; in process no notice does (the frame
   * is encoded when first asked, getSnapshotFrame), and the dispatcher hears of a commit before
   * the other watchers.
   */
  watch(
    onCommit: (c: CommitNotice) => void,
    log: Logger,
    signal: AbortSignal,
    opts?: { withSnapshot?: boolean },
  ): Promise<void>;
  close(): void;
}

/** What the sync-receiver calls on its instance's renderer: RendererClient over gRPC, or the renderer itself in process. */
export interface RendererPort {
  loadSnapshot(payload: SnapshotPayload, deadlineMs?: number): Promise<LoadSnapshotResponse>;
  /** The preloaded `version` will not be committed: the renderer puts Caddy back on the database's version. */
  releasePreload(version: number, deadlineMs?: number): Promise<void>;
  status(): Promise<RenderStatus>;
  /** Resolves with the first status that satisfies `done`, or rejects after `timeoutMs`. */
  waitFor(done: (s: RenderStatus) => boolean, timeoutMs: number): Promise<RenderStatus>;
  close(): void;
}

export const CONFIG_PORT = portKey<ConfigPort>("config-service");
export const RENDERER_PORT = portKey<RendererPort>("caddy-renderer");
/** API tokens of this instance, checked by config-service's own table (provided by config-service). */
export const API_TOKENS_PORT = portKey<Authenticate>("api-tokens");

interface PortContext {
  readonly config: InstanceConfig;
  readonly ports: PortRegistry;
}

/** An in-process port closes with its owner: the caller's close does nothing. */
function borrowed<T extends { close(): void }>(port: T): T {
  return Object.create(port, { close: { value: () => undefined } }) as T;
}

/** config-service for a service of this process: itself when it runs here, its internal listener (CPM_CONFIG_ADDR) otherwise. */
export function configPort(ctx: PortContext): ConfigPort {
  const local = ctx.ports.get(CONFIG_PORT);
  return local ? borrowed(local) : new ConfigClient(ctx.config.configAddr, ctx.config.internalToken);
}

/** The renderer for a service of this process: itself when it runs here, its listener (CPM_RENDERER_ADDR) otherwise. */
export function rendererPort(ctx: PortContext): RendererPort {
  const local = ctx.ports.get(RENDERER_PORT);
  return local ? borrowed(local) : new RendererClient(ctx.config.rendererAddr, ctx.config.internalToken);
}

/**
 * How a service that does not own the token table authenticates its callers: the internal
 * token (when this instance has one: split over processes) and this instance's API tokens,
 * read from config-service's table in process when it runs here, asked of its public API
 * (WhoAmI, RemoteAuthenticator) otherwise.
 */
export function authenticator(ctx: PortContext): { authenticate: Authenticate; close(): void } {
  const local = ctx.ports.get(API_TOKENS_PORT);
  if (!local) return new RemoteAuthenticator(ctx.config.apiAddr, ctx.config.internalToken);
  const internalToken = ctx.config.internalToken;
  return {
    authenticate: async (md) => {
      const token = bearerToken(md);
      if (!token) throw unauthenticated("missing bearer token (metadata authorization: Bearer <token>)");
      if (internalToken && secretsEqual(token, internalToken)) return INTERNAL;
      return local(md);
    },
    close: () => undefined,
  };
}

/** The context of a call made in process by another service of this instance: the internal caller. */
export function inProcessContext(log: Logger, signal: AbortSignal = new AbortController().signal): CallContext {
  return { principal: INTERNAL, log, metadata: new Metadata(), signal, peer: "in-process" };
}

/**
 * Runs a handler called in process and fails the way its gRPC call would: a thrown error
 * becomes one with the gRPC `code` and `details` the server would have answered with
 * (toServiceError), so the caller handles both the same.
 */
export async function callInProcess<T>(log: Logger, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    const e = toServiceError(err, log);
    throw Object.assign(new Error(e.details ?? "internal error"), { code: e.code, details: e.details });
  }
}
