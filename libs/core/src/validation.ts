import { isIP } from "node:net";
import { LoadBalancingPolicy, type ProxyHost } from "@cpm/proto";
import { ValidationError } from "./errors.ts";
import { checkCaddyText, checkId, checkNoControl } from "./text.ts";

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A DNS host name, optionally a leading "*." wildcard, or an IP address (no zone id). Returns
 * the lower-cased form.
 */
export function checkHostName(raw: string, field: string, { wildcard = true } = {}): string {
  checkCaddyText(raw, field);
  const v = raw.trim().toLowerCase();
  if (v === "") throw new ValidationError(field, "must not be empty");
  // Node's isIP accepts "fe80::1%eth0"; a zone names an interface of one machine.
  if (v.includes("%")) throw new ValidationError(field, `"${raw}" has a zone id; zones are not supported`);
  if (isIP(v)) return v;
  const name = wildcard && v.startsWith("*.") ? v.slice(2) : v;
  if (v.length > 253 || !name.split(".").every((l) => LABEL.test(l))) {
    throw new ValidationError(field, `"${raw}" is not a valid host name`);
  }
  return v;
}

export interface ParsedUpstream {
  scheme: "http" | "https";
  host: string;
  port: number;
  /** host:port as Caddy dials it. */
  dial: string;
}

/** "host:port" with an optional http:// or https:// scheme. */
export function parseUpstream(raw: string, field: string): ParsedUpstream {
  checkCaddyText(raw, field);
  if (raw.includes("%")) throw new ValidationError(field, `"${raw}" has a zone id; zones are not supported`);
  const v = raw.trim();
  const m = /^(?:(https?):\/\/)?(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(v);
  if (!m) throw new ValidationError(field, `"${raw}" is not host:port (optionally http:// or https://)`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new ValidationError(field, `port ${port} is outside 1..65535`);
  const hostRaw = m[2]!;
  const host = hostRaw.startsWith("[") ? hostRaw : checkHostName(hostRaw, field, { wildcard: false });
  if (hostRaw.startsWith("[") && isIP(hostRaw.slice(1, -1)) !== 6) {
    throw new ValidationError(field, `"${raw}" has an invalid IPv6 address`);
  }
  return { scheme: (m[1] as "http" | "https" | undefined) ?? "http", host, port, dial: `${host}:${port}` };
}

/** A display name: required, trimmed, at most 200 characters, no control characters. */
export function checkName(raw: string, field: string): string {
  checkNoControl(raw, field);
  const v = raw.trim();
  if (v === "") throw new ValidationError(field, "is required");
  if (v.length > 200) throw new ValidationError(field, "is longer than 200 characters");
  return v;
}

/** An optional id or reference (empty stays empty), trimmed; see checkId. */
export function checkOptionalId(raw: string, field: string): string {
  const v = raw.trim();
  return v === "" ? "" : checkId(v, field);
}

export function checkEnum(value: number, allowed: Record<string, string | number>, field: string): number {
  if (value < 0 || !Object.values(allowed).includes(value) || value === -1) {
    throw new ValidationError(field, `${value} is not a known value`);
  }
  return value;
}

/**
 * Checks one proxy host on its own (not against other resources) and returns the
 * normalized form: trimmed, lower-cased domains, canonical upstreams, defaults filled.
 */
export function normalizeProxyHost(input: ProxyHost, field = "proxy_host"): ProxyHost {
  checkOptionalId(input.id, `${field}.id`);
  const certificateId = checkOptionalId(input.certificateId, `${field}.certificate_id`);
  const accessListId = checkOptionalId(input.accessListId, `${field}.access_list_id`);
  const name = checkName(input.name, `${field}.name`);
  if (input.domains.length === 0) throw new ValidationError(`${field}.domains`, "at least one domain is required");
  if (input.domains.length > 100) throw new ValidationError(`${field}.domains`, "at most 100 domains");
  const domains = input.domains.map((d, i) => checkHostName(d, `${field}.domains[${i}]`));
  const dup = domains.findIndex((d, i) => domains.indexOf(d) !== i);
  if (dup >= 0) throw new ValidationError(`${field}.domains[${dup}]`, `"${domains[dup]}" is listed twice`);
  if (input.upstreams.length === 0)
    throw new ValidationError(`${field}.upstreams`, "at least one upstream is required");
  const upstreams = input.upstreams.map((u, i) => {
    const p = parseUpstream(u, `${field}.upstreams[${i}]`);
    return p.scheme === "https" ? `https://${p.dial}` : p.dial;
  });
  const schemes = new Set(upstreams.map((u) => u.startsWith("https://")));
  if (schemes.size > 1)
    throw new ValidationError(`${field}.upstreams`, "mixes http and https upstreams; use one scheme per proxy host");
  checkEnum(input.loadBalancing, LoadBalancingPolicy, `${field}.load_balancing`);
  // HTTPS is served from the host's certificate, so forcing it (or HSTS) needs one.
  if (input.sslForced && !certificateId)
    throw new ValidationError(
      `${field}.ssl_forced`,
      "needs certificate_id (HTTPS is served with the host's certificate)",
    );
  if (input.hstsEnabled && !certificateId) throw new ValidationError(`${field}.hsts_enabled`, "needs certificate_id");
  if (input.hstsSubdomains && !input.hstsEnabled) {
    throw new ValidationError(`${field}.hsts_subdomains`, "needs hsts_enabled");
  }
  return {
    ...input,
    name,
    domains,
    upstreams,
    certificateId,
    accessListId,
    enabled: input.enabled ?? true,
  };
}
