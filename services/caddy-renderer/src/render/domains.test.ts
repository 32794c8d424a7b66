import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { coveringWildcard, DomainIndex } from "./domains.ts";
import { MAX_PATCHED_HOSTS } from "./host-diff.ts";
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

describe("DomainIndex.of: patched from the last index", () => {
  const hosts = Array.from({ length: 100 }, (_, i) => host(`h${String(i).padStart(3, "0")}`, [`h${i}.test`]));
  const renamed = (i: number, domains: string[]) => hosts.map((h, j) => (j === i ? { ...h, domains } : h));
  const answers = (ix: DomainIndex, hs: typeof hosts) => ({
    standAlone: ix.matchersStandAlone,
    serves: hs.map((h) => ix.serves(h)),
    matcher: ix.matcher(hs),
    own: hs.map((h) => ix.domainsOf(h)),
  });

  const cases: { name: string; after: typeof hosts; patched: boolean }[] = [
    { name: "a host renamed", after: renamed(5, ["new.test", "www.new.test"]), patched: true },
    {
      name: "a name moved to another host",
      after: renamed(7, ["h5.test", "h7.test"]).map((h, j) => (j === 5 ? { ...h, domains: [] } : h)),
      patched: true,
    },
    { name: "a name another host keeps (listed twice)", after: renamed(7, ["h5.test"]), patched: false },
    { name: "a wildcard", after: renamed(7, ["*.test"]), patched: false },
    { name: "a host added", after: [...hosts, host("h999", ["z.test"])], patched: true },
    {
      name: "a host removed, another taking its name",
      after: renamed(9, ["h3.test"]).filter((_, i) => i !== 3),
      patched: true,
    },
    { name: "hosts out of id order", after: [...hosts].reverse(), patched: false },
    {
      name: `more than ${MAX_PATCHED_HOSTS} hosts changed`,
      after: hosts.map((h, i) => (i <= MAX_PATCHED_HOSTS ? { ...h, domains: [`m${i}.test`] } : h)),
      patched: false,
    },
  ];
  for (const c of cases)
    test(`${c.name}: ${c.patched ? "patched" : "built whole"}, the same answers as an index built whole`, () => {
      const last = new DomainIndex(hosts);
      const ix = DomainIndex.of(c.after, last);
      assert.equal(ix.fromPatch, c.patched);
      assert.deepEqual(answers(ix, c.after), answers(new DomainIndex(c.after), c.after));
      // A patched index takes the last one's owners: the last is spent, never patched again.
      if (c.patched) assert.equal(DomainIndex.of(c.after, last).fromPatch, false);
    });

  test("a group's host list patched: the same list as its matcher, and none when a wildcard covers a name", () => {
    const after = renamed(5, ["a.test", "zz.test"]);
    const ix = new DomainIndex(after);
    const list = (new DomainIndex(hosts).matcher(hosts) as { host: string[] }).host;
    assert.deepEqual(ix.patchedHostList(hosts, list, after), (ix.matcher(after) as { host: string[] }).host);
    const wild = [...after, host("w", ["*.test"])];
    assert.equal(new DomainIndex(wild).patchedHostList(hosts, list, wild), undefined);
  });
});
