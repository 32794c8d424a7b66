import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { AccountServiceClient, ConfigServiceClient, ProxyHost, Role } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { ADMIN, expectStatus, harnessForEachTest } from "./test-support.ts";

describe("users and API tokens of an instance", () => {
  let account: AccountServiceClient;
  let config: ConfigServiceClient;
  harnessForEachTest({ mode: "standalone", internalToken: undefined }, (h) => {
    ({ account, config } = h);
  });

  const createUser = (username: string, role: Role, password = "", token = ADMIN) => unary(account.createUser.bind(account), { username, role, password }, token);
  const createToken = (name: string, role: Role, userId = "", token = ADMIN, expiresAt?: Date) =>
    unary(account.createApiToken.bind(account), { name, role, userId, expiresAt }, token);
  const listHosts = (token: string) => unary(config.listProxyHosts.bind(config), {}, token);
  const createHost = (token: string) =>
    unary(config.createProxyHost.bind(config), { proxyHost: ProxyHost.fromPartial({ name: "h", domains: ["h.test"], upstreams: ["127.0.0.1:1"] }) }, token);

  it("bootstrap: the admin token belongs to the user 'admin'", async () => {
    const me = await unary(account.whoAmI.bind(account), {}, ADMIN);
    assert.equal(me.username, "admin");
    assert.equal(me.role, Role.ROLE_ADMIN);
    const users = (await unary(account.listUsers.bind(account), {}, ADMIN)).users;
    assert.deepEqual(users.map((u) => [u.username, u.role, u.disabled]), [["admin", Role.ROLE_ADMIN, false]]);
  });

  it("a viewer user's token reads but cannot write; its role cannot be raised above the user's", async () => {
    const viewer = (await createUser("alice", Role.ROLE_VIEWER, "correct horse battery")).user!;
    assert.match(await expectStatus(createToken("alice-admin", Role.ROLE_ADMIN, viewer.id), status.INVALID_ARGUMENT), /^role: /);
    const t = await createToken("alice-read", Role.ROLE_VIEWER, viewer.id);
    assert.ok(t.secret.startsWith("cpm_"));
    await listHosts(t.secret);
    await expectStatus(createHost(t.secret), status.PERMISSION_DENIED);
    await expectStatus(unary(account.listUsers.bind(account), {}, t.secret), status.PERMISSION_DENIED);
    // The secret is shown once: the list has the prefix, not the secret.
    const listed = (await unary(account.listApiTokens.bind(account), {}, ADMIN)).apiTokens.find((x) => x.id === t.apiToken!.id)!;
    assert.equal(listed.prefix, t.secret.slice(0, 8));
    assert.ok(!JSON.stringify(listed).includes(t.secret));
  });

  it("disabling a user stops its tokens at once; enabling brings them back; deleting removes them", async () => {
    const bob = (await createUser("bob", Role.ROLE_ADMIN)).user!;
    const t = await createToken("bob-cli", Role.ROLE_ADMIN, bob.id);
    await createHost(t.secret);
    await unary(account.updateUser.bind(account), { id: bob.id, role: Role.ROLE_ADMIN, disabled: true, password: "" }, ADMIN);
    await expectStatus(listHosts(t.secret), status.UNAUTHENTICATED);
    await unary(account.updateUser.bind(account), { id: bob.id, role: Role.ROLE_ADMIN, disabled: false, password: "" }, ADMIN);
    await listHosts(t.secret);
    // Demoting the user demotes its tokens.
    await unary(account.updateUser.bind(account), { id: bob.id, role: Role.ROLE_VIEWER, disabled: false, password: "" }, ADMIN);
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
    assert.match(await expectStatus(createToken("past", Role.ROLE_VIEWER, "", ADMIN, new Date(Date.now() - 1000)), status.INVALID_ARGUMENT), /^expires_at: /);
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
    await expectStatus(unary(account.updateUser.bind(account), { id: me.userId, role: Role.ROLE_VIEWER, disabled: false, password: "" }, ADMIN), status.FAILED_PRECONDITION);
    await expectStatus(unary(account.deleteUser.bind(account), { id: me.userId }, ADMIN), status.FAILED_PRECONDITION);
    const users = (await unary(account.listUsers.bind(account), {}, ADMIN)).users;
    assert.deepEqual(users.map((u) => u.username), ["admin"], "nothing was written by the refused calls");
  });
});
