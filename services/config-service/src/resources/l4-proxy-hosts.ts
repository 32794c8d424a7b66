import { randomUUID } from "node:crypto";
import { L4ProxyHost } from "@cpm/proto";
import {
  alreadyExists,
  checkUpstreamsNotReserved,
  l4Listener,
  l4ListenerConflict,
  normalizeL4ProxyHost,
  notFound,
  takesInstancePort,
  ValidationError,
  type InstancePort,
  type ReservedAddress,
} from "@cpm/core";
import { l4Row, type ConfigStore, type Tx } from "../store.ts";
import type { Collection, ConfigHandlers, CrudMethods, ResourceDeps } from "./kind.ts";

const F = "l4_proxy_host";

const fromRow = (r: { data: string }) => L4ProxyHost.fromJSON(JSON.parse(r.data));

/**
 * Cross-resource rules, checked in the write's transaction:
 * - names are unique (ALREADY_EXISTS on `name`);
 * - certificate_id names an existing certificate (INVALID_ARGUMENT on `certificate_id`);
 * - enabled hosts on one listener (protocol + listen address) are told apart by their
 *   matchers: at most one NONE (catch-all) and one PROXY_PROTOCOL host, and each TLS_SNI or
 *   HTTP_HOST value once; a listener on every address and one on a single address of the
 *   same port and protocol cannot both be bound (ALREADY_EXISTS naming the listener).
 * A listener on this instance's own HTTP/HTTPS/admin port is refused at write time
 * (INVALID_ARGUMENT on `listen_address`); a slave's ports are its own (never synced), so its
 * renderer leaves such a host from a master out, with a warning.
 */
async function checkConflicts(tx: Tx, h: L4ProxyHost): Promise<void> {
  const sameName = await tx.l4ProxyHost.findFirst({ where: { name: h.name, NOT: { id: h.id } } });
  if (sameName) throw alreadyExists(`${F}.name: an L4 proxy host named "${h.name}" already exists`);
  if (h.certificateId && !(await tx.certificate.findUnique({ where: { id: h.certificateId } }))) {
    throw new ValidationError(`${F}.certificate_id`, `certificate "${h.certificateId}" does not exist`);
  }
  const others = (await tx.l4ProxyHost.findMany({ where: { NOT: { id: h.id } }, orderBy: { name: "asc" } })).map(
    fromRow,
  );
  const conflict = l4ListenerConflict(h, others, F);
  if (conflict) throw alreadyExists(`${conflict[0]}: ${conflict[1]}`);
}

/**
 * L4 proxy host CRUD: validation, the rules between resources above, and this instance's own
 * addresses and ports. `reserved`: this instance's own addresses, which upstreams must not point
 * at; `ownPorts`: the ports its Caddy serves itself, which no L4 listener may take.
 */
export class L4ProxyHosts implements Collection<L4ProxyHost> {
  constructor(
    private readonly store: ConfigStore,
    private readonly reserved: readonly ReservedAddress[] = [],
    private readonly ownPorts: readonly InstancePort[] = [],
  ) {}

  private normalize(input: L4ProxyHost): L4ProxyHost {
    const host = normalizeL4ProxyHost(input, F);
    checkUpstreamsNotReserved(host.upstreams, `${F}.upstreams`, this.reserved);
    // A listener on this instance's own HTTP/HTTPS/admin port could never be served here.
    const listener = l4Listener(host, `${F}.listen_address`);
    const taken = host.enabled === false ? undefined : takesInstancePort(listener, this.ownPorts);
    if (taken)
      throw new ValidationError(
        `${F}.listen_address`,
        `${listener.network} takes this instance's ${taken.what} (port ${taken.port})`,
      );
    return host;
  }

  async list(): Promise<L4ProxyHost[]> {
    const rows = await this.store.db.l4ProxyHost.findMany({ orderBy: { name: "asc" } });
    return rows.map(fromRow);
  }

  async get(id: string): Promise<L4ProxyHost> {
    if (!id) throw new ValidationError("id", "is required");
    const row = await this.store.db.l4ProxyHost.findUnique({ where: { id } });
    if (!row) throw notFound("L4 proxy host", id);
    return fromRow(row);
  }

  create(input: L4ProxyHost | undefined) {
    if (!input) throw new ValidationError(F, "is required");
    const host = this.normalize(input);
    return this.store.write(async (tx, now, changes) => {
      const created: L4ProxyHost = { ...host, id: randomUUID(), createdAt: now, updatedAt: now };
      await checkConflicts(tx, created);
      await tx.l4ProxyHost.create({ data: l4Row(created, now) });
      changes.put("l4ProxyHosts", created);
      return created;
    });
  }

  update(input: L4ProxyHost | undefined) {
    if (!input) throw new ValidationError(F, "is required");
    if (!input.id) throw new ValidationError(`${F}.id`, "is required");
    const host = this.normalize(input);
    return this.store.write(async (tx, now, changes) => {
      const existing = await tx.l4ProxyHost.findUnique({ where: { id: host.id } });
      if (!existing) throw notFound("L4 proxy host", host.id);
      const updated: L4ProxyHost = { ...host, createdAt: existing.createdAt, updatedAt: now };
      await checkConflicts(tx, updated);
      await tx.l4ProxyHost.update({ where: { id: host.id }, data: { ...l4Row(updated, now), id: undefined } });
      changes.put("l4ProxyHosts", updated);
      return updated;
    });
  }

  delete(id: string) {
    if (!id) throw new ValidationError("id", "is required");
    return this.store.write(async (tx, _now, changes) => {
      const existing = await tx.l4ProxyHost.findUnique({ where: { id } });
      if (!existing) throw notFound("L4 proxy host", id);
      await tx.l4ProxyHost.delete({ where: { id } });
      changes.remove("l4ProxyHosts", id);
    });
  }
}

/** ConfigService handlers for L4 proxy hosts: the stored host is what callers see. */
export function l4ProxyHostHandlers(deps: ResourceDeps): ConfigHandlers<CrudMethods<"L4ProxyHost">> {
  const hosts = new L4ProxyHosts(deps.store, deps.reservedUpstreams, deps.ownPorts);
  return {
    createL4ProxyHost: async (req) => {
      const { result, version } = await hosts.create(req.l4ProxyHost);
      return { l4ProxyHost: result, configVersion: version };
    },
    getL4ProxyHost: async (req) => ({ l4ProxyHost: await hosts.get(req.id) }),
    listL4ProxyHosts: async () => ({ l4ProxyHosts: await hosts.list() }),
    updateL4ProxyHost: async (req) => {
      const { result, version } = await hosts.update(req.l4ProxyHost);
      return { l4ProxyHost: result, configVersion: version };
    },
    deleteL4ProxyHost: async (req) => ({ configVersion: (await hosts.delete(req.id)).version }),
  };
}
