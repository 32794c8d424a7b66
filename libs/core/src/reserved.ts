import { isIP } from "node:net";
import { normalizeIpRange } from "./access-lists.ts";
import type { InstanceConfig } from "./env.ts";
import { ValidationError } from "./errors.ts";
import { parseUpstream } from "./validation.ts";

/*
 * Upstreams must not point at this instance's own control plane: a proxy host with the
 * upstream 127.0.0.1:2019 would publish Caddy's admin API (and with it the whole config) to
 * anyone who can reach the host. What counts as "this instance" is instance-local: the API
 * refuses such upstreams at write time with its own ports, and the renderer leaves a host
 * from a master's snapshot out (with a warning) when it points at the slave's own ports.
 */

/** An address of this instance that no upstream may point at. */
export interface ReservedAddress {
  /** As configured (may be "0.0.0.0", "[::1]", "localhost" or a name such as "caddy"). */
  host: string;
  port: number;
  /** What listens there, for messages: "Caddy's admin API (CPM_CADDY_ADMIN_LISTEN)". */
  what: string;
}

type ReservedSource = Pick<
  InstanceConfig,
  | "caddyApiUrl"
  | "caddyAdminListen"
  | "apiListen"
  | "configInternalListen"
  | "apiAddr"
  | "rendererListen"
  | "dispatcherListen"
  | "syncListen"
  | "configAddr"
  | "rendererAddr"
>;

function split(hostPort: string, what: string): ReservedAddress | undefined {
  const i = hostPort.lastIndexOf(":");
  const port = Number(hostPort.slice(i + 1));
  return i < 0 || !Number.isInteger(port) || port < 1 || port > 65535
    ? undefined
    : { host: hostPort.slice(0, i), port, what };
}

/** The addresses of this instance's Caddy admin API and its CPM services, from its configuration. */
export function reservedAddresses(cfg: ReservedSource): ReservedAddress[] {
  const admin = "this instance's Caddy admin API";
  let apiUrl: string | undefined;
  try {
    const u = new URL(cfg.caddyApiUrl);
    apiUrl = `${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`;
  } catch {
    apiUrl = undefined;
  }
  const entries: [string | undefined, string][] = [
    [cfg.caddyAdminListen, `${admin} (CPM_CADDY_ADMIN_LISTEN)`],
    [apiUrl, `${admin} (CADDY_API_URL)`],
    [cfg.apiListen, "this instance's config-service (CPM_API_LISTEN)"],
    [cfg.apiAddr, "this instance's config-service (CPM_API_ADDR)"],
    [cfg.configInternalListen, "this instance's config-service, internal (CPM_CONFIG_INTERNAL_LISTEN)"],
    [cfg.configAddr, "this instance's config-service, internal (CPM_CONFIG_ADDR)"],
    [cfg.rendererListen, "this instance's caddy-renderer (CPM_RENDERER_LISTEN)"],
    [cfg.rendererAddr, "this instance's caddy-renderer (CPM_RENDERER_ADDR)"],
    [cfg.dispatcherListen, "this instance's sync-dispatcher (CPM_DISPATCHER_LISTEN)"],
    [cfg.syncListen, "this instance's sync-receiver (CPM_SYNC_LISTEN)"],
  ];
  return entries.flatMap(([hp, what]) => (hp ? (split(hp, what) ?? []) : []));
}

/**
 * inet_aton's forms of an IPv4 address ("127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1"),
 * which a resolver may accept for a host name; undefined when `s` is not one.
 */
function inetAton(s: string): string | undefined {
  const parts = s.split(".");
  if (parts.length > 4) return undefined;
  const nums = parts.map((p) =>
    /^0x[0-9a-f]+$/.test(p)
      ? parseInt(p, 16)
      : /^0[0-7]*$/.test(p)
        ? parseInt(p, 8)
        : /^[1-9]\d*$/.test(p)
          ? Number(p)
          : NaN,
  );
  if (nums.some((n) => !Number.isFinite(n))) return undefined;
  const last = nums.pop()!;
  if (nums.some((n) => n > 255) || last >= 2 ** (8 * (4 - nums.length))) return undefined;
  const value = nums.reduce((acc, n, i) => acc + n * 2 ** (8 * (3 - i)), 0) + last;
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

/** Lower case, without brackets or a final dot; IP addresses canonical (IPv4-mapped IPv6 as IPv4). */
function canonicalHost(raw: string): string {
  const h = raw
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/\.$/, "");
  if (isIP(h)) {
    try {
      return normalizeIpRange(h, "host");
    } catch {
      return h;
    }
  }
  return inetAton(h) ?? h;
}

/** Loopback (127.0.0.0/8, ::1, localhost, *.localhost) or unspecified (0.0.0.0, ::): this machine. */
export function isThisMachine(host: string): boolean {
  const h = canonicalHost(host);
  return (
    h === "localhost" ||
    h.endsWith(".localhost") ||
    h.startsWith("127.") ||
    h === "0.0.0.0" ||
    h === "::1" ||
    h === "::"
  );
}

/**
 * The reserved address `host:port` points at, if any: same port, and the host is this machine
 * (loopback or unspecified) or the very host the reserved address names.
 */
export function reservedUpstream(
  host: string,
  port: number,
  reserved: readonly ReservedAddress[],
): ReservedAddress | undefined {
  const local = isThisMachine(host);
  const h = canonicalHost(host);
  return reserved.find((r) => r.port === port && (local || canonicalHost(r.host) === h));
}

/**
 * Refuses an upstream (host:port, optionally with a scheme) that points at a reserved address:
 * ValidationError naming `${field}[i]`.
 */
export function checkUpstreamsNotReserved(
  upstreams: readonly string[],
  field: string,
  reserved: readonly ReservedAddress[],
): void {
  if (reserved.length === 0) return;
  upstreams.forEach((u, i) => {
    const at = `${field}[${i}]`;
    const p = parseUpstream(u, at);
    const r = reservedUpstream(p.host, p.port, reserved);
    if (r) throw new ValidationError(at, `"${u}" points at ${r.what}; an upstream must not`);
  });
}
