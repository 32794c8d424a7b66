import type { ProxyHost, Snapshot } from "@cpm/proto";

/**
 * A feature that changes what Caddy serves and that not every release serves: one per field
 * or value. Release 0.1.0 (snapshot schema 2) is the baseline every release serves, so only
 * what came after it is named. `schema` is the first snapshot schema that can carry it; an
 * older schema has no place for it, so leaving it out would serve something different.
 */
export interface Capability {
  name: string;
  schema: number;
  /** The resources of `s` that use the feature, as "proxy_host <id> (<name>)". */
  usedBy(s: Pick<Snapshot, "proxyHosts">): string[];
}

const proxyHostRef = (h: ProxyHost) => `proxy_host ${h.id} (${h.name})`;

export const CAPABILITIES: readonly Capability[] = [
  {
    name: "proxy_host.compression",
    schema: 3,
    usedBy: (s) => s.proxyHosts.filter((h) => h.compression).map(proxyHostRef),
  },
];

/** The capabilities `s` uses that its schema has no place for. */
export function capabilitiesBeyondSchema(s: Pick<Snapshot, "schemaVersion" | "proxyHosts">): Capability[] {
  return CAPABILITIES.filter((c) => c.schema > s.schemaVersion && c.usedBy(s).length > 0);
}
