import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { CertificateIssuance, CertificateType, type Certificate, type ProxyHost, type Snapshot } from "@cpm/proto";
import { certificateCovers, compareCodeUnits, isPrivateName, keepCanonical, sameItems, sha256Hex } from "@cpm/core";
import type { DomainIndex } from "./domains.ts";
import type { Json, RenderOptions } from "./types.ts";

/*
 * Certificates in Caddy's JSON.
 *
 * Which certificates: those named by an enabled proxy host (and by an enabled L4 proxy host
 * that terminates TLS, when this Caddy has layer4). Unused ones are neither loaded nor
 * obtained (no ACME traffic, no rate limits for certificates nobody serves).
 *
 * - IMPORTED: `tls.certificates.load_pem` with the chain and key, tagged certificateTag(id).
 *   The HTTP server's HTTPS listener pins them: connection policies per certificate list its
 *   hosts' names (match.sni) and select it by tag, so the certificate a host names is the one
 *   presented even when another loaded certificate also covers the name.
 * - MANAGED: `tls.certificates.automate` lists every name; Caddy obtains and renews one
 *   certificate per name. Automatic HTTPS is off (render/index.ts): Caddy
 *   manages exactly these names, never a proxy host's name on its own, and never one that an
 *   imported certificate serves. The issuer per name (automation policies, by subject):
 *   1. `settings.acme.ca_url` and `settings.acme.ca_root_pem` both set (a private ACME CA):
 *      every name goes to that ACME CA, whose root is trusted for the ACME connection. A private CA
 *      is what issues private names in such a network, so it gets them too.
 *   2. otherwise a private name (@cpm/core isPrivateName: IP addresses, single-label names,
 *      localhost, *.local, *.internal, *.test, *.example, *.invalid, *.home.arpa, *.lan,
 *      *.home, *.corp, *.intranet, *.private) goes to Caddy's internal CA: no public CA can
 *      issue it. apps.pki always sets install_trust false (see renderPki).
 *   3. every other name goes to ACME: `settings.acme.ca_url` (empty: Caddy's default, Let's
 *      Encrypt), account email `settings.general.acme_email`. With non-standard ports the
 *      challenge ports follow the instance's ports.
 * - MANAGED and master-issued (issuance unset or MASTER) on a slave (opts.servesMasterIssued):
 *   never ordered here. What the master obtained (the certificate's `issued` entries, one per
 *   name) is loaded with load_pem, tagged certificateTag(id), and picked by SNI by the
 *   catch-all connection policy; a name not issued yet gets no certificate, with a warning.
 *   EACH_NODE certificates are obtained by every node, as above.
 * Caddy 2.6's ACME issuer reads extra trusted roots from files only (trusted_roots_pem_files),
 * so the config names `<opts.tlsFilesDir>/acme-ca-root-<sha256>.pem`: the rendered bytes stay
 * a function of the snapshot and the options, and render stays pure. ensureTlsFiles writes
 * the file (idempotent) before the config is loaded into Caddy. Without a tlsFilesDir the
 * root is left out, with a warning.
 */

/** The tag an imported certificate carries in load_pem (for connection policies, also layer4's). */
export const certificateTag = (id: string) => `cpm-cert-${id}`;

interface TlsPlan {
  imported: Certificate[];
  /** Master-issued certificates a slave serves from the snapshot. */
  fromMaster: Certificate[];
  /** name -> issuer kind, sorted by name. */
  managed: Map<string, "internal" | "acme">;
}

function usedCertificates(snapshot: Snapshot, opts: RenderOptions): Certificate[] {
  const ids = new Set<string>();
  for (const h of snapshot.proxyHosts) if (h.enabled !== false && h.certificateId) ids.add(h.certificateId);
  if (opts.layer4) {
    for (const h of snapshot.l4ProxyHosts)
      if (h.enabled !== false && h.tlsTermination && h.certificateId) ids.add(h.certificateId);
  }
  return snapshot.certificates.filter((c) => ids.has(c.id)).sort((a, b) => compareCodeUnits(a.id, b.id));
}

/** Per options object, the last plan made, the snapshot it was last asked for and what it was made from. */
const plans = new WeakMap<
  RenderOptions,
  { snapshot: Snapshot; used: Certificate[]; privateAcme: boolean; plan: TlsPlan }
>();

/**
 * Which certificates are used and how each managed name is issued. Asked again of the same
 * snapshot (a render asks twice: the tls app, the connection policies), or of one with the same
 * certificate objects in use (SnapshotDecoder keeps an unchanged resource's object) under the
 * same ACME settings, it gives the very plan object of the last call: its sorted names are not
 * sorted again.
 */
function plan(snapshot: Snapshot, opts: RenderOptions): TlsPlan {
  const last = plans.get(opts);
  if (last?.snapshot === snapshot) return last.plan;
  const used = usedCertificates(snapshot, opts);
  const privateAcme = !!snapshot.settings?.acme?.caRootPem?.trim() && !!snapshot.settings?.acme?.caUrl?.trim();
  if (last && last.privateAcme === privateAcme && sameItems(last.used, used)) {
    last.snapshot = snapshot;
    return last.plan;
  }
  const fromMaster = opts.servesMasterIssued ? used.filter(isMasterIssued) : [];
  const names = new Set<string>();
  for (const c of used)
    if (c.type === CertificateType.CERTIFICATE_TYPE_MANAGED && !fromMaster.includes(c))
      c.domainNames.forEach((d) => names.add(d));
  const managed = new Map<string, "internal" | "acme">();
  for (const n of [...names].sort(compareCodeUnits))
    managed.set(n, !privateAcme && isPrivateName(n) ? "internal" : "acme");
  const made = {
    imported: used.filter((c) => c.type === CertificateType.CERTIFICATE_TYPE_IMPORTED),
    fromMaster,
    managed,
  };
  plans.set(opts, { snapshot, used, privateAcme, plan: made });
  return made;
}

/** Per options object, the last `tls` app rendered, with its plan, the ACME settings it used and its warnings. */
const rendered = new WeakMap<
  RenderOptions,
  { plan: TlsPlan; acme: string; tls: Json | undefined; warnings: string[] }
>();

/**
 * The `tls` app: imported certificates (load_pem) and managed ones (automate, with automation
 * policies choosing the ACME issuer from settings or Caddy's internal issuer). Undefined
 * when nothing needs it.
 */
export function renderTls(snapshot: Snapshot, opts: RenderOptions, warnings: string[]): Json | undefined {
  const p = plan(snapshot, opts);
  const a = snapshot.settings?.acme;
  const acme = JSON.stringify([a?.caUrl, a?.caRootPem, snapshot.settings?.general?.acmeEmail]);
  let last = rendered.get(opts);
  if (last?.plan !== p || last.acme !== acme) {
    const own: string[] = [];
    // Kept for the next render: written as JSON once (keepCanonical), never changed again.
    const tls = tlsApp(snapshot, opts, p, own);
    rendered.set(opts, (last = { plan: p, acme, tls: tls && keepCanonical(tls), warnings: own }));
  }
  warnings.push(...last.warnings);
  hostCoverageWarnings(snapshot, warnings);
  return last.tls;
}

function tlsApp(snapshot: Snapshot, opts: RenderOptions, p: TlsPlan, warnings: string[]): Json | undefined {
  const issued = p.fromMaster.flatMap((c) => {
    const missing = c.domainNames.filter((d) => !c.issued.some((e) => e.domainName === d));
    if (missing.length > 0)
      warnings.push(
        `certificate "${c.name}": not issued by the master yet for ${missing.join(", ")}; HTTPS handshakes for ${missing.length > 1 ? "them" : "it"} will fail until it is`,
      );
    return c.issued.map((e) => ({ certificate: e.certificatePem, key: e.privateKeyPem, tags: [certificateTag(c.id)] }));
  });
  if (p.imported.length === 0 && p.managed.size === 0 && issued.length === 0) return undefined;
  const certificates: Json = {};
  const loaded = [
    ...p.imported.map((c) => ({ certificate: c.certificatePem, key: c.privateKeyPem, tags: [certificateTag(c.id)] })),
    ...issued,
  ];
  if (loaded.length > 0) certificates.load_pem = loaded;
  const tls: Json = { certificates };
  if (p.managed.size > 0) {
    certificates.automate = [...p.managed.keys()];
    const internal = [...p.managed].filter(([, k]) => k === "internal").map(([n]) => n);
    const acme = [...p.managed].filter(([, k]) => k === "acme").map(([n]) => n);
    const policies: Json[] = [];
    if (internal.length > 0) policies.push({ subjects: internal, issuers: [{ module: "internal" }] });
    if (acme.length > 0) policies.push({ subjects: acme, issuers: [acmeIssuer(snapshot, opts, warnings)] });
    tls.automation = { policies };
  }
  return tls;
}

/** Obtained by the master and served by slaves from the snapshot (the default for managed certificates). */
export function isMasterIssued(c: Certificate): boolean {
  return (
    c.type === CertificateType.CERTIFICATE_TYPE_MANAGED &&
    c.issuance !== CertificateIssuance.CERTIFICATE_ISSUANCE_EACH_NODE
  );
}

/**
 * The certificates this instance orders for the fleet: master-issued managed certificates
 * that an enabled host uses (none on a slave).
 */
export function masterIssuedInUse(snapshot: Snapshot, opts: RenderOptions): Certificate[] {
  if (opts.servesMasterIssued) return [];
  return usedCertificates(snapshot, opts).filter(isMasterIssued);
}

/**
 * A slave's route that proxies ACME HTTP-01 challenges to the master's HTTP port
 * (opts.masterHttpAddress), so a CA validation that reaches this node succeeds. It matches
 * every host, not only the master-issued names of this snapshot: the master orders as soon
 * as it commits, and the CA's validation may reach a slave before that snapshot does. Caddy
 * answers the challenges it started itself (EACH_NODE names) before any route, so only the
 * others go to the master. Undefined without a master address.
 */
export function challengeForwardRoute(_snapshot: Snapshot, opts: RenderOptions): Json | undefined {
  if (!opts.servesMasterIssued || !opts.masterHttpAddress) return undefined;
  return {
    handle: [{ handler: "reverse_proxy", upstreams: [{ dial: opts.masterHttpAddress }] }],
    match: [{ path: ["/.well-known/acme-challenge/*"], protocol: "http" }],
    terminal: true,
  };
}

/**
 * apps.pki, beside every TLS app: Caddy sets up its internal CA whenever its TLS app runs (even for ACME-only
 * or imported certificates) and would then install that CA's root into the system trust store.
 * A proxy manager must never change the trust store of the machine it runs on.
 */
export function renderPki(): Json {
  return { certificate_authorities: { local: { install_trust: false } } };
}

function acmeIssuer(snapshot: Snapshot, opts: RenderOptions, warnings: string[]): Json {
  const issuer: Json = { module: "acme" };
  const caUrl = snapshot.settings?.acme?.caUrl?.trim();
  const email = snapshot.settings?.general?.acmeEmail?.trim();
  const root = snapshot.settings?.acme?.caRootPem?.trim();
  if (caUrl) issuer.ca = caUrl;
  if (email) issuer.email = email;
  if (root) {
    if (opts.tlsFilesDir) issuer.trusted_roots_pem_files = [tlsFile(opts.tlsFilesDir, "acme-ca-root", root).path];
    else
      warnings.push(
        "settings.acme.ca_root_pem is set, but this renderer has no directory for TLS files: the ACME CA's root is not trusted",
      );
  }
  const challenges: Json = {};
  if (opts.httpPort !== 80) challenges.http = { alternate_port: opts.httpPort };
  if (opts.httpsPort !== 443) challenges["tls-alpn"] = { alternate_port: opts.httpsPort };
  if (Object.keys(challenges).length > 0) issuer.challenges = challenges;
  return issuer;
}

/** Where a TLS file Caddy reads lives: `<dir>/<prefix>-<sha256 of content>.pem`. */
function tlsFile(dir: string, prefix: string, pem: string): { path: string; content: string } {
  const content = `${pem.trim()}\n`;
  return { path: path.join(dir, `${prefix}-${sha256Hex(content).slice(0, 32)}.pem`), content };
}

/**
 * Writes the files a rendered config refers to (see renderTls), before it is loaded into
 * Caddy. Render itself stays pure (a dry run writes nothing); this is idempotent: a file that
 * is already there with the same content is left alone, a new one appears atomically.
 */
export function ensureTlsFiles(snapshot: Snapshot, opts: RenderOptions): void {
  const root = snapshot.settings?.acme?.caRootPem?.trim();
  if (!opts.tlsFilesDir || !root) return;
  if (![...plan(snapshot, opts).managed.values()].includes("acme")) return;
  const f = tlsFile(opts.tlsFilesDir, "acme-ca-root", root);
  try {
    if (readFileSync(f.path, "utf8") === f.content) return;
  } catch {
    /* not there yet */
  }
  mkdirSync(opts.tlsFilesDir, { recursive: true });
  const tmp = `${f.path}.${process.pid}.tmp`;
  writeFileSync(tmp, f.content, { mode: 0o644 });
  renameSync(tmp, f.path);
}

/** The last list of certificates looked up by id, and its map. */
let lastCertificates: { list: readonly Certificate[]; byId: ReadonlyMap<string, Certificate> } | undefined;

/** `list` by id; the map of the last call when it lists the same certificate objects (never changed once made). */
function certificatesById(list: readonly Certificate[]): ReadonlyMap<string, Certificate> {
  if (lastCertificates && sameItems(lastCertificates.list, list)) return lastCertificates.byId;
  const byId = new Map(list.map((c) => [c.id, c]));
  lastCertificates = { list, byId };
  return byId;
}

/** Per host object, the certificate object it was last judged against and the names that one does not cover. */
const coverage = new WeakMap<ProxyHost, { cert: Certificate; missing: readonly string[] }>();

/**
 * A host name its certificate does not cover gets no certificate on the handshake: say so, in
 * host name order. Each host is judged once per certificate object (hosts and certificates are
 * never changed once made), so a render does not match every name again.
 */
function hostCoverageWarnings(snapshot: Snapshot, warnings: string[]): void {
  const certs = certificatesById(snapshot.certificates);
  const uncovered: { h: ProxyHost; c: Certificate; missing: readonly string[] }[] = [];
  for (const h of snapshot.proxyHosts) {
    if (h.enabled === false || !h.certificateId) continue;
    const c = certs.get(h.certificateId);
    if (!c) continue;
    let known = coverage.get(h);
    if (known?.cert !== c) {
      known = { cert: c, missing: h.domains.filter((d) => !c.domainNames.some((n) => certificateCovers(n, d))) };
      coverage.set(h, known);
    }
    if (known.missing.length > 0) uncovered.push({ h, c, missing: known.missing });
  }
  // A stable sort: hosts of the same name keep the snapshot's order.
  for (const { h, c, missing } of uncovered.sort((a, b) => compareCodeUnits(a.h.name, b.h.name))) {
    warnings.push(
      `proxy host "${h.name}": certificate "${c.name}" does not cover ${missing.join(", ")}; HTTPS handshakes for ${missing.length > 1 ? "them" : "it"} will fail`,
    );
  }
}

/**
 * tls_connection_policies of the HTTP server. Each imported certificate gets a policy that pins
 * it by tag for the exact names of its hosts, and one for their wildcards. All exact-name
 * policies come first (Caddy takes the first policy that matches, and an exact name is more
 * precise than a wildcard that covers it); exact names are unique across hosts and wildcards
 * match exactly one label, so no two policies of one kind match the same name. Then a catch-all
 * policy for managed names, which Caddy picks by SNI from what it manages.
 *
 * When that certificate is the only one Caddy holds (nothing else loaded, nothing managed),
 * every handshake could only ever get it: the catch-all policy selects it by tag and no name
 * needs listing.
 */
export function httpsConnectionPolicies(
  snapshot: Snapshot,
  opts: RenderOptions,
  hosts: ProxyHost[],
  index: DomainIndex,
): Json[] {
  const p = plan(snapshot, opts);
  const only =
    p.imported.length === 1 && p.fromMaster.length === 0 && p.managed.size === 0 ? p.imported[0]! : undefined;
  if (only && hosts.some((h) => h.certificateId === only.id))
    return [{ certificate_selection: { any_tag: [certificateTag(only.id)] } }];
  const certs = certificatesById(snapshot.certificates);
  const names = new Map<string, { exact: string[]; wild: string[] }>();
  for (const h of hosts) {
    const c = certs.get(h.certificateId);
    if (!c || c.type !== CertificateType.CERTIFICATE_TYPE_IMPORTED) continue;
    const n = names.get(c.id) ?? { exact: [], wild: [] };
    for (const d of index.domainsOf(h)) (d.startsWith("*.") ? n.wild : n.exact).push(d);
    names.set(c.id, n);
  }
  const ids = [...names.keys()].sort(compareCodeUnits);
  const policy = (id: string, sni: string[]) => ({
    match: { sni: sni.sort(compareCodeUnits) },
    certificate_selection: { any_tag: [certificateTag(id)] },
  });
  return [
    ...ids.filter((id) => names.get(id)!.exact.length > 0).map((id) => policy(id, names.get(id)!.exact)),
    ...ids.filter((id) => names.get(id)!.wild.length > 0).map((id) => policy(id, names.get(id)!.wild)),
    {},
  ];
}
