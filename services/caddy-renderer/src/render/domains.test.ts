import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { coveringWildcard, DomainIndex } from "./domains.ts";
import { host, shuffled } from "./test-support.ts";

describe("DomainIndex", () => {
  const wild = host("wild", ["*.example.com", "example.com"]);
  const exact = host("exact", ["b.example.com", "*.b.example.com"]);
  const other = host("other", ["c.example.com", "x.org"]);
  const index = new DomainIndex([exact, other, wild]);

  test("coveringWildcard drops the first label", () => {
    assert.equal(coveringWildcard("a.example.com"), "*.example.com");
    assert.equal(coveringWildcard("localhost"), undefined);
  });

  test("a set's matcher leaves out the exact names of other hosts under its wildcards", () => {
    assert.deepEqual(index.matcher([wild]), {
      host: ["*.example.com", "example.com"],
      not: [{ host: ["b.example.com", "c.example.com"] }],
    });
    assert.deepEqual(index.matcher([wild, other]), {
      host: ["*.example.com", "c.example.com", "example.com", "x.org"],
      not: [{ host: ["b.example.com"] }],
    });
    assert.deepEqual(
      index.matcher([exact]),
      { host: ["*.b.example.com", "b.example.com"] },
      "nothing of another host under *.b.example.com",
    );
    assert.deepEqual(index.matcher([other], { protocol: "http" }), {
      host: ["c.example.com", "x.org"],
      protocol: "http",
    });
  });

  test("a domain listed by two hosts stays with the first", () => {
    const dup = host("dup", ["x.org"]);
    const i = new DomainIndex([other, dup]);
    assert.deepEqual(i.domainsOf(dup), []);
    assert.deepEqual(i.domainsOf(other), ["c.example.com", "x.org"]);
  });

  test("a host's names are its own object's: a changed copy is matched by its new names", () => {
    const before = host("h", ["b.org", "a.org", "a.org"]);
    const after = { ...before, domains: ["c.org"] };
    assert.deepEqual(new DomainIndex([before]).matcher([before]), { host: ["a.org", "b.org"] });
    assert.deepEqual(new DomainIndex([after, other]).matcher([after, other]), {
      host: ["c.example.com", "c.org", "x.org"],
    });
    assert.deepEqual(
      new DomainIndex([before]).domainsOf(before),
      ["a.org", "b.org"],
      "the first object keeps its names",
    );
  });

  test("the matchers do not depend on the order of domains", () => {
    for (let seed = 1; seed <= 5; seed++) {
      const hs = [exact, other, wild].map((h) => ({ ...h, domains: shuffled(h.domains, seed) }));
      assert.deepEqual(new DomainIndex(hs).matcher([hs[2]!]), index.matcher([wild]));
    }
  });
});
