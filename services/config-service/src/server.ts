import type { ConfigServiceServer } from "@cpm/proto";
import type { AsyncService } from "@cpm/grpc-kit";
import { accountHandlers } from "./accounts.ts";
import { configListeners, type ConfigServers, type ListenerOptions } from "./listeners.ts";
import { accessListHandlers } from "./resources/access-lists.ts";
import { certificateHandlers } from "./resources/certificates.ts";
import type { ResourceDeps } from "./resources/kind.ts";
import { l4ProxyHostHandlers } from "./resources/l4-proxy-hosts.ts";
import { proxyHostHandlers } from "./resources/proxy-hosts.ts";
import { settingsHandlers } from "./resources/settings.ts";
import { LocalConfigPort } from "./local-port.ts";
import { snapshotFeed, snapshotHandlers } from "./snapshots.ts";

export type { ConfigServers } from "./listeners.ts";

/**
 * What config-service is built from: the store and this instance's facts (ResourceDeps), the
 * API tokens, the internal token, the logger and the listeners' receive limits (ListenerOptions).
 */
export interface ConfigServiceDeps extends ResourceDeps, ListenerOptions {}

/**
 * The listeners of an instance's config-service, with health and reflection. Does not listen.
 * ConfigService is every resource kind's handlers (resources/) and the snapshot handlers
 * (snapshots.ts); AccountService is accounts.ts; listeners.ts puts them on the two listeners.
 */
export function createServer(deps: ConfigServiceDeps): ConfigServers & { local: LocalConfigPort } {
  const feed = snapshotFeed(deps);
  const config: Required<AsyncService<ConfigServiceServer>> = {
    ...proxyHostHandlers(deps),
    ...l4ProxyHostHandlers(deps),
    ...certificateHandlers(deps),
    ...accessListHandlers(deps),
    ...settingsHandlers(deps),
    ...snapshotHandlers(deps, feed),
  };
  const servers = configListeners({ config, account: accountHandlers(deps.tokens) }, deps);
  // What the other services of this process call in place of the internal listener.
  const local = new LocalConfigPort(config, feed, deps.log.child({ caller: "in-process" }));
  return { api: servers.api, internal: servers.internal, shutdown: () => servers.shutdown(), local };
}
