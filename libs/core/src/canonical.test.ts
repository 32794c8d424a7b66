import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { canonicalJson, canonicalJsonReusing, keepCanonical, sha256Hex } from "./canonical.ts";

/** canonicalJson as it was before it kept values already in order: JSON.stringify of a full copy with sorted keys. Stored hashes were made with it. */
function reference(value: unknown): string {
  const sortDeep = (v: unknown): unknown => {
    if (v instanceof Date) return v.toISOString();
    if (Array.isArray(v)) return v.map(sortDeep);
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v).sort()) {
        const x = (v as Record<string, unknown>)[key];
        if (x !== undefined) out[key] = sortDeep(x);
      }
      return out;
    }
    return v;
  };
  return JSON.stringify(sortDeep(value));
}

/** A small deterministic generator (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KEYS = [
  "a",
  "b",
  "B",
  "c",
  "z",
  "é",
  "\u{1F600}",
  "\ud800",
  "0",
  "1",
  "2",
  "10",
  "007",
  "-1",
  "1.5",
  "4294967294",
  "4294967295",
  "__proto__",
  "toString",
  "",
  " ",
  '"q"',
  "\n",
];
const STRINGS = ["", "x", "é", "\u2028", "\ud800", '"', "\\", "\u0000", "{http.request.host}", "<script>"];

/** A random value: nested objects (often with keys already in order, as rendered configs are) and arrays, and every leaf kind. */
function value(next: () => number, depth: number): unknown {
  const r = next();
  if (depth > 3 || r < 0.35) {
    const p = Math.floor(next() * 11);
    return [
      null,
      undefined,
      true,
      false,
      0,
      -0,
      1.5,
      NaN,
      STRINGS[Math.floor(next() * STRINGS.length)],
      new Date(1_700_000_000_000 + Math.floor(next() * 1e9)),
      () => 1,
    ][p];
  }
  if (r < 0.55) return Array.from({ length: Math.floor(next() * 5) }, () => value(next, depth + 1));
  const keys = Array.from({ length: Math.floor(next() * 6) }, () => KEYS[Math.floor(next() * KEYS.length)]!);
  if (next() < 0.5) keys.sort();
  const o: Record<string, unknown> = next() < 0.1 ? (Object.create(null) as Record<string, unknown>) : {};
  // defineProperty: "__proto__" as an own key, as JSON.parse makes it.
  for (const k of keys)
    Object.defineProperty(o, k, {
      value: value(next, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  return o;
}

describe("canonicalJson", () => {
  test("keys sorted at every level, no whitespace, undefined members dropped, Dates as ISO strings", () => {
    assert.equal(
      canonicalJson({ b: [1, { d: 1, c: undefined, a: new Date(0) }], a: "x" }),
      '{"a":"x","b":[1,{"a":"1970-01-01T00:00:00.000Z","d":1}]}',
    );
  });

  test("the same bytes as a full sorted copy, on 5,000 random values", () => {
    for (let seed = 1; seed <= 5000; seed++) {
      const v = value(random(seed), 0);
      assert.equal(canonicalJson(v), reference(v), `seed ${seed}`);
    }
  });

  test("the copy's quirks: integer keys first in numeric order, __proto__ dropped, toJSON only for Dates", () => {
    const parsed = JSON.parse('{"b":1,"10":2,"2":3,"__proto__":{"x":1},"a":[null]}') as unknown;
    assert.equal(canonicalJson(parsed), '{"2":3,"10":2,"a":[null],"b":1}');
    assert.equal(canonicalJson({ a: { toJSON: () => "x", b: 1 } }), reference({ a: { toJSON: () => "x", b: 1 } }));
    assert.equal(canonicalJson([undefined, () => 1, Symbol("s")]), "[null,null,null]");
    assert.equal(canonicalJson(Buffer.from("ab")), '{"0":97,"1":98}');
    assert.equal(canonicalJson({ s: new String("ab") }), '{"s":{"0":"a","1":"b"}}');
    const withToJson = Object.assign([1], { toJSON: () => "x" });
    assert.equal(canonicalJson({ a: withToJson }), '{"a":[1]}');
    assert.equal(canonicalJson(undefined), undefined);
  });

  test("a hash that must never move", () => {
    assert.equal(
      sha256Hex(canonicalJson({ version: 3, proxyHosts: [{ id: "h1", enabled: true, domains: ["a.test"] }] })),
      sha256Hex('{"proxyHosts":[{"domains":["a.test"],"enabled":true,"id":"h1"}],"version":3}'),
    );
  });
});

/** Marks about a third of the objects and arrays in `v` as kept (keepCanonical), at random. */
function keepSome(v: unknown, next: () => number): void {
  if (v === null || typeof v !== "object") return;
  if (next() < 0.35) keepCanonical(v);
  for (const k of Object.keys(v)) keepSome((v as Record<string, unknown>)[k], next);
}

describe("canonicalJsonReusing", () => {
  test("the same bytes as canonicalJson on 5,000 random values with kept parts, written twice", () => {
    for (let seed = 1; seed <= 5000; seed++) {
      const v = value(random(seed), 0);
      keepSome(v, random(seed + 7919));
      const want = reference(v);
      assert.equal(canonicalJsonReusing(v), want, `seed ${seed}`);
      assert.equal(canonicalJsonReusing(v), want, `seed ${seed}, again`);
    }
  });

  test("canonicalJson's quirks, at the top and under a kept value", () => {
    const parsed = JSON.parse('{"b":1,"10":2,"2":3,"__proto__":{"x":1},"a":[null]}') as object;
    const cases: unknown[] = [
      parsed,
      { a: { toJSON: () => "x", b: 1 } },
      [undefined, () => 1, Symbol("s")],
      Buffer.from("ab"),
      { s: new String("ab") },
      { a: Object.assign([1], { toJSON: () => "x" }) },
      { d: new Date(0), u: undefined, f: () => 1, n: NaN },
      "text",
      7,
      null,
    ];
    for (const c of cases) {
      assert.equal(canonicalJsonReusing(c), canonicalJson(c));
      assert.equal(
        canonicalJsonReusing({ z: 1, a: [c], k: keepCanonical({ c: [c] }) }),
        canonicalJson({ a: [c], k: { c: [c] }, z: 1 }),
      );
    }
    assert.equal(canonicalJsonReusing(undefined), undefined);
  });

  test("a kept value is written once: what it holds later is not seen (kept values never change)", () => {
    const inner = keepCanonical({ b: 2, a: 1 });
    assert.equal(canonicalJsonReusing({ x: inner }), '{"x":{"a":1,"b":2}}');
    (inner as Record<string, number>).c = 3;
    assert.equal(canonicalJsonReusing({ x: inner }), '{"x":{"a":1,"b":2}}');
  });
});
