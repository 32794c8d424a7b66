import type { ProxyHost } from "@cpm/proto";
import { sortedIndex } from "@cpm/core";
import { hostDiff, MAX_PATCHED_HOSTS } from "./host-diff.ts";
import type { Json } from "./types.ts";

/*
 * Which proxy host answers a request, and host matchers that keep that answer when routes list
 * many hosts at once.
 *
 * Caddy's host matcher compares names case-insensitively, and a wildcard stands for exactly one
 * label ("*.example.com" matches "a.example.com", not "example.com" nor "a.b.example.com"). So
 * two domains overlap only when an exact name's first label is dropped and the rest is another
 * host's wildcard. The exact name wins (it names the host more precisely). A route that lists a
 * set of hosts therefore excludes (`not`) the exact names of other hosts that its wildcards
 * cover: routes for disjoint sets of hosts then never match the same request, and their order
 * stops mattering.
 *
 * Every list of names here is in code-unit order: `Array.prototype.sort()` without a comparator
 * orders strings exactly as `<` does, and faster than a comparator function can.
 */

/** "*.example.com" for "a.example.com": the wildcard that covers an exact name (undefined for a one-label name). */
export function coveringWildcard(name: string): string | undefined {
  const dot = name.indexOf(".");
  return dot > 0 ? `*.${name.slice(dot + 1)}` : undefined;
}

/**
 * A host's domains without repeats, sorted: a function of the host object alone, kept per object.
 * Snapshot objects are never changed, and a decoded snapshot reuses the objects of the resources
 * whose bytes did not change (SnapshotDecoder), so a render after a one-host change sorts one
 * host's names. The lists are shared: read them, never change them.
 */
const uniqueSorted = new WeakMap<ProxyHost, readonly string[]>();
function domainsSorted(h: ProxyHost): readonly string[] {
  let d = uniqueSorted.get(h);
  if (d === undefined) uniqueSorted.set(h, (d = [...new Set(h.domains)].sort()));
  return d;
}

/** The enabled hosts' domains, who owns each, and which exact names each wildcard covers. */
export class DomainIndex {
  private readonly owner = new Map<string, ProxyHost>();
  private readonly covered = new Map<string, string[]>();
  /** Whether two hosts list the same domain (never in a valid snapshot): each then answers for what it listed first. */
  private readonly shared: boolean = false;
  /** The hosts indexed, as given. */
  private readonly hosts: readonly ProxyHost[] = [];

  /**
   * The index of `hosts` (id order), made from `last` (an index of an earlier list) when a few
   * hosts left, joined or changed in place (hostDiff) and neither list has a wildcard or a domain
   * listed twice: then the owners of those hosts' domains are all that differs. Otherwise built
   * whole; the same index either way. A patched `last` is spent (its owners move to the new
   * index): never use it again.
   */
  static of(hosts: readonly ProxyHost[], last?: DomainIndex): DomainIndex {
    return (last && last.patchedTo(hosts)) ?? new DomainIndex(hosts);
  }

  private patchedTo(hosts: readonly ProxyHost[]): DomainIndex | undefined {
    if (this.spent || this.shared || this.covered.size > 0) return undefined;
    const diff = hostDiff(this.hosts, hosts, MAX_PATCHED_HOSTS);
    if (!diff) return undefined;
    if (diff.removed.length === 0 && diff.added.length === 0) return this;
    // Checked before anything moves: no wildcard, and no domain another host keeps or claims too.
    const freed = new Set<string>();
    for (const h of diff.removed) for (const d of h.domains) freed.add(d);
    const claimed = new Map<string, ProxyHost>();
    for (const h of diff.added) {
      for (const d of h.domains) {
        if (d.startsWith("*.")) return undefined;
        const other = claimed.get(d) ?? (freed.has(d) ? undefined : this.owner.get(d));
        if (other !== undefined && other !== h) return undefined;
        claimed.set(d, h);
      }
    }
    const owner = this.owner;
    for (const d of freed) owner.delete(d);
    for (const [d, h] of claimed) owner.set(d, h);
    this.spent = true;
    return new DomainIndex(hosts, owner);
  }

  /** Whether DomainIndex.of moved this index's owners to a newer one. */
  private spent = false;
  /** Whether DomainIndex.of made it from the last index. */
  readonly fromPatch: boolean;

  /**
   * `hosts` in a deterministic order: a domain listed twice (never in a valid snapshot) stays
   * with its first host. `owner`: who owns each domain, known already (only DomainIndex.of
   * passes it).
   */
  constructor(hosts: readonly ProxyHost[], owner?: Map<string, ProxyHost>) {
    this.hosts = hosts;
    this.fromPatch = owner !== undefined;
    if (owner) {
      this.owner = owner;
      return;
    }
    let wildcards = false;
    for (const h of hosts)
      for (const d of h.domains) {
        const o = this.owner.get(d);
        if (o === undefined) {
          this.owner.set(d, h);
          if (d.startsWith("*.")) wildcards = true;
        } else if (o !== h) this.shared = true;
      }
    if (!wildcards) return;
    for (const d of this.owner.keys()) {
      if (d.startsWith("*.")) continue;
      const w = coveringWildcard(d);
      if (w === undefined || !this.owner.has(w)) continue;
      const list = this.covered.get(w);
      if (list) list.push(d);
      else this.covered.set(w, [d]);
    }
    for (const list of this.covered.values()) list.sort();
  }

  /**
   * Whether a host's matcher depends on that host alone: no wildcard covers another host's name
   * and no domain is listed twice. A route made for the same hosts in an earlier render is then
   * still right.
   */
  get matchersStandAlone(): boolean {
    return this.covered.size === 0 && !this.shared;
  }

  /**
   * The `host` list of matcher(`after`) made from `list`, that of matcher(`before`), when the
   * matchers stand alone and the two lists of hosts (each in id order) differ in a few hosts:
   * their names are taken out of `list` and put in at their places, rather than every name of a
   * large group sorted again. Undefined when that does not hold; the same list otherwise.
   */
  patchedHostList(
    before: readonly ProxyHost[],
    list: readonly string[],
    after: readonly ProxyHost[],
  ): string[] | undefined {
    if (!this.matchersStandAlone || after.length < 2) return undefined;
    const diff = hostDiff(before, after, MAX_PATCHED_HOSTS);
    if (!diff) return undefined;
    const { removed, added } = diff;
    const out = list.slice();
    for (const h of removed)
      for (const d of domainsSorted(h)) {
        const at = sortedIndex(out, d);
        if (out[at] !== d) return undefined;
        out.splice(at, 1);
      }
    for (const h of added)
      for (const d of domainsSorted(h)) {
        const at = sortedIndex(out, d);
        if (out[at] === d) return undefined;
        out.splice(at, 0, d);
      }
    return out;
  }

  /** Whether `h` answers for any domain (one listed by another host first is not its own). */
  serves(h: ProxyHost): boolean {
    return this.shared ? this.domainsOf(h).length > 0 : h.domains.length > 0;
  }

  /** The domains `h` answers for (its own, without those another host listed first), sorted. Read-only. */
  domainsOf(h: ProxyHost): readonly string[] {
    const mine = domainsSorted(h);
    return this.shared ? mine.filter((d) => this.owner.get(d) === h) : mine;
  }

  /**
   * A matcher set for exactly the requests `hosts` answer: their domains, minus (`not`) exact
   * names of other hosts under their wildcards. `extra` is merged into the set (e.g. a protocol).
   */
  matcher(hosts: readonly ProxyHost[], extra: Json = {}): Json {
    const domains: string[] = [];
    for (const h of hosts) for (const d of this.domainsOf(h)) domains.push(d);
    if (hosts.length > 1) domains.sort();
    const excluded: string[] = [];
    if (this.covered.size > 0) {
      const members = new Set(hosts);
      for (const d of domains) {
        const under = this.covered.get(d);
        if (under) for (const e of under) if (!members.has(this.owner.get(e)!)) excluded.push(e);
      }
      excluded.sort();
    }
    return { host: domains, ...(excluded.length > 0 ? { not: [{ host: excluded }] } : {}), ...extra };
  }
}
