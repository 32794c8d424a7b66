import type { Metadata } from "@grpc/grpc-js";
import {
  AccountServiceService,
  ConfigServiceService,
  InstanceMode as ProtoMode,
  Role,
  type AccountServiceServer,
  type ConfigServiceServer,
} from "@cpm/proto";
import { failedPrecondition, validateSnapshot, type InstanceMode, type Logger, type ReservedAddress } from "@cpm/core";
import {
  bearerToken,
  GrpcServer,
  permissionDenied,
  secretsEqual,
  unauthenticated,
  type AsyncService,
  type Authorize,
  type Principal,
} from "@cpm/grpc-kit";
import { applySnapshot } from "./apply.ts";
import { accessListHandlers } from "./resources/access-lists.ts";
import { certificateHandlers } from "./resources/certificates.ts";
import { l4ProxyHostHandlers } from "./resources/l4-proxy-hosts.ts";
import { ProxyHosts } from "./resources/proxy-hosts.ts";
import { settingsHandlers } from "./resources/settings.ts";
import type { ConfigStore } from "./store.ts";
import type { ApiTokens } from "./tokens.ts";
import { Users } from "./users.ts";

export interface ConfigServiceDeps {
  store: ConfigStore;
  tokens: ApiTokens;
  mode: InstanceMode;
  /** Token the other services of this instance present. */
  internalToken: string | undefined;
  log: Logger;
  maxMessageBytes?: number;
  /** This instance's own addresses (Caddy admin API, CPM ports): upstreams must not point at them. */
  reservedUpstreams?: readonly ReservedAddress[];
}

const MODE: Record<InstanceMode, ProtoMode> = {
  standalone: ProtoMode.INSTANCE_MODE_STANDALONE,
  master: ProtoMode.INSTANCE_MODE_MASTER,
  slave: ProtoMode.INSTANCE_MODE_SLAVE,
};

/** Writes to synced resources: refused on a slave, where the master manages them. */
const SYNCED_WRITE = /\/(Create|Update|Delete)(ProxyHost|L4ProxyHost|Certificate|AccessList)$|\/UpdateSettings$/;
const ADMIN_WRITE = /\/(Create|Update|Delete|Revoke)[A-Za-z0-9]*$|\/UpdateSettings$/;
/** Reading accounts is an admin matter too (who may do what on this instance). */
const ADMIN_READ = /AccountService\/(GetUser|ListUsers|ListApiTokens)$/;

/** Authenticates a call against the internal token and this instance's API tokens. */
export function makeAuthenticator(tokens: ApiTokens, internalToken: string | undefined) {
  return async (md: Metadata): Promise<Principal> => {
    const token = bearerToken(md);
    if (!token) throw unauthenticated("missing bearer token (metadata authorization: Bearer <token>)");
    if (internalToken && secretsEqual(token, internalToken)) return { kind: "internal", name: "internal", role: "admin" };
    const p = await tokens.authenticate(token);
    if (!p) throw unauthenticated("invalid, expired or revoked token");
    return p;
  };
}

/** The public API of an instance (ConfigService, AccountService) with health and reflection. Does not listen. */
export function createServer(deps: ConfigServiceDeps): GrpcServer {
  const { store, mode, log } = deps;
  const hosts = new ProxyHosts(store, deps.reservedUpstreams);
  const authenticate = makeAuthenticator(deps.tokens, deps.internalToken);

  const authorize: Authorize = async (method, md) => {
    const p = await authenticate(md);
    if (method.endsWith("/ApplySnapshot")) {
      if (p.kind !== "internal") throw permissionDenied("ApplySnapshot is internal to an instance");
      if (mode !== "slave") throw failedPrecondition("ApplySnapshot is only accepted on a slave (INSTANCE_MODE=slave)");
      return p;
    }
    if (method.endsWith("/GetSnapshot") && p.role !== "admin") throw permissionDenied("GetSnapshot holds private keys: admin only");
    if (ADMIN_WRITE.test(method) && p.role !== "admin") throw permissionDenied("this token may only read");
    if (ADMIN_READ.test(method) && p.role !== "admin") throw permissionDenied("listing users and tokens needs an admin token");
    if (mode === "slave" && SYNCED_WRITE.test(method)) {
      throw failedPrecondition("this instance is a slave: synced resources are managed by the master");
    }
    return p;
  };

  // A snapshot is checked (structure, every reference resolves, content hash) before it is
  // served, once per content: the database's constraints should make this hold, and a
  // master must never ship a configuration its slaves would refuse.
  let checkedSha = "";
  const consistentSnapshot = async () => {
    const s = await store.snapshot();
    if (s.contentSha256 !== checkedSha && s.version > 0) {
      try {
        validateSnapshot(s);
      } catch (err) {
        throw failedPrecondition(`the stored configuration is inconsistent, refusing to serve it: ${(err as Error).message}`);
      }
      checkedSha = s.contentSha256;
    }
    return s;
  };

  const config: AsyncService<ConfigServiceServer> = {
    ...certificateHandlers(store),
    ...accessListHandlers(store),
    ...l4ProxyHostHandlers(store, deps.reservedUpstreams),
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
    getSnapshot: async () => ({ snapshot: await consistentSnapshot() }),
    watchConfig: async (_req, ctx, call) => {
      // Subscribe before reading the current state so no commit is missed; never send a
      // version older than one already sent (the initial read can race a commit).
      let last = { version: -1, sha: "" };
      const send = (version: number, committedAt: Date | undefined, contentSha256: string) => {
        if (version < last.version || (version === last.version && contentSha256 === last.sha)) return;
        last = { version, sha: contentSha256 };
        call.write({ version, committedAt, contentSha256 });
      };
      const unsubscribe = store.onCommit((c) => send(c.version, c.committedAt, c.contentSha256));
      try {
        const s = await store.snapshot();
        send(s.version, s.generatedAt, s.contentSha256);
        await new Promise<void>((resolve) => (ctx.signal.aborted ? resolve() : ctx.signal.addEventListener("abort", () => resolve(), { once: true })));
      } finally {
        unsubscribe();
      }
    },
    applySnapshot: async (req, ctx) => {
      const r = await applySnapshot(store, req.snapshot);
      ctx.log.info({ version: r.version, changed: r.changed }, "snapshot applied");
      return r;
    },
    getInstanceInfo: async () => {
      const i = await store.info();
      return {
        mode: MODE[mode],
        instanceId: i.instanceId,
        version: i.version,
        masterInstanceId: i.masterInstanceId,
        versionCommittedAt: i.committedAt,
      };
    },
  };

  const users = new Users(store.db);
  const account: AsyncService<AccountServiceServer> = {
    createUser: async (req) => ({ user: await users.create(req.username, req.role, req.password) }),
    getUser: async (req) => ({ user: await users.get(req.id) }),
    listUsers: async () => ({ users: await users.list() }),
    updateUser: async (req, ctx) => ({ user: await users.update(req.id, req.role, req.disabled, req.password, ctx.principal.userId) }),
    deleteUser: async (req, ctx) => {
      await users.delete(req.id, ctx.principal.userId);
      return {};
    },
    createApiToken: async (req, ctx) => {
      const { token, secret } = await deps.tokens.create(req.name, req.role, req.expiresAt, req.userId.trim(), ctx.principal);
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

  return new GrpcServer({ log, maxMessageBytes: deps.maxMessageBytes })
    .add("cpm.config.v1.ConfigService", ConfigServiceService, config, authorize)
    .add("cpm.config.v1.AccountService", AccountServiceService, account, authorize);
}
