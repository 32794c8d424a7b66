import { createHash, createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from "node:crypto";
import { isIP } from "node:net";
import {
  CertificateIssuance,
  CertificateStatus,
  CertificateType,
  type Certificate,
  type IssuedCertificate,
} from "@cpm/proto";
import { ValidationError } from "./errors.ts";
import { checkCaddyText, checkNoPlaceholder } from "./text.ts";
import { checkHostName, checkName, checkOptionalId } from "./validation.ts";

/*
 * Certificates: validation and normalization (pure apart from the clock: no I/O).
 *
 * Rules
 * - name: required, trimmed, at most 200 characters (unique: checked by config-service).
 * - type: MANAGED or IMPORTED (UNSPECIFIED is refused: the two need different input).
 * - domain_names: host names (a leading "*." wildcard allowed) or IP addresses, lower-cased,
 *   IPv6 compressed, no duplicates, at most MAX_DOMAIN_NAMES.
 * - MANAGED (Caddy obtains and renews them; see caddy-renderer render/tls.ts for issuers):
 *   - at least one domain name; certificate_pem and private_key_pem must be empty (Caddy keeps
 *     the keys of what it obtains; they are never in our database);
 *   - a wildcard of a public name is refused: ACME issues wildcards only through the DNS
 *     challenge, which is not configured. Wildcards of private names (isPrivateName) are
 *     issued by Caddy's internal CA and are fine;
 *   - auto_renew is normalized to true: Caddy renews everything it manages;
 *   - issuance: unset means MASTER (the master's Caddy obtains it; slaves serve the issued
 *     material). EACH_NODE: every instance's Caddy obtains its own; status and issued are
 *     cleared;
 *   - status, status_detail and issued (MASTER): set by the master from what its Caddy
 *     obtained (config-service), carried to slaves in the snapshot. Each issued entry names
 *     one of domain_names (once), holds a chain that covers it and the matching key, like an
 *     imported certificate (no clock check: a slave serves what the master has). The
 *     read-only fields describe the entry that expires first. status_detail (the CA's error,
 *     at most 2000 characters) holds no control character and no placeholder brace.
 * - IMPORTED (PEM supplied by the operator, served through Caddy's tls.certificates.load_pem):
 *   - certificate_pem: one to MAX_CHAIN CERTIFICATE blocks, leaf first, each one signed by the
 *     next; any other PEM block (a key pasted in the wrong field) is refused;
 *   - private_key_pem: one unencrypted private key (PKCS#8, PKCS#1 RSA or SEC1 EC; an
 *     "EC PARAMETERS" block is ignored): RSA of at least 2048 bits, ECDSA P-256/P-384/P-521 or
 *     Ed25519 (what Caddy can serve); its public key must equal the leaf's;
 *   - with `opts.now` (the API): the leaf must be valid at that moment (not expired, not
 *     before its notBefore). Snapshot validation passes no clock: a certificate that was
 *     accepted and has expired since must not make a slave refuse the whole snapshot;
 *   - domain_names: each must be covered by the leaf's subject alternative names (exact, or a
 *     one-label "*." wildcard SAN; a wildcard name needs the same wildcard SAN). Empty means
 *     "all of them": filled from the leaf's DNS and IP SANs, in certificate order;
 *   - auto_renew is normalized to false: nothing can renew a certificate we did not obtain;
 *   - normalized PEM: the chain re-encoded block by block (text around blocks dropped), the
 *     key as PKCS#8. Normalizing a normalized certificate changes nothing.
 *   - read-only fields (not_before, expires_at, fingerprint_sha256, issuer) are computed
 *     from the leaf; client values are ignored. For MANAGED they are cleared.
 * Error messages never quote PEM content: they may end up in logs.
 */

export const MAX_DOMAIN_NAMES = 100;
export const MAX_CHAIN = 10;
export const MAX_PEM_CHARS = 64 * 1024;

export interface NormalizeCertificateOptions {
  /** Check that the leaf is valid at this moment (API writes). Unset: no clock check (snapshots). */
  now?: Date;
}

/**
 * Names Caddy's internal CA issues for, because no public ACME CA can: IP addresses,
 * single-label names ("localhost", "nas"), and names under special-use or private-use
 * suffixes that are not delegated in the public DNS:
 * - RFC 6761/2606: localhost, test, example, invalid;
 * - RFC 6762 (mDNS): local;  RFC 8375: home.arpa;  ICANN 2024 private-use TLD: internal;
 * - common private-use suffixes that ICANN will not delegate (name collisions): lan, home,
 *   corp, intranet, private.
 * A wildcard is judged by the name under it ("*.internal" is private; "*.com" is not).
 */
export function isPrivateName(name: string): boolean {
  const lower = name.toLowerCase().replace(/\.$/, "");
  const wildcard = lower.startsWith("*.");
  const n = wildcard ? lower.slice(2) : lower;
  if (isIP(n) || isIP(n.replace(/^\[|\]$/g, ""))) return true;
  // "nas" is a private host, but "*.com" is every name under a public TLD.
  if (!n.includes(".")) return !wildcard || PRIVATE_TLDS.has(n);
  const tld = n.slice(n.lastIndexOf(".") + 1);
  if (PRIVATE_TLDS.has(tld)) return true;
  return n.endsWith(".home.arpa");
}

const PRIVATE_TLDS = new Set([
  "localhost",
  "test",
  "example",
  "invalid",
  "local",
  "internal",
  "lan",
  "home",
  "corp",
  "intranet",
  "private",
]);

/** Checks one certificate on its own and returns its normalized form. */
export function normalizeCertificate(
  input: Certificate,
  field = "certificate",
  opts: NormalizeCertificateOptions = {},
): Certificate {
  checkOptionalId(input.id, `${field}.id`);
  const name = checkName(input.name, `${field}.name`);
  const type = input.type;
  if (type !== CertificateType.CERTIFICATE_TYPE_MANAGED && type !== CertificateType.CERTIFICATE_TYPE_IMPORTED) {
    throw new ValidationError(
      `${field}.type`,
      type === CertificateType.CERTIFICATE_TYPE_UNSPECIFIED
        ? "is required: CERTIFICATE_TYPE_MANAGED (Caddy obtains it) or CERTIFICATE_TYPE_IMPORTED (PEM chain and key)"
        : `${String(type)} is not a known value`,
    );
  }
  if (input.domainNames.length > MAX_DOMAIN_NAMES)
    throw new ValidationError(`${field}.domain_names`, `at most ${MAX_DOMAIN_NAMES} names`);
  const domainNames = input.domainNames.map((d, i) => canonicalName(checkHostName(d, `${field}.domain_names[${i}]`)));
  const dup = domainNames.findIndex((d, i) => domainNames.indexOf(d) !== i);
  if (dup >= 0) throw new ValidationError(`${field}.domain_names[${dup}]`, `"${domainNames[dup]}" is listed twice`);
  const base = {
    ...input,
    name,
    type,
    notBefore: undefined,
    expiresAt: undefined,
    fingerprintSha256: "",
    issuer: "",
  };

  if (type === CertificateType.CERTIFICATE_TYPE_MANAGED) {
    if (domainNames.length === 0)
      throw new ValidationError(`${field}.domain_names`, "at least one name is required for a managed certificate");
    domainNames.forEach((d, i) => {
      if (d.startsWith("*.") && !isPrivateName(d)) {
        throw new ValidationError(
          `${field}.domain_names[${i}]`,
          `"${d}": a public wildcard needs the ACME DNS challenge, which is not configured; import a wildcard certificate instead`,
        );
      }
    });
    if (input.certificatePem.trim())
      throw new ValidationError(
        `${field}.certificate_pem`,
        "must be empty for a managed certificate (Caddy obtains it)",
      );
    if (input.privateKeyPem.trim())
      throw new ValidationError(
        `${field}.private_key_pem`,
        "must be empty for a managed certificate (Caddy keeps its keys)",
      );
    const managed = { ...base, domainNames, certificatePem: "", privateKeyPem: "", autoRenew: true };
    if (input.issuance === CertificateIssuance.CERTIFICATE_ISSUANCE_EACH_NODE) {
      return {
        ...managed,
        issuance: input.issuance,
        status: CertificateStatus.CERTIFICATE_STATUS_UNSPECIFIED,
        statusDetail: "",
        issued: [],
      };
    }
    if (
      input.issuance !== CertificateIssuance.CERTIFICATE_ISSUANCE_MASTER &&
      input.issuance !== CertificateIssuance.CERTIFICATE_ISSUANCE_UNSPECIFIED
    ) {
      throw new ValidationError(`${field}.issuance`, `${String(input.issuance)} is not a known value`);
    }
    return {
      ...managed,
      issuance: CertificateIssuance.CERTIFICATE_ISSUANCE_MASTER,
      ...normalizeIssuance(input, domainNames, field),
    };
  }

  // IMPORTED
  const chain = parseChain(input.certificatePem, `${field}.certificate_pem`);
  const leaf = chain[0]!;
  const key = parseKey(input.privateKeyPem, `${field}.private_key_pem`);
  const leafSpki = leaf.publicKey.export({ type: "spki", format: "der" });
  const keySpki = createPublicKey(key).export({ type: "spki", format: "der" });
  if (!leafSpki.equals(keySpki))
    throw new ValidationError(
      `${field}.private_key_pem`,
      "does not match the certificate (the leaf's public key is another one)",
    );

  const notBefore = new Date(leaf.validFrom);
  const expiresAt = new Date(leaf.validTo);
  if (opts.now) {
    if (expiresAt.getTime() <= opts.now.getTime()) {
      throw new ValidationError(`${field}.certificate_pem`, `the certificate expired on ${expiresAt.toISOString()}`);
    }
    if (notBefore.getTime() > opts.now.getTime()) {
      throw new ValidationError(
        `${field}.certificate_pem`,
        `the certificate is not valid yet (valid from ${notBefore.toISOString()})`,
      );
    }
  }

  const sans = subjectAltNames(leaf);
  if (sans.length === 0) {
    throw new ValidationError(
      `${field}.certificate_pem`,
      "the certificate has no DNS or IP subject alternative names (clients ignore the common name)",
    );
  }
  domainNames.forEach((d, i) => {
    if (!sans.some((san) => certificateCovers(san, d))) {
      throw new ValidationError(
        `${field}.domain_names[${i}]`,
        `"${d}" is not covered by the certificate (it names ${sans.join(", ")})`,
      );
    }
  });

  // Filled names must pass the same checks as given ones, or the stored entry would not
  // normalize again (a snapshot must be accepted as is): SANs that are not valid host names
  // (e.g. "_service.example") are left out.
  const filled = domainNames.length > 0 ? domainNames : sans.filter((n) => validHostName(n));
  if (filled.length === 0) {
    throw new ValidationError(
      `${field}.domain_names`,
      `none of the certificate's names (${sans.join(", ")}) is a valid host name; list the names to serve`,
    );
  }

  return {
    ...base,
    issuance: CertificateIssuance.CERTIFICATE_ISSUANCE_UNSPECIFIED,
    status: CertificateStatus.CERTIFICATE_STATUS_UNSPECIFIED,
    statusDetail: "",
    issued: [],
    domainNames: filled,
    certificatePem: chain.map((c) => c.toString().trim()).join("\n") + "\n",
    privateKeyPem: String(key.export({ type: "pkcs8", format: "pem" })),
    autoRenew: false,
    notBefore,
    expiresAt,
    fingerprintSha256: createHash("sha256").update(leaf.raw).digest("hex"),
    issuer: leaf.issuer.split("\n").join(", "),
  };
}

const KNOWN_STATUS = new Set([
  CertificateStatus.CERTIFICATE_STATUS_UNSPECIFIED,
  CertificateStatus.CERTIFICATE_STATUS_PENDING,
  CertificateStatus.CERTIFICATE_STATUS_ISSUED,
  CertificateStatus.CERTIFICATE_STATUS_FAILED,
  CertificateStatus.CERTIFICATE_STATUS_RENEWING,
]);

/** Status and issued material of a master-issued certificate (see the rules above). */
function normalizeIssuance(
  input: Certificate,
  domainNames: string[],
  field: string,
): Pick<
  Certificate,
  "status" | "statusDetail" | "issued" | "notBefore" | "expiresAt" | "fingerprintSha256" | "issuer"
> {
  if (!KNOWN_STATUS.has(input.status))
    throw new ValidationError(`${field}.status`, `${String(input.status)} is not a known value`);
  checkCaddyText(input.statusDetail, `${field}.status_detail`);
  if (input.statusDetail.length > 2000)
    throw new ValidationError(`${field}.status_detail`, "is longer than 2000 characters");
  const seen = new Set<string>();
  let first: { leaf: X509Certificate; expiresAt: Date } | undefined;
  const issued = input.issued.map((e, i): IssuedCertificate => {
    const at = `${field}.issued[${i}]`;
    const name = canonicalName(e.domainName);
    if (!domainNames.includes(name))
      throw new ValidationError(`${at}.domain_name`, `"${e.domainName}" is not one of the certificate's domain names`);
    if (seen.has(name)) throw new ValidationError(`${at}.domain_name`, `"${name}" is listed twice`);
    seen.add(name);
    const chain = parseChain(e.certificatePem, `${at}.certificate_pem`);
    const leaf = chain[0]!;
    const key = parseKey(e.privateKeyPem, `${at}.private_key_pem`);
    if (
      !leaf.publicKey
        .export({ type: "spki", format: "der" })
        .equals(createPublicKey(key).export({ type: "spki", format: "der" }))
    ) {
      throw new ValidationError(
        `${at}.private_key_pem`,
        "does not match the certificate (the leaf's public key is another one)",
      );
    }
    if (!subjectAltNames(leaf).some((san) => certificateCovers(san, name)))
      throw new ValidationError(`${at}.certificate_pem`, `does not cover "${name}"`);
    const expiresAt = new Date(leaf.validTo);
    if (!first || expiresAt < first.expiresAt) first = { leaf, expiresAt };
    return {
      domainName: name,
      certificatePem: chain.map((c) => c.toString().trim()).join("\n") + "\n",
      privateKeyPem: String(key.export({ type: "pkcs8", format: "pem" })),
      notAfter: expiresAt,
    };
  });
  return {
    status: input.status,
    statusDetail: input.statusDetail,
    issued: issued.sort((a, b) => (a.domainName < b.domainName ? -1 : a.domainName > b.domainName ? 1 : 0)),
    notBefore: first ? new Date(first.leaf.validFrom) : undefined,
    expiresAt: first?.expiresAt,
    fingerprintSha256: first ? createHash("sha256").update(first.leaf.raw).digest("hex") : "",
    issuer: first ? first.leaf.issuer.split("\n").join(", ") : "",
  };
}

/** Does a certificate name (SAN or domain_names entry) cover a host name? */
export function certificateCovers(certName: string, hostName: string): boolean {
  const san = canonicalName(certName);
  const name = canonicalName(hostName);
  if (san === name) return true;
  if (!san.startsWith("*.") || name.startsWith("*.") || isIP(name)) return false;
  const dot = name.indexOf(".");
  return dot > 0 && name.slice(dot + 1) === san.slice(2);
}

function validHostName(n: string): boolean {
  try {
    return checkHostName(n, "") === n;
  } catch {
    return false;
  }
}

/** Lower case; IPv6 compressed (RFC 5952), so names compare as text. */
function canonicalName(name: string): string {
  const n = name.toLowerCase();
  if (isIP(n) === 6) return new URL(`http://[${n}]/`).hostname.slice(1, -1);
  return n;
}

interface PemBlock {
  label: string;
  body: string;
}

function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push({ label: m[1]!, body: m[0] });
  return out;
}

function parseChain(pem: string, field: string): X509Certificate[] {
  if (!pem.trim()) throw new ValidationError(field, "is required for an imported certificate (PEM chain, leaf first)");
  checkNoPlaceholder(pem, field);
  if (pem.length > MAX_PEM_CHARS) throw new ValidationError(field, `is longer than ${MAX_PEM_CHARS} characters`);
  const blocks = pemBlocks(pem);
  if (blocks.length === 0)
    throw new ValidationError(field, "holds no PEM block (expected PEM CERTIFICATE blocks, leaf first)");
  const other = blocks.find((b) => b.label !== "CERTIFICATE");
  if (other) {
    const hint = other.label.includes("PRIVATE KEY") ? "; the key belongs in private_key_pem" : "";
    throw new ValidationError(field, `holds a "${other.label}" block; only CERTIFICATE blocks are allowed${hint}`);
  }
  if (blocks.length > MAX_CHAIN)
    throw new ValidationError(field, `holds ${blocks.length} certificates; at most ${MAX_CHAIN}`);
  const chain = blocks.map((b, i) => {
    try {
      return new X509Certificate(b.body);
    } catch {
      throw new ValidationError(field, `certificate ${i + 1} of the chain is not a valid X.509 certificate`);
    }
  });
  for (let i = 1; i < chain.length; i++) {
    if (!chain[i - 1]!.verify(chain[i]!.publicKey)) {
      throw new ValidationError(
        field,
        `certificate ${i + 1} of the chain did not sign certificate ${i} (the chain must be the leaf first, then each issuer in order)`,
      );
    }
  }
  return chain;
}

const KEY_LABELS = new Set(["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"]);
const EC_CURVES = new Set(["prime256v1", "secp384r1", "secp521r1"]);

function parseKey(pem: string, field: string): KeyObject {
  if (!pem.trim()) throw new ValidationError(field, "is required for an imported certificate");
  checkNoPlaceholder(pem, field);
  if (pem.length > MAX_PEM_CHARS) throw new ValidationError(field, `is longer than ${MAX_PEM_CHARS} characters`);
  const blocks = pemBlocks(pem).filter((b) => b.label !== "EC PARAMETERS");
  if (blocks.length === 0)
    throw new ValidationError(field, "holds no PEM private key (expected a PEM PRIVATE KEY block)");
  if (blocks.some((b) => b.label === "ENCRYPTED PRIVATE KEY") || /Proc-Type:\s*4,ENCRYPTED/.test(pem)) {
    throw new ValidationError(field, "is encrypted; provide the key without a passphrase");
  }
  if (blocks.length > 1)
    throw new ValidationError(field, `holds ${blocks.length} PEM blocks; exactly one private key is expected`);
  const block = blocks[0]!;
  if (!KEY_LABELS.has(block.label))
    throw new ValidationError(field, `holds a "${block.label}" block, not a private key`);
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: block.body, format: "pem" });
  } catch {
    throw new ValidationError(field, "is not a valid PEM private key");
  }
  const t = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails;
  const ok =
    (t === "rsa" && (d?.modulusLength ?? 0) >= 2048) ||
    (t === "ec" && EC_CURVES.has(d?.namedCurve ?? "")) ||
    t === "ed25519";
  if (!ok) {
    const what =
      t === "rsa"
        ? `an RSA key of ${d?.modulusLength} bits`
        : t === "ec"
          ? `an EC key on ${d?.namedCurve}`
          : `a ${t} key`;
    throw new ValidationError(field, `is ${what}; use RSA (2048 bits or more), ECDSA P-256/P-384/P-521 or Ed25519`);
  }
  return key;
}

/** DNS and IP subject alternative names of a certificate, canonical, in certificate order. */
function subjectAltNames(cert: X509Certificate): string[] {
  const raw = cert.subjectAltName ?? "";
  const out: string[] = [];
  for (const part of raw.split(", ")) {
    let v: string | undefined;
    if (part.startsWith("DNS:")) v = part.slice(4);
    else if (part.startsWith("IP Address:")) v = part.slice(11);
    if (v === undefined || v === "" || v.includes('"')) continue;
    const name = canonicalName(v);
    if (!out.includes(name)) out.push(name);
  }
  return out;
}
