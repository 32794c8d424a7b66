import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Certificate, CertificateType, L4ProxyHost, ProxyHost } from "@cpm/proto";
import { createLogger, DomainError } from "@cpm/core";
import { l4ProxyHostHandlers } from "./resources/l4-proxy-hosts.ts";
import { ProxyHosts } from "./resources/proxy-hosts.ts";
import { Certificates } from "./resources/certificates.ts";
import { ConfigStore, type Commit } from "./store.ts";
import { ADMIN, startConfigService, type Harness } from "./test-support.ts";
import { unary } from "@cpm/grpc-kit";

/** Writes issued in one go, as concurrent API calls arrive: they commit as one group (SQLite). */
describe("group commit", () => {
  let h: Harness;
  let hosts: ProxyHosts;
  const commits: Commit[] = [];
  before(async () => {
    h = await startConfigService();
    hosts = new ProxyHosts(h.store);
    h.store.onCommit((c) => commits.push(c));
  });
  after(async () => h.close());

  const fromDatabase = () => new ConfigStore(h.db, createLogger("test", "silent")).snapshot();
  const host = (name: string, domain: string) =>
    ProxyHost.fromPartial({ name, domains: [domain], upstreams: ["10.0.0.1:80"] });

  it("commits writes that arrive together in one transaction, each on its own version", async () => {
    const start = (await h.store.info()).version;
    commits.length = 0;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => hosts.create(host(`g${i}`, `g${i}.group.test`))),
    );
    assert.deepEqual(
      results.map((r) => r.version),
      Array.from({ length: 20 }, (_, i) => start + 1 + i),
      "one version per write, in the order they were made",
    );
    assert.ok(commits.length < 20, `fewer commits than writes (${commits.length})`);
    assert.equal(
      commits.reduce((n, c) => n + c.writes, 0),
      20,
      "the commits hold every write",
    );
    assert.equal(commits.at(-1)!.version, start + 20);
    const live = await h.store.snapshot();
    assert.deepEqual(live, await fromDatabase(), "the kept content equals the database");
    for (const r of results) assert.ok(live.proxyHosts.some((x) => x.id === r.result.id && x.name === r.result.name));
  });

  it("a refused write in a group is refused alone; the others commit as they would alone", async () => {
    const start = (await h.store.info()).version;
    const made = [
      hosts.create(host("dup-a", "a.dup.test")),
      hosts.create(host("dup-b", "a.dup.test")), // the domain the write before it took, in the same group
      hosts.create(host("dup-a", "c.dup.test")), // the name the first write took
      hosts.create(host("dup-d", "d.dup.test")),
    ];
    const settled = await Promise.allSettled(made);
    assert.deepEqual(
      settled.map((s) => s.status),
      ["fulfilled", "rejected", "rejected", "fulfilled"],
    );
    for (const s of [settled[1]!, settled[2]!]) {
      assert.ok(s.status === "rejected" && s.reason instanceof DomainError, "a refusal, not a failure");
    }
    assert.match(((settled[1] as PromiseRejectedResult).reason as Error).message, /a\.dup\.test/);
    assert.match(((settled[2] as PromiseRejectedResult).reason as Error).message, /dup-a/);
    const versions = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value.version] : []));
    assert.deepEqual(versions, [start + 1, start + 2], "versions only for what committed, in order");
    const live = await h.store.snapshot();
    assert.equal(live.version, start + 2);
    assert.deepEqual(live, await fromDatabase());
    assert.deepEqual(
      live.proxyHosts
        .filter((x) => x.name.startsWith("dup-"))
        .map((x) => x.name)
        .sort(),
      ["dup-a", "dup-d"],
    );
  });

  it("a write sees the ones before it in its group: a domain freed earlier in the group can be taken", async () => {
    const { result } = await hosts.create(host("seen-1", "seen.group.test"));
    commits.length = 0;
    const [moved, taken] = await Promise.allSettled([
      hosts.update({ ...result, domains: ["moved.group.test"] }),
      hosts.create(host("seen-2", "seen.group.test")), // free once the update before it committed, as alone
    ]);
    assert.equal(moved.status, "fulfilled");
    assert.equal(taken.status, "fulfilled", taken.status === "rejected" ? String(taken.reason) : "");
    assert.deepEqual(
      commits.map((c) => c.writes),
      [2],
      "one commit of both: the create saw the update before it, no write ran again alone",
    );
    const live = await h.store.snapshot();
    assert.deepEqual(live, await fromDatabase());
    assert.deepEqual(
      live.proxyHosts
        .filter((x) => x.name.startsWith("seen-"))
        .map((x) => `${x.name} ${x.domains.join(",")}`)
        .sort(),
      ["seen-1 moved.group.test", "seen-2 seen.group.test"],
    );
  });

  it("other kinds in the same group see earlier writes through the transaction", async () => {
    const l4 = l4ProxyHostHandlers({ store: h.store, mode: "standalone" });
    const make = (name: string) =>
      l4.createL4ProxyHost(
        { l4ProxyHost: L4ProxyHost.fromPartial({ name, listenAddress: ":7101", upstreams: ["10.0.1.1:5432"] }) },
        undefined as never,
      );
    const settled = await Promise.allSettled([
      make("l4-a"),
      make("l4-b"),
      hosts.create(host("mixed", "mixed.group.test")),
    ]);
    assert.deepEqual(
      settled.map((s) => s.status),
      ["fulfilled", "rejected", "fulfilled"],
      "the second listener on :7101 is refused",
    );
    assert.deepEqual(await h.store.snapshot(), await fromDatabase());
  });

  it("a group mixing creates with a delete commits as one, and equals the database", async () => {
    const certs = new Certificates(h.store);
    commits.length = 0;
    const early = hosts.create(host("early", "early.group.test"));
    const cert = certs.create(
      Certificate.fromPartial({
        name: "group-cert",
        type: CertificateType.CERTIFICATE_TYPE_MANAGED,
        domainNames: ["*.group.test"],
      }),
    );
    const [{ result: made }, { result: c }] = await Promise.all([early, cert]);
    commits.length = 0;
    const settled = await Promise.allSettled([
      hosts.create({ ...host("on-cert", "on-cert.group.test"), certificateId: c.id }),
      hosts.create(host("gone", "gone.group.test")),
      hosts.delete(made.id),
    ]);
    assert.deepEqual(
      settled.map((s) => s.status),
      ["fulfilled", "fulfilled", "fulfilled"],
      settled.map((s) => (s.status === "rejected" ? String(s.reason) : "")).join(" "),
    );
    assert.deepEqual(
      commits.map((x) => x.writes),
      [3],
      "one commit of all three, none ran again alone",
    );
    const gone = (settled[1] as PromiseFulfilledResult<{ result: ProxyHost }>).value.result;
    await hosts.delete(gone.id);
    const live = await h.store.snapshot();
    assert.deepEqual(live, await fromDatabase());
    assert.deepEqual(
      live.proxyHosts
        .filter((x) => ["early", "on-cert", "gone"].includes(x.name))
        .map((x) => `${x.name} ${x.certificateId === c.id}`),
      ["on-cert true"],
    );
  });

  it("API calls that arrive together over gRPC commit as groups, not one by one", async () => {
    commits.length = 0;
    const made = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        unary(h.config.createProxyHost.bind(h.config), { proxyHost: host(`grpc-${i}`, `grpc-${i}.group.test`) }, ADMIN),
      ),
    );
    assert.equal(made.length, 16);
    assert.equal(
      commits.reduce((n, c) => n + c.writes, 0),
      16,
    );
    assert.ok(
      commits.length <= 4,
      `16 calls in ${commits.length} commits (${commits.map((c) => c.writes).join(", ")} writes)`,
    );
    assert.deepEqual(await h.store.snapshot(), await fromDatabase());
  });
});
