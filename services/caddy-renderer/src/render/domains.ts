import type { ProxyHost } from "@cpm/proto";
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
 */

/** "*.example.com" for "a.example.com": the wildcard that covers an exact name (undefined for a one-label name). */
export function coveringWildcard(name: string): string | undefined {
  const dot = name.indexOf(".");
  return dot > 0 ? `*.${name.slice(dot + 1)}` : undefined;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The enabled hosts' domains, who owns each, and which exact names each wildcard covers. */
export class DomainIndex {
  private readonly owner = new Map<string, ProxyHost>();
  private readonly covered = new Map<string, string[]>();

  /** `hosts` in a deterministic order: a domain listed twice (never in a valid snapshot) stays with its first host. */
  constructor(hosts: readonly ProxyHost[]) {
    for (const h of hosts) for (const d of h.domains) if (!this.owner.has(d)) this.owner.set(d, h);
    for (const d of [...this.owner.keys()].sort(cmp)) {
      if (d.startsWith("*.")) continue;
      const w = coveringWildcard(d);
      if (w === undefined || !this.owner.has(w)) continue;
      const list = this.covered.get(w);
      if (list) list.push(d);
      else this.covered.set(w, [d]);
    }
  }

  /** The domains `h` answers for (its own, without those another host listed first). */
  domainsOf(h: ProxyHost): string[] {
    return [...new Set(h.domains)].filter((d) => this.owner.get(d) === h).sort(cmp);
  }

  /**
   * A matcher set for exactly the requests `hosts` answer: their domains, minus (`not`) exact
   * names of other hosts under their wildcards. `extra` is merged into the set (e.g. a protocol).
   */
  matcher(hosts: readonly ProxyHost[], extra: Json = {}): Json {
    const members = new Set(hosts);
    const domains = hosts.flatMap((h) => this.domainsOf(h)).sort(cmp);
    const excluded = domains
      .flatMap((d) => (this.covered.get(d) ?? []).filter((e) => !members.has(this.owner.get(e)!)))
      .sort(cmp);
    return { host: domains, ...(excluded.length > 0 ? { not: [{ host: excluded }] } : {}), ...extra };
  }
}
