import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { credentials, status } from "@grpc/grpc-js";
import { AccountServiceClient, ConfigServiceClient, ProxyHost, Role } from "@cpm/proto";
import { createLogger } from "@cpm/core";
import { unary, type GrpcServer } from "@cpm/grpc-kit";
import { openDatabase, type Db } from "./db.ts";
import { createServer } from "./server.ts";
import { ConfigStore } from "./store.ts";
import { ApiTokens } from "./tokens.ts";

const ADMIN = "accounts-test-admin-token-0123456789";

async function code(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code: number; details: string };
    return { code: err.code, details: err.details };
  }
  return { code: 0, details: "" };
}

describe("users and API tokens of an instance", () => {
  let dir: string;
  let db: Db;
  let server: GrpcServer;
  let account: AccountServiceClient;
  let config: ConfigServiceClient;

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "cpm-accounts-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  beforeEach(async () => {
    ({ db } = await openDatabase(`file:${path.join(dir, `${Math.random().toString(36).slice(2)}.db`)}`));
    const log = createLogger("test", "silent");
    const store = new ConfigStore(db, log);
    await store.init();
    const tokens = new ApiTokens(db);
    await tokens.ensure(ADMIN);
    server = createServer({ store, tokens, mode: "standalone", internalToken: undefined, log });
    const port = await server.listen("127.0.0.1:0");
    account = new AccountServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    config = new ConfigServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  });
  afterEach(async () => {
    account.close();
    config.close();
    await server.shutdown();
    await db.$disconnect();
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
    const tooHigh = await code(createToken("alice-admin", Role.ROLE_ADMIN, viewer.id));
    assert.equal(tooHigh.code, status.INVALID_ARGUMENT);
    assert.match(tooHigh.details, /^role: /);
    const t = await createToken("alice-read", Role.ROLE_VIEWER, viewer.id);
    assert.ok(t.secret.startsWith("cpm_"));
    await listHosts(t.secret);
    assert.equal((await code(createHost(t.secret))).code, status.PERMISSION_DENIED);
    assert.equal((await code(unary(account.listUsers.bind(account), {}, t.secret))).code, status.PERMISSION_DENIED);
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
    assert.equal((await code(listHosts(t.secret))).code, status.UNAUTHENTICATED);
    await unary(account.updateUser.bind(account), { id: bob.id, role: Role.ROLE_ADMIN, disabled: false, password: "" }, ADMIN);
    await listHosts(t.secret);
    // Demoting the user demotes its tokens.
    await unary(account.updateUser.bind(account), { id: bob.id, role: Role.ROLE_VIEWER, disabled: false, password: "" }, ADMIN);
    assert.equal((await code(createHost(t.secret))).code, status.PERMISSION_DENIED);
    await unary(account.deleteUser.bind(account), { id: bob.id }, ADMIN);
    assert.equal((await code(listHosts(t.secret))).code, status.UNAUTHENTICATED);
    assert.equal((await code(unary(account.getUser.bind(account), { id: bob.id }, ADMIN))).code, status.NOT_FOUND);
  });

  it("tokens expire and can be revoked", async () => {
    const soon = new Date(Date.now() + 1500);
    const t = await createToken("short", Role.ROLE_VIEWER, "", ADMIN, soon);
    await listHosts(t.secret);
    await new Promise((r) => setTimeout(r, 1600));
    assert.equal((await code(listHosts(t.secret))).code, status.UNAUTHENTICATED);
    const past = await code(createToken("past", Role.ROLE_VIEWER, "", ADMIN, new Date(Date.now() - 1000)));
    assert.equal(past.code, status.INVALID_ARGUMENT);
    assert.match(past.details, /^expires_at: /);
    const r = await createToken("revoke-me", Role.ROLE_VIEWER);
    await unary(account.revokeApiToken.bind(account), { id: r.apiToken!.id }, ADMIN);
    assert.equal((await code(listHosts(r.secret))).code, status.UNAUTHENTICATED);
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
    for (const [p, c, re] of cases) {
      const r = await code(p);
      assert.equal(r.code, c, r.details);
      assert.match(r.details, re);
    }
    const me = await unary(account.whoAmI.bind(account), {}, ADMIN);
    const self = await code(unary(account.updateUser.bind(account), { id: me.userId, role: Role.ROLE_VIEWER, disabled: false, password: "" }, ADMIN));
    assert.equal(self.code, status.FAILED_PRECONDITION);
    assert.equal((await code(unary(account.deleteUser.bind(account), { id: me.userId }, ADMIN))).code, status.FAILED_PRECONDITION);
    const users = (await unary(account.listUsers.bind(account), {}, ADMIN)).users;
    assert.deepEqual(users.map((u) => u.username), ["admin"], "nothing was written by the refused calls");
  });
});
