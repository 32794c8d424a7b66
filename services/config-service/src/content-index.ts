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
  chunkDigest,
  compareCodeUnits,
  contentHashOfChunks,
  digestLine,
  endsChunk,
  RESOURCE_KINDS,
  resourceDigest,
  sortedIndex,
  type ResourceKind,
} from "@cpm/core";

/** The synced content of a snapshot: what the index holds. */
export type Content = Pick<Snapshot, ResourceKind | "settings">;

interface ResourceOf {
  proxyHosts: ProxyHost;
  l4ProxyHosts: L4ProxyHost;
  certificates: Certificate;
  accessLists: AccessList;
}

interface Codec<T> {
  toJSON(x: T): unknown;
  fromJSON(x: unknown): T;
}

const CODECS: { [K in ResourceKind]: Codec<ResourceOf[K]> } = {
  proxyHosts: ProxyHost,
  l4ProxyHosts: L4ProxyHost,
  certificates: Certificate,
  accessLists: AccessList,
};

/**
 * A resource exactly as it reads back from its stored row (`fromJSON(JSON.parse(data))`,
 * data being `JSON.stringify(toJSON(x))`), so the index never differs from a fresh read.
 */
function asStored<K extends ResourceKind>(kind: K, x: ResourceOf[K]): ResourceOf[K] {
  const codec = CODECS[kind];
  return codec.fromJSON(JSON.parse(JSON.stringify(codec.toJSON(x))));
}

/** Settings exactly as they read back from their rows (see writeSettings / settingsFromRows). */
export function storedSettings(s: Settings | undefined): Settings {
  const roundTrip = <T>(codec: Codec<T>, x: T) => codec.fromJSON(JSON.parse(JSON.stringify(codec.toJSON(x))));
  return {
    general: roundTrip(GeneralSettings, s?.general ?? GeneralSettings.fromPartial({})),
    acme: roundTrip(AcmeSettings, s?.acme ?? AcmeSettings.fromPartial({})),
    // Absent until first written, so a snapshot without it keeps its content hash on a slave.
    http: s?.http ? roundTrip(HttpSettings, s.http) : undefined,
  };
}

/** The cache key of the last chunk of a kind when no resource ends it (see endsChunk). */
const TAIL = Symbol("tail");

/**
 * One kind's resources with what the content hash needs of them, kept up to date one
 * resource at a time: each resource's line, the ids in order, the ids that end a chunk
 * (endsChunk) in order, and each chunk's digest until a write touches that chunk.
 */
class KindIndex<T extends { id: string }> {
  readonly values = new Map<string, T>();
  readonly digests = new Map<string, string>();
  /** Each resource's line in the content hash's input (digestLine). */
  private readonly lines = new Map<string, string>();
  private order: string[] | undefined;
  /** The ids whose digest ends a chunk, sorted. */
  private readonly ends: string[] = [];
  /** Chunk digests by the id that ends the chunk (TAIL for the chunk after the last such id). */
  private readonly chunks = new Map<string | typeof TAIL, string>();

  put(x: T): void {
    const before = this.digests.get(x.id);
    this.forgetChunkOf(x.id);
    if (before === undefined && this.order) this.order.splice(sortedIndex(this.order, x.id), 0, x.id);
    this.values.set(x.id, x);
    const digest = resourceDigest(x);
    this.digests.set(x.id, digest);
    this.lines.set(x.id, digestLine(x.id, digest));
    this.setEnd(x.id, before !== undefined && endsChunk(before), endsChunk(digest));
    this.forgetChunkOf(x.id);
  }

  remove(id: string): void {
    const before = this.digests.get(id);
    if (before === undefined) return;
    this.forgetChunkOf(id);
    this.values.delete(id);
    if (this.order) this.order.splice(sortedIndex(this.order, id), 1);
    this.digests.delete(id);
    this.lines.delete(id);
    this.setEnd(id, endsChunk(before), false);
    this.forgetChunkOf(id);
  }

  private setEnd(id: string, was: boolean, is: boolean): void {
    if (was === is) return;
    const i = sortedIndex(this.ends, id);
    if (is) this.ends.splice(i, 0, id);
    else this.ends.splice(i, 1);
  }

  /**
   * Forgets the digest of the chunk holding `id` (or where it would go). Called before a change
   * and after it: when `id` starts ending a chunk, the chunk it was in before is the one after
   * it now; when it stops, the chunk after it is the one holding it now; so every chunk whose
   * lines change is forgotten.
   */
  private forgetChunkOf(id: string): void {
    this.chunks.delete(this.ends[sortedIndex(this.ends, id)] ?? TAIL);
  }

  /** The kind's chunk digests in id order; only chunks a write touched are hashed again. */
  chunkDigests(): string[] {
    const order = this.ids();
    const out: string[] = [];
    let from = 0;
    const chunk = (key: string | typeof TAIL, to: number) => {
      let d = this.chunks.get(key);
      if (d === undefined) {
        let lines = "";
        for (let j = from; j < to; j++) lines += this.lines.get(order[j]!)!;
        d = chunkDigest(lines);
        this.chunks.set(key, d);
      }
      out.push(d);
      from = to;
    };
    for (const end of this.ends) chunk(end, sortedIndex(order, end) + 1);
    if (from < order.length) chunk(TAIL, order.length);
    return out;
  }

  /** Ids sorted as the content hash and the snapshot list them; sorted once, then kept in order. */
  ids(): readonly string[] {
    this.order ??= [...this.values.keys()].sort(compareCodeUnits);
    return this.order;
  }

  list(): T[] {
    return this.ids().map((id) => this.values.get(id)!);
  }
}

/** What a write may ask about the current content (checks in memory instead of queries). */
export interface ContentView {
  get<K extends ResourceKind>(kind: K, id: string): ResourceOf[K] | undefined;
  proxyHostNamed(name: string): ProxyHost | undefined;
  proxyHostServing(domain: string): ProxyHost | undefined;
}

/**
 * The synced configuration in memory: every resource as stored, its digest, and the content
 * hash over them (libs/core contentHashOfDigests). A write updates it one resource at a time;
 * the content hash is recomputed from the kept chunk digests (contentHashOfChunks): only the
 * chunks holding a changed resource are hashed again, from the resources' kept lines, and the
 * hash is cached until the next change.
 */
export class ContentIndex implements ContentView {
  private readonly kinds: { [K in ResourceKind]: KindIndex<ResourceOf[K]> } = {
    proxyHosts: new KindIndex(),
    l4ProxyHosts: new KindIndex(),
    certificates: new KindIndex(),
    accessLists: new KindIndex(),
  };
  /** Proxy host name -> id, and domain -> id of the proxy host serving it (the database's unique keys). */
  private readonly hostNames = new Map<string, string>();
  private readonly hostDomains = new Map<string, string>();
  private settingsValue: Settings = storedSettings(undefined);
  private settingsDigest = resourceDigest(this.settingsValue);
  private hash: string | undefined;

  /** An index holding `c` (resources are taken as they read back from the database). */
  static of(c: Content): ContentIndex {
    const idx = new ContentIndex();
    for (const kind of RESOURCE_KINDS) for (const x of c[kind]) idx.put(kind, x);
    idx.setSettings(c.settings);
    return idx;
  }

  put<K extends ResourceKind>(kind: K, x: ResourceOf[K]): void {
    if (kind === "proxyHosts") this.unindexHost(x.id);
    const stored = asStored(kind, x);
    (this.kinds[kind] as KindIndex<ResourceOf[K]>).put(stored);
    if (kind === "proxyHosts") {
      const h = stored as ProxyHost;
      this.hostNames.set(h.name, h.id);
      for (const d of h.domains) this.hostDomains.set(d, h.id);
    }
    this.hash = undefined;
  }

  remove(kind: ResourceKind, id: string): void {
    if (kind === "proxyHosts") this.unindexHost(id);
    this.kinds[kind].remove(id);
    this.hash = undefined;
  }

  private unindexHost(id: string): void {
    const h = this.kinds.proxyHosts.values.get(id);
    if (!h) return;
    if (this.hostNames.get(h.name) === id) this.hostNames.delete(h.name);
    for (const d of h.domains) if (this.hostDomains.get(d) === id) this.hostDomains.delete(d);
  }

  /** The stored resource of `kind` with this id. */
  get<K extends ResourceKind>(kind: K, id: string): ResourceOf[K] | undefined {
    return (this.kinds[kind] as KindIndex<ResourceOf[K]>).values.get(id);
  }

  /** The proxy host named `name`. */
  proxyHostNamed(name: string): ProxyHost | undefined {
    const id = this.hostNames.get(name);
    return id === undefined ? undefined : this.kinds.proxyHosts.values.get(id);
  }

  /** The proxy host serving `domain`. */
  proxyHostServing(domain: string): ProxyHost | undefined {
    const id = this.hostDomains.get(domain);
    return id === undefined ? undefined : this.kinds.proxyHosts.values.get(id);
  }

  /** The digest of the stored resource of `kind` with this id; undefined when there is none. */
  digest(kind: ResourceKind, id: string): string | undefined {
    return this.kinds[kind].digests.get(id);
  }

  /** The ids of `kind`, sorted. */
  ids(kind: ResourceKind): readonly string[] {
    return this.kinds[kind].ids();
  }

  /** The digest of the settings as stored. */
  settingsDigestOf(): string {
    return this.settingsDigest;
  }

  setSettings(s: Settings | undefined): void {
    this.settingsValue = storedSettings(s);
    this.settingsDigest = resourceDigest(this.settingsValue);
    this.hash = undefined;
  }

  contentSha256(): string {
    const k = this.kinds;
    this.hash ??= contentHashOfChunks(
      {
        proxyHosts: k.proxyHosts.chunkDigests(),
        l4ProxyHosts: k.l4ProxyHosts.chunkDigests(),
        certificates: k.certificates.chunkDigests(),
        accessLists: k.accessLists.chunkDigests(),
      },
      this.settingsDigest,
    );
    return this.hash;
  }

  /** The content as snapshot lists, each ordered by id. */
  content(): Content {
    return {
      proxyHosts: this.kinds.proxyHosts.list(),
      l4ProxyHosts: this.kinds.l4ProxyHosts.list(),
      certificates: this.kinds.certificates.list(),
      accessLists: this.kinds.accessLists.list(),
      settings: this.settingsValue,
    };
  }
}

/** Per kind, the last change to each id: the resource, or null when it was removed. */
type Touched = { [K in ResourceKind]: Map<string, ResourceOf[K] | null> };

const noneTouched = (): Touched => ({
  proxyHosts: new Map(),
  l4ProxyHosts: new Map(),
  certificates: new Map(),
  accessLists: new Map(),
});

/**
 * What one write changes in the index; applied only once its transaction has committed. The
 * last change per id is what counts: the index's lookups (names, domains) come out the same in
 * any order of ids.
 */
export class ChangeSet {
  readonly touched = noneTouched();
  private settingsValue: Settings | undefined;

  /** A created or replaced resource. */
  put<K extends ResourceKind>(kind: K, x: ResourceOf[K]): void {
    (this.touched[kind] as Map<string, ResourceOf[K] | null>).set(x.id, x);
  }

  remove(kind: ResourceKind, id: string): void {
    this.touched[kind].set(id, null);
  }

  settings(s: Settings): void {
    this.settingsValue = s;
  }

  applyTo(idx: ContentIndex): void {
    for (const kind of RESOURCE_KINDS) {
      for (const [id, x] of this.touched[kind]) {
        if (x) idx.put(kind, x);
        else idx.remove(kind, id);
      }
    }
    if (this.settingsValue) idx.setSettings(this.settingsValue);
  }
}

/**
 * The content as the next write of a group commit sees it: `base` (the committed index) with
 * the changes of the writes before it in the same transaction, which `base` does not hold yet.
 */
export class PendingContent implements ContentView {
  private readonly touched = noneTouched();

  constructor(private readonly base: ContentIndex) {}

  /** The next write sees `changes` too, each resource as it will read back once stored. */
  add(changes: ChangeSet): void {
    for (const kind of RESOURCE_KINDS) {
      for (const [id, x] of changes.touched[kind])
        (this.touched[kind] as Map<string, unknown>).set(id, x && asStored(kind, x as never));
    }
  }

  get<K extends ResourceKind>(kind: K, id: string): ResourceOf[K] | undefined {
    const t = this.touched[kind] as Map<string, ResourceOf[K] | null>;
    return t.has(id) ? (t.get(id) ?? undefined) : this.base.get(kind, id);
  }

  proxyHostNamed(name: string): ProxyHost | undefined {
    return this.hostWhere((h) => h.name === name, this.base.proxyHostNamed(name));
  }

  proxyHostServing(domain: string): ProxyHost | undefined {
    return this.hostWhere((h) => h.domains.includes(domain), this.base.proxyHostServing(domain));
  }

  /** A pending host that matches, else `committed` unless a pending change replaced or removed it. */
  private hostWhere(matches: (h: ProxyHost) => boolean, committed: ProxyHost | undefined): ProxyHost | undefined {
    for (const h of this.touched.proxyHosts.values()) if (h && matches(h)) return h;
    return committed && !this.touched.proxyHosts.has(committed.id) ? committed : undefined;
  }
}
