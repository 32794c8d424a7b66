// Service-level tests of access lists: the real gRPC server in-process on 127.0.0.1:0, a
// temporary SQLite file per test, the generated grpc-js clients. Assertions are about what an
// API client sees (statuses, field names, returned data, versions) and what snapshots carry.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import bcrypt from "bcryptjs";
import { AccessList, AccessListSatisfy, ProxyHost, Snapshot, type DeepPartial } from "@cpm/proto";
import { snapshotContentHash, SNAPSHOT_SCHEMA_VERSION } from "@cpm/core";
import { status, unary } from "@cpm/grpc-kit";
import { settingsFromRows } from "./store.ts";
import { ADMIN, expectStatus, harnessForEachTest, INTERNAL, type Harness } from "./test-support.ts";

const api = (h: Harness) => ({
  create: (a: DeepPartial<AccessList> | undefined) =>
    unary(
      h.config.createAccessList.bind(h.config),
      { accessList: a === undefined ? undefined : AccessList.fromPartial(a) },
      ADMIN,
    ),
  get: async (id: string) => (await unary(h.config.getAccessList.bind(h.config), { id }, ADMIN)).accessList!,
  list: async () => (await unary(h.config.listAccessLists.bind(h.config), {}, ADMIN)).accessLists,
  update: (a: DeepPartial<AccessList> | undefined) =>
    unary(
      h.config.updateAccessList.bind(h.config),
      { accessList: a === undefined ? undefined : AccessList.fromPartial(a) },
      ADMIN,
    ),
  delete: (id: string) => unary(h.config.deleteAccessList.bind(h.config), { id }, ADMIN),
  createHost: (name: string, accessListId: string) =>
    unary(
      h.config.createProxyHost.bind(h.config),
      {
        proxyHost: ProxyHost.fromPartial({
          name,
          domains: [`${name}.example.com`],
          upstreams: ["10.0.0.1:8080"],
          accessListId,
        }),
      },
      ADMIN,
    ),
  updateHost: (host: ProxyHost) => unary(h.config.updateProxyHost.bind(h.config), { proxyHost: host }, ADMIN),
  snapshot: async () => (await unary(h.config.getSnapshot.bind(h.config), {}, ADMIN)).snapshot!,
  apply: (snapshot: Snapshot) => unary(h.internal.applySnapshot.bind(h.internal), { snapshot }, INTERNAL),
  version: async () => (await unary(h.config.getInstanceInfo.bind(h.config), {}, ADMIN)).version,
});

/** The stored hash of a user, as a snapshot (what slaves get) carries it. */
async function storedHash(c: ReturnType<typeof api>, aclId: string, username: string): Promise<string> {
  const acl = (await c.snapshot()).accessLists.find((a) => a.id === aclId);
  const hash = acl?.users.find((u) => u.username === username)?.passwordHash;
  assert.ok(hash, `no stored hash for ${username}`);
  return hash;
}

function assertNoSecrets(a: AccessList | undefined): void {
  assert.ok(a);
  for (const u of a.users) {
    assert.equal(u.password, "", `password of ${u.username} returned`);
    assert.equal(u.passwordHash, "", `password hash of ${u.username} returned`);
  }
}

describe("access lists (standalone)", () => {
  let h: Harness;
  let c: ReturnType<typeof api>;
  harnessForEachTest({}, (started) => {
    h = started;
    c = api(h);
  });

  it("creates with hashed passwords, normalized addresses, and never returns a password or hash", async () => {
    const v0 = await c.version();
    const created = await c.create({
      name: " office ",
      description: "the office",
      users: [
        { username: "alice", password: "alice-password" },
        { username: "bob", password: "bob-password" },
      ],
      allow: ["10.1.2.3/8", "2001:DB8::1", "127.0.0.1/32"],
      deny: ["10.0.0.5"],
      satisfy: AccessListSatisfy.ACCESS_LIST_SATISFY_ALL,
    });
    assert.equal(created.configVersion, v0 + 1);
    const a = created.accessList!;
    assert.ok(a.id);
    assert.equal(a.name, "office");
    assert.deepEqual(a.allow, ["10.0.0.0/8", "2001:db8::1", "127.0.0.1"]);
    assert.deepEqual(a.deny, ["10.0.0.5"]);
    assert.equal(a.satisfy, AccessListSatisfy.ACCESS_LIST_SATISFY_ALL);
    assert.deepEqual(
      a.users.map((u) => u.username),
      ["alice", "bob"],
    );
    assertNoSecrets(a);
    assert.ok(a.createdAt instanceof Date && a.updatedAt instanceof Date);

    const got = await c.get(a.id);
    assertNoSecrets(got);
    assert.deepEqual(got, a);
    const listed = await c.list();
    assert.deepEqual(listed, [a]);
    listed.forEach(assertNoSecrets);

    // The snapshot (admin only; what slaves get) carries bcrypt hashes, never clear text.
    const snap = await c.snapshot();
    const s = snap.accessLists[0]!;
    assert.equal(s.users[0]!.password, "");
    assert.match(s.users[0]!.passwordHash, /^\$2[aby]\$10\$/);
    assert.ok(await bcrypt.compare("alice-password", s.users[0]!.passwordHash));
    assert.ok(!(await bcrypt.compare("bob-password", s.users[0]!.passwordHash)));
    assert.ok(await bcrypt.compare("bob-password", s.users[1]!.passwordHash));
    const wire = Buffer.from(Snapshot.encode(snap).finish()).toString("latin1");
    assert.ok(
      !wire.includes("alice-password") && !wire.includes("bob-password"),
      "clear-text passwords in the snapshot",
    );
  });

  it("update: a user without a password keeps its hash, a new password is re-hashed, left-out users go", async () => {
    const a = (
      await c.create({
        name: "team",
        users: [
          { username: "alice", password: "alice-password" },
          { username: "bob", password: "bob-password" },
          { username: "carol", password: "carol-password" },
        ],
      })
    ).accessList!;
    const aliceHash = await storedHash(c, a.id, "alice");
    const bobHash = await storedHash(c, a.id, "bob");
    const v = await c.version();

    await new Promise((r) => setTimeout(r, 5));
    const updated = await c.update({
      ...a,
      // As a client would send it after a Get: users by name only; bob gets a new password,
      // carol is left out, dave is new.
      users: [
        { username: "alice" },
        { username: "bob", password: "bob-new-password" },
        { username: "dave", password: "dave-password" },
      ],
      allow: ["192.168.0.0/16"],
      createdAt: new Date(0),
    });
    assert.equal(updated.configVersion, v + 1);
    const u = updated.accessList!;
    assertNoSecrets(u);
    assert.deepEqual(
      u.users.map((x) => x.username),
      ["alice", "bob", "dave"],
    );
    assert.deepEqual(u.allow, ["192.168.0.0/16"]);
    assert.equal(u.createdAt?.getTime(), a.createdAt!.getTime(), "update keeps created_at");
    assert.ok(u.updatedAt!.getTime() > a.createdAt!.getTime());
    assert.deepEqual(await c.get(a.id), u);

    assert.equal(await storedHash(c, a.id, "alice"), aliceHash, "alice kept her hash");
    const newBob = await storedHash(c, a.id, "bob");
    assert.notEqual(newBob, bobHash);
    assert.ok(await bcrypt.compare("bob-new-password", newBob));
    assert.ok(await bcrypt.compare("dave-password", await storedHash(c, a.id, "dave")));
    assert.equal(
      (await c.snapshot()).accessLists[0]!.users.some((x) => x.username === "carol"),
      false,
    );

    // carol was removed: bringing her back is a new user and needs a password.
    const before = await c.snapshot();
    const msg = await expectStatus(
      c.update({ ...u, users: [...u.users, { username: "carol" }] }),
      status.INVALID_ARGUMENT,
    );
    assert.ok(msg.startsWith("access_list.users[3].password: "), msg);
    assert.equal(await c.version(), v + 1);
    assert.equal((await c.snapshot()).contentSha256, before.contentSha256);
  });

  it("names are unique: ALREADY_EXISTS on create and on rename, version unchanged", async () => {
    await c.create({ name: "first" });
    const second = (await c.create({ name: "second" })).accessList!;
    const v = await c.version();
    const m1 = await expectStatus(c.create({ name: "first" }), status.ALREADY_EXISTS);
    assert.ok(m1.startsWith("access_list.name: "), m1);
    assert.match(m1, /"first"/);
    const m2 = await expectStatus(c.update({ ...second, name: "first" }), status.ALREADY_EXISTS);
    assert.match(m2, /"first"/);
    assert.equal(await c.version(), v);
    assert.deepEqual(
      (await c.list()).map((x) => x.name),
      ["first", "second"],
    );
  });

  it("refuses to delete a list that proxy hosts use, naming them; deletes once detached", async () => {
    const acl = (await c.create({ name: "guarded", allow: ["10.0.0.0/8"] })).accessList!;
    const web = (await c.createHost("web", acl.id)).proxyHost!;
    await c.createHost("api", acl.id);
    const v = await c.version();

    const msg = await expectStatus(c.delete(acl.id), status.FAILED_PRECONDITION);
    assert.match(msg, /"guarded"/);
    assert.match(msg, /"api"/);
    assert.match(msg, /"web"/);
    assert.equal(await c.version(), v);
    assert.deepEqual((await c.get(acl.id)).name, "guarded");

    await c.updateHost({ ...web, accessListId: "" });
    const msg2 = await expectStatus(c.delete(acl.id), status.FAILED_PRECONDITION);
    assert.match(msg2, /"api"/);
    assert.doesNotMatch(msg2, /"web"/);

    const hosts = (
      await unary(h.config.listProxyHosts.bind(h.config), { pageSize: 0, pageToken: "", query: "" }, ADMIN)
    ).proxyHosts;
    await unary(h.config.deleteProxyHost.bind(h.config), { id: hosts.find((x) => x.name === "api")!.id }, ADMIN);
    const v2 = await c.version();
    const del = await c.delete(acl.id);
    assert.equal(del.configVersion, v2 + 1);
    await expectStatus(c.get(acl.id), status.NOT_FOUND);
  });

  it("answers NOT_FOUND for get, update and delete of an unknown id, without a version bump", async () => {
    await c.create({ name: "one" });
    const v = await c.version();
    const m = await expectStatus(c.get("no-such-id"), status.NOT_FOUND);
    assert.match(m, /no-such-id/);
    await expectStatus(c.update({ id: "no-such-id", name: "ghost" }), status.NOT_FOUND);
    await expectStatus(c.delete("no-such-id"), status.NOT_FOUND);
    assert.equal(await c.version(), v);
  });

  describe("bad input", () => {
    const existingUsers = [{ username: "alice", password: "alice-password" }];
    const cases: {
      name: string;
      code: status;
      field: string;
      call: (c: ReturnType<typeof api>, existing: AccessList) => Promise<unknown>;
    }[] = [
      {
        name: "create without access_list",
        code: status.INVALID_ARGUMENT,
        field: "access_list",
        call: (c) => c.create(undefined),
      },
      {
        name: "update without access_list",
        code: status.INVALID_ARGUMENT,
        field: "access_list",
        call: (c) => c.update(undefined),
      },
      {
        name: "update without id",
        code: status.INVALID_ARGUMENT,
        field: "access_list.id",
        call: (c) => c.update({ name: "x" }),
      },
      {
        name: "blank name",
        code: status.INVALID_ARGUMENT,
        field: "access_list.name",
        call: (c) => c.create({ name: "  " }),
      },
      {
        name: "invalid third allow entry",
        code: status.INVALID_ARGUMENT,
        field: "access_list.allow[2]",
        call: (c) => c.create({ name: "x", allow: ["10.0.0.0/8", "::1", "10.0.0.256"] }),
      },
      {
        name: "CIDR prefix too long in deny",
        code: status.INVALID_ARGUMENT,
        field: "access_list.deny[1]",
        call: (c) => c.create({ name: "x", deny: ["::1", "2001:db8::/129"] }),
      },
      {
        name: "host name in allow",
        code: status.INVALID_ARGUMENT,
        field: "access_list.allow[0]",
        call: (c) => c.create({ name: "x", allow: ["example.com"] }),
      },
      {
        name: "duplicate allow entry",
        code: status.INVALID_ARGUMENT,
        field: "access_list.allow[1]",
        call: (c) => c.create({ name: "x", allow: ["127.0.0.1", "127.0.0.1/32"] }),
      },
      {
        name: "empty username",
        code: status.INVALID_ARGUMENT,
        field: "access_list.users[0].username",
        call: (c) => c.create({ name: "x", users: [{ username: "", password: "12345678" }] }),
      },
      {
        name: "username with a colon",
        code: status.INVALID_ARGUMENT,
        field: "access_list.users[1].username",
        call: (c) =>
          c.create({
            name: "x",
            users: [
              { username: "a", password: "12345678" },
              { username: "b:c", password: "12345678" },
            ],
          }),
      },
      {
        name: "duplicate username",
        code: status.INVALID_ARGUMENT,
        field: "access_list.users[1].username",
        call: (c) =>
          c.create({
            name: "x",
            users: [
              { username: "a", password: "12345678" },
              { username: "a", password: "12345678" },
            ],
          }),
      },
      {
        name: "password of 7 characters",
        code: status.INVALID_ARGUMENT,
        field: "access_list.users[0].password",
        call: (c) => c.create({ name: "x", users: [{ username: "a", password: "1234567" }] }),
      },
      {
        name: "password over 72 bytes",
        code: status.INVALID_ARGUMENT,
        field: "access_list.users[0].password",
        call: (c) => c.create({ name: "x", users: [{ username: "a", password: "p".repeat(73) }] }),
      },
      {
        name: "new user without a password on create",
        code: status.INVALID_ARGUMENT,
        field: "access_list.users[1].password",
        call: (c) => c.create({ name: "x", users: [{ username: "a", password: "12345678" }, { username: "b" }] }),
      },
      {
        name: "new user without a password on update",
        code: status.INVALID_ARGUMENT,
        field: "access_list.users[1].password",
        call: (c, e) => c.update({ ...e, users: [{ username: "alice" }, { username: "zed" }] }),
      },
      {
        name: "client-supplied password hash",
        code: status.INVALID_ARGUMENT,
        field: "access_list.users[0].password_hash",
        call: (c) => c.create({ name: "x", users: [{ username: "a", passwordHash: "$2b$10$" + "a".repeat(53) }] }),
      },
      {
        name: "unknown satisfy",
        code: status.INVALID_ARGUMENT,
        field: "access_list.satisfy",
        call: (c) => c.create({ name: "x", satisfy: 9 as AccessListSatisfy }),
      },
      {
        name: "bad entry on update",
        code: status.INVALID_ARGUMENT,
        field: "access_list.deny[0]",
        call: (c, e) => c.update({ ...e, deny: ["1.2.3.4/33"] }),
      },
      { name: "delete without id", code: status.INVALID_ARGUMENT, field: "id", call: (c) => c.delete("") },
      { name: "get without id", code: status.INVALID_ARGUMENT, field: "id", call: (c) => c.get("") },
      {
        name: "duplicate name",
        code: status.ALREADY_EXISTS,
        field: "access_list.name",
        call: (c) => c.create({ name: "existing" }),
      },
    ];
    for (const tc of cases) {
      it(`${tc.name}: ${status[tc.code]} starting with ${tc.field}, nothing written`, async () => {
        const existing = (await c.create({ name: "existing", users: existingUsers, allow: ["10.0.0.0/8"] }))
          .accessList!;
        const v = await c.version();
        const before = await c.snapshot();
        const msg = await expectStatus(tc.call(c, existing), tc.code);
        assert.ok(msg.startsWith(`${tc.field}: `), `message should start with "${tc.field}: ", got: ${msg}`);
        assert.equal(await c.version(), v, "version unchanged");
        assert.deepEqual(await c.list(), [existing]);
        assert.equal((await c.snapshot()).contentSha256, before.contentSha256, "stored content unchanged");
      });
    }
  });
});

describe("access lists (slave)", () => {
  let h: Harness;
  let c: ReturnType<typeof api>;
  harnessForEachTest({ mode: "slave" }, (started) => {
    h = started;
    c = api(h);
  });

  it("applies a snapshot whose access list carries hashes, serves it without them, and refuses writes", async () => {
    const hash = await bcrypt.hash("synced-password", 4);
    const acl = AccessList.fromPartial({
      id: "22222222-2222-4222-8222-222222222222",
      name: "from-master",
      users: [{ username: "alice", passwordHash: hash }],
      allow: ["10.0.0.0/8"],
      satisfy: AccessListSatisfy.ACCESS_LIST_SATISFY_ANY,
      createdAt: new Date("2026-01-01T00:00:00.000Z"),
      updatedAt: new Date("2026-01-01T00:00:00.000Z"),
    });
    const host = ProxyHost.fromPartial({
      id: "11111111-1111-4111-8111-111111111111",
      name: "gated",
      domains: ["gated.example.com"],
      upstreams: ["10.1.0.1:8080"],
      accessListId: acl.id,
      enabled: true,
      createdAt: new Date("2026-01-01T00:00:00.000Z"),
      updatedAt: new Date("2026-01-01T00:00:00.000Z"),
    });
    const content = {
      proxyHosts: [host],
      l4ProxyHosts: [],
      certificates: [],
      accessLists: [acl],
      settings: settingsFromRows([]),
    };
    const snap = Snapshot.fromPartial({
      schemaVersion: SNAPSHOT_SCHEMA_VERSION,
      masterInstanceId: "m1",
      version: 4,
      generatedAt: new Date(),
      ...content,
      contentSha256: snapshotContentHash(content),
    });
    assert.deepEqual(await c.apply(snap), { version: 4, changed: true });

    assertNoSecrets(await c.get(acl.id));
    assert.deepEqual(
      (await c.get(acl.id)).users.map((u) => u.username),
      ["alice"],
    );
    (await c.list()).forEach(assertNoSecrets);
    // The slave holds the hash as the master sent it (its Caddy needs it).
    assert.equal(await storedHash(c, acl.id, "alice"), hash);
    assert.equal((await c.snapshot()).contentSha256, snap.contentSha256);

    const m = await expectStatus(c.create({ name: "local" }), status.FAILED_PRECONDITION);
    assert.match(m, /master/);
    await expectStatus(c.delete(acl.id), status.FAILED_PRECONDITION);
    assert.equal(await c.version(), 4);
  });

  it("refuses a snapshot whose access list user has no hash, naming the field", async () => {
    const acl = AccessList.fromPartial({
      id: "acl-x",
      name: "broken",
      users: [{ username: "alice", password: "clear-text-pw" }],
    });
    const content = {
      proxyHosts: [],
      l4ProxyHosts: [],
      certificates: [],
      accessLists: [acl],
      settings: settingsFromRows([]),
    };
    const snap = Snapshot.fromPartial({
      schemaVersion: SNAPSHOT_SCHEMA_VERSION,
      masterInstanceId: "m1",
      version: 2,
      generatedAt: new Date(),
      ...content,
      contentSha256: snapshotContentHash(content),
    });
    const msg = await expectStatus(c.apply(snap), status.INVALID_ARGUMENT);
    assert.ok(msg.startsWith("snapshot.access_lists[0].users[0].password"), msg);
    assert.equal(await c.version(), 0);
  });
});
