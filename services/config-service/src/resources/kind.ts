import type { ConfigServiceServer } from "@cpm/proto";
import type { InstanceMode, InstancePort, ReservedAddress } from "@cpm/core";
import type { AsyncService } from "@cpm/grpc-kit";
import type { ConfigStore } from "../store.ts";

/**
 * The shape every resource kind of config-service has. A kind is one module under resources/
 * that exports
 * - a class holding the kind's rules: validation and normalization, the store calls, and the
 *   checks against other resources inside the write's transaction. A collection kind (proxy
 *   hosts, L4 proxy hosts, certificates, access lists) implements `Collection`; the singleton
 *   kind (settings) implements `Singleton`;
 * - a handlers factory `xxxHandlers(deps: ResourceDeps): ConfigHandlers<...>`: the kind's
 *   ConfigService methods, which map requests to the class and its results to responses (what
 *   a caller may see of them).
 * createServer spreads the factories' handlers into one ConfigService.
 */

/** What a kind's handlers are built from: the store and the facts of this instance that writes are checked against. */
export interface ResourceDeps {
  store: ConfigStore;
  mode: InstanceMode;
  /** This instance's own addresses (Caddy admin API, CPM ports): upstreams must not point at them. */
  reservedUpstreams?: readonly ReservedAddress[];
  /** The ports this instance's Caddy serves itself (HTTP, HTTPS, admin): no L4 listener may take them. */
  ownPorts?: readonly InstancePort[];
}

/** The ConfigService methods a module serves (a kind, or the snapshot handlers), every one of them implemented. */
export type ConfigHandlers<M extends keyof AsyncService<ConfigServiceServer>> = Required<
  Pick<AsyncService<ConfigServiceServer>, M>
>;

/** The five methods of a collection kind named `K` (`ProxyHost`: CreateProxyHost ... ListProxyHosts). */
export type CrudMethods<K extends string> = `create${K}` | `get${K}` | `list${K}s` | `update${K}` | `delete${K}`;

/** A committed write: what it wrote and the configuration version it committed as. */
export interface Written<T> {
  result: T;
  version: number;
}

/**
 * A collection kind: resources with an id, each written in one committed version. Create and
 * update take the resource as the request carries it (undefined: INVALID_ARGUMENT naming the
 * field); get and delete of an unknown id answer NOT_FOUND.
 */
export interface Collection<T> {
  list(): Promise<T[]>;
  get(id: string): Promise<T>;
  create(input: T | undefined): Promise<Written<T>>;
  update(input: T | undefined): Promise<Written<T>>;
  delete(id: string): Promise<Written<void>>;
}

/** A singleton kind: one value, read whole and replaced whole in one committed version. */
export interface Singleton<T> {
  get(): Promise<T>;
  replace(input: T | undefined): Promise<Written<T>>;
}
