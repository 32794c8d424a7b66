import type { ServiceDefinition } from "@grpc/grpc-js";
import { AccountServiceService, type AccountServiceServer, type ConfigServiceServer } from "@cpm/proto";
import {
  DEFAULT_API_MAX_MESSAGE_BYTES,
  DEFAULT_SYNC_MAX_MESSAGE_BYTES,
  failedPrecondition,
  type InstanceMode,
  type Logger,
} from "@cpm/core";
import { GrpcServer, methodName, snapshotReceiveLimit, type AsyncService, type Caller } from "@cpm/grpc-kit";
import { apiTokenAuthenticator, internalTokenAuthenticator } from "./authentication.ts";
import { ACCOUNT_SERVICE_POLICY, CONFIG_SERVICE_POLICY, SYNCED_WRITES } from "./policy.ts";
import { CONFIG_SERVICE } from "./service-definition.ts";
import type { ApiTokens } from "./tokens.ts";

/**
 * config-service's two listeners. `api` (CPM_API_LISTEN) serves API clients: API tokens
 * only, requests up to CPM_API_MAX_MESSAGE_BYTES. `internal` (CPM_CONFIG_INTERNAL_LISTEN)
 * serves the other services of the instance: the internal token only, requests up to a
 * snapshot (ApplySnapshot carries one). Keeping them apart keeps the public receive limit
 * small and the internal token off the public API.
 */
export interface ConfigServers {
  readonly api: GrpcServer;
  readonly internal: GrpcServer;
  shutdown(): Promise<void>;
}

/** What the listeners are set up from (a part of ConfigServiceDeps). */
export interface ListenerOptions {
  mode: InstanceMode;
  tokens: ApiTokens;
  /** Token the other services of this instance present (on the internal listener only). */
  internalToken: string | undefined;
  log: Logger;
  /** Receive limit of the public listener (CPM_API_MAX_MESSAGE_BYTES). */
  apiMaxMessageBytes?: number;
  /** Largest snapshot sync carries (CPM_SYNC_MAX_MESSAGE_BYTES); bounds the internal listener. */
  syncMaxMessageBytes?: number;
}

/** The handlers the listeners serve: every method of both services. */
export interface ConfigServiceHandlers {
  config: AsyncService<ConfigServiceServer>;
  account: AsyncService<AccountServiceServer>;
}

/** The handlers of `impl` whose .proto method name `keep` accepts. */
function pick<S>(
  definition: ServiceDefinition,
  impl: AsyncService<S>,
  keep: (method: string) => boolean,
): AsyncService<S> {
  const out: Record<string, unknown> = {};
  for (const [key, def] of Object.entries(definition)) {
    const h = (impl as Record<string, unknown>)[key];
    if (h && keep(methodName(def.path))) out[key] = h;
  }
  return out as AsyncService<S>;
}

/** On a slave, refuses writes to synced resources before they run. */
function refuseSyncedWritesOnSlave<S>(
  definition: ServiceDefinition,
  impl: AsyncService<S>,
  mode: InstanceMode,
): AsyncService<S> {
  if (mode !== "slave") return impl;
  const out: Record<string, unknown> = { ...impl };
  for (const [key, def] of Object.entries(definition)) {
    if (!SYNCED_WRITES.has(methodName(def.path)) || !out[key]) continue;
    out[key] = () =>
      Promise.reject(failedPrecondition("this instance is a slave: synced resources are managed by the master"));
  }
  return out as AsyncService<S>;
}

/**
 * Which service is served on which listener, with which policy: the api listener serves every
 * ConfigService method that a token other than the internal one may call, and AccountService;
 * the internal listener serves the ConfigService methods the internal caller may call. On a
 * slave, both refuse writes to synced resources. Does not listen.
 */
export function configListeners(handlers: ConfigServiceHandlers, opts: ListenerOptions): ConfigServers {
  const guarded = refuseSyncedWritesOnSlave(CONFIG_SERVICE, handlers.config, opts.mode);
  const has = (method: string, caller: Caller) => CONFIG_SERVICE_POLICY.methods[method]!.includes(caller);
  const api = new GrpcServer({
    log: opts.log,
    authenticate: apiTokenAuthenticator(opts.tokens),
    maxReceiveBytes: opts.apiMaxMessageBytes ?? DEFAULT_API_MAX_MESSAGE_BYTES,
    limitVariable: "CPM_API_MAX_MESSAGE_BYTES",
  })
    .add(
      CONFIG_SERVICE,
      pick(CONFIG_SERVICE, guarded, (m) => CONFIG_SERVICE_POLICY.methods[m]!.some((c) => c !== "internal")),
      CONFIG_SERVICE_POLICY,
    )
    .add(AccountServiceService, handlers.account, ACCOUNT_SERVICE_POLICY);
  const internal = new GrpcServer({
    log: opts.log.child({ listener: "internal" }),
    authenticate: internalTokenAuthenticator(opts.internalToken),
    maxReceiveBytes: snapshotReceiveLimit(opts.syncMaxMessageBytes ?? DEFAULT_SYNC_MAX_MESSAGE_BYTES),
    limitVariable: "CPM_SYNC_MAX_MESSAGE_BYTES",
  }).add(
    CONFIG_SERVICE,
    pick(CONFIG_SERVICE, guarded, (m) => has(m, "internal")),
    CONFIG_SERVICE_POLICY,
  );
  return {
    api,
    internal,
    async shutdown() {
      await Promise.all([api.shutdown(), internal.shutdown()]);
    },
  };
}
