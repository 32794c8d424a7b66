import { randomUUID } from "node:crypto";
import { ProxyHost } from "@cpm/proto";
import { alreadyExists, checkUpstreamsNotReserved, normalizeProxyHost, notFound, ValidationError, type ReservedAddress } from "@cpm/core";
import { proxyHostRow, type ConfigStore, type Tx } from "../store.ts";

const F = "proxy_host";

/** Proxy host CRUD: validation, uniqueness of names and domains, references. */
export class ProxyHosts {
  /** `reserved`: this instance's own addresses, which upstreams must not point at. */
  constructor(
    private readonly store: ConfigStore,
    private readonly reserved: readonly ReservedAddress[] = [],
  ) {}

  private normalize(input: ProxyHost): ProxyHost {
    const host = normalizeProxyHost(input, F);
    checkUpstreamsNotReserved(host.upstreams, `${F}.upstreams`, this.reserved);
    return host;
  }

  async list(): Promise<ProxyHost[]> {
    const rows = await this.store.db.proxyHost.findMany({ orderBy: { name: "asc" } });
    return rows.map((r) => ProxyHost.fromJSON(JSON.parse(r.data)));
  }

  async get(id: string): Promise<ProxyHost> {
    if (!id) throw new ValidationError("id", "is required");
    const row = await this.store.db.proxyHost.findUnique({ where: { id } });
    if (!row) throw notFound("proxy host", id);
    return ProxyHost.fromJSON(JSON.parse(row.data));
  }

  create(input: ProxyHost | undefined) {
    if (!input) throw new ValidationError(F, "is required");
    const host = this.normalize(input);
    return this.store.write(async (tx, now, changes) => {
      const created: ProxyHost = { ...host, id: randomUUID(), createdAt: now, updatedAt: now };
      await checkConflicts(tx, created);
      await tx.proxyHost.create({ data: { ...proxyHostRow(created, now), domains: { create: created.domains.map((domain) => ({ domain })) } } });
      changes.put("proxyHosts", created);
      return created;
    });
  }

  update(input: ProxyHost | undefined) {
    if (!input) throw new ValidationError(F, "is required");
    if (!input.id) throw new ValidationError(`${F}.id`, "is required");
    const host = this.normalize(input);
    return this.store.write(async (tx, now, changes) => {
      const existing = await tx.proxyHost.findUnique({ where: { id: host.id } });
      if (!existing) throw notFound("proxy host", host.id);
      const updated: ProxyHost = { ...host, createdAt: existing.createdAt, updatedAt: now };
      await checkConflicts(tx, updated);
      await tx.proxyHostDomain.deleteMany({ where: { proxyHostId: host.id } });
      const row = proxyHostRow(updated, now);
      await tx.proxyHost.update({
        where: { id: host.id },
        data: { ...row, id: undefined, domains: { create: updated.domains.map((domain) => ({ domain })) } },
      });
      changes.put("proxyHosts", updated);
      return updated;
    });
  }

  delete(id: string) {
    if (!id) throw new ValidationError("id", "is required");
    return this.store.write(async (tx, _now, changes) => {
      const existing = await tx.proxyHost.findUnique({ where: { id } });
      if (!existing) throw notFound("proxy host", id);
      await tx.proxyHost.delete({ where: { id } });
      changes.remove("proxyHosts", id);
    });
  }
}

async function checkConflicts(tx: Tx, h: ProxyHost): Promise<void> {
  const sameName = await tx.proxyHost.findFirst({ where: { name: h.name, NOT: { id: h.id } } });
  if (sameName) throw alreadyExists(`${F}.name: a proxy host named "${h.name}" already exists`);
  const taken = await tx.proxyHostDomain.findMany({ where: { domain: { in: h.domains }, NOT: { proxyHostId: h.id } }, include: { proxyHost: true } });
  if (taken.length > 0) {
    const t = taken[0]!;
    const i = h.domains.indexOf(t.domain);
    throw alreadyExists(`${F}.domains[${i}]: "${t.domain}" is already served by proxy host "${t.proxyHost.name}"`);
  }
  if (h.certificateId && !(await tx.certificate.findUnique({ where: { id: h.certificateId } }))) {
    throw new ValidationError(`${F}.certificate_id`, `certificate "${h.certificateId}" does not exist`);
  }
  if (h.accessListId && !(await tx.accessList.findUnique({ where: { id: h.accessListId } }))) {
    throw new ValidationError(`${F}.access_list_id`, `access list "${h.accessListId}" does not exist`);
  }
}
