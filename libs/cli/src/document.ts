import {
  AccessList,
  AccessListSatisfy,
  Certificate,
  CertificateType,
  ConfigDocument,
  L4Matcher,
  L4ProxyHost,
  L4Protocol,
  LoadBalancingPolicy,
  ProxyHost,
  ProxyProtocolVersion,
  type BasicAuthUser,
  type Settings,
  type Snapshot,
} from "@cpm/proto";
import { normalizeSettings } from "@cpm/core";
import { invalid } from "./exit-codes.ts";

/**
 * The declarative form of the configuration that `cpm export` writes and `cpm import`, `-f`
 * and `get -o yaml` read: snake_case keys in a fixed order, enum values in lower case without
 * their prefix (`imported`, `round_robin`), resources identified by name and references by
 * the referenced resource's name. Default values (empty, false, unset) are left out, except
 * `enabled`, which is always written.
 */
export type Doc = Record<string, unknown>;

type Enum = Record<string, string | number>;
type FieldKind = "string" | "text" | "strings" | "bool" | "enabled" | "uint" | "enum" | "ref" | "users" | "time";

export interface FieldSpec {
  key: string;
  /** Property of the generated message. */
  prop: string;
  kind: FieldKind;
  enum?: { values: Enum; prefix: string };
  /** For "ref": which kind of resource the name points at. */
  ref?: "certificate" | "access_list";
  /** Shown by get/list but not exported, and ignored when read (the server fills it). */
  readOnly?: boolean;
  /** Not exported unless asked for (private keys). */
  secret?: boolean;
  /** Command-line flag (without --); none: only settable from a file. */
  flag?: string;
  help?: string;
}

const e = (values: Enum, prefix: string) => ({ values, prefix });

/** `ROUND_ROBIN` -> `round_robin`; the unspecified value has no name. */
export function enumName(spec: { values: Enum; prefix: string }, value: number): string | undefined {
  if (value === 0) return undefined;
  const name = spec.values[value];
  return typeof name === "string" ? name.slice(spec.prefix.length).toLowerCase() : String(value);
}

/** Lower-case names a field of this enum accepts. */
export function enumChoices(spec: { values: Enum; prefix: string }): string[] {
  return Object.entries(spec.values)
    .filter(([k, v]) => typeof v === "number" && v > 0 && k.startsWith(spec.prefix))
    .map(([k]) => k.slice(spec.prefix.length).toLowerCase());
}

function enumValue(spec: { values: Enum; prefix: string }, raw: unknown, field: string): number {
  const choices = enumChoices(spec);
  if (typeof raw !== "string" || !choices.includes(raw.toLowerCase()))
    throw invalid(field, `${JSON.stringify(raw)} is not one of ${choices.join(", ")}`);
  return spec.values[spec.prefix + raw.toUpperCase()] as number;
}

export const PROXY_HOST_FIELDS: FieldSpec[] = [
  { key: "name", prop: "name", kind: "string", flag: "name", help: "unique name" },
  {
    key: "domains",
    prop: "domains",
    kind: "strings",
    flag: "domain",
    help: "a domain it answers for (repeat for more)",
  },
  {
    key: "upstreams",
    prop: "upstreams",
    kind: "strings",
    flag: "upstream",
    help: "host:port, optionally http:// or https:// (repeat for more)",
  },
  {
    key: "certificate",
    prop: "certificateId",
    kind: "ref",
    ref: "certificate",
    flag: "certificate",
    help: 'certificate name ("" for none)',
  },
  {
    key: "access_list",
    prop: "accessListId",
    kind: "ref",
    ref: "access_list",
    flag: "access-list",
    help: 'access list name ("" for none)',
  },
  { key: "ssl_forced", prop: "sslForced", kind: "bool", flag: "ssl-forced", help: "redirect HTTP to HTTPS" },
  { key: "hsts_enabled", prop: "hstsEnabled", kind: "bool", flag: "hsts", help: "send Strict-Transport-Security" },
  { key: "hsts_subdomains", prop: "hstsSubdomains", kind: "bool", flag: "hsts-subdomains" },
  { key: "allow_websocket", prop: "allowWebsocket", kind: "bool", flag: "websocket", help: "allow WebSocket upgrades" },
  {
    key: "preserve_host_header",
    prop: "preserveHostHeader",
    kind: "bool",
    flag: "preserve-host",
    help: "send the client's Host upstream",
  },
  {
    key: "skip_https_hostname_validation",
    prop: "skipHttpsHostnameValidation",
    kind: "bool",
    flag: "insecure-upstream",
    help: "https upstreams: skip certificate checks",
  },
  {
    key: "compression",
    prop: "compression",
    kind: "bool",
    flag: "compression",
    help: "compress responses (zstd, gzip) for clients that accept it",
  },
  {
    key: "load_balancing",
    prop: "loadBalancing",
    kind: "enum",
    enum: e(LoadBalancingPolicy, "LOAD_BALANCING_POLICY_"),
    flag: "load-balancing",
  },
  { key: "enabled", prop: "enabled", kind: "enabled", flag: "enabled" },
];

export const L4_PROXY_HOST_FIELDS: FieldSpec[] = [
  { key: "name", prop: "name", kind: "string", flag: "name", help: "unique name" },
  { key: "protocol", prop: "protocol", kind: "enum", enum: e(L4Protocol, "L4_PROTOCOL_"), flag: "protocol" },
  { key: "listen_address", prop: "listenAddress", kind: "string", flag: "listen", help: ":port or ip:port" },
  { key: "upstreams", prop: "upstreams", kind: "strings", flag: "upstream", help: "host:port (repeat for more)" },
  { key: "matcher", prop: "matcher", kind: "enum", enum: e(L4Matcher, "L4_MATCHER_"), flag: "matcher" },
  {
    key: "matcher_values",
    prop: "matcherValues",
    kind: "strings",
    flag: "matcher-value",
    help: "server name for tls_sni / http_host (repeat for more)",
  },
  { key: "tls_termination", prop: "tlsTermination", kind: "bool", flag: "tls-termination" },
  {
    key: "certificate",
    prop: "certificateId",
    kind: "ref",
    ref: "certificate",
    flag: "certificate",
    help: 'certificate name ("" for none)',
  },
  {
    key: "proxy_protocol_version",
    prop: "proxyProtocolVersion",
    kind: "enum",
    enum: e(ProxyProtocolVersion, "PROXY_PROTOCOL_VERSION_"),
    flag: "proxy-protocol",
  },
  { key: "proxy_protocol_receive", prop: "proxyProtocolReceive", kind: "bool", flag: "proxy-protocol-receive" },
  { key: "enabled", prop: "enabled", kind: "enabled", flag: "enabled" },
];

export const CERTIFICATE_FIELDS: FieldSpec[] = [
  { key: "name", prop: "name", kind: "string", flag: "name", help: "unique name" },
  { key: "type", prop: "type", kind: "enum", enum: e(CertificateType, "CERTIFICATE_TYPE_"), flag: "type" },
  {
    key: "domain_names",
    prop: "domainNames",
    kind: "strings",
    flag: "domain",
    help: "a name it covers (repeat for more)",
  },
  { key: "auto_renew", prop: "autoRenew", kind: "bool", flag: "auto-renew" },
  { key: "not_before", prop: "notBefore", kind: "time", readOnly: true },
  { key: "expires_at", prop: "expiresAt", kind: "time", readOnly: true },
  { key: "fingerprint_sha256", prop: "fingerprintSha256", kind: "string", readOnly: true },
  { key: "issuer", prop: "issuer", kind: "string", readOnly: true },
  {
    key: "certificate_pem",
    prop: "certificatePem",
    kind: "text",
    flag: "cert",
    help: "imported: PEM chain, leaf first",
  },
  {
    key: "private_key_pem",
    prop: "privateKeyPem",
    kind: "text",
    secret: true,
    flag: "key",
    help: "imported: PEM private key",
  },
];

export const ACCESS_LIST_FIELDS: FieldSpec[] = [
  { key: "name", prop: "name", kind: "string", flag: "name", help: "unique name" },
  { key: "description", prop: "description", kind: "string", flag: "description" },
  {
    key: "satisfy",
    prop: "satisfy",
    kind: "enum",
    enum: e(AccessListSatisfy, "ACCESS_LIST_SATISFY_"),
    flag: "satisfy",
  },
  {
    key: "pass_auth",
    prop: "passAuth",
    kind: "bool",
    flag: "pass-auth",
    help: "forward the Authorization header upstream",
  },
  { key: "allow", prop: "allow", kind: "strings", flag: "allow", help: "CIDR or IP allowed (repeat for more)" },
  { key: "deny", prop: "deny", kind: "strings", flag: "deny", help: "CIDR or IP denied (repeat for more)" },
  {
    key: "users",
    prop: "users",
    kind: "users",
    flag: "user",
    help: "basic-auth user as name:password (repeat for more)",
  },
];

/** Resolves names to ids and back, per kind of reference. */
export interface References {
  idOf(kind: "certificate" | "access_list", name: string, field: string): string;
  nameOf(kind: "certificate" | "access_list", id: string): string;
}

/** References left as they are: in an import document they are names on both sides. */
export const BY_NAME: References = { idOf: (_k, name) => name, nameOf: (_k, id) => id };

export interface ToDocOptions {
  /** get/list views: read-only fields too. */
  view?: boolean;
  /** Include secret fields (private keys). */
  secrets?: boolean;
}

/** One resource message in its document form (keys in the spec's order, defaults left out). */
export function toDoc(fields: FieldSpec[], msg: object, refs: References, opts: ToDocOptions = {}): Doc {
  const m = msg as Record<string, unknown>;
  const out: Doc = {};
  for (const f of fields) {
    if (f.readOnly && !opts.view) continue;
    if (f.secret && !opts.secrets) continue;
    const v = m[f.prop];
    switch (f.kind) {
      case "string":
      case "text":
        if (v) out[f.key] = v;
        break;
      case "strings":
        if ((v as string[]).length) out[f.key] = [...(v as string[])];
        break;
      case "bool":
        if (v) out[f.key] = true;
        break;
      case "enabled":
        out[f.key] = v !== false;
        break;
      case "uint":
        if (v !== undefined) out[f.key] = v;
        break;
      case "enum": {
        const name = enumName(f.enum!, v as number);
        if (name) out[f.key] = name;
        break;
      }
      case "ref":
        if (v) out[f.key] = refs.nameOf(f.ref!, v as string);
        break;
      case "time":
        if (v) out[f.key] = (v as Date).toISOString();
        break;
      case "users":
        if ((v as BasicAuthUser[]).length) {
          out[f.key] = (v as BasicAuthUser[]).map((u) =>
            u.passwordHash ? { username: u.username, password_hash: u.passwordHash } : { username: u.username },
          );
        }
        break;
    }
  }
  return out;
}

const isMapping = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

/**
 * Reads one resource from its document form into message properties, checking every key
 * (unknown keys and wrong types are refused, naming `field.key`). `id` is accepted and
 * ignored (what `get -o yaml` prints can be edited and sent back).
 */
export function fromDoc(fields: FieldSpec[], doc: unknown, field: string, refs: References): Record<string, unknown> {
  if (!isMapping(doc)) throw invalid(field, "expected a mapping");
  const known = new Map(fields.map((f) => [f.key, f]));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(doc)) {
    const at = `${field}.${key}`;
    if (key === "id") continue;
    const f = known.get(key);
    if (!f) throw invalid(at, `unknown field (known: ${fields.map((x) => x.key).join(", ")})`);
    if (f.readOnly || v === null || v === undefined) continue;
    out[f.prop] = fieldValue(f, v, at, refs);
  }
  return out;
}

/** One field's value from a document or a flag, checked for its kind. */
export function fieldValue(f: FieldSpec, v: unknown, at: string, refs: References): unknown {
  switch (f.kind) {
    case "string":
    case "text":
      if (typeof v !== "string") throw invalid(at, "expected a string");
      return v;
    case "ref":
      if (typeof v !== "string") throw invalid(at, `expected the name of a ${f.ref!.replace("_", " ")}`);
      return v === "" ? "" : refs.idOf(f.ref!, v, at);
    case "strings":
      if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw invalid(at, "expected a list of strings");
      return v;
    case "bool":
    case "enabled":
      if (typeof v !== "boolean") throw invalid(at, "expected true or false");
      return v;
    case "uint":
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw invalid(at, "expected a whole number >= 0");
      return v;
    case "enum":
      return enumValue(f.enum!, v, at);
    case "time":
      return undefined;
    case "users":
      if (!Array.isArray(v)) throw invalid(at, "expected a list of users");
      return v.map((u, i) => {
        const ua = `${at}[${i}]`;
        if (!isMapping(u)) throw invalid(ua, "expected a mapping of username, password or password_hash");
        for (const k of Object.keys(u))
          if (!["username", "password", "password_hash"].includes(k))
            throw invalid(`${ua}.${k}`, "unknown field (known: username, password, password_hash)");
        const s = (k: string) => {
          if (u[k] === undefined || u[k] === null) return "";
          if (typeof u[k] !== "string") throw invalid(`${ua}.${k}`, "expected a string");
          return u[k];
        };
        return {
          username: s("username"),
          password: s("password"),
          passwordHash: s("password_hash"),
        } satisfies BasicAuthUser;
      });
  }
}

const SETTINGS_SECTIONS: { key: string; prop: "general" | "acme" | "http"; fields: FieldSpec[] }[] = [
  {
    key: "general",
    prop: "general",
    fields: [
      { key: "primary_domain", prop: "primaryDomain", kind: "string" },
      { key: "acme_email", prop: "acmeEmail", kind: "string" },
    ],
  },
  {
    key: "acme",
    prop: "acme",
    fields: [
      { key: "ca_url", prop: "caUrl", kind: "string" },
      { key: "ca_root_pem", prop: "caRootPem", kind: "text" },
    ],
  },
  {
    key: "http",
    prop: "http",
    fields: [
      { key: "hsts_max_age_seconds", prop: "hstsMaxAgeSeconds", kind: "uint" },
      { key: "upstream_dial_timeout_seconds", prop: "upstreamDialTimeoutSeconds", kind: "uint" },
      { key: "upstream_response_header_timeout_seconds", prop: "upstreamResponseHeaderTimeoutSeconds", kind: "uint" },
    ],
  },
];

/** Settings in document form, defaults filled (so a default that changes shows in a diff). */
export function settingsToDoc(s: Settings | undefined): Doc {
  let filled: Settings;
  try {
    filled = normalizeSettings(s);
  } catch {
    filled = s ?? { general: undefined, acme: undefined, http: undefined };
  }
  const out: Doc = {};
  for (const sec of SETTINGS_SECTIONS) {
    const d = toDoc(sec.fields, filled[sec.prop] ?? {}, BY_NAME);
    if (Object.keys(d).length) out[sec.key] = d;
  }
  return out;
}

export function settingsFromDoc(doc: unknown, field: string): Settings {
  if (doc === undefined || doc === null) return { general: undefined, acme: undefined, http: undefined };
  if (!isMapping(doc)) throw invalid(field, "expected a mapping");
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(doc)) {
    const sec = SETTINGS_SECTIONS.find((s) => s.key === key);
    if (!sec)
      throw invalid(`${field}.${key}`, `unknown section (known: ${SETTINGS_SECTIONS.map((s) => s.key).join(", ")})`);
    out[sec.prop] = fromDoc(sec.fields, v ?? {}, `${field}.${key}`, BY_NAME);
  }
  return ConfigDocument.fromPartial({ settings: out as never }).settings!;
}

/** The top-level keys of an exported configuration, in their order. */
const KINDS = [
  { key: "certificates", prop: "certificates", fields: CERTIFICATE_FIELDS, message: Certificate },
  { key: "access_lists", prop: "accessLists", fields: ACCESS_LIST_FIELDS, message: AccessList },
  { key: "proxy_hosts", prop: "proxyHosts", fields: PROXY_HOST_FIELDS, message: ProxyHost },
  { key: "l4_proxy_hosts", prop: "l4ProxyHosts", fields: L4_PROXY_HOST_FIELDS, message: L4ProxyHost },
] as const;

const byName = <T extends { name: string }>(xs: T[]) =>
  [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

/**
 * The whole synced configuration of a snapshot as one document: settings, then each kind
 * sorted by name, references by name, no ids, versions or timestamps, so that two instances
 * with the same configuration export the same bytes. Private keys only with `privateKeys`.
 */
export function exportDocument(s: Snapshot, opts: { privateKeys: boolean }): Doc {
  const names = new Map<string, string>([...s.certificates, ...s.accessLists].map((x) => [x.id, x.name]));
  const refs: References = { idOf: (_k, n) => n, nameOf: (_k, id) => names.get(id) ?? id };
  const doc: Doc = { settings: settingsToDoc(s.settings) };
  for (const k of KINDS) {
    const xs = s[k.prop] as { name: string }[];
    doc[k.key] = byName(xs).map((x) => toDoc(k.fields, x, refs, { secrets: opts.privateKeys }));
  }
  return doc;
}

/** Reads an exported (or hand-written) configuration document into an ImportConfig request's `config`. */
export function importDocument(doc: unknown): ConfigDocument {
  if (!isMapping(doc)) throw invalid("config", `expected a mapping of settings, ${KINDS.map((k) => k.key).join(", ")}`);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(doc)) {
    if (key !== "settings" && !KINDS.some((k) => k.key === key))
      throw invalid(`config.${key}`, `unknown section (known: settings, ${KINDS.map((k) => k.key).join(", ")})`);
  }
  for (const k of KINDS) {
    const xs = doc[k.key] ?? [];
    if (!Array.isArray(xs)) throw invalid(`config.${k.key}`, "expected a list");
    out[k.prop] = xs.map((x, i) => fromDoc(k.fields, x, `config.${k.key}[${i}]`, BY_NAME));
  }
  return ConfigDocument.fromPartial({ ...out, settings: settingsFromDoc(doc.settings, "config.settings") });
}
