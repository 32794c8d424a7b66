import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { hostDiff } from "./host-diff.ts";
import { host } from "./test-support.ts";

describe("hostDiff", () => {
  const [a, b, c, d] = ["a", "b", "c", "d"].map((id) => host(id, [`${id}.test`]));
  const b2 = { ...b!, upstreams: ["10.0.0.9:80"] };
  const ids = (r: ReturnType<typeof hostDiff>) =>
    r && { removed: r.removed.map((h) => h.id), added: r.added.map((h) => h.id) };
  const cases = [
    { name: "the same objects", before: [a, b, c], after: [a, b, c], max: 1, want: { removed: [], added: [] } },
    {
      name: "one changed in place",
      before: [a, b, c],
      after: [a, b2, c],
      max: 1,
      want: { removed: ["b"], added: ["b"] },
    },
    { name: "one joined", before: [a, c], after: [a, b, c], max: 1, want: { removed: [], added: ["b"] } },
    {
      name: "one left, one joined at the end",
      before: [a, b, c],
      after: [a, c, d],
      max: 1,
      want: { removed: ["b"], added: ["d"] },
    },
    { name: "all replaced by none", before: [a, b], after: [], max: 2, want: { removed: ["a", "b"], added: [] } },
    { name: "more changes than max", before: [a, b, c], after: [a, b2, d], max: 1, want: undefined },
    { name: "an id twice", before: [a, b, b], after: [a, b, b], max: 5, want: undefined },
    { name: "out of id order", before: [b, a], after: [b, a], max: 5, want: undefined },
  ];
  for (const c of cases)
    test(c.name, () => assert.deepEqual(ids(hostDiff(c.before as never, c.after as never, c.max)), c.want));
});
