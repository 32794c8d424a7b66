import { LoadBalancingPolicy, type ProxyHost, type Settings, type Snapshot } from "@cpm/proto";
import { canonicalJson, checkUpstreamsNotReserved, parseUpstream, sha256Hex } from "@cpm/core";
import { accessListHandlers } from "./access.ts";
import { renderLayer4 } from "./layer4.ts";
import { hstsValue, transportTimeouts } from "./settings.ts";
import { challengeForwardRoute, httpsConnectionPolicies, renderPki, renderTls } from "./tls.ts";
import { issuanceLogging } from "./issuance-log.ts";
import type { Json, RenderOptions } from "./types.ts";

export type { RenderOptions } from "./types.ts";

export interface Rendered {
  /** Canonical JSON (sorted keys): the bytes sent to Caddy. */
  json: string;
  sha256: string;
  warnings: string[];
}


const LB: Record<LoadBalancingPolicy, string> = {
  [LoadBalancingPolicy.LOAD_BALANCING_POLICY_UNSPECIFIED]: "round_robin",
  [LoadBalancingPolicy.LOAD_BALANCING_POLICY_ROUND_ROBIN]: "round_robin",
  [LoadBalancingPolicy.LOAD_BALANCING_POLICY_LEAST_CONN]: "least_conn",
  [LoadBalancingPolicy.LOAD_BALANCING_POLICY_IP_HASH]: "ip_hash",
  [LoadBalancingPolicy.LOAD_BALANCING_POLICY_FIRST]: "first",
  [LoadBalancingPolicy.LOAD_BALANCING_POLICY_RANDOM]: "random",
  [LoadBalancingPolicy.UNRECOGNIZED]: "round_robin",
};

const NOT_FOUND_ROUTE: Json = {
  handle: [{ handler: "static_response", status_code: 404, body: "No proxy host is configured for this domain.\n" }],
};

/**
 * Snapshot -> Caddy JSON. Pure and deterministic: the same snapshot and options give
 * the same bytes, whatever the order of the snapshot's lists.
 *
 * Layout: server "http" on the HTTP port serves every enabled host that has no
 * certificate, and redirects (ssl_forced) or serves the others; server "https" on the
 * HTTPS port serves hosts with a certificate. Unknown hosts get 404 on both.
 */
export function render(input: Snapshot, opts: RenderOptions): Rendered {
  const warnings: string[] = [];
  const snapshot = withoutReservedUpstreams(input, opts, warnings);
  const hosts = snapshot.proxyHosts.filter((h) => h.enabled !== false);
  const acls = new Map(snapshot.accessLists.map((a) => [a.id, a]));
  const handlers = (h: ProxyHost, https: boolean) => hostHandlers(h, https, accessListHandlers(h.accessListId ? acls.get(h.accessListId) : undefined), snapshot.settings);
  // The redirect keeps a non-default HTTPS port, so ssl_forced works on any CPM_HTTPS_PORT.
  const httpsOrigin = `https://{http.request.host}${opts.httpsPort === 443 ? "" : `:${opts.httpsPort}`}`;
  const httpRoutes: { key: string; route: Json }[] = [];
  const httpsRoutes: { key: string; route: Json }[] = [];
  for (const h of hosts) {
    for (const group of domainGroups(h.domains)) {
      const match = [{ host: group.domains }];
      if (h.certificateId) {
        httpsRoutes.push({ key: group.key, route: { match, handle: handlers(h, true), terminal: true } });
        httpRoutes.push({
          key: group.key,
          route: h.sslForced
            ? { match, handle: [{ handler: "static_response", status_code: 308, headers: { Location: [`${httpsOrigin}{http.request.uri}`] } }], terminal: true }
            : { match, handle: handlers(h, false), terminal: true },
        });
      } else {
        httpRoutes.push({ key: group.key, route: { match, handle: handlers(h, false), terminal: true } });
      }
    }
  }
  const servers: Json = {
    http: {
      listen: [`${opts.bindAddress ?? ""}:${opts.httpPort}`],
      // A challenge for a name the master orders goes to the master before any host route (ssl_forced redirects included).
      routes: [...[challengeForwardRoute(snapshot, opts)].filter((r) => r !== undefined), ...sortRoutes(httpRoutes), NOT_FOUND_ROUTE],
      automatic_https: { disable: true },
    },
  };
  if (httpsRoutes.length > 0) {
    servers.https = {
      listen: [`${opts.bindAddress ?? ""}:${opts.httpsPort}`],
      routes: [...sortRoutes(httpsRoutes), NOT_FOUND_ROUTE],
      // Certificates are explicit (render/tls.ts: load_pem for imported ones, automate for
      // managed ones), and redirects are rendered per host (ssl_forced): automatic HTTPS
      // would manage every host name on its own, so it is off and TLS is on through the
      // connection policies, which pin each host's imported certificate.
      automatic_https: { disable: true },
      tls_connection_policies: httpsConnectionPolicies(snapshot, hosts.filter((h) => h.certificateId)),
    };
  }
  const apps: Json = { http: { http_port: opts.httpPort, https_port: opts.httpsPort, servers } };
  const tls = renderTls(snapshot, opts, warnings);
  if (tls) apps.tls = tls;
  const pki = renderPki(snapshot, opts);
  if (pki) apps.pki = pki;
  const layer4 = renderLayer4(snapshot, opts, warnings);
  if (layer4) apps.layer4 = layer4;
  const admin: Json = opts.adminOrigins?.length ? { listen: opts.adminListen, origins: opts.adminOrigins } : { listen: opts.adminListen };
  const config: Json = { admin, apps };
  if (opts.issuanceLogFile) config.logging = issuanceLogging(opts.issuanceLogFile);
  const json = canonicalJson(config);
  return { json, sha256: sha256Hex(json), warnings };
}

/**
 * The snapshot without the enabled proxy hosts whose upstreams point at this instance's own
 * addresses (opts.reservedUpstreams), one warning each. Instance-local: a master's API refuses
 * such upstreams with its own ports, but a slave judges them by its own.
 */
function withoutReservedUpstreams(snapshot: Snapshot, opts: RenderOptions, warnings: string[]): Snapshot {
  const reserved = opts.reservedUpstreams ?? [];
  if (reserved.length === 0) return snapshot;
  const left = new Set<string>();
  for (const h of [...snapshot.proxyHosts].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (h.enabled === false) continue;
    try {
      checkUpstreamsNotReserved(h.upstreams, "upstreams", reserved);
    } catch (e) {
      warnings.push(`proxy host "${h.name}" not served: ${(e as Error).message}`);
      left.add(h.id);
    }
  }
  return left.size === 0 ? snapshot : { ...snapshot, proxyHosts: snapshot.proxyHosts.filter((h) => !left.has(h.id)) };
}

/** Exact names and each wildcard depth get their own route, so they can be ordered. */
function domainGroups(domains: string[]): { key: string; domains: string[] }[] {
  const exact = domains.filter((d) => !d.startsWith("*.")).sort();
  const wild = domains.filter((d) => d.startsWith("*.")).sort();
  const groups: { key: string; domains: string[] }[] = [];
  if (exact.length) groups.push({ key: `0|${exact[0]}`, domains: exact });
  const byDepth = new Map<number, string[]>();
  for (const w of wild) {
    const depth = w.split(".").length;
    byDepth.set(depth, [...(byDepth.get(depth) ?? []), w]);
  }
  for (const [depth, ds] of byDepth) groups.push({ key: `1|${String(999 - depth).padStart(3, "0")}|${ds[0]}`, domains: ds });
  return groups;
}

/** Exact host routes first, then wildcards from the most specific (deepest) down. */
function sortRoutes(rs: { key: string; route: Json }[]): Json[] {
  return [...rs].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((r) => r.route);
}

function hostHandlers(h: ProxyHost, https: boolean, access: Json[], settings: Settings | undefined): Json[] {
  const handlers: Json[] = [];
  if (https && h.hstsEnabled) {
    const value = hstsValue(h, settings);
    handlers.push({ handler: "headers", response: { set: { "Strict-Transport-Security": [value] } } });
  }
  if (!h.allowWebsocket) {
    // Websocket upgrades are refused unless the host allows them.
    handlers.push({
      handler: "subroute",
      routes: [
        {
          // Upgrade tokens are case-insensitive (RFC 9110, RFC 6455) and Caddy proxies any
          // casing, while the plain header matcher compares exactly: match with (?i).
          match: [{ header_regexp: { Upgrade: { pattern: "(?i)websocket" } } }],
          handle: [{ handler: "static_response", status_code: 403, body: "Websocket upgrades are not allowed for this host.\n" }],
          terminal: true,
        },
      ],
    });
  }
  handlers.push(...access);
  handlers.push(reverseProxy(h, settings));
  return handlers;
}

function reverseProxy(h: ProxyHost, settings: Settings | undefined): Json {
  const ups = h.upstreams.map((u, i) => parseUpstream(u, `upstreams[${i}]`));
  const tls = ups.some((u) => u.scheme === "https");
  const rp: Json = {
    handler: "reverse_proxy",
    upstreams: ups.map((u) => ({ dial: u.dial })),
    load_balancing: { selection_policy: { policy: LB[h.loadBalancing] ?? "round_robin" } },
  };
  // Caddy passes the client's Host through by default; without preserve_host_header the
  // upstream sees its own address, as a plain HTTP client would send.
  if (!h.preserveHostHeader) rp.headers = { request: { set: { Host: ["{http.reverse_proxy.upstream.hostport}"] } } };
  const timeouts = transportTimeouts(settings);
  if (tls || timeouts) rp.transport = { protocol: "http", ...timeouts, ...(tls ? { tls: h.skipHttpsHostnameValidation ? { insecure_skip_verify: true } : {} } : {}) };
  return rp;
}
