import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PatchedMap } from "./patched-map.ts";

/** What a map holds, in its iteration order, through every way of reading it. */
function read(m: ReadonlyMap<string, number>) {
  const each: [string, number][] = [];
  m.forEach((v, k) => each.push([k, v]));
  return {
    size: m.size,
    entries: [...m],
    keys: [...m.keys()],
    values: [...m.values()],
    each,
    got: ["a", "b", "c", "z"].map((k) => [m.has(k), m.get(k)]),
  };
}

describe("PatchedMap", () => {
  const base = new Map([
    ["a", 1],
    ["b", 2],
    ["c", 3],
  ]);
  const cases: { name: string; patches: [string, number][][]; want: Map<string, number> }[] = [
    { name: "no change: the base itself", patches: [[]], want: base },
    {
      name: "a value replaced",
      patches: [[["b", 20]]],
      want: new Map([
        ["a", 1],
        ["b", 20],
        ["c", 3],
      ]),
    },
    {
      name: "a key added, after the base's",
      patches: [[["z", 9]]],
      want: new Map([
        ["a", 1],
        ["b", 2],
        ["c", 3],
        ["z", 9],
      ]),
    },
    {
      name: "layers over layers: the newest wins",
      patches: [
        [["a", 10]],
        [
          ["a", 100],
          ["z", 9],
        ],
        [["z", 90]],
      ],
      want: new Map([
        ["a", 100],
        ["b", 2],
        ["c", 3],
        ["z", 90],
      ]),
    },
    {
      name: `more than ${PatchedMap.MAX_LAYERS} layers: copied whole once`,
      patches: Array.from({ length: 3 * PatchedMap.MAX_LAYERS }, (_, i) => [["b", i] as [string, number]]),
      want: new Map([
        ["a", 1],
        ["b", 3 * PatchedMap.MAX_LAYERS - 1],
        ["c", 3],
      ]),
    },
  ];
  for (const c of cases)
    test(`${c.name}: reads as a Map with the same entries`, () => {
      let m: ReadonlyMap<string, number> = base;
      for (const p of c.patches) m = PatchedMap.of(m, new Map(p));
      assert.deepEqual(read(m), read(c.want));
      if (c.patches.every((p) => p.length === 0)) assert.equal(m, base);
      assert.deepEqual(
        read(base),
        read(
          new Map([
            ["a", 1],
            ["b", 2],
            ["c", 3],
          ]),
        ),
        "the base is left as it was",
      );
    });

  test("the changes are its own: changing the map they came from later changes nothing", () => {
    const changes = new Map([["a", 5]]);
    const m = PatchedMap.of(base, changes);
    changes.set("a", 6);
    assert.equal(m.get("a"), 5);
  });
});
