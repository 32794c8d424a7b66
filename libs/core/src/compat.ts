import type { Snapshot } from "@cpm/proto";
import { CAPABILITIES, type Capability } from "./capabilities.ts";
import { RELEASE } from "./release.ts";
import { READABLE_SCHEMA_VERSIONS } from "./snapshot.ts";

/**
 * Sync across adjacent releases. When a master's stream to a slave opens, the slave announces
 * its release, the snapshot schemas it reads and its capabilities (response headers, sent before
 * any snapshot); the master announces its own release the same way (request headers). The
 * master then sends that slave a snapshot in a schema it reads, or none at all when the
 * configuration uses a feature the slave cannot serve: that slave keeps its last good
 * configuration and its status says INCOMPATIBLE, naming the feature and the resources.
 *
 * Every decision here is a pure function over what the peer announced and the snapshot.
 */

/** Handshake headers (gRPC metadata) of the sync stream, both ways. */
export const HANDSHAKE_HEADERS = {
  release: "cpm-release",
  schemas: "cpm-snapshot-schemas",
  capabilities: "cpm-capabilities",
} as const;

/** What a peer announced. */
export interface PeerInfo {
  release: string;
  schemas: number[];
  capabilities: string[];
}

/** What this build announces. */
export const SELF: PeerInfo = {
  release: RELEASE,
  schemas: [...READABLE_SCHEMA_VERSIONS],
  capabilities: CAPABILITIES.map((c) => c.name),
};

/** A peer that announces nothing: release 0.1.0, the last release without a handshake. */
export const SILENT_PEER: PeerInfo = { release: "0.1.0", schemas: [2], capabilities: [] };

/** The handshake headers announcing `self`. */
export function handshakeHeaders(self: PeerInfo = SELF): Record<string, string> {
  return {
    [HANDSHAKE_HEADERS.release]: self.release,
    [HANDSHAKE_HEADERS.schemas]: self.schemas.join(","),
    [HANDSHAKE_HEADERS.capabilities]: self.capabilities.join(","),
  };
}

const RELEASE_PATTERN = /^\d{1,6}\.\d{1,6}\.\d{1,6}(-[0-9A-Za-z.-]{1,40})?$/;
const CAPABILITY_PATTERN = /^[a-z][a-z0-9_.]{0,63}$/;
const MAX_LIST = 64;

/**
 * The peer's announcement from its handshake headers (`get` returns a header's value). A peer
 * sending no release header announces nothing (SILENT_PEER). The values come from the network:
 * a list item that is not well-formed is dropped, a malformed release reads "unknown", and
 * lists are capped, so nothing a peer sends reaches a log or a status unchecked.
 */
export function peerFromHeaders(get: (name: string) => string | undefined): PeerInfo {
  const release = get(HANDSHAKE_HEADERS.release);
  if (release === undefined) return SILENT_PEER;
  const items = (value: string | undefined) =>
    (value ?? "")
      .split(",", MAX_LIST)
      .map((v) => v.trim())
      .filter(Boolean);
  const schemas = items(get(HANDSHAKE_HEADERS.schemas))
    .filter((v) => /^\d{1,4}$/.test(v))
    .map(Number);
  const capabilities = items(get(HANDSHAKE_HEADERS.capabilities)).filter((v) => CAPABILITY_PATTERN.test(v));
  return {
    release: RELEASE_PATTERN.test(release) ? release : "unknown",
    schemas: [...new Set(schemas)].sort((a, b) => a - b),
    capabilities: [...new Set(capabilities)].sort(),
  };
}

export type CompatibilityIssue =
  | { code: "MISSING_CAPABILITY"; capability: string; resources: string[]; message: string }
  | { code: "NO_COMMON_SCHEMA"; capability: ""; resources: []; message: string };

export type SendPlan = { ok: true; schema: number } | { ok: false; schema: number; issues: CompatibilityIssue[] };

/** At most this many resources are named per issue (the count is always given). */
const NAMED_RESOURCES = 5;

function describeResources(resources: string[]): string {
  const named = resources.slice(0, NAMED_RESOURCES).join(", ");
  return resources.length > NAMED_RESOURCES ? `${named} and ${resources.length - NAMED_RESOURCES} more` : named;
}

/**
 * What this master sends `peer` for a configuration: the newest schema both read, or nothing
 * when the peer cannot serve it. A feature the peer lacks blocks the push only when the
 * configuration uses it (a feature left unused is absent from the snapshot, so the older
 * schema serves the same thing).
 */
export function planSend(
  peer: PeerInfo,
  content: Pick<Snapshot, "proxyHosts">,
  ours: readonly number[] = READABLE_SCHEMA_VERSIONS,
  capabilities: readonly Capability[] = CAPABILITIES,
): SendPlan {
  const common = ours.filter((v) => peer.schemas.includes(v));
  if (common.length === 0) {
    return {
      ok: false,
      schema: 0,
      issues: [
        {
          code: "NO_COMMON_SCHEMA",
          capability: "",
          resources: [],
          message: `the slave (release ${peer.release}) reads snapshot schemas ${peer.schemas.join(", ") || "none"}; this master writes ${ours.join(", ")}`,
        },
      ],
    };
  }
  const schema = Math.max(...common);
  const issues: CompatibilityIssue[] = [];
  for (const c of capabilities) {
    if (peer.capabilities.includes(c.name) && c.schema <= schema) continue;
    const resources = c.usedBy(content);
    if (resources.length === 0) continue;
    issues.push({
      code: "MISSING_CAPABILITY",
      capability: c.name,
      resources,
      message: `the slave (release ${peer.release}) does not serve ${c.name}, used by ${describeResources(resources)}`,
    });
  }
  return issues.length ? { ok: false, schema, issues } : { ok: true, schema };
}

/**
 * Whether `peer` reads this build's newest schema and serves every capability it has: it is
 * sent the snapshot as it is, whatever the configuration uses (planSend's answer, without
 * looking at the configuration).
 */
export function knowsAllOf(peer: PeerInfo, self: PeerInfo = SELF): boolean {
  return (
    peer.schemas.includes(Math.max(...self.schemas)) && self.capabilities.every((c) => peer.capabilities.includes(c))
  );
}
