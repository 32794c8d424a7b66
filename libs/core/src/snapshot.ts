import type { Snapshot } from "@cpm/proto";
import { canonicalJson, sha256Hex } from "./canonical.ts";
import { compareCodeUnits, sameItems, sortedIndex } from "./lists.ts";
import { PatchedMap } from "./patched-map.ts";
import { ValidationError } from "./errors.ts";
import { normalizeProxyHost as normalizeProxyHostOnce } from "./validation.ts";
import { normalizeAccessList as normalizeAccessListOnce } from "./access-lists.ts";
import { normalizeCertificate as normalizeCertificateOnce } from "./certificates.ts";
import { l4ListenerConflict, normalizeL4ProxyHost as normalizeL4ProxyHostOnce } from "./l4.ts";
import { normalizeSettings } from "./settings.ts";
import { capabilitiesBeyondSchema } from "./capabilities.ts";

/**
 * The snapshot format this build writes. 2: the content hash is taken over chunk digests
 * (contentHashOfDigests); a build that reads 1 refuses 2 by this number, and back. 3: proxy
 * hosts may carry `compression` (release 0.2.0). A feature a schema cannot carry is left at its
 * default in that schema, so the content hash of a configuration that does not use it is the
 * same in both: a master sends an older slave the older schema (see compat.ts).
 */
export const SNAPSHOT_SCHEMA_VERSION = 3;

/** The snapshot formats this build reads, oldest first: its own and the previous release's. */
export const READABLE_SCHEMA_VERSIONS: readonly number[] = [2, SNAPSHOT_SCHEMA_VERSION];

type Content = Pick<Snapshot, "proxyHosts" | "l4ProxyHosts" | "certificates" | "accessLists" | "settings">;

/** The resource lists of a snapshot, in the order the content hash covers them. */
export const RESOURCE_KINDS = ["proxyHosts", "l4ProxyHosts", "certificates", "accessLists"] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

/**
 * Fields added to a resource after release 0.1.0, with the value that leaves them out of the
 * resource's digest: a resource that does not use them (`compression: false`) hashes as 0.1.0
 * hashes it, so master and slave of adjacent releases agree on the content hash of a
 * configuration that only uses what both know. A field added later joins this table.
 */
const LATER_FIELDS_OFF: readonly (readonly [field: string, off: unknown])[] = [["compression", false]];

/** Hex sha256 of one resource (or of the settings): its canonical JSON, less the later fields that are off. */
export function resourceDigest(resource: unknown): string {
  return sha256Hex(canonicalJson(withoutLaterFieldsOff(resource ?? null)));
}

function withoutLaterFieldsOff(resource: unknown): unknown {
  if (resource === null || typeof resource !== "object") return resource;
  let out: Record<string, unknown> | undefined;
  for (const [field, off] of LATER_FIELDS_OFF) {
    if ((resource as Record<string, unknown>)[field] !== off) continue;
    // canonicalJson drops undefined members.
    out ??= { ...(resource as Record<string, unknown>) };
    out[field] = undefined;
  }
  return out ?? resource;
}

/**
 * Per-resource digests of a configuration: for each kind, resource id -> resourceDigest, and
 * the settings' digest. A store can keep these up to date one resource at a time.
 */
export interface ContentDigests {
  proxyHosts: ReadonlyMap<string, string>;
  l4ProxyHosts: ReadonlyMap<string, string>;
  certificates: ReadonlyMap<string, string>;
  accessLists: ReadonlyMap<string, string>;
  settings: string;
}

const sortedIds = (m: ReadonlyMap<string, unknown>) => [...m.keys()].sort(compareCodeUnits);

/**
 * The content hash from per-resource digests. Each kind's resources, sorted by id, are cut into
 * chunks: a chunk ends after a resource whose digest ends a chunk (endsChunk: 1 in 32, so a
 * chunk holds about 32 resources, and where it ends depends on content alone, never on
 * position). Each chunk's digest is the sha256 of its resources' lines (digestLine), and the
 * content hash is the sha256 over, for each kind in RESOURCE_KINDS, its name and its chunks'
 * digests, then the settings' digest (contentHashOfChunks). A store that keeps each chunk's
 * digest hashes again only the chunks a write touched and the short list of chunk digests, so
 * a write costs O(change), not O(hosts). `ids`, when given, supplies each kind's ids already
 * sorted (a store's cached order).
 */
export function contentHashOfDigests(
  d: ContentDigests,
  ids?: Partial<Record<ResourceKind, readonly string[]>>,
  memo?: ChunkDigestMemo,
): string {
  const chunks = (kind: ResourceKind) => {
    const digests = d[kind];
    const order = ids?.[kind] ?? sortedIds(digests);
    memo?.begin(kind, order, digests);
    const out: string[] = [];
    let chunkIds: string[] = [];
    let chunk: string[] = [];
    const end = (at: number) => {
      out.push(memo ? memo.digest(kind, chunkIds, chunk, at) : chunkDigestOf(chunkIds, chunk));
      chunkIds = [];
      chunk = [];
    };
    for (let i = 0; i < order.length; i++) {
      const id = order[i]!;
      const digest = digests.get(id)!;
      chunkIds.push(id);
      chunk.push(digest);
      if (endsChunk(digest)) end(i + 1);
    }
    if (chunkIds.length > 0) end(order.length);
    return out;
  };
  const hash = contentHashOfChunks(
    {
      proxyHosts: chunks("proxyHosts"),
      l4ProxyHosts: chunks("l4ProxyHosts"),
      certificates: chunks("certificates"),
      accessLists: chunks("accessLists"),
    },
    d.settings,
  );
  memo?.done();
  return hash;
}

/** The digest of the chunk of these resources (ids and their digests, in order). */
function chunkDigestOf(ids: readonly string[], digests: readonly string[]): string {
  let lines = "";
  for (let i = 0; i < ids.length; i++) lines += digestLine(ids[i]!, digests[i]!);
  return chunkDigest(lines);
}

/** How one kind's chunks lay over its sorted ids in the last content hash a memo computed. */
interface KindLayout {
  /** The ids in the content hash's order (the very array walked). */
  ids: readonly string[];
  /** The digests the hash was computed from (the very map). */
  source: ReadonlyMap<string, string>;
  /** Where each chunk ends in `ids` (exclusive), ascending; the last is `ids.length`. */
  ends: number[];
  /** Each chunk's digest. */
  digests: string[];
}

/** Chunk layouts by kind. */
type Layouts = Partial<Record<ResourceKind, KindLayout>>;

/**
 * Where the chunks of the last content hash computed with it (contentHashOfDigests) lay over
 * each kind's ids, with their digests. A walk over every id reuses the digest of a chunk of the
 * same resources with the same digests, so a one-host change hashes one chunk (about 32 lines)
 * and the list of chunk digests, not every line; a change to a few resources in place finds
 * their chunks without walking the rest (patch). A chunk's digest depends on its lines alone,
 * so what is kept holds whether or not the snapshot it came from turned out valid.
 */
export class ChunkDigestMemo {
  private layouts: Layouts = {};
  private nextLayouts: Layouts = {};
  /** Chunks hashed, rather than reused, since this memo was made (for tests). */
  hashed = 0;
  /** Content hashes patched (patch) rather than walked, since this memo was made (for tests). */
  patched = 0;

  /** A content hash starts walking `kind`: its ids in order, and their digests. */
  begin(kind: ResourceKind, ids: readonly string[], source: ReadonlyMap<string, string>): void {
    this.nextLayouts[kind] = { ids, source, ends: [], digests: [] };
  }

  /** The digest of the chunk of these resources, which ends at position `end` of the kind's ids. */
  digest(kind: ResourceKind, ids: readonly string[], digests: readonly string[], end: number): string {
    let digest = this.kept(kind, ids, digests);
    if (digest === undefined) {
      digest = chunkDigestOf(ids, digests);
      this.hashed++;
    }
    const layout = this.nextLayouts[kind];
    layout?.ends.push(end);
    layout?.digests.push(digest);
    return digest;
  }

  /** The digest the last content hash had for a chunk of exactly these resources and digests, if any. */
  private kept(kind: ResourceKind, ids: readonly string[], digests: readonly string[]): string | undefined {
    const l = this.layouts[kind];
    const start = l ? sortedIndex(l.ids, ids[0]!) : -1;
    if (!l || l.ids[start] !== ids[0]) return undefined;
    // The chunk that starts at `start` follows the one that ends there.
    const c = start === 0 ? 0 : sortedIndex(l.ends, start, (end) => end) + 1;
    if ((start > 0 && l.ends[c - 1] !== start) || l.ends[c] !== start + ids.length) return undefined;
    for (let i = 0; i < ids.length; i++)
      if (l.ids[start + i] !== ids[i] || l.source.get(ids[i]!) !== digests[i]) return undefined;
    return l.digests[c];
  }

  /** One content hash is complete: its chunks are the ones kept. */
  done(): void {
    this.layouts = this.nextLayouts;
    this.nextLayouts = {};
  }

  /**
   * The chunk digests of every kind for `d`, where `d` is the digests of the last content hash
   * computed with this memo with only the resources `changed` (ids, per kind) given other
   * digests in place: no id added or removed, the same ids arrays, every other kind's digests
   * the very map they were. Only the chunks holding a
   * changed resource are hashed again (with the chunk after one whose end moved); the rest is
   * taken as it was, without walking the ids. Undefined when the last hash was not of those
   * digests or those ids (the caller walks them all). `adopt` makes the result the memo's
   * last hash, once the caller found it right.
   */
  patch(
    d: ContentDigests,
    was: ContentDigests,
    changed: Partial<Record<ResourceKind, readonly string[]>>,
  ): { chunks: Record<ResourceKind, readonly string[]>; adopt: () => void } | undefined {
    const layouts: Layouts = {};
    for (const kind of RESOURCE_KINDS) {
      const layout = this.layouts[kind];
      if (!layout || layout.source !== was[kind]) return undefined;
      const ids = changed[kind];
      if (!ids?.length) {
        if (d[kind] !== was[kind]) return undefined; // not known to be unchanged
        layouts[kind] = layout;
        continue;
      }
      const patched = patchLayout(layout, d[kind], ids);
      if (!patched) return undefined;
      this.hashed += patched.hashed;
      layouts[kind] = patched.layout;
    }
    const all = layouts as Record<ResourceKind, KindLayout>;
    return {
      chunks: {
        proxyHosts: all.proxyHosts.digests,
        l4ProxyHosts: all.l4ProxyHosts.digests,
        certificates: all.certificates.digests,
        accessLists: all.accessLists.digests,
      },
      adopt: () => {
        this.layouts = layouts;
        this.patched++;
      },
    };
  }
}

/**
 * `layout` with the resources `changed` given the digests in `digests` (the same ids in the same
 * order, read through `layout.ids`): each changed resource's chunk is cut again from its start
 * until a chunk end that is also an old one, past every changed position met, after which the
 * old chunks hold as they were (where a chunk ends depends on its last resource's digest
 * alone). Undefined when an id is not among the layout's.
 */
function patchLayout(
  layout: KindLayout,
  digests: ReadonlyMap<string, string>,
  changed: readonly string[],
): { layout: KindLayout; hashed: number } | undefined {
  const { ids, ends } = layout;
  const positions: number[] = [];
  for (const id of changed) {
    const at = sortedIndex(ids, id);
    if (ids[at] !== id) return undefined;
    positions.push(at);
  }
  positions.sort((a, b) => a - b);
  const next: KindLayout = { ids, source: digests, ends: [], digests: [] };
  let hashed = 0;
  let c = 0; // the old chunk looked at
  let p = 0; // the next changed position not yet cut again
  while (c < ends.length) {
    const start = c === 0 ? 0 : ends[c - 1]!;
    if (p >= positions.length || positions[p]! >= ends[c]!) {
      next.ends.push(ends[c]!);
      next.digests.push(layout.digests[c]!);
      c++;
      continue;
    }
    let chunkIds: string[] = [];
    let chunk: string[] = [];
    for (let q = start; q < ids.length; q++) {
      while (p < positions.length && positions[p]! <= q) p++;
      const id = ids[q]!;
      const digest = digests.get(id);
      if (digest === undefined) return undefined;
      chunkIds.push(id);
      chunk.push(digest);
      if (!endsChunk(digest) && q < ids.length - 1) continue;
      next.ends.push(q + 1);
      next.digests.push(chunkDigestOf(chunkIds, chunk));
      hashed++;
      chunkIds = [];
      chunk = [];
      while (c < ends.length && ends[c]! < q + 1) c++;
      // Back in step with the old chunks: the next one starts here, and no change lies before it.
      if (ends[c] === q + 1 && (p >= positions.length || positions[p]! > q)) break;
    }
    c++;
  }
  return { layout: next, hashed };
}

/** The digest of one chunk of the content hash's input: sha256 of its lines, joined. */
export function chunkDigest(lines: string): string {
  return sha256Hex(lines);
}

/** One resource's line in a chunk of the content hash's input (see contentHashOfDigests). */
export function digestLine(id: string, digest: string): string {
  return `${JSON.stringify(id)} ${digest}\n`;
}

/**
 * Whether the resource with this digest (hex sha256) is the last of its chunk in the content
 * hash's input: its digest starts with a byte below 8, which 1 resource in 32 does.
 */
export function endsChunk(digest: string): boolean {
  return digest.charCodeAt(0) === 48 /* "0" */ && digest.charCodeAt(1) < 56; /* "8" */
}

/**
 * The content hash from each kind's chunk digests, in id order, and the settings' digest:
 * what contentHashOfDigests computes, for a store that keeps the chunk digests.
 */
export function contentHashOfChunks(chunks: Record<ResourceKind, readonly string[]>, settingsDigest: string): string {
  let input = "";
  for (const kind of RESOURCE_KINDS) {
    input += `${kind}\n`;
    for (const c of chunks[kind]) input += `${c}\n`;
  }
  input += `settings ${settingsDigest}\n`;
  return sha256Hex(input);
}

/** Per-resource digests of a whole snapshot's content. */
export function contentDigests(s: Content): ContentDigests {
  const of = (xs: { id: string }[]) => new Map(xs.map((x) => [x.id, resourceDigest(x)]));
  return {
    proxyHosts: of(s.proxyHosts),
    l4ProxyHosts: of(s.l4ProxyHosts),
    certificates: of(s.certificates),
    accessLists: of(s.accessLists),
    settings: resourceDigest(s.settings),
  };
}

/**
 * Hash of the synced content only: independent of version, time and list order. Defined over
 * per-resource digests (contentHashOfDigests), so a store can update it one resource at a time
 * while master and slave agree on one definition.
 */
export function snapshotContentHash(s: Content): string {
  return contentHashOfDigests(contentDigests(s));
}

/**
 * Structural and referential check of a whole snapshot, as a receiver must do before
 * applying it: every resource passes its normalizer, and nothing that the database would
 * refuse on commit gets through (unique ids, names and domains; references; L4 listener
 * conflicts), and the content hash matches. Throws ValidationError naming the field
 * (`snapshot.proxy_hosts[3].domains[0]`). Returns the per-resource digests it computed; with
 * `memo`, resources unchanged since the last snapshot validated with it are not normalized or
 * hashed again.
 */
export function validateSnapshot(s: Snapshot, field = "snapshot", memo?: SnapshotCheckMemo): ContentDigests {
  // The very object passed already (a one-process slave: the receiver checks it, then
  // config-service commits it): checked once. Snapshot objects are never changed once made.
  const known = VALIDATED.get(s);
  if (known) return known;
  const patched = memo?.patchCheck(s, field);
  if (patched) {
    VALIDATED.set(s, patched);
    return patched;
  }
  const check = memo?.begin(s);
  const index = checkContent(s, field, check);
  const digests = check ? check.digests(s) : contentDigests(s);
  if (s.contentSha256 !== contentHashOfDigests(digests, check?.sortedIds(), memo?.chunks)) {
    throw new ValidationError(`${field}.content_sha256`, "does not match the snapshot's content");
  }
  check?.commit(s, index, digests);
  VALIDATED.set(s, digests);
  return digests;
}

/** Changed proxy hosts up to which SnapshotCheckMemo.patchCheck patches the last check rather than checking in full. */
export const PATCH_CHECK_MAX_CHANGED = 64;

/** The last valid snapshot a memo checked, with what its check found across resources. */
interface LastValid {
  snapshot: Snapshot;
  index: CheckIndex;
  digests: ContentDigests;
  sorted: Partial<Record<ResourceKind, readonly string[]>>;
}

/** The snapshot objects this process found valid, with their content digests. */
const VALIDATED = new WeakMap<Snapshot, ContentDigests>();

/** Where validateSnapshotContent keeps and finds each resource's normalized form, by object. */
export interface NormalizedMemo {
  get(resource: object): unknown;
  set(resource: object, normalized: unknown): void;
}

/** What a memo knows of one resource it checked: the resource, its normalized form and digest. */
interface Known {
  value: object;
  normalized: unknown;
  digest: string | undefined;
}

const emptyKinds = (): Record<ResourceKind, Map<string, Known>> => ({
  proxyHosts: new Map(),
  l4ProxyHosts: new Map(),
  certificates: new Map(),
  accessLists: new Map(),
});

/**
 * Deep equality of decoded messages (plain objects, arrays, strings, numbers, booleans, Dates,
 * bytes). Equal values have equal canonical JSON, so equal digests and normalized forms; a
 * member present but undefined on one side only counts as a difference (never the reverse).
 */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (a instanceof Date || b instanceof Date)
    return a instanceof Date && b instanceof Date && a.getTime() === b.getTime();
  if (a instanceof Uint8Array || b instanceof Uint8Array)
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.compare(a, b) === 0;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (
      !Object.prototype.hasOwnProperty.call(b, k) ||
      !sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
    )
      return false;
  }
  return true;
}

/**
 * What one process learned from the last snapshot it validated, so that the next one costs
 * the resources that changed: a resource with the same id and an equal value (sameValue)
 * reuses its normalized form and digest instead of being normalized and hashed as canonical
 * JSON again. The checks across resources (unique names and domains, references, L4
 * listeners) and the content hash over the digests still run in full. Holds one snapshot's
 * resources: those absent from the last valid snapshot are forgotten; a snapshot that fails
 * validation changes nothing. Resources are kept by reference: callers never change a
 * snapshot's resources (they are decoded messages, read only).
 */
export class SnapshotCheckMemo {
  /** The content hash's chunks of the last snapshot checked. */
  readonly chunks = new ChunkDigestMemo();
  private known = emptyKinds();
  /** The last valid snapshot, what its check found, and each kind's ids in the content hash's order. */
  private last: LastValid | undefined;
  /** Snapshots found valid by patching the last check (for tests). */
  patched = 0;

  /**
   * The check of `s` as a patch of the last valid snapshot's, when `s` is that snapshot with a
   * few proxy hosts changed in place (the same objects everywhere else, as SnapshotDecoder hands
   * them, the same ids, names and references that exist) and nothing else changed but the
   * settings: the changed hosts are normalized, their domains checked against the last
   * snapshot's owners, and the content hash computed from the kept digests. Then every check
   * of the full pass holds for `s` because it held for the last snapshot. Returns its digests;
   * undefined when it does not apply or finds anything wrong, and the full pass runs (and names
   * the fault as it always does). Costs what changed, not what is: at 10,000 hosts the full pass
   * took about 70 ms a change on this project's bench machine.
   */
  patchCheck(s: Snapshot, field: string): ContentDigests | undefined {
    const last = this.last;
    if (!last) return undefined;
    const p = last.snapshot;
    if (
      !sameItems(s.certificates, p.certificates) ||
      !sameItems(s.accessLists, p.accessLists) ||
      !sameItems(s.l4ProxyHosts, p.l4ProxyHosts) ||
      s.proxyHosts.length !== p.proxyHosts.length
    )
      return undefined;
    const changed: number[] = [];
    for (let i = 0; i < s.proxyHosts.length; i++) {
      if (s.proxyHosts[i] === p.proxyHosts[i]) continue;
      if (changed.length === PATCH_CHECK_MAX_CHANGED) return undefined;
      changed.push(i);
    }
    const { index } = last;
    const normalized = new Map<number, Snapshot["proxyHosts"][number]>();
    /** The domains the changed hosts served, and the ones they serve now (domain -> host id). */
    const freed = new Set<string>();
    const claimed = new Map<string, string>();
    try {
      checkHeader(s, field);
      normalizeSettings(s.settings, `${field}.settings`);
      for (const i of changed) {
        const h = s.proxyHosts[i]!;
        const before = index.hosts[i]!;
        if (h.id !== p.proxyHosts[i]!.id) return undefined;
        const n = normalizeProxyHostOnce(h, `${field}.proxy_hosts[${i}]`);
        if (n.name !== before.name) return undefined;
        if (h.certificateId && !index.certIds.has(h.certificateId)) return undefined;
        if (h.accessListId && !index.aclIds.has(h.accessListId)) return undefined;
        for (const d of before.domains) freed.add(d);
        normalized.set(i, n);
      }
    } catch {
      return undefined;
    }
    for (const [i, n] of normalized) {
      for (const d of n.domains) {
        if (claimed.has(d)) return undefined;
        if (index.domainOwner.has(d) && !freed.has(d)) return undefined;
        claimed.set(d, s.proxyHosts[i]!.id);
      }
    }
    const hostDigests = new Map<string, string>();
    for (const i of changed) hostDigests.set(s.proxyHosts[i]!.id, resourceDigest(s.proxyHosts[i]));
    const digests: ContentDigests = {
      ...last.digests,
      // The last digests with the changed hosts' over them, not a copy of 10,000 entries.
      proxyHosts: PatchedMap.of(last.digests.proxyHosts, hostDigests),
      settings: resourceDigest(s.settings),
    };
    // The chunks of the changed hosts hashed again, the others kept (walking every id when the
    // memo's last hash was not of the last valid snapshot's digests).
    const patch = this.chunks.patch(digests, last.digests, { proxyHosts: [...hostDigests.keys()] });
    const hash = patch
      ? contentHashOfChunks(patch.chunks, digests.settings)
      : contentHashOfDigests(digests, last.sorted, this.chunks);
    if (s.contentSha256 !== hash) return undefined;
    patch?.adopt();
    // Valid: the kept state becomes this snapshot's.
    for (const d of freed) index.domainOwner.delete(d);
    for (const [d, id] of claimed) index.domainOwner.set(d, id);
    const hosts = [...index.hosts];
    for (const [i, n] of normalized) {
      hosts[i] = n;
      const x = s.proxyHosts[i]!;
      this.known.proxyHosts.set(x.id, { value: x, normalized: n, digest: hostDigests.get(x.id) });
    }
    this.last = { snapshot: s, index: { ...index, hosts }, digests, sorted: last.sorted };
    this.patched++;
    return digests;
  }

  /** Starts checking `s` (see validateSnapshot); synchronous, so checks never interleave. */
  begin(s: Snapshot): SnapshotCheck {
    const entries = new Map<object, Known>();
    const next = emptyKinds();
    // A kind whose ids are the ones of the last snapshot keeps their sorted order.
    const sameIds: Partial<Record<ResourceKind, readonly string[]>> = {};
    for (const kind of RESOURCE_KINDS) {
      const known = this.known[kind];
      let allKnown = true;
      for (const x of s[kind] as { id: string }[]) {
        const before = known.get(x.id);
        if (!before) allKnown = false;
        // The very object seen last time keeps its entry (what a memo adds to it is about that
        // object alone, whether this snapshot turns out valid or not); an equal one gets a copy.
        const entry: Known =
          before?.value === x
            ? before
            : before && sameValue(before.value, x)
              ? { ...before, value: x }
              : { value: x, normalized: undefined, digest: undefined };
        entries.set(x, entry);
        next[kind].set(x.id, entry);
      }
      const order = this.last?.sorted[kind];
      if (
        allKnown &&
        order &&
        next[kind].size === known.size &&
        order.length === known.size &&
        s[kind].length === known.size
      )
        sameIds[kind] = order;
    }
    return new SnapshotCheck(entries, next, sameIds, (sorted, valid, index, digests) => {
      this.known = next;
      this.last = { snapshot: valid, index, digests, sorted };
    });
  }

  /** How many resources it knows (for tests). */
  size(): number {
    return RESOURCE_KINDS.reduce((n, k) => n + this.known[k].size, 0);
  }
}

/** One snapshot being checked against a SnapshotCheckMemo. */
export class SnapshotCheck implements NormalizedMemo {
  private ids: Partial<Record<ResourceKind, readonly string[]>> | undefined;

  constructor(
    private readonly entries: Map<object, Known>,
    /** The snapshot's resources by id, per kind. */
    private readonly byId: Record<ResourceKind, ReadonlyMap<string, unknown>>,
    private readonly sameIds: Partial<Record<ResourceKind, readonly string[]>>,
    private readonly done: (
      sorted: Partial<Record<ResourceKind, readonly string[]>>,
      valid: Snapshot,
      index: CheckIndex,
      digests: ContentDigests,
    ) => void,
  ) {}

  /** Each kind's ids sorted as the content hash orders them; the last snapshot's order when its ids are the same. */
  sortedIds(): Partial<Record<ResourceKind, readonly string[]>> {
    if (!this.ids) {
      const ids: Partial<Record<ResourceKind, readonly string[]>> = {};
      for (const kind of RESOURCE_KINDS) ids[kind] = this.sameIds[kind] ?? sortedIds(this.byId[kind]);
      this.ids = ids;
    }
    return this.ids;
  }

  get(resource: object): unknown {
    return this.entries.get(resource)?.normalized;
  }

  set(resource: object, normalized: unknown): void {
    const e = this.entries.get(resource);
    if (e) e.normalized = normalized;
  }

  /** The snapshot's per-resource digests, computing only those the memo did not know. */
  digests(s: Content): ContentDigests {
    const of = (xs: { id: string }[]) =>
      new Map(
        xs.map((x) => {
          const e = this.entries.get(x);
          if (!e) return [x.id, resourceDigest(x)];
          e.digest ??= resourceDigest(x);
          return [x.id, e.digest];
        }),
      );
    return {
      proxyHosts: of(s.proxyHosts),
      l4ProxyHosts: of(s.l4ProxyHosts),
      certificates: of(s.certificates),
      accessLists: of(s.accessLists),
      settings: resourceDigest(s.settings),
    };
  }

  /** `s` was valid: the memo now holds its resources (and their order), and what its check found. */
  commit(s: Snapshot, index: CheckIndex, digests: ContentDigests): void {
    this.done(this.sortedIds(), s, index, digests);
  }
}

/**
 * validateSnapshot without the content hash check: for a snapshot whose content_sha256 was
 * computed from the very resources it carries (config-service serving its own content).
 * `normalized`, for a caller whose resource objects never change once made: each resource's
 * normalized form by object, filled here, so a resource seen by an earlier call is not
 * normalized again (the checks across resources still run in full).
 */
export function validateSnapshotContent(s: Snapshot, field = "snapshot", normalized?: NormalizedMemo): void {
  checkContent(s, field, normalized);
}

/** What a check of a whole snapshot found across its resources (SnapshotCheckMemo patches it). */
interface CheckIndex {
  certIds: ReadonlySet<string>;
  aclIds: ReadonlySet<string>;
  /** Each proxy host normalized, in the snapshot's order. */
  hosts: readonly Snapshot["proxyHosts"][number][];
  /** The proxy host id that serves each domain. */
  domainOwner: Map<string, string>;
}

/** The snapshot's own fields: schema (and what it can carry), master, version. */
function checkHeader(s: Snapshot, field: string): void {
  if (!READABLE_SCHEMA_VERSIONS.includes(s.schemaVersion)) {
    throw new ValidationError(
      `${field}.schema_version`,
      `${s.schemaVersion} is not supported (this build reads ${READABLE_SCHEMA_VERSIONS.join(" and ")})`,
    );
  }
  const beyond = capabilitiesBeyondSchema(s)[0];
  if (beyond) {
    throw new ValidationError(
      `${field}.schema_version`,
      `${s.schemaVersion} cannot carry ${beyond.name} (schema ${beyond.schema} or later), used by ${beyond.usedBy(s)[0]}`,
    );
  }
  if (!s.masterInstanceId) throw new ValidationError(`${field}.master_instance_id`, "is required");
  if (!(s.version > 0)) throw new ValidationError(`${field}.version`, "must be positive");
}

/** validateSnapshotContent, returning what it found across resources. */
function checkContent(s: Snapshot, field: string, normalized?: NormalizedMemo): CheckIndex {
  // A resource's field path (`snapshot.proxy_hosts[3]`) is made only to normalize it or to name
  // it in an error: a resource the memo knows costs a lookup, not a string.
  const memo =
    <T extends object>(normalize: (x: T, field: string) => T, kind: string) =>
    (x: T, i: number): T => {
      const known = normalized?.get(x) as T | undefined;
      if (known) return known;
      const n = normalize(x, `${field}.${kind}[${i}]`);
      normalized?.set(x, n);
      return n;
    };
  const normalizeCertificate = memo(normalizeCertificateOnce, "certificates");
  const normalizeAccessList = memo(normalizeAccessListOnce, "access_lists");
  const normalizeL4ProxyHost = memo(normalizeL4ProxyHostOnce, "l4_proxy_hosts");
  const normalizeProxyHost = memo(normalizeProxyHostOnce, "proxy_hosts");
  checkHeader(s, field);
  const certIds = uniqueIds(s.certificates, `${field}.certificates`);
  const aclIds = uniqueIds(s.accessLists, `${field}.access_lists`);
  uniqueIds(s.l4ProxyHosts, `${field}.l4_proxy_hosts`);
  uniqueIds(s.proxyHosts, `${field}.proxy_hosts`);
  uniqueNames(s.certificates.map(normalizeCertificate), `${field}.certificates`);
  uniqueNames(s.accessLists.map(normalizeAccessList), `${field}.access_lists`);
  const l4 = s.l4ProxyHosts.map(normalizeL4ProxyHost);
  uniqueNames(l4, `${field}.l4_proxy_hosts`);
  l4.forEach((h, i) => {
    const conflict = l4ListenerConflict(h, l4.slice(0, i), `${field}.l4_proxy_hosts[${i}]`);
    if (conflict) throw new ValidationError(conflict[0], conflict[1]);
  });
  normalizeSettings(s.settings, `${field}.settings`);
  const hosts = s.proxyHosts.map(normalizeProxyHost);
  uniqueNames(hosts, `${field}.proxy_hosts`);
  const domainOwner = new Map<string, string>();
  const at = (i: number) => `${field}.proxy_hosts[${i}]`;
  s.proxyHosts.forEach((h, i) => {
    const n = hosts[i]!;
    n.domains.forEach((d, j) => {
      const owner = domainOwner.get(d);
      if (owner !== undefined)
        throw new ValidationError(`${at(i)}.domains[${j}]`, `"${d}" is also served by proxy host "${owner}"`);
      domainOwner.set(d, h.id);
    });
    if (h.certificateId && !certIds.has(h.certificateId)) {
      throw new ValidationError(`${at(i)}.certificate_id`, `certificate "${h.certificateId}" is not in the snapshot`);
    }
    if (h.accessListId && !aclIds.has(h.accessListId)) {
      throw new ValidationError(`${at(i)}.access_list_id`, `access list "${h.accessListId}" is not in the snapshot`);
    }
  });
  s.l4ProxyHosts.forEach((h, i) => {
    if (h.certificateId && !certIds.has(h.certificateId)) {
      throw new ValidationError(
        `${field}.l4_proxy_hosts[${i}].certificate_id`,
        `certificate "${h.certificateId}" is not in the snapshot`,
      );
    }
  });
  return { certIds, aclIds, hosts, domainOwner };
}

/** Names are unique per kind (the database's unique constraints), compared as normalized. */
function uniqueNames(xs: { name: string }[], field: string): void {
  const first = new Map<string, number>();
  xs.forEach((x, i) => {
    const j = first.get(x.name);
    if (j !== undefined)
      throw new ValidationError(
        `${field}[${i}].name`,
        `"${x.name}" is also the name of ${field}[${j}] (names are unique)`,
      );
    first.set(x.name, i);
  });
}

function uniqueIds(xs: { id: string }[], field: string): Set<string> {
  const ids = new Set<string>();
  xs.forEach((x, i) => {
    if (!x.id) throw new ValidationError(`${field}[${i}].id`, "is required");
    if (ids.has(x.id)) throw new ValidationError(`${field}[${i}].id`, `"${x.id}" appears twice`);
    ids.add(x.id);
  });
  return ids;
}
