import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { AccountServiceClient, ConfigServiceClient, ProxyHost, Role } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { DomainError } from "@cpm/core";
import { ADMIN, expectStatus, harnessForEachTest, type Harness } from "./test-support.ts";
import { Users } from "./users.ts";

describe("users and API tokens of an instance", () => {
  let account: AccountServiceClient;
  let config: ConfigServiceClient;
  let h: Harness;
  harnessForEachTest({ mode: "standalone", internalToken: undefined }, (started) => {
    h = started;
    ({ account, config } = h);
  });

  const createUser = (username: string, role: Role, password = "", token = ADMIN) =>
    unary(account.createUser.bind(account), { username, role, password }, token);
  const createToken = (name: string, role: Role, userId = "", token = ADMIN, expiresAt?: Date) =>
    unary(account.createApiToken.bind(account), { name, role, userId, expiresAt }, token);
  const listHosts = (token: string) =>
    unary(config.listProxyHosts.bind(config), { pageSize: 0, pageToken: "", query: "" }, token);
  const createHost = (token: string) =>
    unary(
      config.createProxyHost.bind(config),
      { proxyHost: ProxyHost.fromPartial({ name: "h", domains: ["h.test"], upstreams: ["127.0.0.1:1"] }) },
      token,
    );

  const signIn = (username: string, password: string, ttlSeconds = 0) =>
    unary(account.signIn.bind(account), { username, password, ttlSeconds, client: "console" }, undefined);

  it("sign-in: a user's password gives a token of its role with an expiry; sign-out revokes it", async () => {
    await createUser("vera", Role.ROLE_VIEWER, "correct horse battery");
    const before = Date.now();
    const s = await signIn("vera", "correct horse battery", 600);
    assert.equal(s.username, "vera");
    assert.equal(s.apiToken!.role, Role.ROLE_VIEWER);
    assert.equal(s.apiToken!.name, "console vera");
    const expires = s.apiToken!.expiresAt!.getTime();
    assert.ok(expires >= before + 599_000 && expires <= Date.now() + 600_000, String(s.apiToken!.expiresAt));
    await listHosts(s.secret);
    await expectStatus(createHost(s.secret), status.PERMISSION_DENIED);
    await unary(account.signOut.bind(account), {}, s.secret);
    await expectStatus(listHosts(s.secret), status.UNAUTHENTICATED);
    await expectStatus(unary(account.signOut.bind(account), {}, undefined), status.UNAUTHENTICATED);
  });

  it("sign-in: refusals read alike, and a user's failures are limited", async () => {
    const u = (await createUser("wanda", Role.ROLE_ADMIN, "correct horse battery")).user!;
    await createUser("nopass", Role.ROLE_VIEWER);
    for (const [name, password] of [
      ["wanda", "wrong horse battery"],
      ["nobody", "correct horse battery"],
      ["nopass", ""],
      ["nopass", "correct horse battery"],
    ] as const)
      assert.equal(
        await expectStatus(signIn(name, password), status.UNAUTHENTICATED),
        "wrong username or password",
        `${name}/${password}`,
      );
    await expectStatus(signIn("wanda", "x", 8 * 24 * 3600), status.INVALID_ARGUMENT);
    // A client label that is not a name is refused naming its field, before any password is checked.
    assert.match(
      await expectStatus(
        unary(
          account.signIn.bind(account),
          { username: "vera", password: "correct horse battery", ttlSeconds: 0, client: "x\n{$evil}" },
          undefined,
        ),
        status.INVALID_ARGUMENT,
      ),
      /client/,
    );
    // One failure so far for wanda; four more reach the limit, and then even the right password is refused.
    for (let i = 0; i < 4; i++) await expectStatus(signIn("wanda", "wrong horse battery"), status.UNAUTHENTICATED);
    assert.match(
      await expectStatus(signIn("wanda", "correct horse battery"), status.RESOURCE_EXHAUSTED),
      /too many failed sign-ins for this user: try again in \d+ s/,
    );
    // Other users are not affected; a disabled user is refused like a wrong password.
    await createUser("xena", Role.ROLE_VIEWER, "correct horse battery");
    const x = await signIn("xena", "correct horse battery");
    assert.equal(x.apiToken!.role, Role.ROLE_VIEWER);
    await unary(
      account.updateUser.bind(account),
      { id: u.id, role: Role.ROLE_ADMIN, disabled: true, password: "" },
      ADMIN,
    );
    const xenaId = x.apiToken!.userId;
    await unary(
      account.updateUser.bind(account),
      { id: xenaId, role: Role.ROLE_VIEWER, disabled: true, password: "" },
      ADMIN,
    );
    assert.equal(
      await expectStatus(signIn("xena", "correct horse battery"), status.UNAUTHENTICATED),
      "wrong username or password",
    );
  });

  it("bootstrap: the admin token belongs to the user 'admin'", async () => {
    const me = await unary(account.whoAmI.bind(account), {}, ADMIN);
    assert.equal(me.username, "admin");
    assert.equal(me.role, Role.ROLE_ADMIN);
    const users = (await unary(account.listUsers.bind(account), {}, ADMIN)).users;
    assert.deepEqual(
      users.map((u) => [u.username, u.role, u.disabled]),
      [["admin", Role.ROLE_ADMIN, false]],
    );
  });

  it("a viewer user's token reads but cannot write; its role cannot be raised above the user's", async () => {
    const viewer = (await createUser("alice", Role.ROLE_VIEWER, "correct horse battery")).user!;
    assert.match(
      await expectStatus(createToken("alice-admin", Role.ROLE_ADMIN, viewer.id), status.INVALID_ARGUMENT),
      /^role: /,
    );
    const t = await createToken("alice-read", Role.ROLE_VIEWER, viewer.id);
    assert.ok(t.secret.startsWith("cpm_"));
    await listHosts(t.secret);
    await expectStatus(createHost(t.secret), status.PERMISSION_DENIED);
    await expectStatus(unary(account.listUsers.bind(account), {}, t.secret), status.PERMISSION_DENIED);
    // The secret is shown once: the list has the prefix, not the secret.
    const listed = (await unary(account.listApiTokens.bind(account), {}, ADMIN)).apiTokens.find(
      (x) => x.id === t.apiToken!.id,
    )!;
    assert.equal(listed.prefix, t.secret.slice(0, 8));
    assert.ok(!JSON.stringify(listed).includes(t.secret));
  });

  it("disabling a user stops its tokens at once; enabling brings them back; deleting removes them", async () => {
    const bob = (await createUser("bob", Role.ROLE_ADMIN)).user!;
    const t = await createToken("bob-cli", Role.ROLE_ADMIN, bob.id);
    await createHost(t.secret);
    await unary(
      account.updateUser.bind(account),
      { id: bob.id, role: Role.ROLE_ADMIN, disabled: true, password: "" },
      ADMIN,
    );
    await expectStatus(listHosts(t.secret), status.UNAUTHENTICATED);
    await unary(
      account.updateUser.bind(account),
      { id: bob.id, role: Role.ROLE_ADMIN, disabled: false, password: "" },
      ADMIN,
    );
    await listHosts(t.secret);
    // Demoting the user demotes its tokens.
    await unary(
      account.updateUser.bind(account),
      { id: bob.id, role: Role.ROLE_VIEWER, disabled: false, password: "" },
      ADMIN,
    );
    await expectStatus(createHost(t.secret), status.PERMISSION_DENIED);
    await unary(account.deleteUser.bind(account), { id: bob.id }, ADMIN);
    await expectStatus(listHosts(t.secret), status.UNAUTHENTICATED);
    await expectStatus(unary(account.getUser.bind(account), { id: bob.id }, ADMIN), status.NOT_FOUND);
  });

  it("tokens expire and can be revoked", async () => {
    const soon = new Date(Date.now() + 1500);
    const t = await createToken("short", Role.ROLE_VIEWER, "", ADMIN, soon);
    await listHosts(t.secret);
    await new Promise((r) => setTimeout(r, 1600));
    await expectStatus(listHosts(t.secret), status.UNAUTHENTICATED);
    assert.match(
      await expectStatus(
        createToken("past", Role.ROLE_VIEWER, "", ADMIN, new Date(Date.now() - 1000)),
        status.INVALID_ARGUMENT,
      ),
      /^expires_at: /,
    );
    const r = await createToken("revoke-me", Role.ROLE_VIEWER);
    await unary(account.revokeApiToken.bind(account), { id: r.apiToken!.id }, ADMIN);
    await expectStatus(listHosts(r.secret), status.UNAUTHENTICATED);
  });

  it("bad input names the field; the last admin cannot be removed; a user cannot lock itself out", async () => {
    const cases: [Promise<unknown>, number, RegExp][] = [
      [createUser("a", Role.ROLE_VIEWER), status.INVALID_ARGUMENT, /^username: /],
      [createUser("has space", Role.ROLE_VIEWER), status.INVALID_ARGUMENT, /^username: /],
      [createUser("carol", Role.ROLE_UNSPECIFIED), status.INVALID_ARGUMENT, /^role: /],
      [createUser("carol", Role.ROLE_VIEWER, "short"), status.INVALID_ARGUMENT, /^password: /],
      [createUser("admin", Role.ROLE_VIEWER), status.ALREADY_EXISTS, /admin/],
      [createToken("", Role.ROLE_VIEWER), status.INVALID_ARGUMENT, /^name: /],
      [createToken("x", Role.ROLE_VIEWER, "no-such-user"), status.INVALID_ARGUMENT, /^user_id: /],
    ];
    for (const [p, c, re] of cases) assert.match(await expectStatus(p, c), re);
    const me = await unary(account.whoAmI.bind(account), {}, ADMIN);
    await expectStatus(
      unary(
        account.updateUser.bind(account),
        { id: me.userId, role: Role.ROLE_VIEWER, disabled: false, password: "" },
        ADMIN,
      ),
      status.FAILED_PRECONDITION,
    );
    await expectStatus(unary(account.deleteUser.bind(account), { id: me.userId }, ADMIN), status.FAILED_PRECONDITION);
    const users = (await unary(account.listUsers.bind(account), {}, ADMIN)).users;
    assert.deepEqual(
      users.map((u) => u.username),
      ["admin"],
      "nothing was written by the refused calls",
    );
  });

  it("stores and lists no part of the bootstrap token (CPM_ADMIN_TOKEN)", async () => {
    await createToken("cli", Role.ROLE_VIEWER);
    const tokens = (await unary(account.listApiTokens.bind(account), {}, ADMIN)).apiTokens;
    const bootstrap = tokens.find((t) => t.name === "bootstrap")!;
    assert.equal(bootstrap.prefix, "");
    assert.ok(
      tokens.find((t) => t.name === "cli")!.prefix.startsWith("cpm_"),
      "other tokens keep a prefix to be recognized by",
    );
    const rows = await h.db.apiToken.findMany({ where: { name: "bootstrap" } });
    assert.deepEqual(
      rows.map((r) => r.prefix),
      [""],
    );
    assert.ok(!JSON.stringify(rows).includes(ADMIN.slice(0, 6)));
  });

  it("a bootstrap token stored with a prefix by an older version loses it at the next start", async () => {
    await h.db.apiToken.updateMany({ where: { name: "bootstrap" }, data: { prefix: ADMIN.slice(0, 6) } });
    await h.tokens.ensure(ADMIN);
    assert.deepEqual(
      (await h.db.apiToken.findMany({ where: { name: "bootstrap" } })).map((r) => r.prefix),
      [""],
    );
  });

  it("two concurrent demotions or deletions of the last two admins leave one enabled admin", async () => {
    const users = new Users(h.db);
    const adminId = (await unary(account.whoAmI.bind(account), {}, ADMIN)).userId;
    for (const remove of [
      (id: string) => users.update(id, Role.ROLE_VIEWER, false, "", undefined),
      (id: string) => users.update(id, Role.ROLE_ADMIN, true, "", undefined),
      (id: string) => users.delete(id, undefined),
    ]) {
      await h.db.user.update({ where: { id: adminId }, data: { role: "admin", disabled: false } });
      await h.db.user.deleteMany({ where: { username: "bob" } });
      const bob = (await createUser("bob", Role.ROLE_ADMIN)).user!;
      const results = await Promise.allSettled([remove(adminId), remove(bob.id)]);
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 1, JSON.stringify(results));
      const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      assert.ok(
        refused.reason instanceof DomainError && refused.reason.kind === "failed_precondition",
        String(refused.reason),
      );
      assert.equal(await h.db.user.count({ where: { role: "admin", disabled: false } }), 1);
    }
  });

  it("passwords: at most 72 bytes of UTF-8 (bcrypt's limit), no control characters", async () => {
    const cases: [string, RegExp][] = [
      ["é".repeat(37), /^password: must be at most 72 bytes in UTF-8 \(bcrypt's limit\), got 74$/],
      ["a".repeat(73), /^password: must be at most 72 bytes/],
      ["correct horse\nbattery", /^password: must not contain control characters$/],
      ["correct horse\u0000battery", /^password: must not contain control characters$/],
      ["correct\u0085horse battery", /^password: must not contain control characters$/],
    ];
    for (const [password, re] of cases)
      assert.match(await expectStatus(createUser("carol", Role.ROLE_VIEWER, password), status.INVALID_ARGUMENT), re);
    assert.ok((await createUser("carol", Role.ROLE_VIEWER, "é".repeat(36))).user, "72 bytes are accepted");
    assert.ok((await createUser("dave", Role.ROLE_VIEWER, "a".repeat(72))).user);
  });
});
