import { randomUUID } from "node:crypto";
import { L4ProxyHost, type ConfigServiceServer } from "@cpm/proto";
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
import type { AsyncService } from "@cpm/grpc-kit";
import { l4Row, type ConfigStore, type Tx } from "../store.ts";

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
 * ConfigService handlers for L4 proxy hosts (CRUD with validation and referential checks).
 * `reserved`: this instance's own addresses, which upstreams must not point at; `ownPorts`: the
 * ports its Caddy serves itself, which no L4 listener may take.
 */
export function l4ProxyHostHandlers(
  store: ConfigStore,
  reserved: readonly ReservedAddress[] = [],
  ownPorts: readonly InstancePort[] = [],
): AsyncService<ConfigServiceServer> {
  const normalize = (input: L4ProxyHost) => {
    const host = normalizeL4ProxyHost(input, F);
    checkUpstreamsNotReserved(host.upstreams, `${F}.upstreams`, reserved);
    // A listener on this instance's own HTTP/HTTPS/admin port could never be served here.
    const listener = l4Listener(host, `${F}.listen_address`);
    const taken = host.enabled === false ? undefined : takesInstancePort(listener, ownPorts);
    if (taken)
      throw new ValidationError(
        `${F}.listen_address`,
        `${listener.network} takes this instance's ${taken.what} (port ${taken.port})`,
      );
    return host;
  };
  return {
    listL4ProxyHosts: async () => {
      const rows = await store.db.l4ProxyHost.findMany({ orderBy: { name: "asc" } });
      return { l4ProxyHosts: rows.map(fromRow) };
    },

    getL4ProxyHost: async (req) => {
      if (!req.id) throw new ValidationError("id", "is required");
      const row = await store.db.l4ProxyHost.findUnique({ where: { id: req.id } });
      if (!row) throw notFound("L4 proxy host", req.id);
      return { l4ProxyHost: fromRow(row) };
    },

    createL4ProxyHost: async (req) => {
      if (!req.l4ProxyHost) throw new ValidationError(F, "is required");
      const host = normalize(req.l4ProxyHost);
      const { result, version } = await store.write(async (tx, now, changes) => {
        const created: L4ProxyHost = { ...host, id: randomUUID(), createdAt: now, updatedAt: now };
        await checkConflicts(tx, created);
        await tx.l4ProxyHost.create({ data: l4Row(created, now) });
        changes.put("l4ProxyHosts", created);
        return created;
      });
      return { l4ProxyHost: result, configVersion: version };
    },

    updateL4ProxyHost: async (req) => {
      if (!req.l4ProxyHost) throw new ValidationError(F, "is required");
      if (!req.l4ProxyHost.id) throw new ValidationError(`${F}.id`, "is required");
      const host = normalize(req.l4ProxyHost);
      const { result, version } = await store.write(async (tx, now, changes) => {
        const existing = await tx.l4ProxyHost.findUnique({ where: { id: host.id } });
        if (!existing) throw notFound("L4 proxy host", host.id);
        const updated: L4ProxyHost = { ...host, createdAt: existing.createdAt, updatedAt: now };
        await checkConflicts(tx, updated);
        await tx.l4ProxyHost.update({ where: { id: host.id }, data: { ...l4Row(updated, now), id: undefined } });
        changes.put("l4ProxyHosts", updated);
        return updated;
      });
      return { l4ProxyHost: result, configVersion: version };
    },

    deleteL4ProxyHost: async (req) => {
      if (!req.id) throw new ValidationError("id", "is required");
      const { version } = await store.write(async (tx, _now, changes) => {
        const existing = await tx.l4ProxyHost.findUnique({ where: { id: req.id } });
        if (!existing) throw notFound("L4 proxy host", req.id);
        await tx.l4ProxyHost.delete({ where: { id: req.id } });
        changes.remove("l4ProxyHosts", req.id);
      });
      return { configVersion: version };
    },
  };
}
