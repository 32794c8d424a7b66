import { EventEmitter } from "node:events";
import { randomUUID } from "node:crypto";
import {
  AccessList,
  AcmeSettings,
  Certificate,
  GeneralSettings,
  HttpSettings,
  L4ProxyHost,
  ProxyHost,
  type Settings,
  type Snapshot,
} from "@cpm/proto";
import { canonicalJson, SNAPSHOT_SCHEMA_VERSION, snapshotContentHash, type Logger } from "@cpm/core";
import type { Db } from "./db.ts";

/** A transaction client: what write callbacks get. */
export type Tx = Parameters<Parameters<Db["$transaction"]>[0]>[0];

export interface Commit {
  version: number;
  committedAt: Date;
  contentSha256: string;
}

export interface InstanceInfo {
  instanceId: string;
  version: number;
  committedAt: Date;
  masterInstanceId: string;
}

/**
 * The versioned configuration store. Every write runs in one transaction that bumps the
 * persisted version exactly once; writes are serialized so versions commit in order; after
 * each commit, watchers hear the new version. Snapshots are built lazily and cached per commit.
 */
export class ConfigStore {
  private readonly events = new EventEmitter();
  private queue: Promise<unknown> = Promise.resolve();
  private cached: { key: string; snapshot: Snapshot } | undefined;
  private revision = 0;

  constructor(
    readonly db: Db,
    private readonly log: Logger,
  ) {
    this.events.setMaxListeners(0);
  }

  /** Creates the instance row on first start; returns who this instance is. */
  async init(): Promise<InstanceInfo> {
    const existing = await this.db.instance.findUnique({ where: { id: 1 } });
    if (!existing) {
      await this.db.instance.create({ data: { id: 1, instanceId: randomUUID(), version: 0, versionCommittedAt: new Date() } });
    }
    return this.info();
  }

  async info(): Promise<InstanceInfo> {
    const row = await this.db.instance.findUniqueOrThrow({ where: { id: 1 } });
    return { instanceId: row.instanceId, version: row.version, committedAt: row.versionCommittedAt, masterInstanceId: row.masterInstanceId };
  }

  /** Runs `fn` after every earlier write has finished (one writer at a time). */
  serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * One committed write: `fn` runs in a transaction, then the version is bumped once.
   * Nothing is written when `fn` throws.
   */
  write<T>(fn: (tx: Tx, now: Date) => Promise<T>): Promise<{ result: T; version: number }> {
    return this.serialize(async () => {
      const now = new Date();
      const { result, version } = await this.db.$transaction(async (tx) => {
        const result = await fn(tx, now);
        const row = await tx.instance.update({ where: { id: 1 }, data: { version: { increment: 1 }, versionCommittedAt: now } });
        return { result, version: row.version };
      });
      await this.committed();
      return { result, version };
    });
  }

  /**
   * Replaces the whole synced content with a snapshot's, at the snapshot's version (slave
   * apply), in one transaction. Caller serializes. Only rows that differ from the current
   * content are written, so a one-host change to a 1,000-host configuration is a few
   * statements; when the difference cannot be applied in place (a stale cache, names swapped
   * between two resources), everything is replaced instead.
   */
  async replaceAll(s: Snapshot): Promise<void> {
    const now = new Date();
    const current = await this.snapshot();
    try {
      await this.db.$transaction((tx) => applyDifference(tx, current, s, now));
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== "P2002" && code !== "P2003" && code !== "P2025") throw err;
      this.log.debug({ code }, "in-place apply not possible; replacing every row");
      await this.db.$transaction((tx) => replaceEveryRow(tx, s, now));
    }
    this.revision++;
    // The stored rows are the snapshot's resources, so the snapshot is the new cache.
    this.cached = { key: String(this.revision), snapshot: { ...s, generatedAt: now } };
    this.events.emit("commit", { version: s.version, committedAt: now, contentSha256: s.contentSha256 } satisfies Commit);
  }

  private async committed(): Promise<void> {
    this.revision++;
    this.cached = undefined;
    const snap = await this.snapshot();
    const commit: Commit = { version: snap.version, committedAt: snap.generatedAt ?? new Date(), contentSha256: snap.contentSha256 };
    this.log.debug({ version: commit.version }, "committed");
    this.events.emit("commit", commit);
  }

  onCommit(listener: (c: Commit) => void): () => void {
    this.events.on("commit", listener);
    return () => this.events.off("commit", listener);
  }

  /** The full synced configuration at the current version. */
  async snapshot(): Promise<Snapshot> {
    const key = String(this.revision);
    if (this.cached?.key === key) return this.cached.snapshot;
    const [inst, hosts, l4, certs, acls, settings] = await this.db.$transaction([
      this.db.instance.findUniqueOrThrow({ where: { id: 1 } }),
      this.db.proxyHost.findMany({ orderBy: { id: "asc" } }),
      this.db.l4ProxyHost.findMany({ orderBy: { id: "asc" } }),
      this.db.certificate.findMany({ orderBy: { id: "asc" } }),
      this.db.accessList.findMany({ orderBy: { id: "asc" } }),
      this.db.setting.findMany(),
    ]);
    const content = {
      proxyHosts: hosts.map((r) => ProxyHost.fromJSON(JSON.parse(r.data))),
      l4ProxyHosts: l4.map((r) => L4ProxyHost.fromJSON(JSON.parse(r.data))),
      certificates: certs.map((r) => Certificate.fromJSON(JSON.parse(r.data))),
      accessLists: acls.map((r) => AccessList.fromJSON(JSON.parse(r.data))),
      settings: settingsFromRows(settings),
    };
    const snapshot: Snapshot = {
      schemaVersion: SNAPSHOT_SCHEMA_VERSION,
      masterInstanceId: inst.masterInstanceId || inst.instanceId,
      version: inst.version,
      generatedAt: inst.versionCommittedAt,
      contentSha256: snapshotContentHash(content),
      ...content,
    };
    if (this.cached === undefined && key === String(this.revision)) this.cached = { key, snapshot };
    return snapshot;
  }

  /** Forget cached state (after the database may have changed behind this process). */
  invalidate(): void {
    this.revision++;
    this.cached = undefined;
  }
}

const encode = (x: unknown) => canonicalJson(x);

/** Which resources a snapshot adds, changes and removes compared with the current content. */
function difference<T extends { id: string }>(current: T[], next: T[]) {
  const before = new Map(current.map((x) => [x.id, encode(x)]));
  const keep = new Set(next.map((x) => x.id));
  return {
    removed: current.filter((x) => !keep.has(x.id)).map((x) => x.id),
    added: next.filter((x) => !before.has(x.id)),
    changed: next.filter((x) => before.has(x.id) && before.get(x.id) !== encode(x)),
  };
}

/** Writes only what differs; order respects references and unique domains. */
async function applyDifference(tx: Tx, current: Snapshot, s: Snapshot, now: Date): Promise<void> {
  const hosts = difference(current.proxyHosts, s.proxyHosts);
  const l4 = difference(current.l4ProxyHosts, s.l4ProxyHosts);
  const certs = difference(current.certificates, s.certificates);
  const acls = difference(current.accessLists, s.accessLists);
  // Hosts first (they reference certificates and access lists); freed domains before new ones.
  await tx.proxyHost.deleteMany({ where: { id: { in: hosts.removed } } });
  await tx.l4ProxyHost.deleteMany({ where: { id: { in: l4.removed } } });
  await tx.proxyHostDomain.deleteMany({ where: { proxyHostId: { in: hosts.changed.map((h) => h.id) } } });
  for (const c of certs.changed) await tx.certificate.update({ where: { id: c.id }, data: { ...certificateRow(c, now), id: undefined } });
  await tx.certificate.createMany({ data: certs.added.map((c) => certificateRow(c, now)) });
  for (const a of acls.changed) await tx.accessList.update({ where: { id: a.id }, data: { ...accessListRow(a, now), id: undefined } });
  await tx.accessList.createMany({ data: acls.added.map((a) => accessListRow(a, now)) });
  for (const h of hosts.changed) await tx.proxyHost.update({ where: { id: h.id }, data: { ...proxyHostRow(h, now), id: undefined } });
  await tx.proxyHost.createMany({ data: hosts.added.map((h) => proxyHostRow(h, now)) });
  await tx.proxyHostDomain.createMany({ data: [...hosts.changed, ...hosts.added].flatMap((h) => h.domains.map((domain) => ({ domain, proxyHostId: h.id }))) });
  for (const h of l4.changed) await tx.l4ProxyHost.update({ where: { id: h.id }, data: { ...l4Row(h, now), id: undefined } });
  await tx.l4ProxyHost.createMany({ data: l4.added.map((h) => l4Row(h, now)) });
  await tx.certificate.deleteMany({ where: { id: { in: certs.removed } } });
  await tx.accessList.deleteMany({ where: { id: { in: acls.removed } } });
  await writeSettings(tx, s.settings ?? { general: undefined, acme: undefined, http: undefined });
  await tx.instance.update({ where: { id: 1 }, data: { version: s.version, versionCommittedAt: now, masterInstanceId: s.masterInstanceId } });
}

async function replaceEveryRow(tx: Tx, s: Snapshot, now: Date): Promise<void> {
  await tx.proxyHostDomain.deleteMany({});
  await tx.proxyHost.deleteMany({});
  await tx.l4ProxyHost.deleteMany({});
  await tx.certificate.deleteMany({});
  await tx.accessList.deleteMany({});
  await tx.setting.deleteMany({});
  await tx.certificate.createMany({ data: s.certificates.map((c) => certificateRow(c, now)) });
  await tx.accessList.createMany({ data: s.accessLists.map((a) => accessListRow(a, now)) });
  await tx.proxyHost.createMany({ data: s.proxyHosts.map((h) => proxyHostRow(h, now)) });
  await tx.proxyHostDomain.createMany({ data: s.proxyHosts.flatMap((h) => h.domains.map((domain) => ({ domain, proxyHostId: h.id }))) });
  await tx.l4ProxyHost.createMany({ data: s.l4ProxyHosts.map((h) => l4Row(h, now)) });
  await writeSettings(tx, s.settings ?? { general: undefined, acme: undefined, http: undefined });
  await tx.instance.update({ where: { id: 1 }, data: { version: s.version, versionCommittedAt: now, masterInstanceId: s.masterInstanceId } });
}

export function proxyHostRow(h: ProxyHost, now: Date) {
  return {
    id: h.id,
    name: h.name,
    data: JSON.stringify(ProxyHost.toJSON(h)),
    certificateId: h.certificateId || null,
    accessListId: h.accessListId || null,
    createdAt: h.createdAt ?? now,
    updatedAt: h.updatedAt ?? now,
  };
}

export function l4Row(h: L4ProxyHost, now: Date) {
  return {
    id: h.id,
    name: h.name,
    data: JSON.stringify(L4ProxyHost.toJSON(h)),
    certificateId: h.certificateId || null,
    createdAt: h.createdAt ?? now,
    updatedAt: h.updatedAt ?? now,
  };
}

export function certificateRow(c: Certificate, now: Date) {
  return { id: c.id, name: c.name, data: JSON.stringify(Certificate.toJSON(c)), createdAt: c.createdAt ?? now, updatedAt: c.updatedAt ?? now };
}

export function accessListRow(a: AccessList, now: Date) {
  return { id: a.id, name: a.name, data: JSON.stringify(AccessList.toJSON(a)), createdAt: a.createdAt ?? now, updatedAt: a.updatedAt ?? now };
}

export function settingsFromRows(rows: { key: string; value: string }[]): Settings {
  const get = (k: string) => rows.find((r) => r.key === k)?.value;
  const general = get("general");
  const acme = get("acme");
  const http = get("http");
  return {
    general: GeneralSettings.fromJSON(general ? JSON.parse(general) : {}),
    acme: AcmeSettings.fromJSON(acme ? JSON.parse(acme) : {}),
    // Absent until first written, so a snapshot without it keeps its content hash on a slave.
    http: http ? HttpSettings.fromJSON(JSON.parse(http)) : undefined,
  };
}

export async function writeSettings(tx: Tx, s: Settings): Promise<void> {
  const rows = [
    { key: "general", value: JSON.stringify(GeneralSettings.toJSON(s.general ?? GeneralSettings.fromPartial({}))) },
    { key: "acme", value: JSON.stringify(AcmeSettings.toJSON(s.acme ?? AcmeSettings.fromPartial({}))) },
  ];
  for (const r of rows) await tx.setting.upsert({ where: { key: r.key }, create: r, update: { value: r.value } });
  if (s.http) {
    const r = { key: "http", value: JSON.stringify(HttpSettings.toJSON(s.http)) };
    await tx.setting.upsert({ where: { key: r.key }, create: r, update: { value: r.value } });
  } else {
    await tx.setting.deleteMany({ where: { key: "http" } });
  }
}
