import type { ServiceDefinition } from "@grpc/grpc-js";
import {
  AccountServiceService,
  ConfigServiceService,
  InstanceMode as ProtoMode,
  Role,
  type AccountServiceServer,
  type ConfigServiceServer,
} from "@cpm/proto";
import {
  DEFAULT_API_MAX_MESSAGE_BYTES,
  DEFAULT_SYNC_MAX_MESSAGE_BYTES,
  failedPrecondition,
  validateSnapshotContent,
  type InstanceMode,
  type InstancePort,
  type Logger,
  type ReservedAddress,
} from "@cpm/core";
import {
  allows,
  bearerToken,
  GrpcServer,
  INTERNAL,
  methodName,
  permissionDenied,
  sharedTokenAuthenticator,
  snapshotReceiveLimit,
  unauthenticated,
  type AsyncService,
  type Authenticate,
  type Caller,
} from "@cpm/grpc-kit";
import { decodingSnapshotsWith, encodeNoticeWithFrame, encodeSnapshotFrame, SnapshotDecoder } from "@cpm/snapshot-wire";
import type { GetSnapshotResponse, Snapshot, WatchConfigResponse } from "@cpm/proto";
import { ACCOUNT_SERVICE_POLICY, CONFIG_SERVICE_POLICY, SYNCED_WRITES } from "./policy.ts";
import { applySnapshot } from "./apply.ts";
import { importConfig } from "./import.ts";
import { accessListHandlers } from "./resources/access-lists.ts";
import { certificateHandlers } from "./resources/certificates.ts";
import { l4ProxyHostHandlers } from "./resources/l4-proxy-hosts.ts";
import { ProxyHosts } from "./resources/proxy-hosts.ts";
import { settingsHandlers } from "./resources/settings.ts";
import type { ConfigStore } from "./store.ts";
import type { ApiTokens } from "./tokens.ts";

export interface ConfigServiceDeps {
  store: ConfigStore;
  tokens: ApiTokens;
  mode: InstanceMode;
  /** Token the other services of this instance present (on the internal listener only). */
  internalToken: string | undefined;
  log: Logger;
  /** Receive limit of the public listener (CPM_API_MAX_MESSAGE_BYTES). */
  apiMaxMessageBytes?: number;
  /** Largest snapshot sync carries (CPM_SYNC_MAX_MESSAGE_BYTES); bounds the internal listener. */
  syncMaxMessageBytes?: number;
  /** This instance's own addresses (Caddy admin API, CPM ports): upstreams must not point at them. */
  reservedUpstreams?: readonly ReservedAddress[];
  /** The ports this instance's Caddy serves itself (HTTP, HTTPS, admin): no L4 listener may take them. */
  ownPorts?: readonly InstancePort[];
}

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

const MODE: Record<InstanceMode, ProtoMode> = {
  standalone: ProtoMode.INSTANCE_MODE_STANDALONE,
  master: ProtoMode.INSTANCE_MODE_MASTER,
  slave: ProtoMode.INSTANCE_MODE_SLAVE,
};

/** Authenticates an API token of this instance (the public listener knows no other). */
export function apiTokenAuthenticator(tokens: ApiTokens): Authenticate {
  return async (md) => {
    const token = bearerToken(md);
    if (!token) throw unauthenticated("missing bearer token (metadata authorization: Bearer <token>)");
    const p = await tokens.authenticate(token);
    if (!p) throw unauthenticated("invalid, expired or revoked token");
    return p;
  };
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
    out[key] = async () => {
      throw failedPrecondition("this instance is a slave: synced resources are managed by the master");
    };
  }
  return out as AsyncService<S>;
}

/** A method whose handler may answer with bytes already encoded (written as they are). */
function servingBytes<D extends ServiceDefinition[string]>(def: D): D {
  const serialize = def.responseSerialize;
  return { ...def, responseSerialize: (value: unknown) => (Buffer.isBuffer(value) ? value : serialize(value)) };
}

/**
 * ConfigService as config-service serves it: GetSnapshot and WatchConfig write a version's
 * snapshot as the bytes encoded once for that version (see `snapshotFrame` in createServer).
 * ApplySnapshot (a slave's receiver, one snapshot after the other) decodes only the resources
 * whose bytes changed since the previous one (SnapshotDecoder: a cache by bytes, so one per
 * process serves every listener).
 */
const CONFIG_SERVICE = {
  ...ConfigServiceService,
  getSnapshot: servingBytes(ConfigServiceService.getSnapshot),
  watchConfig: servingBytes(ConfigServiceService.watchConfig),
  applySnapshot: decodingSnapshotsWith(ConfigServiceService.applySnapshot, new SnapshotDecoder()),
} satisfies ServiceDefinition;

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** The listeners of an instance's config-service, with health and reflection. Does not listen. */
export function createServer(deps: ConfigServiceDeps): ConfigServers {
  const { store, mode, log } = deps;
  const hosts = new ProxyHosts(store, deps.reservedUpstreams);

  // A snapshot is checked (structure, every reference resolves) before it is served, once per
  // reading of the content from the database: the database's constraints should make this
  // hold, and a master must never ship a configuration its slaves would refuse. What changes
  // afterwards comes from this store's writes, each validated against the whole content
  // before it commits, so a commit is not checked again on its way to the slaves. Its content
  // hash is not computed again either: the store derives it from the digests of the very
  // resources the snapshot carries. The store never changes a resource object once made, so
  // one unchanged since the last check is not normalized again.
  let checkedRead = -1;
  const normalized = new WeakMap<object, unknown>();
  const consistentSnapshot = async () => {
    const before = store.databaseReads;
    const s = await store.snapshot();
    const read = store.databaseReads;
    if (read !== checkedRead && s.version > 0) {
      try {
        validateSnapshotContent(s, "snapshot", normalized);
      } catch (err) {
        throw failedPrecondition(
          `the stored configuration is inconsistent, refusing to serve it: ${(err as Error).message}`,
        );
      }
      // Which read a snapshot built across a read comes from is not known: check the next one too.
      if (before === read) checkedRead = read;
    }
    return s;
  };

  // Encoded once per version and served as is to every asker (the renderer's GetSnapshot, the
  // dispatcher's WatchConfig notice): the store keeps one Snapshot object per version, and
  // the resource objects it did not change, so their encodings are kept too (`parts`).
  let snapshotWatchers = 0;
  const frames = new WeakMap<Snapshot, Buffer>();
  const parts = new WeakMap<object, Uint8Array>();
  const snapshotFrame = async () => {
    const s = await consistentSnapshot();
    let frame = frames.get(s);
    if (!frame) {
      frame = encodeSnapshotFrame(s, parts);
      frames.set(s, frame);
    }
    return { snapshot: s, frame };
  };

  const config: AsyncService<ConfigServiceServer> = {
    ...certificateHandlers(store, mode),
    ...accessListHandlers(store),
    ...l4ProxyHostHandlers(store, deps.reservedUpstreams, deps.ownPorts),
    ...settingsHandlers(store),
    createProxyHost: async (req) => {
      const { result, version } = await hosts.create(req.proxyHost);
      return { proxyHost: result, configVersion: version };
    },
    getProxyHost: async (req) => ({ proxyHost: await hosts.get(req.id) }),
    listProxyHosts: async () => ({ proxyHosts: await hosts.list() }),
    updateProxyHost: async (req) => {
      const { result, version } = await hosts.update(req.proxyHost);
      return { proxyHost: result, configVersion: version };
    },
    deleteProxyHost: async (req) => ({ configVersion: (await hosts.delete(req.id)).version }),
    getSnapshot: async () => (await snapshotFrame()).frame as unknown as GetSnapshotResponse,
    watchConfig: async (req, ctx, call) => {
      // The snapshot holds private keys: only who may call GetSnapshot gets it with the notices.
      if (req.includeSnapshot && !allows(CONFIG_SERVICE_POLICY.methods.GetSnapshot!, ctx.principal)) {
        throw permissionDenied(
          "include_snapshot: needs an admin token, as GetSnapshot does (the snapshot holds private keys)",
        );
      }
      // Subscribe before reading the current state so no commit is missed; never send a
      // version older than one already sent (the initial read can race a commit).
      let last = { version: -1, sha: "" };
      const send = (notice: WatchConfigResponse, frame?: Buffer) => {
        if (notice.version < last.version || (notice.version === last.version && notice.contentSha256 === last.sha))
          return;
        last = { version: notice.version, sha: notice.contentSha256 };
        call.write(frame ? (encodeNoticeWithFrame(notice, frame) as unknown as WatchConfigResponse) : notice);
      };
      // With include_snapshot, a notice waits for its snapshot's encoding, in commit order, and
      // only until the API reply has gone out; a version already superseded when its turn
      // comes goes without one. While such a watcher (the dispatcher) is connected, the others
      // (the renderer) hear of a commit one turn of the event loop after it: the push to the
      // slaves starts before this machine's own reload competes with it for the CPU.
      let queue = Promise.resolve();
      const notify = (notice: WatchConfigResponse) => {
        if (!req.includeSnapshot && snapshotWatchers === 0) return send(notice);
        queue = queue.then(async () => {
          await nextTurn();
          const { snapshot, frame } = await snapshotFrame().catch(() => ({ snapshot: undefined, frame: undefined }));
          if (!req.includeSnapshot) {
            await nextTurn();
            return send(notice);
          }
          const current = snapshot?.version === notice.version && snapshot.contentSha256 === notice.contentSha256;
          send(notice, current ? frame : undefined);
        });
      };
      if (req.includeSnapshot) snapshotWatchers++;
      const unsubscribe = store.onCommit((c) =>
        notify({
          version: c.version,
          committedAt: c.committedAt,
          contentSha256: c.contentSha256,
          traceContext: c.traceContext,
          snapshot: undefined,
        }),
      );
      try {
        const s = await store.snapshot();
        notify({
          version: s.version,
          committedAt: s.generatedAt,
          contentSha256: s.contentSha256,
          traceContext: store.traceContextOf(s.version, s.contentSha256),
          snapshot: undefined,
        });
        await new Promise<void>((resolve) =>
          ctx.signal.aborted ? resolve() : ctx.signal.addEventListener("abort", () => resolve(), { once: true }),
        );
      } finally {
        unsubscribe();
        if (req.includeSnapshot) snapshotWatchers--;
      }
    },
    applySnapshot: async (req, ctx) => {
      if (mode !== "slave") throw failedPrecondition("ApplySnapshot is only accepted on a slave (INSTANCE_MODE=slave)");
      const r = await applySnapshot(store, req.snapshot);
      ctx.log.info({ version: r.version, changed: r.changed }, "snapshot applied");
      return r;
    },
    importConfig: async (req, ctx) => {
      const r = await importConfig(store, req.config, req.dryRun, deps.reservedUpstreams);
      if (r.committed) ctx.log.info({ version: r.configVersion }, "configuration imported");
      return r;
    },
    getInstanceInfo: async () => {
      const { info: i, contentSha256 } = await store.state();
      return {
        mode: MODE[mode],
        instanceId: i.instanceId,
        version: i.version,
        masterInstanceId: i.masterInstanceId,
        versionCommittedAt: i.committedAt,
        contentSha256,
      };
    },
  };

  const users = deps.tokens.users;
  const account: AsyncService<AccountServiceServer> = {
    createUser: async (req) => ({ user: await users.create(req.username, req.role, req.password) }),
    getUser: async (req) => ({ user: await users.get(req.id) }),
    listUsers: async () => ({ users: await users.list() }),
    updateUser: async (req, ctx) => ({
      user: await users.update(req.id, req.role, req.disabled, req.password, ctx.principal.userId),
    }),
    deleteUser: async (req, ctx) => {
      await users.delete(req.id, ctx.principal.userId);
      return {};
    },
    createApiToken: async (req, ctx) => {
      const { token, secret } = await deps.tokens.create(
        req.name,
        req.role,
        req.expiresAt,
        req.userId.trim(),
        ctx.principal,
      );
      return { apiToken: token, secret };
    },
    listApiTokens: async () => ({ apiTokens: await deps.tokens.list() }),
    revokeApiToken: async (req) => {
      await deps.tokens.revoke(req.id);
      return {};
    },
    whoAmI: async (_req, ctx) => ({
      tokenName: ctx.principal.name,
      role: ctx.principal.role === "admin" ? Role.ROLE_ADMIN : Role.ROLE_VIEWER,
      userId: ctx.principal.userId ?? "",
      username: ctx.principal.username ?? "",
    }),
  };

  const guarded = refuseSyncedWritesOnSlave(CONFIG_SERVICE, config, mode);
  const has = (method: string, caller: Caller) => CONFIG_SERVICE_POLICY.methods[method]!.includes(caller);
  const api = new GrpcServer({
    log,
    authenticate: apiTokenAuthenticator(deps.tokens),
    maxReceiveBytes: deps.apiMaxMessageBytes ?? DEFAULT_API_MAX_MESSAGE_BYTES,
    limitVariable: "CPM_API_MAX_MESSAGE_BYTES",
  })
    .add(
      CONFIG_SERVICE,
      pick(CONFIG_SERVICE, guarded, (m) => CONFIG_SERVICE_POLICY.methods[m]!.some((c) => c !== "internal")),
      CONFIG_SERVICE_POLICY,
    )
    .add(AccountServiceService, account, ACCOUNT_SERVICE_POLICY);
  const internal = new GrpcServer({
    log: log.child({ listener: "internal" }),
    authenticate: sharedTokenAuthenticator(deps.internalToken, INTERNAL, "internal token (CPM_INTERNAL_TOKEN)"),
    maxReceiveBytes: snapshotReceiveLimit(deps.syncMaxMessageBytes ?? DEFAULT_SYNC_MAX_MESSAGE_BYTES),
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
