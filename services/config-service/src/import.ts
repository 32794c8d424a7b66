import { randomUUID } from "node:crypto";
import bcrypt from "bcryptjs";
import {
  AccessList,
  Certificate,
  CertificateType,
  L4ProxyHost,
  ProxyHost,
  type ConfigDocument,
  type ImportConfigResponse,
  type ResourceDiff,
  type Settings,
  type Snapshot,
} from "@cpm/proto";
import {
  canonicalJson,
  checkPassword,
  checkUpstreamsNotReserved,
  normalizeAccessList,
  normalizeCertificate,
  normalizeL4ProxyHost,
  normalizeProxyHost,
  normalizeSettings,
  SNAPSHOT_SCHEMA_VERSION,
  snapshotContentHash,
  validateSnapshot,
  ValidationError,
  type ReservedAddress,
} from "@cpm/core";
import { BCRYPT_COST } from "./resources/access-lists.ts";
import type { ChangeSet } from "./content-index.ts";
import {
  accessListRow,
  certificateRow,
  l4Row,
  proxyHostRow,
  settingsFromRows,
  writeSettings,
  type ConfigStore,
  type Tx,
} from "./store.ts";

const F = "config";

/** The synced content an import replaces (what a snapshot holds, without its envelope). */
export interface Content {
  proxyHosts: ProxyHost[];
  l4ProxyHosts: L4ProxyHost[];
  certificates: Certificate[];
  accessLists: AccessList[];
  settings: Settings;
}

/** What an import would do: the content it leaves and the difference, per kind, by name. */
export interface ImportPlan {
  next: Content;
  proxyHosts: Diff<ProxyHost>;
  l4ProxyHosts: Diff<L4ProxyHost>;
  certificates: Diff<Certificate>;
  accessLists: Diff<AccessList>;
  settingsChanged: boolean;
}

interface Diff<T> {
  added: T[];
  changed: T[];
  removed: T[];
}

class NothingToCommit extends Error {}

/**
 * ImportConfig: replaces the whole synced configuration with `doc` in one committed version.
 * Resources are matched by name (ids are instance-specific); references in the document name
 * what they point at. Every resource passes the same normalizer as an API write, the result
 * passes the snapshot check a slave runs, and anything refused writes nothing. An import
 * that changes nothing commits nothing.
 */
export async function importConfig(
  store: ConfigStore,
  doc: ConfigDocument | undefined,
  dryRun: boolean,
  reserved: readonly ReservedAddress[] = [],
): Promise<ImportConfigResponse> {
  if (!doc) throw new ValidationError(F, "is required");
  // Hashing is slow and needs nothing from the database: done before the transaction.
  const hashed = await hashClearPasswords(doc);
  if (dryRun) {
    const plan = planImport(await readContent(store.db), hashed, { now: new Date(), reserved });
    return response(plan, (await store.info()).version, false);
  }
  try {
    const { result, version } = await store.write(async (tx, now, changes) => {
      const plan = planImport(await readContent(tx), hashed, { now, reserved });
      if (!hasChanges(plan)) throw new NothingToCommit();
      await applyPlan(tx, plan, now);
      recordPlan(changes, plan);
      return plan;
    });
    return response(result, version, true);
  } catch (err) {
    if (!(err instanceof NothingToCommit)) throw err;
    const plan = planImport(await readContent(store.db), hashed, { now: new Date(), reserved });
    return response(plan, (await store.info()).version, false);
  }
}

/** The stored synced content, read through `db` (a transaction or the client). */
export async function readContent(db: Tx): Promise<Content> {
  const [hosts, l4, certs, acls, settings] = [
    await db.proxyHost.findMany({ orderBy: { name: "asc" } }),
    await db.l4ProxyHost.findMany({ orderBy: { name: "asc" } }),
    await db.certificate.findMany({ orderBy: { name: "asc" } }),
    await db.accessList.findMany({ orderBy: { name: "asc" } }),
    await db.setting.findMany(),
  ];
  return {
    proxyHosts: hosts.map((r) => ProxyHost.fromJSON(JSON.parse(r.data))),
    l4ProxyHosts: l4.map((r) => L4ProxyHost.fromJSON(JSON.parse(r.data))),
    certificates: certs.map((r) => Certificate.fromJSON(JSON.parse(r.data))),
    accessLists: acls.map((r) => AccessList.fromJSON(JSON.parse(r.data))),
    settings: settingsFromRows(settings),
  };
}

/** Clear-text access-list passwords checked and replaced by their bcrypt hash. */
async function hashClearPasswords(doc: ConfigDocument): Promise<ConfigDocument> {
  const accessLists: AccessList[] = [];
  for (const [i, a] of doc.accessLists.entries()) {
    const users = [];
    for (const [j, u] of a.users.entries()) {
      if (!u.password) {
        users.push(u);
        continue;
      }
      const at = `${F}.access_lists[${i}].users[${j}]`;
      if (u.passwordHash)
        throw new ValidationError(`${at}.password`, "give either password or password_hash, not both");
      checkPassword(u.password, `${at}.password`);
      users.push({ username: u.username, password: "", passwordHash: await bcrypt.hash(u.password, BCRYPT_COST) });
    }
    accessLists.push({ ...a, users });
  }
  return { ...doc, accessLists };
}

interface PlanOptions {
  now: Date;
  reserved: readonly ReservedAddress[];
  newId?: () => string;
}

/**
 * Decides an import against the current content, without effects: normalizes every resource
 * of `doc` (field paths `config.<kind>[i]...`), keeps the id of each stored resource of the
 * same name, resolves references by name, and checks the whole result as a snapshot.
 */
export function planImport(current: Content, doc: ConfigDocument, opts: PlanOptions): ImportPlan {
  const newId = opts.newId ?? randomUUID;
  const identify = <T extends { id: string; name: string; createdAt?: Date | undefined; updatedAt?: Date | undefined }>(
    xs: T[],
    stored: T[],
    kind: string,
  ): T[] => {
    const byName = new Map(stored.map((s) => [s.name, s]));
    const seen = new Map<string, number>();
    return xs.map((x, i) => {
      const j = seen.get(x.name);
      if (j !== undefined)
        throw new ValidationError(
          `${F}.${kind}[${i}].name`,
          `"${x.name}" is also the name of ${F}.${kind}[${j}] (names are unique)`,
        );
      seen.set(x.name, i);
      const s = byName.get(x.name);
      if (!s) return { ...x, id: newId(), createdAt: opts.now, updatedAt: opts.now };
      const kept = { ...x, id: s.id, createdAt: s.createdAt, updatedAt: s.updatedAt };
      return same(kept, s) ? kept : { ...kept, updatedAt: opts.now };
    });
  };

  const storedCert = new Map(current.certificates.map((c) => [c.name, c]));
  const certificates = identify(
    doc.certificates.map((c, i) => {
      const at = `${F}.certificates[${i}]`;
      const s = storedCert.get(c.name.trim());
      const keepKey =
        c.type === CertificateType.CERTIFICATE_TYPE_IMPORTED &&
        s?.type === CertificateType.CERTIFICATE_TYPE_IMPORTED &&
        !c.privateKeyPem.trim();
      const input = { ...c, id: "", privateKeyPem: keepKey ? s.privateKeyPem : c.privateKeyPem };
      const unclocked = normalizeCertificate(input, at);
      // A stored certificate imported again unchanged is not refused for having expired since.
      const unchanged = s !== undefined && same({ ...unclocked, id: s.id }, s);
      return unchanged ? unclocked : normalizeCertificate(input, at, { now: opts.now });
    }),
    current.certificates,
    "certificates",
  );
  const storedAcl = new Map(current.accessLists.map((a) => [a.name, a]));
  const accessLists = identify(
    doc.accessLists.map((a, i) => {
      const at = `${F}.access_lists[${i}]`;
      const before = storedAcl.get(a.name.trim());
      const users = a.users.map((u, j) => {
        if (u.passwordHash) return u;
        const kept = before?.users.find((b) => b.username === u.username);
        if (!kept)
          throw new ValidationError(
            `${at}.users[${j}].password`,
            `is required for a new user ("${u.username}" has no password yet)`,
          );
        return { ...u, passwordHash: kept.passwordHash };
      });
      return normalizeAccessList({ ...a, id: "", users }, at);
    }),
    current.accessLists,
    "access_lists",
  );

  const certId = new Map(certificates.map((c) => [c.name, c.id]));
  const aclId = new Map(accessLists.map((a) => [a.name, a.id]));
  const resolve = (ids: Map<string, string>, name: string, field: string, what: string) => {
    if (!name) return "";
    const id = ids.get(name.trim());
    if (!id) throw new ValidationError(field, `no ${what} named "${name}" in this configuration`);
    return id;
  };

  const owner = new Map<string, string>();
  const proxyHosts = identify(
    doc.proxyHosts.map((h, i) => {
      const at = `${F}.proxy_hosts[${i}]`;
      const host = normalizeProxyHost(
        {
          ...h,
          id: "",
          certificateId: resolve(certId, h.certificateId, `${at}.certificate_id`, "certificate"),
          accessListId: resolve(aclId, h.accessListId, `${at}.access_list_id`, "access list"),
        },
        at,
      );
      checkUpstreamsNotReserved(host.upstreams, `${at}.upstreams`, opts.reserved);
      host.domains.forEach((d, j) => {
        const other = owner.get(d);
        if (other !== undefined)
          throw new ValidationError(`${at}.domains[${j}]`, `"${d}" is also served by proxy host "${other}"`);
        owner.set(d, host.name);
      });
      return host;
    }),
    current.proxyHosts,
    "proxy_hosts",
  );
  const l4ProxyHosts = identify(
    doc.l4ProxyHosts.map((h, i) => {
      const at = `${F}.l4_proxy_hosts[${i}]`;
      const host = normalizeL4ProxyHost(
        { ...h, id: "", certificateId: resolve(certId, h.certificateId, `${at}.certificate_id`, "certificate") },
        at,
      );
      checkUpstreamsNotReserved(host.upstreams, `${at}.upstreams`, opts.reserved);
      return host;
    }),
    current.l4ProxyHosts,
    "l4_proxy_hosts",
  );
  const settings = normalizeSettings(doc.settings, `${F}.settings`);

  const next: Content = { proxyHosts, l4ProxyHosts, certificates, accessLists, settings };
  // What a slave checks on every snapshot (L4 listener conflicts, names, references).
  const snapshot: Snapshot = {
    schemaVersion: SNAPSHOT_SCHEMA_VERSION,
    masterInstanceId: "import",
    version: 1,
    generatedAt: undefined,
    contentSha256: snapshotContentHash(next),
    ...next,
  };
  validateSnapshot(snapshot, F);

  return {
    next,
    proxyHosts: diff(current.proxyHosts, proxyHosts),
    l4ProxyHosts: diff(current.l4ProxyHosts, l4ProxyHosts),
    certificates: diff(current.certificates, certificates),
    accessLists: diff(current.accessLists, accessLists),
    settingsChanged: canonicalJson(settingsOrDefaults(current.settings)) !== canonicalJson(settings),
  };
}

/** Stored settings compared as the API shows them (defaults filled). */
function settingsOrDefaults(s: Settings): Settings {
  try {
    return normalizeSettings(s);
  } catch {
    return s;
  }
}

/** Equal content: everything but the timestamps. */
function same(a: object, b: object): boolean {
  const strip = (x: object) => ({ ...x, createdAt: undefined, updatedAt: undefined });
  return canonicalJson(strip(a)) === canonicalJson(strip(b));
}

function diff<T extends { id: string; name: string }>(current: T[], next: T[]): Diff<T> {
  const before = new Map(current.map((x) => [x.id, x]));
  const keep = new Set(next.map((x) => x.id));
  return {
    added: next.filter((x) => !before.has(x.id)),
    changed: next.filter((x) => before.has(x.id) && !same(x, before.get(x.id)!)),
    removed: current.filter((x) => !keep.has(x.id)),
  };
}

function hasChanges(p: ImportPlan): boolean {
  return (
    p.settingsChanged ||
    [p.proxyHosts, p.l4ProxyHosts, p.certificates, p.accessLists].some(
      (d) => d.added.length + d.changed.length + d.removed.length > 0,
    )
  );
}

/** Tells the store's in-memory content what the plan wrote (it reaches it once committed). */
function recordPlan(changes: ChangeSet, p: ImportPlan): void {
  const kinds = [
    ["proxyHosts", p.proxyHosts],
    ["l4ProxyHosts", p.l4ProxyHosts],
    ["certificates", p.certificates],
    ["accessLists", p.accessLists],
  ] as const;
  for (const [kind, d] of kinds) {
    for (const x of [...d.added, ...d.changed]) changes.put(kind, x);
    for (const x of d.removed) changes.remove(kind, x.id);
  }
  if (p.settingsChanged) changes.settings(p.next.settings);
}

/** Writes the plan in the caller's transaction: hosts leave before what they reference, and freed domains before they are taken. */
async function applyPlan(tx: Tx, p: ImportPlan, now: Date): Promise<void> {
  const ids = <T extends { id: string }>(xs: T[]) => xs.map((x) => x.id);
  await tx.proxyHost.deleteMany({ where: { id: { in: ids(p.proxyHosts.removed) } } });
  await tx.l4ProxyHost.deleteMany({ where: { id: { in: ids(p.l4ProxyHosts.removed) } } });
  await tx.proxyHostDomain.deleteMany({ where: { proxyHostId: { in: ids(p.proxyHosts.changed) } } });
  for (const c of p.certificates.changed)
    await tx.certificate.update({ where: { id: c.id }, data: { ...certificateRow(c, now), id: undefined } });
  await tx.certificate.createMany({ data: p.certificates.added.map((c) => certificateRow(c, now)) });
  for (const a of p.accessLists.changed)
    await tx.accessList.update({ where: { id: a.id }, data: { ...accessListRow(a, now), id: undefined } });
  await tx.accessList.createMany({ data: p.accessLists.added.map((a) => accessListRow(a, now)) });
  for (const h of p.proxyHosts.changed)
    await tx.proxyHost.update({ where: { id: h.id }, data: { ...proxyHostRow(h, now), id: undefined } });
  await tx.proxyHost.createMany({ data: p.proxyHosts.added.map((h) => proxyHostRow(h, now)) });
  await tx.proxyHostDomain.createMany({
    data: [...p.proxyHosts.changed, ...p.proxyHosts.added].flatMap((h) =>
      h.domains.map((domain) => ({ domain, proxyHostId: h.id })),
    ),
  });
  for (const h of p.l4ProxyHosts.changed)
    await tx.l4ProxyHost.update({ where: { id: h.id }, data: { ...l4Row(h, now), id: undefined } });
  await tx.l4ProxyHost.createMany({ data: p.l4ProxyHosts.added.map((h) => l4Row(h, now)) });
  await tx.certificate.deleteMany({ where: { id: { in: ids(p.certificates.removed) } } });
  await tx.accessList.deleteMany({ where: { id: { in: ids(p.accessLists.removed) } } });
  if (p.settingsChanged) await writeSettings(tx, p.next.settings);
}

function response(p: ImportPlan, version: number, committed: boolean): ImportConfigResponse {
  const names = <T extends { name: string }>(d: Diff<T>): ResourceDiff => {
    const sorted = (xs: T[]) => xs.map((x) => x.name).sort();
    return { added: sorted(d.added), changed: sorted(d.changed), removed: sorted(d.removed) };
  };
  return {
    proxyHosts: names(p.proxyHosts),
    l4ProxyHosts: names(p.l4ProxyHosts),
    certificates: names(p.certificates),
    accessLists: names(p.accessLists),
    settingsChanged: p.settingsChanged,
    configVersion: version,
    committed,
  };
}
