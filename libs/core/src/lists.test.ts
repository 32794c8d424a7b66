import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { compareCodeUnits, sameItems, sortedIndex } from "./lists.ts";

describe("sameItems", () => {
  const o = {};
  const cases: { a: unknown[]; b: unknown[]; want: boolean }[] = [
    { a: [], b: [], want: true },
    { a: [o, "x", 1], b: [o, "x", 1], want: true },
    { a: [o], b: [{}], want: false },
    { a: ["x", "y"], b: ["y", "x"], want: false },
    { a: ["x"], b: ["x", "x"], want: false },
  ];
  for (const c of cases)
    test(`${JSON.stringify(c.a)} / ${JSON.stringify(c.b)}`, () => assert.equal(sameItems(c.a, c.b), c.want));
});

describe("sortedIndex", () => {
  test("strings: where each key is or belongs, in code-unit order", () => {
    const names = ["B", "a", "b", "é"];
    assert.deepEqual(
      ["0", "B", "Z", "a", "ab", "b", "c", "é", "ü"].map((k) => sortedIndex(names, k)),
      [0, 0, 1, 1, 2, 2, 3, 3, 4],
    );
    assert.equal(sortedIndex([], "x"), 0);
  });

  test("numbers", () => {
    assert.deepEqual(
      [0, 3, 4, 9, 10].map((k) => sortedIndex([3, 9], k, (n) => n)),
      [0, 0, 1, 1, 2],
    );
  });

  test("by a key of each item", () => {
    const hosts = [{ id: "h1" }, { id: "h3" }];
    assert.deepEqual(
      ["h0", "h1", "h2", "h3", "h4"].map((id) => sortedIndex(hosts, id, (h) => h.id)),
      [0, 0, 1, 1, 2],
    );
  });
});

describe("compareCodeUnits", () => {
  test("sorts as `<` compares, which sortedIndex searches", () => {
    const names = ["é", "b", "B", "a", "ab", "a"];
    assert.deepEqual([...names].sort(compareCodeUnits), ["B", "a", "a", "ab", "b", "é"]);
    const sorted = [...names].sort(compareCodeUnits);
    for (const n of names) assert.equal(sorted[sortedIndex(sorted, n)], n);
  });
});
