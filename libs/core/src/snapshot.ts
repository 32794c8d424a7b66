import type { Snapshot } from "@cpm/proto";
import { canonicalJson, sha256Hex } from "./canonical.ts";
import { ValidationError } from "./errors.ts";
import { normalizeProxyHost } from "./validation.ts";
import { normalizeAccessList } from "./access-lists.ts";
import { normalizeCertificate } from "./certificates.ts";
import { l4ListenerConflict, normalizeL4ProxyHost } from "./l4.ts";
import { normalizeSettings } from "./settings.ts";

/** The snapshot format this build reads and writes. */
export const SNAPSHOT_SCHEMA_VERSION = 1;

type Content = Pick<Snapshot, "proxyHosts" | "l4ProxyHosts" | "certificates" | "accessLists" | "settings">;

const byId = <T extends { id: string }>(xs: T[]) => [...xs].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

/** Hash of the synced content only: independent of version, time and list order. */
export function snapshotContentHash(s: Content): string {
  return sha256Hex(
    canonicalJson({
      proxyHosts: byId(s.proxyHosts),
      l4ProxyHosts: byId(s.l4ProxyHosts),
      certificates: byId(s.certificates),
      accessLists: byId(s.accessLists),
      settings: s.settings ?? null,
    }),
  );
}

/**
 * Structural and referential check of a whole snapshot, as a receiver must do before
 * applying it: every resource passes its normalizer, and nothing that the database would
 * refuse on commit gets through (unique ids, names and domains; references; L4 listener
 * conflicts). Throws ValidationError naming the field (`snapshot.proxy_hosts[3].domains[0]`).
 */
export function validateSnapshot(s: Snapshot, field = "snapshot"): void {
  if (s.schemaVersion !== SNAPSHOT_SCHEMA_VERSION) {
    throw new ValidationError(`${field}.schema_version`, `${s.schemaVersion} is not supported (this build reads ${SNAPSHOT_SCHEMA_VERSION})`);
  }
  if (!s.masterInstanceId) throw new ValidationError(`${field}.master_instance_id`, "is required");
  if (!(s.version > 0)) throw new ValidationError(`${field}.version`, "must be positive");
  const certIds = uniqueIds(s.certificates, `${field}.certificates`);
  const aclIds = uniqueIds(s.accessLists, `${field}.access_lists`);
  uniqueIds(s.l4ProxyHosts, `${field}.l4_proxy_hosts`);
  uniqueIds(s.proxyHosts, `${field}.proxy_hosts`);
  uniqueNames(
    s.certificates.map((c, i) => normalizeCertificate(c, `${field}.certificates[${i}]`)),
    `${field}.certificates`
  );
  uniqueNames(
    s.accessLists.map((a, i) => normalizeAccessList(a, `${field}.access_lists[${i}]`)),
    `${field}.access_lists`
  );
  const l4 = s.l4ProxyHosts.map((h, i) => normalizeL4ProxyHost(h, `${field}.l4_proxy_hosts[${i}]`));
  uniqueNames(l4, `${field}.l4_proxy_hosts`);
  l4.forEach((h, i) => {
    const conflict = l4ListenerConflict(h, l4.slice(0, i), `${field}.l4_proxy_hosts[${i}]`);
    if (conflict) throw new ValidationError(conflict[0], conflict[1]);
  });
  normalizeSettings(s.settings, `${field}.settings`);
  const hosts = s.proxyHosts.map((h, i) => normalizeProxyHost(h, `${field}.proxy_hosts[${i}]`));
  uniqueNames(hosts, `${field}.proxy_hosts`);
  const domainOwner = new Map<string, string>();
  s.proxyHosts.forEach((h, i) => {
    const at = `${field}.proxy_hosts[${i}]`;
    const n = hosts[i]!;
    n.domains.forEach((d, j) => {
      const owner = domainOwner.get(d);
      if (owner !== undefined) throw new ValidationError(`${at}.domains[${j}]`, `"${d}" is also served by proxy host "${owner}"`);
      domainOwner.set(d, h.id);
    });
    if (h.certificateId && !certIds.has(h.certificateId)) {
      throw new ValidationError(`${at}.certificate_id`, `certificate "${h.certificateId}" is not in the snapshot`);
    }
    if (h.accessListId && !aclIds.has(h.accessListId)) {
      throw new ValidationError(`${at}.access_list_id`, `access list "${h.accessListId}" is not in the snapshot`);
    }
  });
  s.l4ProxyHosts.forEach((h, i) => {
    if (h.certificateId && !certIds.has(h.certificateId)) {
      throw new ValidationError(`${field}.l4_proxy_hosts[${i}].certificate_id`, `certificate "${h.certificateId}" is not in the snapshot`);
    }
  });
  const hash = snapshotContentHash(s);
  if (s.contentSha256 !== hash) {
    throw new ValidationError(`${field}.content_sha256`, "does not match the snapshot's content");
  }
}

/** Names are unique per kind (the database's unique constraints), compared as normalized. */
function uniqueNames(xs: { name: string }[], field: string): void {
  const first = new Map<string, number>();
  xs.forEach((x, i) => {
    const j = first.get(x.name);
    if (j !== undefined) throw new ValidationError(`${field}[${i}].name`, `"${x.name}" is also the name of ${field}[${j}] (names are unique)`);
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
