import { randomUUID } from "node:crypto";
import { ProxyHost } from "@cpm/proto";
import {
  alreadyExists,
  checkUpstreamsNotReserved,
  normalizeProxyHost,
  notFound,
  ValidationError,
  type ReservedAddress,
} from "@cpm/core";
import type { ContentView } from "../content-index.ts";
import { insertRows, updateProxyHostRow } from "../deferred-inserts.ts";
import { proxyHostRow, type ConfigStore, type Tx } from "../store.ts";
import { countHosts, searchHosts } from "./proxy-host-search.ts";
import { encodePageToken, pageRequest, type PageRequest } from "./paging.ts";
import type { Collection, ConfigHandlers, CrudMethods, ResourceDeps } from "./kind.ts";

const F = "proxy_host";

/** A page of proxy hosts, the token of the next one ("" on the last) and how many match in all. */
export interface HostPage {
  hosts: ProxyHost[];
  nextPageToken: string;
  totalSize: number;
}

/** Proxy host CRUD: validation, uniqueness of names and domains, references. */
export class ProxyHosts implements Collection<ProxyHost> {
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
    return (await this.page({ pageSize: 0, query: "", after: undefined })).hosts;
  }

  /**
   * One page of the hosts whose name or a domain contains the query, by name: names are unique,
   * so the order is stable and a page resumes after the last name of the one before (one
   * indexed range read however far in). The filter runs in SQL (see searchHosts): only the
   * page's rows are read and parsed.
   */
  async page(req: PageRequest): Promise<HostPage> {
    const db = this.store.db;
    const take = req.pageSize > 0 ? req.pageSize + 1 : undefined;
    const rows = await searchHosts(db, req.query, req.after, take);
    const more = take !== undefined && rows.length === take;
    const page = more ? rows.slice(0, -1) : rows;
    const whole = req.after === undefined && !more;
    return {
      hosts: page.map((r) => ProxyHost.fromJSON(JSON.parse(r.data))),
      nextPageToken: more ? encodePageToken(page[page.length - 1]!.name, req.query) : "",
      totalSize: whole ? rows.length : await countHosts(db, req.query),
    };
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
    return this.store.write(async (tx, now, changes, current) => {
      const created: ProxyHost = { ...host, id: randomUUID(), createdAt: now, updatedAt: now };
      await checkConflicts(tx, created, current);
      // Inserted with the group's other new rows at the end of the transaction; nothing is read back.
      await insertRows(tx, "proxyHost", [proxyHostRow(created, now)]);
      await insertRows(tx, "proxyHostDomain", domainRows(created));
      changes.put("proxyHosts", created);
      return created;
    });
  }

  update(input: ProxyHost | undefined) {
    if (!input) throw new ValidationError(F, "is required");
    if (!input.id) throw new ValidationError(`${F}.id`, "is required");
    const host = this.normalize(input);
    return this.store.write(async (tx, now, changes, current) => {
      const existing = current
        ? current.get("proxyHosts", host.id)
        : await tx.proxyHost.findUnique({ where: { id: host.id } });
      if (!existing) throw notFound("proxy host", host.id);
      const updated: ProxyHost = { ...host, createdAt: existing.createdAt, updatedAt: now };
      await checkConflicts(tx, updated, current);
      // The domain rows are rewritten only when the domains change (known when `existing` is the stored resource).
      const sameDomains = current && sameList((existing as ProxyHost).domains, updated.domains);
      if (!sameDomains) await tx.proxyHostDomain.deleteMany({ where: { proxyHostId: host.id } });
      await updateProxyHostRow(tx, proxyHostRow(updated, now));
      if (!sameDomains) await insertRows(tx, "proxyHostDomain", domainRows(updated));
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

/** ConfigService handlers for proxy hosts: the stored host is what callers see. */
export function proxyHostHandlers(deps: ResourceDeps): ConfigHandlers<CrudMethods<"ProxyHost">> {
  const hosts = new ProxyHosts(deps.store, deps.reservedUpstreams);
  return {
    createProxyHost: async (req) => {
      const { result, version } = await hosts.create(req.proxyHost);
      return { proxyHost: result, configVersion: version };
    },
    getProxyHost: async (req) => ({ proxyHost: await hosts.get(req.id) }),
    listProxyHosts: async (req) => {
      const { hosts: proxyHosts, nextPageToken, totalSize } = await hosts.page(pageRequest(req));
      return { proxyHosts, nextPageToken, totalSize };
    },
    updateProxyHost: async (req) => {
      const { result, version } = await hosts.update(req.proxyHost);
      return { proxyHost: result, configVersion: version };
    },
    deleteProxyHost: async (req) => ({ configVersion: (await hosts.delete(req.id)).version }),
  };
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const domainRows = (h: ProxyHost) => h.domains.map((domain) => ({ domain, proxyHostId: h.id }));

/**
 * Names, domains and references are unique or must exist: checked in the in-memory content
 * when the store has it (SQLite), else in the database. Its constraints have the last word.
 */
async function checkConflicts(tx: Tx, h: ProxyHost, current: ContentView | undefined): Promise<void> {
  if (current) {
    const sameName = current.proxyHostNamed(h.name);
    if (sameName && sameName.id !== h.id) throw nameTaken(h.name);
    for (const [i, domain] of h.domains.entries()) {
      const owner = current.proxyHostServing(domain);
      if (owner && owner.id !== h.id) throw domainTaken(i, domain, owner.name);
    }
    if (h.certificateId && !current.get("certificates", h.certificateId)) throw missingCertificate(h.certificateId);
    if (h.accessListId && !current.get("accessLists", h.accessListId)) throw missingAccessList(h.accessListId);
    return;
  }
  const sameName = await tx.proxyHost.findFirst({ where: { name: h.name, NOT: { id: h.id } } });
  if (sameName) throw nameTaken(h.name);
  const taken = await tx.proxyHostDomain.findMany({
    where: { domain: { in: h.domains }, NOT: { proxyHostId: h.id } },
    include: { proxyHost: true },
  });
  if (taken.length > 0) {
    const t = taken[0]!;
    throw domainTaken(h.domains.indexOf(t.domain), t.domain, t.proxyHost.name);
  }
  if (h.certificateId && !(await tx.certificate.findUnique({ where: { id: h.certificateId } })))
    throw missingCertificate(h.certificateId);
  if (h.accessListId && !(await tx.accessList.findUnique({ where: { id: h.accessListId } })))
    throw missingAccessList(h.accessListId);
}

const nameTaken = (name: string) => alreadyExists(`${F}.name: a proxy host named "${name}" already exists`);
const domainTaken = (i: number, domain: string, owner: string) =>
  alreadyExists(`${F}.domains[${i}]: "${domain}" is already served by proxy host "${owner}"`);
const missingCertificate = (id: string) =>
  new ValidationError(`${F}.certificate_id`, `certificate "${id}" does not exist`);
const missingAccessList = (id: string) =>
  new ValidationError(`${F}.access_list_id`, `access list "${id}" does not exist`);
