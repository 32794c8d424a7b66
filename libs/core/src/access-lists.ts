import { isIP } from "node:net";
import { AccessListSatisfy, type AccessList, type BasicAuthUser } from "@cpm/proto";
import { ValidationError } from "./errors.ts";
import { checkCaddyText, checkNoControl } from "./text.ts";
import { checkEnum, checkName, checkOptionalId } from "./validation.ts";

/*
 * Access lists: validation and normalization (pure: no hashing, no I/O).
 *
 * Rules
 * - name: required, trimmed, at most 200 characters (unique: checked by config-service).
 * - description: trimmed, at most 1000 characters, no control characters.
 * - users (HTTP basic auth), at most MAX_USERS:
 *   - username: non-empty, at most 128 characters, no ":" (RFC 7617 splits on the first
 *     colon), no control characters, no "{" or "}" (Caddy would read a placeholder), no leading or
 *     trailing white space; unique (exact,
 *     case-sensitive, as Caddy compares it).
 *   - password (write only, clear text): at least PASSWORD_MIN_CHARS (8) characters, at most
 *     PASSWORD_MAX_BYTES (72) bytes of UTF-8 (bcrypt ignores anything past 72 bytes, so a
 *     longer password would be silently truncated), no control characters.
 *   - password_hash: a bcrypt hash ($2a$/$2b$/$2y$, cost 04..31).
 *   Two sources, two shapes (`opts.source`):
 *   - "api" (what an API client sends): password_hash must be empty (only the server sets
 *     it); password is optional here, config-service decides whether a user needs one
 *     (a new user does; an existing user without one keeps its hash).
 *   - "stored" (the default: what the database and snapshots hold, e.g. what a slave
 *     receives): every user has a valid password_hash and no clear-text password. Such an
 *     entry is accepted as is.
 * - allow / deny (at most MAX_ADDRESSES each): IPv4 or IPv6 addresses or CIDRs. Normalized:
 *   - canonical text (IPv6 lower case and RFC 5952 compressed, no leading zeros in IPv4);
 *   - host bits are cleared: "10.1.2.3/8" becomes "10.0.0.0/8";
 *   - a full-length prefix is a single address: "127.0.0.1/32" becomes "127.0.0.1";
 *   - IPv4-mapped IPv6 ("::ffff:10.0.0.1", "::ffff:10.0.0.0/104") becomes IPv4, as Caddy
 *     sees IPv4 clients;
 *   - zones ("fe80::1%eth0"), ports and host names are refused; an entry listed twice (after
 *     normalization) is refused, naming the second one.
 * - satisfy: ANY or ALL; UNSPECIFIED is normalized to ANY.
 *
 * What the rules mean for a request is decided in the renderer (caddy-renderer's
 * render/access.ts): deny always wins (403), then allow and users combine per `satisfy`.
 */

export const PASSWORD_MIN_CHARS = 8;
export const PASSWORD_MAX_BYTES = 72;
export const USERNAME_MAX_CHARS = 128;
export const MAX_USERS = 500;
export const MAX_ADDRESSES = 1000;

/** A bcrypt hash as bcryptjs and Go's x/crypto/bcrypt (Caddy) write and read it. */
export const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

export interface NormalizeAccessListOptions {
  /** "api": input from an API client; "stored" (default): database and snapshot content. */
  source?: "api" | "stored";
}

/** Checks one access list on its own and returns its normalized form. */
export function normalizeAccessList(
  input: AccessList,
  field = "access_list",
  opts: NormalizeAccessListOptions = {},
): AccessList {
  const source = opts.source ?? "stored";
  const id = checkOptionalId(input.id, `${field}.id`);
  const name = checkName(input.name, `${field}.name`);
  checkNoControl(input.description ?? "", `${field}.description`);
  const description = (input.description ?? "").trim();
  if (description.length > 1000) throw new ValidationError(`${field}.description`, "is longer than 1000 characters");

  if (input.users.length > MAX_USERS) throw new ValidationError(`${field}.users`, `at most ${MAX_USERS} users`);
  const seen = new Set<string>();
  const users = input.users.map((u, i) => {
    const at = `${field}.users[${i}]`;
    const user = normalizeUser(u, at, source);
    if (seen.has(user.username)) throw new ValidationError(`${at}.username`, `"${user.username}" is listed twice`);
    seen.add(user.username);
    return user;
  });

  const allow = normalizeAddressList(input.allow, `${field}.allow`);
  const deny = normalizeAddressList(input.deny, `${field}.deny`);

  checkEnum(input.satisfy, AccessListSatisfy, `${field}.satisfy`);
  const satisfy =
    input.satisfy === AccessListSatisfy.ACCESS_LIST_SATISFY_UNSPECIFIED
      ? AccessListSatisfy.ACCESS_LIST_SATISFY_ANY
      : input.satisfy;

  return { ...input, id, name, description, users, allow, deny, satisfy, passAuth: input.passAuth === true };
}

function normalizeUser(u: BasicAuthUser, at: string, source: "api" | "stored"): BasicAuthUser {
  const username = u.username ?? "";
  if (username === "") throw new ValidationError(`${at}.username`, "is required");
  if (username.includes(":"))
    throw new ValidationError(
      `${at}.username`,
      `"${username}" contains ":" (basic auth splits user and password on it)`,
    );
  checkCaddyText(username, `${at}.username`);
  if (username.trim() !== username)
    throw new ValidationError(`${at}.username`, `"${username}" starts or ends with white space`);
  if ([...username].length > USERNAME_MAX_CHARS)
    throw new ValidationError(`${at}.username`, `is longer than ${USERNAME_MAX_CHARS} characters`);
  const password = u.password ?? "";
  const passwordHash = u.passwordHash ?? "";
  if (source === "api") {
    if (passwordHash !== "")
      throw new ValidationError(`${at}.password_hash`, "is set by the server; send the clear-text password instead");
    if (password !== "") checkPassword(password, `${at}.password`);
  } else {
    if (password !== "")
      throw new ValidationError(`${at}.password`, "a stored access list never holds a clear-text password");
    if (passwordHash === "") throw new ValidationError(`${at}.password_hash`, "is required");
    if (!BCRYPT_HASH.test(passwordHash)) throw new ValidationError(`${at}.password_hash`, "is not a bcrypt hash");
  }
  return { username, password, passwordHash };
}

/** Password rules for a clear-text password sent by a client (see the top of this file). */
export function checkPassword(password: string, field: string): void {
  if ([...password].length < PASSWORD_MIN_CHARS)
    throw new ValidationError(field, `must be at least ${PASSWORD_MIN_CHARS} characters`);
  if (Buffer.byteLength(password, "utf8") > PASSWORD_MAX_BYTES) {
    throw new ValidationError(field, `must be at most ${PASSWORD_MAX_BYTES} bytes (UTF-8); bcrypt ignores the rest`);
  }
  checkNoControl(password, field);
}

function normalizeAddressList(xs: string[], field: string): string[] {
  if (xs.length > MAX_ADDRESSES) throw new ValidationError(field, `at most ${MAX_ADDRESSES} entries`);
  const out = xs.map((x, i) => normalizeIpRange(x, `${field}[${i}]`));
  const dup = out.findIndex((x, i) => out.indexOf(x) !== i);
  if (dup >= 0) throw new ValidationError(`${field}[${dup}]`, `"${out[dup]}" is listed twice (after normalization)`);
  return out;
}

/**
 * An IPv4 or IPv6 address or CIDR in canonical form: host bits cleared, a full-length prefix
 * written as the bare address, IPv4-mapped IPv6 as IPv4.
 */
export function normalizeIpRange(raw: string, field: string): string {
  const v = (raw ?? "").trim();
  if (v === "") throw new ValidationError(field, "must not be empty");
  const bad = (why: string) => new ValidationError(field, `"${raw}" ${why}`);
  const slash = v.indexOf("/");
  const addrText = slash < 0 ? v : v.slice(0, slash);
  const prefixText = slash < 0 ? undefined : v.slice(slash + 1);
  checkCaddyText(v, field);
  if (addrText.includes("%")) throw bad("has a zone id; zones are not supported");
  const family = isIP(addrText);
  if (family === 0) throw bad("is not an IP address or CIDR");
  let bytes = family === 4 ? parseV4(addrText) : parseV6(addrText);
  if (!bytes) throw bad("is not an IP address or CIDR");
  let bits = bytes.length * 8;
  let prefix = bits;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText)) throw bad("has an invalid prefix length");
    prefix = Number(prefixText);
    if (prefix > bits) throw bad(`has a prefix length above ${bits}`);
  }
  // IPv4-mapped IPv6 (::ffff:a.b.c.d): Caddy sees such clients as IPv4.
  if (
    bytes.length === 16 &&
    bytes.slice(0, 10).every((b) => b === 0) &&
    bytes[10] === 0xff &&
    bytes[11] === 0xff &&
    prefix >= 96
  ) {
    bytes = bytes.slice(12);
    bits = 32;
    prefix -= 96;
  }
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i]! &= (0xff << (8 - keep)) & 0xff;
  }
  const text = bytes.length === 4 ? bytes.join(".") : formatV6(bytes);
  return prefix === bits ? text : `${text}/${prefix}`;
}

function parseV4(s: string): number[] | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  return out.every((n) => n >= 0 && n <= 255) ? out : undefined;
}

function parseV6(s: string): number[] | undefined {
  let text = s.toLowerCase();
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    const v4 = parseV4(text.slice(lastColon + 1));
    if (!v4) return undefined;
    tail = v4;
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (h: string) => (h === "" ? [] : h.split(":").map((g) => parseInt(g, 16)));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  const fill = 8 - head.length - rest.length;
  if (fill < 0 || (halves.length === 1 && fill !== 0)) return undefined;
  const all = [...head, ...Array<number>(fill).fill(0), ...rest];
  if (all.some((g) => !(g >= 0 && g <= 0xffff))) return undefined;
  const bytes = all.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** RFC 5952: lower case, no leading zeros, the longest run (2+) of zero groups as "::". */
function formatV6(bytes: number[]): string {
  const g = Array.from({ length: 8 }, (_, i) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}
