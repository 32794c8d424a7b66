import { isIP } from "node:net";
import { L4Matcher, L4Protocol, ProxyProtocolVersion, type L4ProxyHost } from "@cpm/proto";
import { ValidationError } from "./errors.ts";
import { checkCaddyText } from "./text.ts";
import { checkEnum, checkHostName, checkName, checkOptionalId, parseUpstream } from "./validation.ts";

/*
 * L4 (TCP/UDP) proxy hosts, checked one at a time. Rules between hosts (one catch-all per
 * listener, distinct matcher values, overlapping listeners) are in `l4ListenerConflict`;
 * rules that depend on the instance (its HTTP/HTTPS ports) are the renderer's.
 *
 * Semantics, as rendered into caddy-l4:
 * - hosts with the same protocol and listen address share one listener; its routes are
 *   tried in order TLS_SNI, HTTP_HOST, PROXY_PROTOCOL, then the catch-all (NONE);
 * - proxy_protocol_receive decodes a PROXY header before proxying; it is only possible
 *   with the NONE and PROXY_PROTOCOL matchers, because caddy-l4 matches SNI and Host on
 *   the connection's first bytes, which the PROXY header would hide;
 * - tls_termination terminates TLS with the certificate certificate_id names; HTTP_HOST
 *   cannot be combined with it (the Host header is inside the TLS stream: use TLS_SNI);
 * - UDP listeners take only the NONE matcher, no TLS, no PROXY header from downstream,
 *   and only version 2 of the PROXY header upstream (version 1 has no UDP form).
 */

export const MAX_L4_UPSTREAMS = 100;
export const MAX_L4_MATCHER_VALUES = 100;

export interface L4Listener {
  protocol: "tcp" | "udp";
  /** "" (every address), an IPv4 address or a bracketed IPv6 address. */
  host: string;
  port: number;
  /** The listen address in its canonical form: ":5432", "127.0.0.1:5432", "[::1]:5432". */
  address: string;
  /** How Caddy writes it: "tcp/:5432". */
  network: string;
}

/** "[host]:port" or ":port", host an IP address (no zone id). Returns the canonical parts. */
export function parseListenAddress(raw: string, field: string): { host: string; port: number; address: string } {
  checkCaddyText(raw, field);
  if (raw.includes("%")) throw new ValidationError(field, `"${raw}" has a zone id; zones are not supported`);
  const v = raw.trim();
  if (/^[a-z0-9]+\//i.test(v))
    throw new ValidationError(field, `"${raw}" must not name a network; set protocol instead`);
  const m = /^(\[[^\]\s]*\]|[^\s:[\]]*):(\d{1,5})$/.exec(v);
  if (!m)
    throw new ValidationError(
      field,
      `"${raw}" is not [host]:port or :port (e.g. ":5432", "127.0.0.1:5432", "[::1]:5432")`,
    );
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new ValidationError(field, `port ${port} is outside 1..65535`);
  const host = m[1]!.toLowerCase();
  if (host.startsWith("[")) {
    if (isIP(host.slice(1, -1)) !== 6) throw new ValidationError(field, `"${raw}" has an invalid IPv6 address`);
  } else if (host !== "" && isIP(host) !== 4) {
    throw new ValidationError(field, `host "${m[1]}" must be an IP address (or empty for every address)`);
  }
  return { host, port, address: `${host}:${port}` };
}

const protocolName = (p: L4Protocol): "tcp" | "udp" => (p === L4Protocol.L4_PROTOCOL_UDP ? "udp" : "tcp");

/** The listener of a host that passed `normalizeL4ProxyHost`. */
export function l4Listener(
  h: Pick<L4ProxyHost, "protocol" | "listenAddress">,
  field = "l4_proxy_host.listen_address",
): L4Listener {
  const { host, port, address } = parseListenAddress(h.listenAddress, field);
  const protocol = protocolName(h.protocol);
  return { protocol, host, port, address, network: `${protocol}/${address}` };
}

const WILDCARD_HOSTS = new Set(["", "0.0.0.0", "[::]"]);

/** Two different listeners that cannot both be bound: same protocol and port, one on every address. */
export function listenersOverlap(a: L4Listener, b: L4Listener): boolean {
  return (
    a.protocol === b.protocol &&
    a.port === b.port &&
    a.host !== b.host &&
    (WILDCARD_HOSTS.has(a.host) || WILDCARD_HOSTS.has(b.host))
  );
}

/** NONE and UNSPECIFIED both mean "no matcher". */
export function effectiveMatcher(m: L4Matcher): L4Matcher {
  return m === L4Matcher.L4_MATCHER_UNSPECIFIED ? L4Matcher.L4_MATCHER_NONE : m;
}

const MATCHER_NAME: Record<number, string> = {
  [L4Matcher.L4_MATCHER_NONE]: "NONE",
  [L4Matcher.L4_MATCHER_TLS_SNI]: "TLS_SNI",
  [L4Matcher.L4_MATCHER_HTTP_HOST]: "HTTP_HOST",
  [L4Matcher.L4_MATCHER_PROXY_PROTOCOL]: "PROXY_PROTOCOL",
};
export const l4MatcherName = (m: L4Matcher) => MATCHER_NAME[effectiveMatcher(m)] ?? String(m);

/** Checks one L4 proxy host on its own and returns its normalized form. */
export function normalizeL4ProxyHost(input: L4ProxyHost, field = "l4_proxy_host"): L4ProxyHost {
  checkOptionalId(input.id, `${field}.id`);
  const name = checkName(input.name, `${field}.name`);
  checkEnum(input.protocol, L4Protocol, `${field}.protocol`);
  checkEnum(input.matcher, L4Matcher, `${field}.matcher`);
  checkEnum(input.proxyProtocolVersion, ProxyProtocolVersion, `${field}.proxy_protocol_version`);
  const protocol =
    input.protocol === L4Protocol.L4_PROTOCOL_UDP ? L4Protocol.L4_PROTOCOL_UDP : L4Protocol.L4_PROTOCOL_TCP;
  const udp = protocol === L4Protocol.L4_PROTOCOL_UDP;
  const listenAddress = parseListenAddress(input.listenAddress, `${field}.listen_address`).address;

  if (input.upstreams.length === 0)
    throw new ValidationError(`${field}.upstreams`, "at least one upstream is required");
  if (input.upstreams.length > MAX_L4_UPSTREAMS)
    throw new ValidationError(`${field}.upstreams`, `at most ${MAX_L4_UPSTREAMS} upstreams`);
  const upstreams = input.upstreams.map((u, i) => {
    const at = `${field}.upstreams[${i}]`;
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(u.trim()))
      throw new ValidationError(at, `"${u}" must be host:port without a scheme`);
    return parseUpstream(u, at).dial;
  });
  const dupUp = upstreams.findIndex((u, i) => upstreams.indexOf(u) !== i);
  if (dupUp >= 0) throw new ValidationError(`${field}.upstreams[${dupUp}]`, `"${upstreams[dupUp]}" is listed twice`);

  const matcher = effectiveMatcher(input.matcher);
  const mName = MATCHER_NAME[matcher]!;
  let matcherValues: string[] = [];
  if (matcher === L4Matcher.L4_MATCHER_TLS_SNI || matcher === L4Matcher.L4_MATCHER_HTTP_HOST) {
    if (udp)
      throw new ValidationError(`${field}.matcher`, `${mName} needs TCP (UDP listeners only take the NONE matcher)`);
    if (input.matcherValues.length === 0) {
      throw new ValidationError(
        `${field}.matcher_values`,
        `at least one host name is required for the ${mName} matcher`,
      );
    }
    if (input.matcherValues.length > MAX_L4_MATCHER_VALUES) {
      throw new ValidationError(`${field}.matcher_values`, `at most ${MAX_L4_MATCHER_VALUES} values`);
    }
    matcherValues = input.matcherValues.map((v, i) => checkHostName(v, `${field}.matcher_values[${i}]`));
    const dup = matcherValues.findIndex((v, i) => matcherValues.indexOf(v) !== i);
    if (dup >= 0)
      throw new ValidationError(`${field}.matcher_values[${dup}]`, `"${matcherValues[dup]}" is listed twice`);
  } else if (input.matcherValues.length > 0) {
    throw new ValidationError(`${field}.matcher_values`, `must be empty for the ${mName} matcher`);
  }
  if (matcher === L4Matcher.L4_MATCHER_PROXY_PROTOCOL && udp) {
    throw new ValidationError(
      `${field}.matcher`,
      "PROXY_PROTOCOL needs TCP (UDP listeners only take the NONE matcher)",
    );
  }

  const certificateId = checkOptionalId(input.certificateId, `${field}.certificate_id`);
  if (input.tlsTermination) {
    if (udp) throw new ValidationError(`${field}.tls_termination`, "is not possible over UDP");
    if (matcher === L4Matcher.L4_MATCHER_HTTP_HOST) {
      throw new ValidationError(
        `${field}.tls_termination`,
        "cannot be combined with the HTTP_HOST matcher (the Host header is inside TLS); use TLS_SNI",
      );
    }
    if (!certificateId)
      throw new ValidationError(
        `${field}.certificate_id`,
        "is required with tls_termination (TLS is terminated with this certificate)",
      );
  } else if (certificateId) {
    throw new ValidationError(
      `${field}.certificate_id`,
      "is only used with tls_termination; set tls_termination or clear certificate_id",
    );
  }

  if (input.proxyProtocolReceive) {
    if (udp) throw new ValidationError(`${field}.proxy_protocol_receive`, "is only possible over TCP");
    if (matcher === L4Matcher.L4_MATCHER_TLS_SNI || matcher === L4Matcher.L4_MATCHER_HTTP_HOST) {
      throw new ValidationError(
        `${field}.proxy_protocol_receive`,
        `cannot be combined with the ${mName} matcher (the PROXY header comes before what it matches); use NONE or PROXY_PROTOCOL`,
      );
    }
  }
  if (udp && input.proxyProtocolVersion === ProxyProtocolVersion.PROXY_PROTOCOL_VERSION_V1) {
    throw new ValidationError(`${field}.proxy_protocol_version`, "V1 cannot carry UDP addresses; use V2 for UDP");
  }

  return {
    ...input,
    name,
    protocol,
    listenAddress,
    upstreams,
    matcher,
    matcherValues,
    certificateId,
    enabled: input.enabled ?? true,
  };
}

/**
 * Whether `h` can share the instance with `others` (all normalized). Returns the conflict
 * as [field, message] or undefined. Only enabled hosts take part: a disabled host holds
 * no listener. Rules: one catch-all (NONE) and one PROXY_PROTOCOL host per listener; a
 * TLS_SNI or HTTP_HOST value once per listener; no listener on every address beside one on
 * a single address of the same port and protocol (they cannot both be bound).
 */
export function l4ListenerConflict(
  h: L4ProxyHost,
  others: L4ProxyHost[],
  field = "l4_proxy_host",
): [string, string] | undefined {
  if (h.enabled === false) return undefined;
  const mine = l4Listener(h);
  const matcher = effectiveMatcher(h.matcher);
  for (const o of others) {
    if (o.id === h.id || o.enabled === false) continue;
    const theirs = l4Listener(o);
    if (listenersOverlap(mine, theirs)) {
      return [
        `${field}.listen_address`,
        `${mine.network} overlaps ${theirs.network} of L4 proxy host "${o.name}" (same port, one on every address)`,
      ];
    }
    if (theirs.network !== mine.network || effectiveMatcher(o.matcher) !== matcher) continue;
    if (matcher === L4Matcher.L4_MATCHER_NONE || matcher === L4Matcher.L4_MATCHER_PROXY_PROTOCOL) {
      return [
        `${field}.matcher`,
        `listener ${mine.network} already has a ${MATCHER_NAME[matcher]} host: "${o.name}" (use a matcher to share a listener)`,
      ];
    }
    const i = h.matcherValues.findIndex((v) => o.matcherValues.includes(v));
    if (i >= 0) {
      return [
        `${field}.matcher_values[${i}]`,
        `"${h.matcherValues[i]}" is already matched on listener ${mine.network} by L4 proxy host "${o.name}"`,
      ];
    }
  }
  return undefined;
}

/** A port this instance's Caddy serves itself (HTTP, HTTPS, HTTP/3, its admin API). */
export interface InstancePort {
  protocol: "tcp" | "udp";
  /** undefined: every address. */
  host: string | undefined;
  port: number;
  /** For messages: "HTTP port". */
  what: string;
}

/** What decides this instance's own ports: its HTTP/HTTPS ports, Caddy's bind address and admin listen address. */
export interface InstancePortSource {
  httpPort: number;
  httpsPort: number;
  /** CPM_CADDY_BIND: undefined for every address. */
  bindAddress?: string | undefined;
  /** host:port of Caddy's admin API. */
  adminListen: string;
}

/**
 * The ports this instance's Caddy serves itself: HTTP and HTTPS on its bind address (TCP),
 * HTTP/3 on the HTTPS port (UDP), and the admin API on its address. Instance-local: the API
 * refuses an L4 listener on them at write time, and the renderer leaves out one that a master
 * sent (the master cannot know a slave's ports).
 */
export function instancePorts(src: InstancePortSource): InstancePort[] {
  const bind = src.bindAddress;
  const r: InstancePort[] = [
    { protocol: "tcp", host: bind, port: src.httpPort, what: "HTTP port" },
    { protocol: "tcp", host: bind, port: src.httpsPort, what: "HTTPS port" },
    { protocol: "udp", host: bind, port: src.httpsPort, what: "HTTPS port (HTTP/3)" },
  ];
  const admin = /^(?:tcp\/)?(\[[^\]]*\]|[^:/]*):(\d+)$/.exec(src.adminListen);
  if (admin) {
    const host = admin[1]!.toLowerCase();
    r.push({
      protocol: "tcp",
      host: WILDCARD_HOSTS.has(host) ? undefined : host === "localhost" ? "127.0.0.1" : host,
      port: Number(admin[2]),
      what: "admin API port",
    });
  }
  return r;
}

/** The instance port `listener` would take, or undefined. */
export function takesInstancePort(listener: L4Listener, ports: readonly InstancePort[]): InstancePort | undefined {
  return ports.find(
    (r) =>
      r.protocol === listener.protocol &&
      r.port === listener.port &&
      (r.host === undefined || WILDCARD_HOSTS.has(listener.host) || r.host === listener.host),
  );
}
