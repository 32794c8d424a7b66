import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { AccessList, Certificate, CertificateType, L4ProxyHost, ProxyHost, Settings, Snapshot } from "@cpm/proto";
import { createLogger, endsChunk, resourceDigest, snapshotContentHash } from "@cpm/core";
import { ContentIndex } from "./content-index.ts";
import { unary } from "@cpm/grpc-kit";
import { applySnapshot } from "./apply.ts";
import { ConfigStore } from "./store.ts";
import { ADMIN, expectStatus, startConfigService, type Harness } from "./test-support.ts";
import { status } from "@cpm/grpc-kit";

/** A small deterministic generator (mulberry32), so a failing sequence can be replayed from its seed. */
function random(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { int: (n: number) => Math.floor(next() * n), pick: <T>(xs: T[]) => xs[Math.floor(next() * xs.length)] };
}

/** Random API writes of every kind against `h` (refusals, such as taken names, are part of the sequence). */
function randomWriter(h: Harness, rnd: ReturnType<typeof random>) {
  const c = h.config;
  const call = <Req, Res>(m: (req: Req, ...rest: never[]) => unknown, req: Req) =>
    unary<Req, Res>(m.bind(c) as never, req, ADMIN).catch(() => undefined); // refusals (taken names, in use) are part of the sequence
  const ids = { hosts: [] as string[], l4: [] as string[], certs: [] as string[], acls: [] as string[] };
  const maybe = (xs: string[]) => (xs.length && rnd.int(2) ? rnd.pick(xs)! : "");
  const drop = (xs: string[], id: string) => xs.splice(xs.indexOf(id), 1);
  const host = (i: number, id = "") =>
    ProxyHost.fromPartial({
      id,
      name: `h${i}`,
      domains: [`h${i}.test`, `x${rnd.int(40)}.test`],
      upstreams: [`10.0.0.${rnd.int(9) + 1}:80`],
      certificateId: maybe(ids.certs),
      accessListId: maybe(ids.acls),
      allowWebsocket: !!rnd.int(2),
    });
  const l4 = (i: number, id = "") =>
    L4ProxyHost.fromPartial({
      id,
      name: `l${i}`,
      listenAddress: `:${6000 + rnd.int(30)}`,
      upstreams: [`10.0.1.${rnd.int(9) + 1}:5432`],
    });
  const cert = (i: number, id = "") =>
    Certificate.fromPartial({
      id,
      name: `c${i}`,
      type: CertificateType.CERTIFICATE_TYPE_MANAGED,
      domainNames: [`c${rnd.int(50)}.test`],
    });
  const acl = (i: number, id = "") =>
    AccessList.fromPartial({ id, name: `a${i}`, allow: [`10.${rnd.int(200)}.0.0/16`] });

  /** Per kind: its ids, how one is made, and its create, update and delete calls. */
  interface Kind<T extends { id: string }> {
    ids: string[];
    make: (i: number, id?: string) => T;
    create: (x: T) => Promise<unknown>;
    created: (r: unknown) => T;
    update: (x: T) => Promise<unknown>;
    remove: (id: string) => Promise<unknown>;
  }
  const kind = <T extends { id: string }>(k: Kind<T>) => k as unknown as Kind<{ id: string }>;
  const kinds = [
    kind({
      ids: ids.hosts,
      make: host,
      create: (x) => call(c.createProxyHost.bind(c), { proxyHost: x }),
      created: (r) => (r as { proxyHost: ProxyHost }).proxyHost,
      update: (x) => call(c.updateProxyHost.bind(c), { proxyHost: x }),
      remove: (id) => call(c.deleteProxyHost.bind(c), { id }),
    }),
    kind({
      ids: ids.l4,
      make: l4,
      create: (x) => call(c.createL4ProxyHost.bind(c), { l4ProxyHost: x }),
      created: (r) => (r as { l4ProxyHost: L4ProxyHost }).l4ProxyHost,
      update: (x) => call(c.updateL4ProxyHost.bind(c), { l4ProxyHost: x }),
      remove: (id) => call(c.deleteL4ProxyHost.bind(c), { id }),
    }),
    kind({
      ids: ids.certs,
      make: cert,
      create: (x) => call(c.createCertificate.bind(c), { certificate: x }),
      created: (r) => (r as { certificate: Certificate }).certificate,
      update: (x) => call(c.updateCertificate.bind(c), { certificate: x }),
      remove: (id) => call(c.deleteCertificate.bind(c), { id }),
    }),
    kind({
      ids: ids.acls,
      make: acl,
      create: (x) => call(c.createAccessList.bind(c), { accessList: x }),
      created: (r) => (r as { accessList: AccessList }).accessList,
      update: (x) => call(c.updateAccessList.bind(c), { accessList: x }),
      remove: (id) => call(c.deleteAccessList.bind(c), { id }),
    }),
  ];

  return async function step(): Promise<void> {
    const i = rnd.int(25);
    const drawn = rnd.int(16);
    const op = drawn >= 13 ? 0 : drawn; // proxy hosts are created more often than the rest
    if (op === 12) {
      const http = rnd.int(2) ? { hstsMaxAgeSeconds: rnd.int(1000) + 1 } : undefined;
      await call(c.updateSettings.bind(c), {
        settings: Settings.fromPartial({ general: { acmeEmail: `ops${rnd.int(5)}@example.com` }, http }),
      });
      return;
    }
    const k = kinds[Math.floor(op / 3)]!;
    const action = op % 3; // create, update, delete
    if (action === 0) {
      const r = await k.create(k.make(i));
      if (r) k.ids.push(k.created(r).id);
    } else if (action === 1 && k.ids.length) {
      await k.update(k.make(i, rnd.pick(k.ids)));
    } else if (action === 2 && k.ids.length) {
      const id = rnd.pick(k.ids)!;
      if (await k.remove(id)) drop(k.ids, id);
    }
  };
}

describe("the in-memory content", () => {
  let h: Harness;
  before(async () => {
    h = await startConfigService();
  });
  after(async () => h.close());

  /** What a service that just started would serve: everything read from the database. */
  async function fromDatabase() {
    return new ConfigStore(h.db, createLogger("test", "silent")).snapshot();
  }

  it("after random writes of every kind, equals a full recomputation from the database", async () => {
    const seed = Number(process.env.CPM_TEST_SEED ?? 20240501);
    const rnd = random(seed);
    const write = randomWriter(h, rnd);
    let checked = 0;
    for (let step = 0; step < 160; step++) {
      await write();
      if (step % 8 !== 7) continue;
      const live = await h.store.snapshot();
      const fresh = await fromDatabase();
      assert.equal(
        live.contentSha256,
        snapshotContentHash(live),
        `seed ${seed}, step ${step}: the kept hash is the hash of the served content`,
      );
      assert.equal(
        live.contentSha256,
        fresh.contentSha256,
        `seed ${seed}, step ${step}: the kept hash equals a full recomputation`,
      );
      assert.deepEqual(
        live,
        fresh,
        `seed ${seed}, step ${step}: the served snapshot equals one read from the database`,
      );
      checked++;
    }
    const final = await h.store.snapshot();
    assert.equal(checked, 20);
    assert.ok(
      final.proxyHosts.length > 0 &&
        final.certificates.length > 0 &&
        final.accessLists.length > 0 &&
        final.l4ProxyHosts.length > 0,
      "every kind was written",
    );
  });

  it("a slave applying the master's snapshots one by one keeps content equal to its database and to the master's", async () => {
    const seed = Number(process.env.CPM_TEST_SEED ?? 20261126);
    const rnd = random(seed);
    const write = randomWriter(h, rnd);
    const slave = await startConfigService();
    try {
      let changed = 0;
      for (let step = 0; step < 120; step++) {
        await write();
        if (rnd.int(3) === 0) continue; // now and then several writes reach the slave as one snapshot
        const master = await h.store.snapshot();
        // As the slave's receiver gets it: decoded from the wire, no object shared with the master.
        const r = await applySnapshot(slave.store, Snapshot.decode(Snapshot.encode(master).finish()));
        if (r.changed) changed++;
        const kept = await slave.store.snapshot();
        const read = await new ConfigStore(slave.db, createLogger("test", "silent")).snapshot();
        assert.equal(
          kept.contentSha256,
          master.contentSha256,
          `seed ${seed}, step ${step}: the slave's kept hash is the master's`,
        );
        assert.deepEqual(kept, read, `seed ${seed}, step ${step}: the slave's kept content equals its database`);
        const { version, generatedAt: _kg, masterInstanceId: _km, ...content } = kept;
        const { version: mv, generatedAt: _mg, masterInstanceId: _mm, ...masterContent } = master;
        assert.equal(version, mv);
        assert.deepEqual(content, masterContent, `seed ${seed}, step ${step}: the slave holds the master's content`);
      }
      assert.ok(changed > 40, `most applies changed something (${changed})`);
    } finally {
      await slave.close();
    }
  });

  it("notices a commit by another connection and reads the database again", async () => {
    const before = await h.store.contentSha256();
    const Database = (await import("better-sqlite3")).default;
    const { sqlitePath } = await import("./db.ts");
    const url = (await h.db.$queryRawUnsafe<{ file: string }[]>("PRAGMA database_list"))[0]!.file;
    const raw = new Database(sqlitePath(url));
    raw.prepare(`DELETE FROM "ProxyHostDomain"`).run();
    raw.prepare(`DELETE FROM "ProxyHost"`).run();
    raw.close();
    assert.equal(await h.store.contentSha256(), before, "kept until asked to look");
    await h.store.invalidateIfChangedElsewhere();
    const after = await h.store.snapshot();
    assert.equal(after.proxyHosts.length, 0);
    assert.notEqual(after.contentSha256, before);
    assert.equal(after.contentSha256, (await fromDatabase()).contentSha256);
  });
});

describe("a write's checks in memory", () => {
  let h: Harness;
  before(async () => {
    h = await startConfigService();
  });
  after(async () => h.close());

  it("checks a write's names and domains against rows another process committed", async () => {
    const create = (name: string, domain: string) =>
      unary(
        h.config.createProxyHost.bind(h.config),
        { proxyHost: ProxyHost.fromPartial({ name, domains: [domain], upstreams: ["10.0.0.1:80"] }) },
        ADMIN,
      );
    await create("seen-first", "first.elsewhere.test"); // the content is in memory now
    const { sqlitePath } = await import("./db.ts");
    const url = (await h.db.$queryRawUnsafe<{ file: string }[]>("PRAGMA database_list"))[0]!.file;
    const data = JSON.stringify(
      ProxyHost.toJSON(
        ProxyHost.fromPartial({
          id: "written-elsewhere",
          name: "elsewhere",
          domains: ["taken.elsewhere.test"],
          upstreams: ["10.0.0.2:80"],
        }),
      ),
    );
    // Another process (two copies of SQLite in one process do not see each other's locks).
    const script = `
      const db = new (require("better-sqlite3"))(process.argv[1]);
      db.prepare('INSERT INTO "ProxyHost" ("id", "name", "data", "createdAt", "updatedAt") VALUES (?, ?, ?, 0, 0)').run("written-elsewhere", "elsewhere", process.argv[2]);
      db.prepare('INSERT INTO "ProxyHostDomain" ("domain", "proxyHostId") VALUES (?, ?)').run("taken.elsewhere.test", "written-elsewhere");
      db.close();`;
    execFileSync(process.execPath, ["-e", script, sqlitePath(url), data], { cwd: import.meta.dirname });
    const domain = await expectStatus(create("another", "taken.elsewhere.test"), status.ALREADY_EXISTS);
    assert.match(
      domain,
      /proxy_host\.domains\[0\]: "taken\.elsewhere\.test" is already served by proxy host "elsewhere"/,
    );
    const name = await expectStatus(create("elsewhere", "free.elsewhere.test"), status.ALREADY_EXISTS);
    assert.match(name, /proxy_host\.name: a proxy host named "elsewhere" already exists/);
  });
});

describe("the kept content hash (chunk digests)", () => {
  const hostNumbered = (n: number, upstream: number) =>
    ProxyHost.fromPartial({
      id: `id-${String(n).padStart(5, "0")}`,
      name: `h${n}`,
      domains: [`h${n}.test`],
      upstreams: [`10.0.${upstream % 250}.1:80`],
    });

  it("equals a full recomputation after every step of random creates, updates and deletes over many chunks", () => {
    const seed = Number(process.env.CPM_TEST_SEED ?? 20261126);
    const rnd = random(seed);
    const settings = Settings.fromPartial({});
    const hosts = Array.from({ length: 600 }, (_, n) => hostNumbered(2 * n, n)); // even numbers: odd ones are inserted between them
    const idx = ContentIndex.of({ proxyHosts: hosts, l4ProxyHosts: [], certificates: [], accessLists: [], settings });
    const live = new Map(hosts.map((h) => [h.id, h]));
    const endsOf = (h: ProxyHost) => endsChunk(resourceDigest(idx.get("proxyHosts", h.id) ?? h));
    let chunkEndsMoved = 0;
    assert.equal(idx.contentSha256(), snapshotContentHash(idx.content()));
    assert.ok([...live.values()].filter(endsOf).length >= 8, "the hosts span several chunks");
    for (let step = 0; step < 400; step++) {
      const action = rnd.int(3);
      const ids = [...live.keys()];
      if (action === 0 || ids.length === 0) {
        const h = hostNumbered(2 * rnd.int(700) + 1, rnd.int(1000));
        chunkEndsMoved += Number(endsChunk(resourceDigest(h)));
        idx.put("proxyHosts", h);
        live.set(h.id, h);
      } else if (action === 1) {
        const old = live.get(rnd.pick(ids)!)!;
        const h = ProxyHost.fromPartial({ ...old, upstreams: [`10.1.${rnd.int(250)}.1:80`] });
        const was = endsOf(old);
        idx.put("proxyHosts", h);
        chunkEndsMoved += Number(was !== endsOf(h));
        live.set(h.id, h);
      } else {
        const id = rnd.pick(ids)!;
        chunkEndsMoved += Number(endsOf(live.get(id)!));
        idx.remove("proxyHosts", id);
        live.delete(id);
      }
      assert.equal(idx.contentSha256(), snapshotContentHash(idx.content()), `seed ${seed}, step ${step}`);
    }
    assert.ok(chunkEndsMoved >= 10, `chunk ends were added, moved and removed (${chunkEndsMoved} times)`);
  });

  it("a one-host change moves the hash, and changing it back restores it", () => {
    const hosts = Array.from({ length: 200 }, (_, n) => hostNumbered(n, n));
    const idx = ContentIndex.of({
      proxyHosts: hosts,
      l4ProxyHosts: [],
      certificates: [],
      accessLists: [],
      settings: Settings.fromPartial({}),
    });
    const before = idx.contentSha256();
    idx.put("proxyHosts", ProxyHost.fromPartial({ ...hosts[117]!, upstreams: ["10.9.9.9:80"] }));
    assert.notEqual(idx.contentSha256(), before);
    idx.put("proxyHosts", hosts[117]!);
    assert.equal(idx.contentSha256(), before);
  });
});
