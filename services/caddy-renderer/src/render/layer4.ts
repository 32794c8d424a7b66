import {
  CertificateType,
  L4Matcher,
  ProxyProtocolVersion,
  type Certificate,
  type L4ProxyHost,
  type Snapshot,
} from "@cpm/proto";
import {
  checkUpstreamsNotReserved,
  compareCodeUnits,
  effectiveMatcher,
  instancePorts,
  l4Listener,
  l4ListenerConflict,
  normalizeL4ProxyHost,
  takesInstancePort,
  type L4Listener,
} from "@cpm/core";
import { certificateTag } from "./tls.ts";
import type { Json, RenderOptions } from "./types.ts";

/*
 * L4 proxy hosts -> Caddy's `layer4` app (github.com/mholt/caddy-l4).
 *
 *   apps.layer4.servers["l4-tcp-5432"] = {
 *     listen: ["tcp/:5432"],
 *     routes: [
 *       { match: [{ tls: { sni: [...] } }], handle: [tls?, proxy] },           // TLS_SNI
 *       { match: [{ http: [{ host: [...] }] }], handle: [proxy] },            // HTTP_HOST
 *       { match: [{ proxy_protocol: {} }], handle: [proxy_protocol?, tls?, proxy] },
 *       { handle: [proxy_protocol?, tls?, proxy] },                           // NONE: last
 *     ],
 *   }
 *   proxy = { handler: "proxy", upstreams: [{ dial: ["tcp/host:port"] }, ...], proxy_protocol?: "v1" | "v2" }
 *
 * Hosts sharing a protocol and listen address share one server. Within a matcher kind,
 * exact names come before wildcards (deepest first), as for HTTP hosts. Nothing here
 * throws: a host that cannot be served is left out with a warning, so L4 hosts never
 * break the HTTP config. A Caddy without the layer4 module refuses any config holding
 * `apps.layer4`, so then the app is left out entirely, with one warning.
 */

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** The `layer4` app for L4 proxy hosts; undefined when there are none or Caddy lacks the module (with a warning). */
export function renderLayer4(snapshot: Snapshot, opts: RenderOptions, warnings: string[]): Json | undefined {
  const enabled = snapshot.l4ProxyHosts.filter((h) => h.enabled !== false);
  if (enabled.length === 0) return undefined;
  if (!opts.layer4) {
    warnings.push(`${plural(enabled.length, "L4 proxy host")} not served: this Caddy has no layer4 module (caddy-l4)`);
    return undefined;
  }
  if (opts.layer4RefusedBecause !== undefined) {
    warnings.push(
      `${plural(enabled.length, "L4 proxy host")} not served: Caddy refused them (${opts.layer4RefusedBecause}); the HTTP hosts are served`,
    );
    return undefined;
  }

  const certs = new Map(snapshot.certificates.map((c) => [c.id, c]));
  const reserved = instancePorts(opts);
  const accepted: L4ProxyHost[] = [];
  const byName = [...enabled].sort((a, b) => compareCodeUnits(a.name, b.name) || compareCodeUnits(a.id, b.id));
  for (const raw of byName) {
    const label = `L4 proxy host "${raw.name}"`;
    let h: L4ProxyHost;
    try {
      h = normalizeL4ProxyHost(raw);
    } catch (e) {
      warnings.push(`${label} not served: ${(e as Error).message}`);
      continue;
    }
    const listener = l4Listener(h);
    const taken = takesInstancePort(listener, reserved);
    if (taken) {
      warnings.push(
        `${label} not served: ${listener.network} takes this instance's ${taken.what} (port ${taken.port})`,
      );
      continue;
    }
    try {
      checkUpstreamsNotReserved(h.upstreams, "upstreams", opts.reservedUpstreams ?? []);
    } catch (e) {
      warnings.push(`${label} not served: ${(e as Error).message}`);
      continue;
    }
    if (h.tlsTermination && !certs.has(h.certificateId)) {
      warnings.push(`${label} not served: its certificate "${h.certificateId}" is not in the configuration`);
      continue;
    }
    const conflict = l4ListenerConflict(h, accepted);
    if (conflict) {
      warnings.push(`${label} not served: ${conflict[1]}`);
      continue;
    }
    accepted.push(h);
  }
  if (accepted.length === 0) return undefined;

  const groups = new Map<string, { listener: L4Listener; hosts: L4ProxyHost[] }>();
  for (const h of accepted) {
    const listener = l4Listener(h);
    const g = groups.get(listener.network) ?? { listener, hosts: [] };
    g.hosts.push(h);
    groups.set(listener.network, g);
  }
  const servers: Json = {};
  for (const { listener, hosts } of [...groups.values()].sort((a, b) =>
    compareCodeUnits(a.listener.network, b.listener.network),
  )) {
    const routes = hosts.flatMap((h) => hostRoutes(h, listener, certs.get(h.certificateId)));
    routes.sort((a, b) => compareCodeUnits(a.key, b.key));
    servers[serverName(listener)] = { listen: [boundNetwork(listener, opts)], routes: routes.map((r) => r.route) };
  }
  return { servers };
}

/** How Caddy writes the listener: one written without an address (":5432") binds to CPM_CADDY_BIND when set. */
function boundNetwork(l: L4Listener, opts: RenderOptions): string {
  return l.host === "" && opts.bindAddress ? `${l.protocol}/${opts.bindAddress}:${l.port}` : l.network;
}

/** "l4-tcp-5432" for every address, "l4-udp-127.0.0.1-53", "l4-tcp-[::1]-5432". */
function serverName(l: L4Listener): string {
  return `l4-${l.protocol}-${l.host ? `${l.host}-` : ""}${l.port}`;
}

const KIND_ORDER: Record<number, string> = {
  [L4Matcher.L4_MATCHER_TLS_SNI]: "0",
  [L4Matcher.L4_MATCHER_HTTP_HOST]: "1",
  [L4Matcher.L4_MATCHER_PROXY_PROTOCOL]: "2",
  [L4Matcher.L4_MATCHER_NONE]: "3",
};

/** Exact names in one group, each wildcard depth in its own, so they can be ordered. */
function nameGroups(names: string[]): { key: string; names: string[] }[] {
  const exact = names.filter((d) => !d.startsWith("*.")).sort();
  const wild = names.filter((d) => d.startsWith("*.")).sort();
  const groups: { key: string; names: string[] }[] = [];
  if (exact.length) groups.push({ key: `0|${exact[0]}`, names: exact });
  const byDepth = new Map<number, string[]>();
  for (const w of wild) byDepth.set(w.split(".").length, [...(byDepth.get(w.split(".").length) ?? []), w]);
  for (const [depth, ws] of byDepth)
    groups.push({ key: `1|${String(999 - depth).padStart(3, "0")}|${ws[0]}`, names: ws });
  return groups;
}

/**
 * TLS termination with the host's certificate (the tls app loads or manages it: render/tls.ts).
 * An imported certificate is pinned by its tag; a managed one is picked by SNI from what
 * Caddy manages, and clients that send no SNI get the certificate's first name.
 */
function tlsHandler(cert: Certificate | undefined): Json {
  if (cert?.type === CertificateType.CERTIFICATE_TYPE_IMPORTED) {
    return { handler: "tls", connection_policies: [{ certificate_selection: { any_tag: [certificateTag(cert.id)] } }] };
  }
  const sni = cert?.domainNames.map((d) => d.trim().toLowerCase()).find((d) => d !== "");
  return sni ? { handler: "tls", connection_policies: [{ default_sni: sni }] } : { handler: "tls" };
}

function hostRoutes(
  h: L4ProxyHost,
  listener: L4Listener,
  cert: Certificate | undefined,
): { key: string; route: Json }[] {
  const handle: Json[] = [];
  if (h.proxyProtocolReceive) handle.push({ handler: "proxy_protocol" });
  if (h.tlsTermination) handle.push(tlsHandler(cert));
  const proxy: Json = {
    handler: "proxy",
    upstreams: h.upstreams.map((u) => ({ dial: [`${listener.protocol}/${u}`] })),
  };
  if (h.proxyProtocolVersion === ProxyProtocolVersion.PROXY_PROTOCOL_VERSION_V1) proxy.proxy_protocol = "v1";
  if (h.proxyProtocolVersion === ProxyProtocolVersion.PROXY_PROTOCOL_VERSION_V2) proxy.proxy_protocol = "v2";
  handle.push(proxy);

  const matcher = effectiveMatcher(h.matcher);
  const kind = KIND_ORDER[matcher] ?? "3";
  switch (matcher) {
    case L4Matcher.L4_MATCHER_TLS_SNI:
      return nameGroups(h.matcherValues).map((g) => ({
        key: `${kind}|${g.key}`,
        route: { match: [{ tls: { sni: g.names } }], handle },
      }));
    case L4Matcher.L4_MATCHER_HTTP_HOST:
      return nameGroups(h.matcherValues).map((g) => ({
        key: `${kind}|${g.key}`,
        route: { match: [{ http: [{ host: g.names }] }], handle },
      }));
    case L4Matcher.L4_MATCHER_PROXY_PROTOCOL:
      return [{ key: `${kind}|`, route: { match: [{ proxy_protocol: {} }], handle } }];
    default:
      return [{ key: `${kind}|`, route: { handle } }];
  }
}
