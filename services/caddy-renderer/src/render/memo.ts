import type { ProxyHost, Settings } from "@cpm/proto";
import { compareCodeUnits, keepCanonical, sameItems, sortedIndex } from "@cpm/core";
import { DomainIndex } from "./domains.ts";
import { hostDiff, MAX_PATCHED_HOSTS } from "./host-diff.ts";
import type { Json } from "./types.ts";

/*
 * What one render keeps for the next, so that a render after a change to a few hosts does work
 * in proportion to that change, not to every host. Snapshots are decoded so that a resource
 * whose bytes did not change is the very same object as before (SnapshotDecoder), and snapshot
 * objects are never changed: everything here is kept per object identity, and what it keeps is
 * never changed once made (renders only read it). Every shortcut gives the bytes a render from
 * nothing gives (render.test.ts compares the two over random edits).
 */

/** The parts of a host's routes that hosts are grouped by (render/index.ts). */
export type Part = "classes" | "proxy";

/**
 * A rendered value, one object per distinct value (its JSON; the code that builds values always
 * adds keys in the same order): hosts are grouped by this object's identity, so a render does
 * not compare long strings per host. Its value is kept for canonicalJsonReusing.
 */
export interface Keyed {
  key: string;
  value: Json[];
}

/** Hosts that render a part the same way: one route lists them all. */
export interface Group {
  keyed: Keyed;
  /** In the order of the hosts given to groupBy (id order). */
  hosts: ProxyHost[];
}

/** What a host's class routes depend on besides the host and its access list, one object while none of it changes. */
export interface ClassContext {
  https: boolean;
  httpsOrigin: string;
  settings: Settings | undefined;
}

/** A part rendered for a host, with the two values (compared by identity) it was rendered with. */
interface Made {
  context: unknown;
  dep: unknown;
  /** Which `interned` it was grouped under. */
  generation: number;
  keyed: Keyed;
}

/** The last grouping of a part: the hosts grouped, what every host's part depended on, the groups. */
interface Grouping {
  hosts: readonly ProxyHost[];
  context: unknown;
  /** The objects the hosts' `dep` picks from (the access lists), as a list. */
  deps: readonly unknown[];
  generation: number;
  groups: Map<Keyed, Group>;
  /** Counts the groupings made, so that one can name the grouping it was patched from without holding it. */
  serial: number;
  /** When patched from the grouping before it: that grouping's serial, and the values whose group was copied, made or emptied. */
  patchedFrom?: { serial: number; changed: ReadonlySet<Keyed> };
}

/** A group's route with the name it is listed by (its first host's first name). */
interface RouteEntry {
  first: string;
  keyed: Keyed;
  route: Json;
}

/** A part's routes in name order, as a render listed them, with the grouping they list. */
interface RouteList {
  /** The serial of the grouping it lists. */
  serial: number;
  /** Whether the index's matchers stood alone (routes were kept per value). */
  standAlone: boolean;
  entries: RouteEntry[];
}

/** A group's route, with the hosts and the host names it was made for. */
interface MadeRoute {
  hosts: readonly ProxyHost[];
  hostList: readonly string[];
  route: Json;
}

export class RenderMemo {
  /** What renders took from the last one rather than making it again (for tests). */
  readonly patches = { indexes: 0, groupings: 0, hostLists: 0, routesKept: 0 };
  private context: ClassContext | undefined;
  private index: DomainIndex | undefined;
  /**
   * The distinct rendered values by their JSON. It starts over (between renders, never during
   * one: a render groups by the identity of what it holds) once it holds more than twice the
   * values a render needs, so values no host renders any more do not pile up.
   */
  private interned = new Map<string, Keyed>();
  private generation = 0;
  /** What was rendered for a host object, per part. */
  private readonly rendered = new WeakMap<ProxyHost, Partial<Record<Part, Made>>>();
  /** The last grouping of each part. */
  private readonly groupings: Partial<Record<Part, Grouping>> = {};
  /** The last route made for each value of a part. */
  private readonly routes: Record<Part, WeakMap<Keyed, MadeRoute>> = { classes: new WeakMap(), proxy: new WeakMap() };
  /** The last routes of each part in name order. */
  private readonly lists: Partial<Record<Part, RouteList>> = {};

  /** The class context: the last one while nothing in it changed. */
  classContext(https: boolean, httpsOrigin: string, settings: Settings | undefined): ClassContext {
    const c = this.context;
    if (c?.https === https && c.httpsOrigin === httpsOrigin && c.settings === settings) return c;
    return (this.context = { https, httpsOrigin, settings });
  }

  /** The domain index of `hosts` (id order), patched from the last render's when a few hosts changed. */
  domainIndex(hosts: readonly ProxyHost[]): DomainIndex {
    this.index = DomainIndex.of(hosts, this.index);
    if (this.index.fromPatch) this.patches.indexes++;
    return this.index;
  }

  /** Called once per render before groupBy, with the number of hosts it groups. */
  startRender(hosts: number): void {
    if (this.interned.size <= 2 * (2 * hosts) + 1024) return;
    this.interned = new Map();
    this.generation++;
  }

  /**
   * Hosts (id order) grouped by an equal rendered `part`, each group's hosts in id order:
   * `make(h, dep)`'s value for each host, kept per host object while `context` and the host's
   * `dep(h)` stay the same objects. `deps` lists every object `dep` may pick. When the hosts are
   * the last grouping's with a few changed, and `context` and `deps` are the same, the last
   * groups are patched: the hosts that left are taken out of theirs, those that joined put in
   * theirs. The grouping is the part's until the next call; routesInOrder lists its routes.
   */
  groupBy(
    hosts: readonly ProxyHost[],
    part: Part,
    dep: (h: ProxyHost) => unknown,
    deps: readonly unknown[],
    context: unknown,
    make: (h: ProxyHost, dep: unknown) => Json[],
  ): void {
    const last = this.groupings[part];
    const patched =
      last && last.context === context && last.generation === this.generation && sameItems(last.deps, deps)
        ? this.patchGroups(last, hosts, part, dep, context, make)
        : undefined;
    let groups = patched?.groups;
    if (groups) this.patches.groupings++;
    else {
      groups = new Map<Keyed, Group>();
      for (const h of hosts) {
        const keyed = this.made(h, part, dep, context, make);
        const g = groups.get(keyed);
        if (g) g.hosts.push(h);
        else groups.set(keyed, { keyed, hosts: [h] });
      }
    }
    this.groupings[part] = {
      hosts,
      context,
      deps,
      generation: this.generation,
      groups,
      serial: (last?.serial ?? 0) + 1,
      patchedFrom: patched && last && { serial: last.serial, changed: patched.changed },
    };
  }

  /**
   * The routes of the groups of `part` (the grouping groupBy just made), ordered by their first
   * names; a group whose value is empty has none. When that grouping was patched from the one
   * the last list was made of, and the index's matchers stand alone (then and now), the last
   * list is taken with the routes of the groups the patch changed taken out and put in again at
   * their place, not every route sorted again; otherwise every group's route is listed and sorted.
   */
  routesInOrder(part: Part, index: DomainIndex, handle: (v: Json[]) => Json[]): Json[] {
    const grouping = this.groupings[part];
    if (!grouping) throw new Error(`routesInOrder(${part}) before groupBy(${part})`);
    const entry = (g: Group): RouteEntry => ({
      first: index.domainsOf(g.hosts[0]!)[0]!,
      keyed: g.keyed,
      route: this.groupRoute(part, g, index, handle),
    });
    const last = this.lists[part];
    const from = grouping.patchedFrom;
    const standAlone = index.matchersStandAlone;
    let entries: RouteEntry[];
    if (from && last?.serial === from.serial && last.standAlone && standAlone) {
      entries = last.entries.filter((e) => !from.changed.has(e.keyed));
      this.patches.routesKept += entries.length;
      for (const keyed of from.changed) {
        const g = grouping.groups.get(keyed);
        if (!g || keyed.value.length === 0) continue;
        const e = entry(g);
        entries.splice(
          sortedIndex(entries, e.first, (x) => x.first),
          0,
          e,
        );
      }
    } else {
      entries = [...grouping.groups.values()]
        .filter((g) => g.keyed.value.length > 0)
        .map(entry)
        .sort((a, b) => compareCodeUnits(a.first, b.first));
    }
    this.lists[part] = { serial: grouping.serial, standAlone, entries };
    return entries.map((e) => e.route);
  }

  /** The last grouping's groups with the hosts that changed moved; undefined when too many did. */
  private patchGroups(
    last: Grouping,
    hosts: readonly ProxyHost[],
    part: Part,
    dep: (h: ProxyHost) => unknown,
    context: unknown,
    make: (h: ProxyHost, dep: unknown) => Json[],
  ): { groups: Map<Keyed, Group>; changed: Set<Keyed> } | undefined {
    const diff = hostDiff(last.hosts, hosts, MAX_PATCHED_HOSTS);
    if (!diff) return undefined;
    // The last grouping's map is this one's now (groupBy replaces the grouping whatever this
    // returns); its groups are copied before they change, as routes keep their host lists.
    const groups = last.groups;
    /** Groups already copied by this patch. */
    const copied = new Set<Group>();
    const own = (keyed: Keyed): Group => {
      const g = groups.get(keyed);
      if (g && copied.has(g)) return g;
      const mine = { keyed, hosts: g ? [...g.hosts] : [] };
      copied.add(mine);
      groups.set(keyed, mine);
      return mine;
    };
    for (const h of diff.removed) {
      const keyed = this.rendered.get(h)?.[part]?.keyed;
      const g = keyed && own(keyed);
      const at = g ? g.hosts.indexOf(h) : -1;
      if (!g || at < 0) return undefined;
      g.hosts.splice(at, 1);
      if (g.hosts.length === 0) groups.delete(g.keyed);
    }
    for (const h of diff.added) {
      const g = own(this.made(h, part, dep, context, make));
      g.hosts.splice(
        sortedIndex(g.hosts, h.id, (x) => x.id),
        0,
        h,
      );
    }
    return { groups, changed: new Set([...copied].map((g) => g.keyed)) };
  }

  /** The interned value of `part` for `h`, made or kept. */
  private made(
    h: ProxyHost,
    part: Part,
    dep: (h: ProxyHost) => unknown,
    context: unknown,
    make: (h: ProxyHost, dep: unknown) => Json[],
  ): Keyed {
    const d = dep(h);
    let parts = this.rendered.get(h);
    if (!parts) this.rendered.set(h, (parts = {}));
    let made = parts[part];
    if (!made || made.context !== context || made.dep !== d)
      made = parts[part] = { context, dep: d, generation: this.generation, keyed: this.intern(make(h, d)) };
    else if (made.generation !== this.generation)
      made = parts[part] = { ...made, generation: this.generation, keyed: this.intern(made.keyed.value) };
    return made.keyed;
  }

  /**
   * The route of group `g` of `part`: `handle(value)` for requests to its hosts. The last one
   * made for that value is reused while it lists the same host objects, and its host list is
   * patched when a few hosts joined or left, as long as the index says a matcher depends on
   * its own hosts alone (no wildcard covers another host's name).
   */
  groupRoute(part: Part, g: Group, index: DomainIndex, handle: (v: Json[]) => Json[]): Json {
    if (!index.matchersStandAlone)
      return keepCanonical({ handle: handle(g.keyed.value), match: [index.matcher(g.hosts)] });
    const last = this.routes[part].get(g.keyed);
    if (last && sameItems(last.hosts, g.hosts)) {
      this.patches.routesKept++;
      return last.route;
    }
    // A matcher that stands alone is its hosts' names and nothing else (DomainIndex.matcher).
    const patched = last && index.patchedHostList(last.hosts, last.hostList, g.hosts);
    if (patched) this.patches.hostLists++;
    const hostList = patched ?? (index.matcher(g.hosts) as { host: string[] }).host;
    const route = keepCanonical({ handle: handle(g.keyed.value), match: [{ host: hostList }] });
    this.routes[part].set(g.keyed, { hosts: g.hosts, hostList, route });
    return route;
  }

  private intern(value: Json[]): Keyed {
    const key = JSON.stringify(value);
    let k = this.interned.get(key);
    if (!k) this.interned.set(key, (k = { key, value: keepCanonical(value) }));
    return k;
  }
}
