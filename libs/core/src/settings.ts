import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { AcmeSettings, GeneralSettings, HttpSettings, type Settings } from "@cpm/proto";
import { ValidationError } from "./errors.ts";
import { checkCaddyText, checkNoPlaceholder } from "./text.ts";
import { checkHostName } from "./validation.ts";

/** max-age of the HSTS header when the settings do not say (one year). */
export const DEFAULT_HSTS_MAX_AGE_SECONDS = 31_536_000;
/** Upper bounds of the HTTP settings (seconds). */
export const MAX_HSTS_MAX_AGE_SECONDS = 63_072_000;
export const MAX_UPSTREAM_DIAL_TIMEOUT_SECONDS = 300;
export const MAX_UPSTREAM_RESPONSE_HEADER_TIMEOUT_SECONDS = 3600;
const MAX_PEM_BYTES = 64 * 1024;

// A practical e-mail address: a dot-atom local part and a DNS domain name (no IP literals).
// "{" and "}" are left out of the dot-atom: Caddy expands placeholders in the ACME e-mail.
const EMAIL_LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`|~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`|~-]+)*$/;

function checkEmail(raw: string, field: string): string {
  checkCaddyText(raw, field);
  const v = raw.trim();
  const at = v.lastIndexOf("@");
  if (at <= 0 || at === v.length - 1)
    throw new ValidationError(field, `"${raw}" is not an e-mail address (name@example.com)`);
  const local = v.slice(0, at);
  const domain = v.slice(at + 1);
  if (local.length > 64 || !EMAIL_LOCAL.test(local))
    throw new ValidationError(field, `"${raw}" is not an e-mail address (name@example.com)`);
  // Single-label domains are fine (a private ACME CA's own network, e.g. pki@corp).
  if (isIP(domain) || domain.startsWith("["))
    throw new ValidationError(field, `"${raw}" needs a domain name after @, not an address`);
  let host: string;
  try {
    host = checkHostName(domain, field, { wildcard: false });
  } catch {
    throw new ValidationError(field, `"${raw}" has an invalid domain after @`);
  }
  return `${local}@${host}`;
}

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * An ACME directory URL: https, or http only on this machine (a test CA). Returned trimmed and
 * otherwise as written, which holds no braces (Caddy expands placeholders in it), white space
 * or control characters (the URL parser would drop some of them silently; Caddy would not).
 */
function checkCaUrl(raw: string, field: string): string {
  checkCaddyText(raw, field);
  const v = raw.trim();
  if (/\s/.test(v)) throw new ValidationError(field, `"${raw}" contains white space`);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ValidationError(field, `"${raw}" is not a URL (e.g. https://acme.example.com/directory)`);
  }
  if (u.protocol === "http:") {
    if (!LOCAL_HOSTS.has(u.hostname) && !u.hostname.endsWith(".localhost")) {
      throw new ValidationError(field, `"${raw}" must use https (plain http is only accepted for localhost)`);
    }
  } else if (u.protocol !== "https:") {
    throw new ValidationError(field, `scheme "${u.protocol}" is not supported; use https://`);
  }
  if (u.username || u.password) throw new ValidationError(field, "must not carry credentials");
  if (u.hash) throw new ValidationError(field, "must not have a #fragment");
  return v;
}

/** One or more PEM certificates (a CA root, possibly with intermediates), each parsed and re-encoded. */
function checkPemCertificates(raw: string, field: string): string {
  checkNoPlaceholder(raw, field);
  const v = raw.trim();
  if (v.length > MAX_PEM_BYTES) throw new ValidationError(field, `is larger than ${MAX_PEM_BYTES} bytes`);
  const blocks = v.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ValidationError(field, "is not a PEM certificate (-----BEGIN CERTIFICATE-----)");
  const rest = blocks.reduce((s, b) => s.replace(b, ""), v).trim();
  if (rest !== "") throw new ValidationError(field, "holds something other than PEM certificates");
  // Re-encoded from the parsed certificates: PEM headers or other text inside a block are dropped.
  const pems = blocks.map((b, i) => {
    try {
      return new X509Certificate(b).toString().trim();
    } catch (e) {
      throw new ValidationError(field, `certificate ${i + 1} does not parse: ${(e as Error).message}`);
    }
  });
  return `${pems.join("\n")}\n`;
}

function checkSeconds(value: number | undefined, max: number, field: string): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < 0)
    throw new ValidationError(field, `${value} is not a whole number of seconds >= 0`);
  if (value > max) throw new ValidationError(field, `${value} is above the maximum of ${max} seconds`);
}

/** Checks the synced settings and returns their normalized form (defaults filled). */
export function normalizeSettings(input: Settings | undefined, field = "settings"): Settings {
  const g = input?.general ?? GeneralSettings.fromPartial({});
  const a = input?.acme ?? AcmeSettings.fromPartial({});
  const h = input?.http ?? HttpSettings.fromPartial({});
  const general: GeneralSettings = {
    primaryDomain: g.primaryDomain.trim()
      ? checkHostName(g.primaryDomain, `${field}.general.primary_domain`, { wildcard: false })
      : "",
    acmeEmail: g.acmeEmail.trim() ? checkEmail(g.acmeEmail, `${field}.general.acme_email`) : "",
  };
  const acme: AcmeSettings = {
    caUrl: a.caUrl.trim() ? checkCaUrl(a.caUrl, `${field}.acme.ca_url`) : "",
    caRootPem: a.caRootPem.trim() ? checkPemCertificates(a.caRootPem, `${field}.acme.ca_root_pem`) : "",
  };
  checkSeconds(h.hstsMaxAgeSeconds, MAX_HSTS_MAX_AGE_SECONDS, `${field}.http.hsts_max_age_seconds`);
  checkSeconds(
    h.upstreamDialTimeoutSeconds,
    MAX_UPSTREAM_DIAL_TIMEOUT_SECONDS,
    `${field}.http.upstream_dial_timeout_seconds`,
  );
  checkSeconds(
    h.upstreamResponseHeaderTimeoutSeconds,
    MAX_UPSTREAM_RESPONSE_HEADER_TIMEOUT_SECONDS,
    `${field}.http.upstream_response_header_timeout_seconds`,
  );
  const http: HttpSettings = {
    hstsMaxAgeSeconds: h.hstsMaxAgeSeconds ?? DEFAULT_HSTS_MAX_AGE_SECONDS,
    upstreamDialTimeoutSeconds: h.upstreamDialTimeoutSeconds,
    upstreamResponseHeaderTimeoutSeconds: h.upstreamResponseHeaderTimeoutSeconds,
  };
  return { general, acme, http };
}
