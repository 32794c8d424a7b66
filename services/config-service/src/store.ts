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
import {
  contentDigests,
  RESOURCE_KINDS,
  resourceDigest,
  SNAPSHOT_SCHEMA_VERSION,
  type ContentDigests,
  type Logger,
  type ResourceKind,
} from "@cpm/core";
import { failSpan, traceCarrier, versionAttributes, withSpan, type TraceCarrier } from "@cpm/grpc-kit";
import { ChangeSet, ContentIndex, PendingContent, storedSettings, type ContentView } from "./content-index.ts";
import type { Db } from "./db.ts";
import { directConnection, directDataVersion } from "./sqlite-connection.ts";
import { MissingRowError, refusedByStoredRows, rowStatementsFor, type RowStatements } from "./row-statements.ts";
import { DeferredInserts, deferringTx } from "./deferred-inserts.ts";

/** Resolves after the event loop has run the I/O callbacks that were ready (setImmediate). */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A transaction client: what write callbacks get. */
export type Tx = Parameters<Parameters<Db["$transaction"]>[0]>[0];

/** One write's work inside its transaction (see ConfigStore.write). */
export type WriteFn<T> = (tx: Tx, now: Date, changes: ChangeSet, current: ContentView | undefined) => Promise<T>;

interface QueuedWrite<T> {
  fn: WriteFn<T>;
  resolve: (r: { result: T; version: number }) => void;
  reject: (err: unknown) => void;
}

export interface Commit {
  version: number;
  committedAt: Date;
  contentSha256: string;
  /** Trace context of the span that committed this version (undefined when tracing is off). */
  traceContext: TraceCarrier | undefined;
  /** How many writes this commit holds (a group commit: several, the last one's version); 1 otherwise. */
  writes: number;
}

export interface InstanceInfo {
  instanceId: string;
  version: number;
  committedAt: Date;
  masterInstanceId: string;
}

export interface StoreOptions {
  /** SQLite lets the store notice a commit by another connection cheaply (PRAGMA data_version). */
  dialect?: "sqlite" | "postgresql";
}

interface Loaded {
  index: ContentIndex;
  info: InstanceInfo;
  /** SQLite's data_version when the rows were read (undefined on PostgreSQL). */
  dataVersion: bigint | number | undefined;
}

/**
 * The versioned configuration store. Every write runs in one transaction that bumps the
 * persisted version exactly once; writes are serialized so versions commit in order; after
 * each commit, watchers hear the new version and its content hash.
 *
 * The synced content is kept in memory (ContentIndex): read from the database at first use
 * and after invalidate(), then updated by each write with what it changed, so a write costs
 * the size of its change, not of the configuration. The full Snapshot message is built only
 * when asked for, once per commit.
 */
export class ConfigStore {
  private readonly events = new EventEmitter();
  private queue: Promise<unknown> = Promise.resolve();
  private cached: { revision: number; snapshot: Snapshot } | undefined;
  /** Moves on every commit and invalidation; a load that saw it move reads again. */
  private revision = 0;
  private loaded: Loaded | undefined;
  private loading: Promise<Loaded> | undefined;
  readonly dialect: "sqlite" | "postgresql";
  private lastCommit: Commit | undefined;
  /** Writes waiting for the one committing now (SQLite group commit). */
  private waiting: QueuedWrite<unknown>[] = [];
  private reads = 0;

  constructor(
    readonly db: Db,
    private readonly log: Logger,
    opts: StoreOptions = {},
  ) {
    this.events.setMaxListeners(0);
    this.dialect = opts.dialect ?? "sqlite";
  }

  /** Creates the instance row on first start; returns who this instance is. */
  async init(): Promise<InstanceInfo> {
    const existing = await this.db.instance.findUnique({ where: { id: 1 } });
    if (!existing) {
      await this.db.instance.create({
        data: { id: 1, instanceId: randomUUID(), version: 0, versionCommittedAt: new Date() },
      });
    }
    return this.info();
  }

  async info(): Promise<InstanceInfo> {
    const row = await this.db.instance.findUniqueOrThrow({ where: { id: 1 } });
    return {
      instanceId: row.instanceId,
      version: row.version,
      committedAt: row.versionCommittedAt,
      masterInstanceId: row.masterInstanceId,
    };
  }

  /** Runs `fn` after every earlier write has finished (one writer at a time). */
  serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * One committed write: `fn` runs in a transaction, then the version is bumped once.
   * `fn` records in `changes` every synced resource it creates, replaces or deletes (and
   * settings it writes); they reach the in-memory content once the transaction has committed.
   * Nothing is written when `fn` throws. On SQLite `fn` also gets the current content
   * (`current`, read again first when another connection has committed), so it can check
   * names and references in memory instead of querying; on PostgreSQL it is undefined.
   *
   * Group commit (SQLite): writes that arrive while another is committing wait, then commit
   * together in one transaction, each on its own version, each seeing the ones before it
   * (PendingContent); watchers hear the group's last version. When any of them throws, the
   * group is rolled back and each write runs again alone, so one refused write never takes
   * others with it and each gets exactly the answer it would get alone.
   */
  write<T>(fn: WriteFn<T>): Promise<{ result: T; version: number }> {
    if (this.dialect !== "sqlite") return this.serialize(() => this.writeAlone(fn));
    return new Promise((resolve, reject) => {
      this.waiting.push({ fn, resolve, reject } as QueuedWrite<unknown>);
      // The group starts one turn of the event loop later, so the calls whose requests were read
      // meanwhile join it: better-sqlite3 is synchronous and a commit never yields to the
      // network by itself, so without this turn every group would hold one write.
      if (this.waiting.length === 1) void this.serialize(() => nextTurn().then(() => this.commitWaiting()));
    });
  }

  /** Commits every write waiting now: alone when it is the only one, else as one group. */
  private async commitWaiting(): Promise<void> {
    const group = this.waiting.splice(0);
    if (group.length === 1) {
      const w = group[0]!;
      await this.writeAlone(w.fn).then(w.resolve, w.reject);
      return;
    }
    let outcome: Awaited<ReturnType<typeof this.commit>>;
    try {
      outcome = await this.commit(group.map((w) => w.fn));
    } catch (err) {
      // Not a refused write: the database or a watcher failed; every write of the group hears it.
      for (const w of group) w.reject(err);
      return;
    }
    if (outcome.committed) {
      outcome.results.forEach((r, i) => group[i]!.resolve(r));
      return;
    }
    // Nothing of the group was written: each write runs alone, in the order it came.
    for (const w of group) await this.writeAlone(w.fn).then(w.resolve, w.reject);
  }

  private async writeAlone<T>(fn: WriteFn<T>): Promise<{ result: T; version: number }> {
    const outcome = await this.commit([fn]);
    if (!outcome.committed) throw outcome.error;
    return outcome.results[0] as { result: T; version: number };
  }

  /**
   * `fns` in one transaction, each on its own version, each seeing the changes of the ones
   * before it. `committed: false` with the error when any of them threw (or the transaction
   * failed): then nothing was written. A failure after the commit (a watcher's) is thrown,
   * never taken for a rollback.
   */
  private commit(
    fns: WriteFn<unknown>[],
  ): Promise<
    { committed: true; results: { result: unknown; version: number }[] } | { committed: false; error: unknown }
  > {
    return withSpan("config.commit", { attributes: { "cpm.commit.writes": fns.length } }, async (span) => {
      const now = new Date();
      const index = await this.freshIndex();
      const current = index && (fns.length > 1 ? new PendingContent(index) : index);
      const sets: ChangeSet[] = [];
      let error: unknown;
      const done = await this.db
        .$transaction(async (tx) => {
          const results: unknown[] = [];
          const rows = this.rowStatements(tx);
          // New rows from every write of the group go in together at the end (one statement per table).
          const deferred = new DeferredInserts(rows);
          const writeTx = deferringTx(tx, deferred);
          for (const fn of fns) {
            const changes = new ChangeSet();
            results.push(await fn(writeTx, now, changes, current));
            if (current instanceof PendingContent) current.add(changes);
            sets.push(changes);
          }
          await deferred.flush();
          const row = await rows.bumpVersion(fns.length, now);
          return { results, row };
        })
        .catch((err: unknown) => void (error = err));
      if (!done) {
        failSpan(span, error);
        return { committed: false as const, error };
      }
      const { results, row } = done;
      await this.committed(sets, row);
      span.setAttributes(versionAttributes(row.version, this.lastCommit?.contentSha256 ?? ""));
      const first = row.version - fns.length + 1;
      return { committed: true as const, results: results.map((result, i) => ({ result, version: first + i })) };
    });
  }

  /** After a commit: the in-memory content takes `sets` in order, and watchers hear the new version. */
  private async committed(
    sets: ChangeSet[],
    row: { instanceId: string; version: number; versionCommittedAt: Date; masterInstanceId: string },
  ): Promise<void> {
    this.revision++;
    const l = this.loaded;
    if (l) {
      for (const changes of sets) changes.applyTo(l.index);
      l.info = {
        instanceId: row.instanceId,
        version: row.version,
        committedAt: row.versionCommittedAt,
        masterInstanceId: row.masterInstanceId,
      };
      this.emitCommit({
        version: row.version,
        committedAt: row.versionCommittedAt,
        contentSha256: l.index.contentSha256(),
        writes: sets.length,
      });
    } else {
      const s = await this.snapshot();
      this.emitCommit({
        version: s.version,
        committedAt: s.generatedAt ?? row.versionCommittedAt,
        contentSha256: s.contentSha256,
        writes: sets.length,
      });
    }
  }

  /**
   * Replaces the whole synced content with a snapshot's, at the snapshot's version (slave
   * apply), in one transaction. Caller serializes. Only rows that differ from the current
   * content are written, so a one-host change to a 1,000-host configuration is a few
   * statements; when the difference cannot be applied in place (a stale cache, names swapped
   * between two resources), everything is replaced instead.
   */
  async replaceAll(s: Snapshot, digests?: ContentDigests): Promise<void> {
    const now = new Date();
    const index = (await this.freshIndex()) ?? (await this.load()).index;
    const d = digests ?? contentDigests(s);
    const diff: Difference = {
      proxyHosts: difference(index, "proxyHosts", s.proxyHosts, d.proxyHosts),
      l4ProxyHosts: difference(index, "l4ProxyHosts", s.l4ProxyHosts, d.l4ProxyHosts),
      certificates: difference(index, "certificates", s.certificates, d.certificates),
      accessLists: difference(index, "accessLists", s.accessLists, d.accessLists),
      settings: resourceDigest(storedSettings(s.settings)) !== index.settingsDigestOf(),
    };
    try {
      await this.db.$transaction((tx) => applyDifference(tx, this.rowStatements(tx), diff, s, now));
    } catch (err) {
      if (!refusedByStoredRows(err)) throw err;
      const code = (err as { code?: string }).code;
      this.log.debug({ code }, "in-place apply not possible; replacing every row");
      await this.db.$transaction((tx) => replaceEveryRow(tx, s, now));
    }
    this.revision++;
    // The stored rows are the snapshot's resources: the index takes what changed.
    const l = this.loaded ?? (await this.load());
    if (l.index === index) {
      for (const kind of RESOURCE_KINDS) {
        for (const id of diff[kind].removed) index.remove(kind, id);
        for (const x of [...diff[kind].changed, ...diff[kind].added]) index.put(kind, x);
      }
      if (diff.settings) index.setSettings(s.settings);
    }
    if (l.index.contentSha256() !== s.contentSha256) {
      this.log.debug({ version: s.version }, "index rebuilt from the applied snapshot");
      l.index = ContentIndex.of(s);
    }
    l.info = { ...l.info, version: s.version, committedAt: now, masterInstanceId: s.masterInstanceId };
    this.emitCommit({ version: s.version, committedAt: now, contentSha256: l.index.contentSha256(), writes: 1 });
  }

  /**
   * How `tx` writes the hot rows (row-statements.ts): by statements prepared on SQLite's own
   * connection when it is at hand, through Prisma otherwise (PostgreSQL).
   */
  private rowStatements(tx: Tx): RowStatements {
    return rowStatementsFor(tx, this.dialect === "sqlite" ? directConnection(this.db) : undefined);
  }

  private emitCommit(c: Omit<Commit, "traceContext">): void {
    // The active span is the one that committed: watchers carry its context with the version.
    const commit: Commit = { ...c, traceContext: traceCarrier() };
    this.lastCommit = commit;
    this.log.debug({ version: commit.version }, "committed");
    this.events.emit("commit", commit);
  }

  /** The trace context of the commit that produced `version` in this process; undefined when unknown. */
  traceContextOf(version: number, contentSha256: string): TraceCarrier | undefined {
    const c = this.lastCommit;
    return c && c.version === version && c.contentSha256 === contentSha256 ? c.traceContext : undefined;
  }

  onCommit(listener: (c: Commit) => void): () => void {
    this.events.on("commit", listener);
    return () => this.events.off("commit", listener);
  }

  /**
   * Who this instance is, its version and master, and the content hash: from memory when the
   * content is loaded and nobody committed behind this process since (SQLite's data_version);
   * read from the database otherwise (always on PostgreSQL). Every commit and apply of this
   * store updates the in-memory info with the row it wrote.
   */
  async state(): Promise<{ info: InstanceInfo; contentSha256: string }> {
    await this.invalidateIfChangedElsewhere();
    const l = await this.load();
    return { info: l.info, contentSha256: l.index.contentSha256() };
  }

  /** The content hash of the current configuration (no snapshot is built). */
  async contentSha256(): Promise<string> {
    return (await this.load()).index.contentSha256();
  }

  /** The full synced configuration at the current version, built once per commit. */
  async snapshot(): Promise<Snapshot> {
    for (;;) {
      const revision = this.revision;
      const { index, info } = await this.load();
      if (revision !== this.revision) continue;
      if (this.cached?.revision === revision) return this.cached.snapshot;
      const snapshot: Snapshot = {
        schemaVersion: SNAPSHOT_SCHEMA_VERSION,
        masterInstanceId: info.masterInstanceId || info.instanceId,
        version: info.version,
        generatedAt: info.committedAt,
        contentSha256: index.contentSha256(),
        ...index.content(),
      };
      this.cached = { revision, snapshot };
      return snapshot;
    }
  }

  /**
   * How many times the content was read from the database. Content that changed since only
   * through this store's writes (each one validated against the whole content before it
   * commits) needs no second check; content read again may hold changes made elsewhere.
   */
  get databaseReads(): number {
    return this.reads;
  }

  /** Forget the in-memory content (the database may have changed behind this process). */
  invalidate(): void {
    this.revision++;
    this.cached = undefined;
    this.loaded = undefined;
    this.loading = undefined;
  }

  /**
   * Reads the content again when another connection has committed to the database since it
   * was read (SQLite: PRAGMA data_version, one cheap query); on PostgreSQL, always.
   */
  async invalidateIfChangedElsewhere(): Promise<void> {
    const l = this.loaded;
    if (!l || l.dataVersion === undefined || (await this.dataVersion()) !== l.dataVersion) this.invalidate();
  }

  /** SQLite: the in-memory content, known to match the database. PostgreSQL: undefined (no cheap check). */
  private async freshIndex(): Promise<ContentIndex | undefined> {
    if (this.dialect !== "sqlite") return undefined;
    await this.invalidateIfChangedElsewhere();
    return (await this.load()).index;
  }

  private async dataVersion(): Promise<bigint | number | undefined> {
    return this.dialect === "sqlite" ? sqliteDataVersion(this.db) : undefined;
  }

  /** The in-memory content, read from the database when missing; a read raced by a commit is read again. */
  private async load(): Promise<Loaded> {
    for (;;) {
      if (this.loaded) return this.loaded;
      const revision = this.revision;
      this.loading ??= this.readAll();
      const loading = this.loading;
      const l = await loading;
      if (this.loading === loading) this.loading = undefined;
      if (revision === this.revision) {
        this.loaded = l;
        this.reads++;
        return l;
      }
    }
  }

  private async readAll(): Promise<Loaded> {
    // Read before the rows: a commit elsewhere in between is then seen as a change later, never missed.
    const dataVersion = await this.dataVersion();
    const [inst, hosts, l4, certs, acls, settings] = await this.db.$transaction([
      this.db.instance.findUniqueOrThrow({ where: { id: 1 } }),
      this.db.proxyHost.findMany({ orderBy: { id: "asc" } }),
      this.db.l4ProxyHost.findMany({ orderBy: { id: "asc" } }),
      this.db.certificate.findMany({ orderBy: { id: "asc" } }),
      this.db.accessList.findMany({ orderBy: { id: "asc" } }),
      this.db.setting.findMany(),
    ]);
    const index = ContentIndex.of({
      proxyHosts: hosts.map((r) => ProxyHost.fromJSON(JSON.parse(r.data))),
      l4ProxyHosts: l4.map((r) => L4ProxyHost.fromJSON(JSON.parse(r.data))),
      certificates: certs.map((r) => Certificate.fromJSON(JSON.parse(r.data))),
      accessLists: acls.map((r) => AccessList.fromJSON(JSON.parse(r.data))),
      settings: settingsFromRows(settings),
    });
    const info = {
      instanceId: inst.instanceId,
      version: inst.version,
      committedAt: inst.versionCommittedAt,
      masterInstanceId: inst.masterInstanceId,
    };
    return { index, info, dataVersion };
  }
}

/**
 * SQLite's `PRAGMA data_version` of `db`'s connection: it changes when another connection has
 * committed to the database file (not on this connection's own commits). Asked of Prisma's
 * connection directly when openDatabase kept it (microseconds), through Prisma otherwise.
 */
export async function sqliteDataVersion(db: Db): Promise<bigint | number | undefined> {
  const direct = directDataVersion(db);
  if (direct !== undefined) return direct;
  const rows = await db.$queryRawUnsafe<{ data_version: bigint | number }[]>("PRAGMA data_version");
  return rows[0]?.data_version;
}

type KindDifference<T> = { removed: string[]; added: T[]; changed: T[] };

/** What a slave's apply writes: per kind, the resources removed, added and changed; whether the settings changed. */
type Difference = { [K in ResourceKind]: KindDifference<Snapshot[K][number]> } & { settings: boolean };

/** Which resources a snapshot adds, changes and removes compared with the current content, by digest. */
function difference<T extends { id: string }>(
  current: ContentIndex,
  kind: ResourceKind,
  next: T[],
  digests: ReadonlyMap<string, string>,
): KindDifference<T> {
  const added: T[] = [];
  const changed: T[] = [];
  for (const x of next) {
    const before = current.digest(kind, x.id);
    if (before === undefined) added.push(x);
    else if (before !== digests.get(x.id)) changed.push(x);
  }
  // The snapshot's ids are unique (it was validated): when as many of them are known as there
  // are current ids, every current id is among them and none is removed.
  const ids = current.ids(kind);
  if (next.length - added.length === ids.length) return { removed: [], added, changed };
  const keep = new Set(next.map((x) => x.id));
  return { removed: ids.filter((id) => !keep.has(id)), added, changed };
}

/**
 * Writes only what differs (no statement for an empty list); order respects references and
 * unique domains. Proxy host rows and the version go through `rows`, the rest through Prisma.
 */
async function applyDifference(tx: Tx, rows: RowStatements, diff: Difference, s: Snapshot, now: Date): Promise<void> {
  const { proxyHosts: hosts, l4ProxyHosts: l4, certificates: certs, accessLists: acls } = diff;
  // Hosts first (they reference certificates and access lists); freed domains before new ones.
  if (hosts.removed.length) await rows.deleteProxyHosts(hosts.removed);
  if (l4.removed.length) await tx.l4ProxyHost.deleteMany({ where: { id: { in: l4.removed } } });
  if (hosts.changed.length) await rows.deleteDomainsOf(hosts.changed.map((h) => h.id));
  for (const c of certs.changed)
    await tx.certificate.update({ where: { id: c.id }, data: { ...certificateRow(c, now), id: undefined } });
  if (certs.added.length) await tx.certificate.createMany({ data: certs.added.map((c) => certificateRow(c, now)) });
  for (const a of acls.changed)
    await tx.accessList.update({ where: { id: a.id }, data: { ...accessListRow(a, now), id: undefined } });
  if (acls.added.length) await tx.accessList.createMany({ data: acls.added.map((a) => accessListRow(a, now)) });
  for (const h of hosts.changed)
    if ((await rows.updateProxyHost(proxyHostRow(h, now))) !== 1) throw new MissingRowError("ProxyHost", h.id);
  if (hosts.added.length)
    await rows.insert(
      "proxyHost",
      hosts.added.map((h) => proxyHostRow(h, now)),
    );
  const domains = [...hosts.changed, ...hosts.added].flatMap((h) =>
    h.domains.map((domain) => ({ domain, proxyHostId: h.id })),
  );
  if (domains.length) await rows.insert("proxyHostDomain", domains);
  for (const h of l4.changed)
    await tx.l4ProxyHost.update({ where: { id: h.id }, data: { ...l4Row(h, now), id: undefined } });
  if (l4.added.length) await tx.l4ProxyHost.createMany({ data: l4.added.map((h) => l4Row(h, now)) });
  if (certs.removed.length) await tx.certificate.deleteMany({ where: { id: { in: certs.removed } } });
  if (acls.removed.length) await tx.accessList.deleteMany({ where: { id: { in: acls.removed } } });
  if (diff.settings) await writeSettings(tx, s.settings ?? { general: undefined, acme: undefined, http: undefined });
  await rows.setVersion(s.version, now, s.masterInstanceId);
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
  await tx.proxyHostDomain.createMany({
    data: s.proxyHosts.flatMap((h) => h.domains.map((domain) => ({ domain, proxyHostId: h.id }))),
  });
  await tx.l4ProxyHost.createMany({ data: s.l4ProxyHosts.map((h) => l4Row(h, now)) });
  await writeSettings(tx, s.settings ?? { general: undefined, acme: undefined, http: undefined });
  await tx.instance.update({
    where: { id: 1 },
    data: { version: s.version, versionCommittedAt: now, masterInstanceId: s.masterInstanceId },
  });
}

export function proxyHostRow(h: ProxyHost, now: Date) {
  return {
    id: h.id,
    name: h.name,
    data: JSON.stringify(ProxyHost.toJSON(h)),
    certificateId: h.certificateId || null,
    accessListId: h.accessListId || null,
    compression: h.compression,
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
  return {
    id: c.id,
    name: c.name,
    data: JSON.stringify(Certificate.toJSON(c)),
    createdAt: c.createdAt ?? now,
    updatedAt: c.updatedAt ?? now,
  };
}

export function accessListRow(a: AccessList, now: Date) {
  return {
    id: a.id,
    name: a.name,
    data: JSON.stringify(AccessList.toJSON(a)),
    createdAt: a.createdAt ?? now,
    updatedAt: a.updatedAt ?? now,
  };
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
