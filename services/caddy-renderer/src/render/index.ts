import { LoadBalancingPolicy, type AccessList, type ProxyHost, type Settings, type Snapshot } from "@cpm/proto";
import {
  canonicalJsonReusing,
  compareCodeUnits,
  checkUpstreamsNotReserved,
  keepCanonical,
  parseUpstream,
  sha256Hex,
  type ReservedAddress,
} from "@cpm/core";
import { accessListHandlers } from "./access.ts";
import { RenderMemo } from "./memo.ts";
import { renderLayer4 } from "./layer4.ts";
import { hstsValue, transportTimeouts } from "./settings.ts";
import { challengeForwardRoute, httpsConnectionPolicies, renderPki, renderTls } from "./tls.ts";
import { issuanceLogging } from "./issuance-log.ts";
import type { Json, RenderOptions } from "./types.ts";

export type { RenderOptions } from "./types.ts";
export { RenderMemo } from "./memo.ts";

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

const NOT_FOUND: Json = {
  body: "No proxy host is configured for this domain.\n",
  handler: "static_response",
  status_code: 404,
};
const NOT_FOUND_ROUTE: Json = keepCanonical({ handle: [NOT_FOUND] });
/**
 * A compressing host's responses, for clients that accept it: zstd, else gzip. Caddy's defaults
 * decide the rest: responses of 512 bytes or more, of compressible types (text, JSON, ...), not
 * already encoded.
 */
const ENCODE: Json = { handler: "encode", encodings: { zstd: {}, gzip: {} }, prefer: ["zstd", "gzip"] };

/** What renders in this process keep for the next one, unless a caller passes its own. */
const MEMO = new RenderMemo();

/**
 * Snapshot -> Caddy JSON. Pure and deterministic: the same snapshot and options give
 * the same bytes, whatever the order of the snapshot's lists.
 *
 * Layout: one server, "http", listens on the HTTP port and, when a host has a certificate, on
 * the HTTPS port too; Caddy turns TLS on for every listener but the HTTP port's (apps.http
 * http_port). Its routes, in order:
 * 1. on a slave, HTTP-01 challenges for master-issued names go to the master (render/tls.ts);
 *    plain HTTP drops the HTTP/3 advertisement meant for the HTTPS port;
 * 2. one route per class of hosts that share the same handling before the proxy (HTTPS
 *    forced, HTTPS without a certificate, HSTS, websocket refusal, access list): a subroute
 *    that redirects, refuses or gates, or falls through to 3;
 * 3. one route per distinct reverse_proxy handler, listing every host that proxies that way
 *    (with the encode handler before it for hosts that compress);
 * 4. 404 for any other host name.
 * Routes that list hosts never overlap (render/domains.ts), so hosts are grouped freely.
 *
 * `memo` is what renders keep for the next one (render/memo.ts): one per process by default. It
 * changes how much work a render does, never its bytes.
 */
export function render(input: Snapshot, opts: RenderOptions, memo: RenderMemo = MEMO): Rendered {
  const warnings: string[] = [];
  const snapshot = withoutReservedUpstreams(input, opts, warnings);
  const hosts = sortedById(snapshot.proxyHosts.filter((h) => h.enabled !== false));
  const index = memo.domainIndex(hosts);
  const served = hosts.filter((h) => index.serves(h));
  const acls = new Map(snapshot.accessLists.map((a) => [a.id, a]));
  const tlsHosts = served.filter((h) => h.certificateId);
  const https = tlsHosts.length > 0;
  // The redirect keeps a non-default HTTPS port, so ssl_forced works on any CPM_HTTPS_PORT.
  const httpsOrigin = `https://{http.request.host}${opts.httpsPort === 443 ? "" : `:${opts.httpsPort}`}`;
  const settings = snapshot.settings;
  const ctx = memo.classContext(https, httpsOrigin, settings);
  memo.startRender(served.length);
  // Hosts grouped by each part (their routes are listed below, memo.routesInOrder).
  memo.groupBy(
    served,
    "classes",
    (h) => (h.accessListId ? acls.get(h.accessListId) : undefined),
    snapshot.accessLists,
    ctx,
    (h, acl) => classRoutes(h, https, httpsOrigin, accessHandlers(acl as AccessList | undefined), settings),
  );
  memo.groupBy(
    served,
    "proxy",
    () => undefined,
    [],
    settings,
    (h) => (h.compression ? [ENCODE, reverseProxy(h, settings)] : [reverseProxy(h, settings)]),
  );
  // Every object here is built with its keys in sorted order, as canonical JSON writes them:
  // canonicalJsonReusing then writes each kept part (a route, the tls app) once and reuses it;
  // an object out of order would be copied sorted with all it holds, every render.
  const server: Json = {
    // Certificates are explicit (render/tls.ts: load_pem for imported ones, automate for
    // managed ones), and redirects are rendered per class of hosts (ssl_forced): automatic
    // HTTPS would manage every host name on its own, so it is off, and TLS is on through the
    // connection policies, which pin each imported certificate to its hosts' names.
    automatic_https: { disable: true },
    listen: [
      `${opts.bindAddress ?? ""}:${opts.httpPort}`,
      ...(https ? [`${opts.bindAddress ?? ""}:${opts.httpsPort}`] : []),
    ],
    routes: [
      // A challenge for a name the master orders goes to the master before any host route (ssl_forced redirects included).
      ...[challengeForwardRoute(snapshot, opts)].filter((r) => r !== undefined),
      // With TLS on, Caddy advertises HTTP/3 (Alt-Svc) on every response of the server, plain
      // HTTP included; a server of its own on the HTTP port never did. Removed at once (not
      // deferred), so an upstream's own Alt-Svc still goes through, as it did.
      ...(https
        ? [{ handle: [{ handler: "headers", response: { delete: ["Alt-Svc"] } }], match: [{ protocol: "http" }] }]
        : []),
      // Routes for disjoint sets of hosts: any order is right; by first name to be deterministic.
      ...memo.routesInOrder("classes", index, (routes) => [{ handler: "subroute", routes }]),
      // reverse_proxy never calls the next handler, so these routes need no `terminal`.
      ...memo.routesInOrder("proxy", index, (handlers) => handlers),
      NOT_FOUND_ROUTE,
    ],
  };
  if (https) server.tls_connection_policies = httpsConnectionPolicies(snapshot, opts, tlsHosts, index);
  const apps: Json = { http: { http_port: opts.httpPort, https_port: opts.httpsPort, servers: { http: server } } };
  const tls = renderTls(snapshot, opts, warnings);
  const layer4 = renderLayer4(snapshot, opts, warnings);
  if (layer4) apps.layer4 = layer4;
  if (tls) {
    apps.pki = renderPki();
    apps.tls = tls;
  }
  const admin: Json = opts.adminOrigins?.length
    ? { listen: opts.adminListen, origins: opts.adminOrigins }
    : { listen: opts.adminListen };
  const config: Json = { admin, apps };
  if (opts.issuanceLogFile) config.logging = issuanceLogging(opts.issuanceLogFile);
  const json = canonicalJsonReusing(config);
  return { json, sha256: sha256Hex(json), warnings };
}

// The objects rendered for every host (routes, handlers) are written with their keys in sorted
// order: the canonical JSON of the config then keeps them as they are rather than copying each
// one (canonicalJson in @cpm/core); the bytes are the same either way.

/** `hosts` (a fresh array) sorted by id: checked first, since a snapshot lists them in that order already. */
function sortedById(hosts: ProxyHost[]): ProxyHost[] {
  for (let i = 1; i < hosts.length; i++)
    if (hosts[i - 1]!.id > hosts[i]!.id) return hosts.sort((a, b) => compareCodeUnits(a.id, b.id));
  return hosts;
}

/** accessListHandlers, once per access list object. */
const aclHandlers = new WeakMap<object, Json[]>();
function accessHandlers(acl: AccessList | undefined): Json[] {
  if (!acl) return [];
  let v = aclHandlers.get(acl);
  if (!v) aclHandlers.set(acl, (v = accessListHandlers(acl)));
  return v;
}

/** Per reserved set, the verdict on each list of upstreams already judged (undefined: none is reserved). */
const verdicts = new WeakMap<readonly ReservedAddress[], Map<string, string | undefined>>();
/** Bound on remembered upstream lists per reserved set: past it, the memory starts over. */
const MAX_VERDICTS = 100_000;
/** The verdict on a host object's upstreams, with the reserved set it was judged against. */
const hostVerdicts = new WeakMap<ProxyHost, { reserved: readonly ReservedAddress[]; verdict: string | undefined }>();

/** reservedVerdict of `h`'s upstreams, kept per host object (its upstreams never change). */
function hostVerdict(h: ProxyHost, reserved: readonly ReservedAddress[]): string | undefined {
  const known = hostVerdicts.get(h);
  if (known?.reserved === reserved) return known.verdict;
  const verdict = reservedVerdict(h.upstreams, reserved);
  hostVerdicts.set(h, { reserved, verdict });
  return verdict;
}

/** Why `upstreams` point at one of `reserved` (the error's message), or undefined; each distinct list is judged once. */
function reservedVerdict(upstreams: readonly string[], reserved: readonly ReservedAddress[]): string | undefined {
  let known = verdicts.get(reserved);
  if (!known || known.size >= MAX_VERDICTS) verdicts.set(reserved, (known = new Map<string, string | undefined>()));
  const key = upstreams.join("\n");
  if (known.has(key)) return known.get(key);
  let verdict: string | undefined;
  try {
    checkUpstreamsNotReserved(upstreams, "upstreams", reserved);
  } catch (e) {
    verdict = (e as Error).message;
  }
  known.set(key, verdict);
  return verdict;
}

/**
 * The snapshot without the enabled proxy hosts whose upstreams point at this instance's own
 * addresses (opts.reservedUpstreams), one warning each. Instance-local: a master's API refuses
 * such upstreams with its own ports, but a slave judges them by its own.
 */
function withoutReservedUpstreams(snapshot: Snapshot, opts: RenderOptions, warnings: string[]): Snapshot {
  const reserved = opts.reservedUpstreams ?? [];
  if (reserved.length === 0) return snapshot;
  const refused: { h: ProxyHost; why: string }[] = [];
  for (const h of snapshot.proxyHosts) {
    const why = h.enabled === false ? undefined : hostVerdict(h, reserved);
    if (why !== undefined) refused.push({ h, why });
  }
  if (refused.length === 0) return snapshot;
  // Warnings in name order (a stable sort: equal names keep the snapshot's order).
  for (const { h, why } of refused.sort((a, b) => compareCodeUnits(a.h.name, b.h.name)))
    warnings.push(`proxy host "${h.name}" not served: ${why}`);
  const left = new Set(refused.map((r) => r.h.id));
  return { ...snapshot, proxyHosts: snapshot.proxyHosts.filter((h) => !left.has(h.id)) };
}

/**
 * What a host does before its proxy, as subroute routes (empty: nothing, the request goes
 * straight to reverse_proxy). The order is the order of the checks: HTTPS forced (plain HTTP
 * is redirected), no certificate (HTTPS gets the 404 an unknown host gets), HSTS on HTTPS
 * (set before anything answers, so refusals carry it too), websocket refusal, access list.
 * No route is terminal: in a subroute that would end the whole request, not the subroute.
 */
function classRoutes(
  h: ProxyHost,
  https: boolean,
  httpsOrigin: string,
  access: Json[],
  settings: Settings | undefined,
): Json[] {
  const routes: Json[] = [];
  if (h.certificateId && h.sslForced) {
    routes.push({
      handle: [
        { handler: "static_response", headers: { Location: [`${httpsOrigin}{http.request.uri}`] }, status_code: 308 },
      ],
      match: [{ protocol: "http" }],
    });
  }
  if (!h.certificateId && https) routes.push({ handle: [NOT_FOUND], match: [{ protocol: "https" }] });
  if (h.certificateId && h.hstsEnabled) {
    routes.push({
      handle: [{ handler: "headers", response: { set: { "Strict-Transport-Security": [hstsValue(h, settings)] } } }],
      match: [{ protocol: "https" }],
    });
  }
  if (!h.allowWebsocket) {
    // Websocket upgrades are refused unless the host allows them. Upgrade tokens are
    // case-insensitive (RFC 9110, RFC 6455) and Caddy proxies any casing, while the plain
    // header matcher compares exactly: match with (?i).
    routes.push({
      handle: [
        { body: "Websocket upgrades are not allowed for this host.\n", handler: "static_response", status_code: 403 },
      ],
      match: [{ header_regexp: { Upgrade: { pattern: "(?i)websocket" } } }],
    });
  }
  if (access.length > 0) routes.push({ handle: access });
  return routes;
}

function reverseProxy(h: ProxyHost, settings: Settings | undefined): Json {
  const ups = h.upstreams.map((u, i) => parseUpstream(u, `upstreams[${i}]`));
  const tls = ups.some((u) => u.scheme === "https");
  const rp: Json = { handler: "reverse_proxy" };
  // Caddy passes the client's Host through by default; without preserve_host_header the
  // upstream sees its own address, as a plain HTTP client would send. With one upstream that
  // address is known here: the same value as the placeholder, in fewer bytes.
  if (!h.preserveHostHeader)
    rp.headers = {
      request: { set: { Host: [ups.length === 1 ? ups[0]!.dial : "{http.reverse_proxy.upstream.hostport}"] } },
    };
  // Every policy picks the only upstream when there is one (Caddy's default policy is random).
  if (ups.length > 1) rp.load_balancing = { selection_policy: { policy: LB[h.loadBalancing] ?? "round_robin" } };
  const timeouts = transportTimeouts(settings);
  if (tls || timeouts)
    rp.transport = {
      protocol: "http",
      ...timeouts,
      ...(tls ? { tls: h.skipHttpsHostnameValidation ? { insecure_skip_verify: true } : {} } : {}),
    };
  rp.upstreams = ups.map((u) => ({ dial: u.dial }));
  return rp;
}
