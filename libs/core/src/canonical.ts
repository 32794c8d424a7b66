import { createHash } from "node:crypto";

/**
 * JSON with object keys sorted at every level and no whitespace: the same value
 * always gives the same bytes, so hashes of rendered configs and snapshots are stable.
 * Dates become ISO strings; undefined members are dropped.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortDeep(value));
}

/**
 * The canonical JSON of the values marked with keepCanonical, once each is written (undefined
 * until then). A kept value is never changed again, so its JSON never changes either.
 */
const keptJson = new WeakMap<object, string | undefined>();

/**
 * Marks `value` (an object or array) as never changed again: canonicalJsonReusing writes its
 * JSON once and reuses it wherever the value appears, in this call and later ones.
 */
export function keepCanonical<T extends object>(value: T): T {
  if (!keptJson.has(value)) keptJson.set(value, undefined);
  return value;
}

/**
 * Bytes canonicalJsonReusing wrote by copying a value sorted (an object out of key order, with
 * everything it holds), rather than member by member with the kept JSON of kept values; kept
 * values written the first time are not counted. For tests: a render of a small change that
 * copies much has an object built out of order on the path to what it keeps.
 */
export const canonicalCopied = { bytes: 0 };

/**
 * canonicalJson, byte for byte, reusing the JSON of kept values (keepCanonical): for a large
 * value that is mostly made of values kept from before (a rendered config after a change to a
 * few hosts), only what is new is written. The path from the top down to the kept values is
 * written here, member by member; anything else goes through canonicalJson's own way.
 */
export function canonicalJsonReusing(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  return writeReusing(value);
}

function writeReusing(value: object): string {
  if (keptJson.has(value)) {
    let s = keptJson.get(value);
    if (s === undefined) keptJson.set(value, (s = JSON.stringify(sortDeep(value))));
    return s;
  }
  if (Array.isArray(value)) {
    if (typeof (value as { toJSON?: unknown }).toJSON === "function") return copiedSorted(value);
    let flat = true;
    for (const v of value as unknown[])
      if (v !== null && typeof v === "object") {
        flat = false;
        break;
      }
    if (flat) return JSON.stringify(value);
    let out = "[";
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (i > 0) out += ",";
      out += v !== null && typeof v === "object" ? writeReusing(v) : (JSON.stringify(v) ?? "null");
    }
    return `${out}]`;
  }
  const keys = Object.keys(value);
  if (!inOrder(value, keys)) return copiedSorted(value);
  const obj = value as Record<string, unknown>;
  let out = "{";
  for (const key of keys) {
    const v = obj[key];
    const s = v !== null && typeof v === "object" ? writeReusing(v) : JSON.stringify(v);
    if (s === undefined) continue; // undefined, functions and symbols: no member, as JSON.stringify does
    if (out.length > 1) out += ",";
    out += `${JSON.stringify(key)}:${s}`;
  }
  return `${out}}`;
}

function copiedSorted(value: object): string {
  // undefined for a value whose toJSON gives undefined, as JSON.stringify has it.
  const s = JSON.stringify(sortDeep(value)) as string | undefined;
  canonicalCopied.bytes += s?.length ?? 0;
  return s as string;
}

/**
 * The value with every object's keys in sorted order, Dates as ISO strings and undefined members
 * dropped, for JSON.stringify. A plain object or array that is in that form already, all the way
 * down, is returned as it is rather than copied: JSON.stringify then writes the very same bytes
 * (it lists an object's keys as Object.keys does: integer keys ascending, then the others in
 * insertion order, here sorted), and rendered configs and snapshots are mostly built in that
 * order, so hashing them copies little. Anything else (other prototypes, a `toJSON`, a
 * `__proto__` key, keys out of order) is copied as it always was.
 */
function sortDeep(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) {
    if (typeof (value as { toJSON?: unknown }).toJSON === "function") return value.map(sortDeep);
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const s = sortDeep(v);
      if (copy) copy.push(s);
      else if (s !== v) (copy = value.slice(0, i)).push(s);
    }
    return copy ?? value;
  }
  const keys = Object.keys(value);
  const obj = value as Record<string, unknown>;
  if (!inOrder(value, keys)) {
    const out: Record<string, unknown> = {};
    for (const key of keys.sort()) {
      const v = obj[key];
      if (v !== undefined) out[key] = sortDeep(v);
    }
    return out;
  }
  // In order: copied only from the first member that changes (the ones before it are kept as they are).
  let copy: Record<string, unknown> | undefined;
  for (let i = 0; i < keys.length; i++) {
    const v = obj[keys[i]!];
    if (v === undefined) continue;
    const s = sortDeep(v);
    if (copy) copy[keys[i]!] = s;
    else if (s !== v) {
      copy = {};
      for (let j = 0; j < i; j++) if (obj[keys[j]!] !== undefined) copy[keys[j]!] = obj[keys[j]!];
      copy[keys[i]!] = s;
    }
  }
  return copy ?? value;
}

/** Whether JSON.stringify writes `value` (a non-array object, keys as Object.keys lists them) with its keys in sorted order. */
function inOrder(value: object, keys: string[]): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") return false;
  let first = 0;
  while (first < keys.length && isIndex(keys[first]!)) first++; // Object.keys lists integer keys first, ascending
  for (let i = first + 1; i < keys.length; i++) if (keys[i - 1]! > keys[i]!) return false;
  return !keys.includes("__proto__");
}

/** An array index, which objects list first and in numeric order: a canonical whole number below 2^32 - 1. */
function isIndex(key: string): boolean {
  const c = key.charCodeAt(0);
  if (c < 48 || c > 57 || key.length > 10 || (c === 48 && key.length > 1)) return false;
  for (let i = 1; i < key.length; i++) {
    const d = key.charCodeAt(i);
    if (d < 48 || d > 57) return false;
  }
  return Number(key) <= 4294967294;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}
