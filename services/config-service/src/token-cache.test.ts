// The API token check answers from memory on SQLite: these tests show that every change to a
// token or its user takes effect on the very next call, whoever made it (this process through
// the API, another object of this process, or another connection to the database file).
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { ProxyHost, Role } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { sqlitePath } from "./db.ts";
import {
  ADMIN,
  expectStatus,
  freshSqliteUrl,
  sqliteInAnotherProcess,
  startConfigService,
  type Harness,
} from "./test-support.ts";
import { MAX_REMEMBERED_MISSES, tokenCacheOf } from "./token-cache.ts";
import { ApiTokens } from "./tokens.ts";
import { Users } from "./users.ts";

describe("the API token check (cached in memory on SQLite)", () => {
  let h: Harness;
  let file: string;
  beforeEach(async () => {
    const url = freshSqliteUrl();
    file = sqlitePath(url);
    h = await startConfigService({ databaseUrl: url, internalToken: undefined });
  });
  afterEach(() => h.close());

  const createUser = async (username: string, role: Role) =>
    (await unary(h.account.createUser.bind(h.account), { username, role, password: "" }, ADMIN)).user!;
  const createToken = (name: string, role: Role, userId = "", expiresAt?: Date) =>
    unary(h.account.createApiToken.bind(h.account), { name, role, userId, expiresAt }, ADMIN);
  const updateUser = (id: string, role: Role, disabled: boolean) =>
    unary(h.account.updateUser.bind(h.account), { id, role, disabled, password: "" }, ADMIN);
  const whoAmI = (token: string) => unary(h.account.whoAmI.bind(h.account), {}, token);
  const listHosts = (token: string) =>
    unary(h.config.listProxyHosts.bind(h.config), { pageSize: 0, pageToken: "", query: "" }, token);
  const createHost = (token: string, name: string) =>
    unary(
      h.config.createProxyHost.bind(h.config),
      { proxyHost: ProxyHost.fromPartial({ name, domains: [`${name}.test`], upstreams: ["127.0.0.1:1"] }) },
      token,
    );
  /** Runs `sql` on the instance's database file from another process, as an operator with sqlite3 would. */
  const elsewhere = (sql: string, ...params: string[]) => sqliteInAnotherProcess(file, sql, ...params);
  /** A time as the Prisma SQLite adapter stores it. */
  const sqliteTime = (d: Date) => d.toISOString().replace("Z", "+00:00");
  const cached = () => tokenCacheOf(h.db).size();

  it("answers from memory once a token was seen", async () => {
    await listHosts(ADMIN);
    await listHosts(ADMIN);
    assert.deepEqual(cached(), { tokens: 1, misses: 0 });
  });

  it("a token revoked through the API is refused on the very next call", async () => {
    const t = await createToken("ci", Role.ROLE_ADMIN);
    await listHosts(t.secret);
    await unary(h.account.revokeApiToken.bind(h.account), { id: t.apiToken!.id }, ADMIN);
    assert.match(await expectStatus(listHosts(t.secret), status.UNAUTHENTICATED), /invalid, expired or revoked token/);
  });

  it("disabling a user refuses its tokens on the very next call; enabling accepts them again", async () => {
    const bob = await createUser("bob", Role.ROLE_ADMIN);
    const t = await createToken("bob-cli", Role.ROLE_ADMIN, bob.id);
    await listHosts(t.secret);
    await updateUser(bob.id, Role.ROLE_ADMIN, true);
    await expectStatus(listHosts(t.secret), status.UNAUTHENTICATED);
    await updateUser(bob.id, Role.ROLE_ADMIN, false);
    await listHosts(t.secret);
  });

  it("a user lowered to viewer: its admin token's next write is PERMISSION_DENIED", async () => {
    const carol = await createUser("carol", Role.ROLE_ADMIN);
    const t = await createToken("carol-cli", Role.ROLE_ADMIN, carol.id);
    await createHost(t.secret, "before");
    await updateUser(carol.id, Role.ROLE_VIEWER, false);
    assert.match(await expectStatus(createHost(t.secret, "after"), status.PERMISSION_DENIED), /needs an admin token/);
    assert.equal((await whoAmI(t.secret)).role, Role.ROLE_VIEWER);
  });

  it("a deleted user's tokens are refused on the very next call", async () => {
    const dave = await createUser("dave", Role.ROLE_VIEWER);
    const t = await createToken("dave-cli", Role.ROLE_VIEWER, dave.id);
    await listHosts(t.secret);
    await unary(h.account.deleteUser.bind(h.account), { id: dave.id }, ADMIN);
    await expectStatus(listHosts(t.secret), status.UNAUTHENTICATED);
  });

  it("a write through another Users or ApiTokens object of the process counts as well", async () => {
    const erin = await createUser("erin", Role.ROLE_ADMIN);
    const t = await createToken("erin-cli", Role.ROLE_ADMIN, erin.id);
    await listHosts(t.secret);
    await new Users(h.db).update(erin.id, Role.ROLE_ADMIN, true, "", undefined);
    await expectStatus(listHosts(t.secret), status.UNAUTHENTICATED);
    const unknown = `cpm_${randomBytes(32).toString("base64url")}`;
    await expectStatus(listHosts(unknown), status.UNAUTHENTICATED);
    await new ApiTokens(h.db).ensure(unknown, "second-bootstrap");
    await listHosts(unknown);
  });

  it("a token revoked by another connection to the database is refused on the next call", async () => {
    const t = await createToken("ops", Role.ROLE_ADMIN);
    await listHosts(t.secret);
    assert.equal(
      elsewhere(`UPDATE "ApiToken" SET "revokedAt" = ? WHERE "id" = ?`, sqliteTime(new Date()), t.apiToken!.id),
      1,
    );
    await expectStatus(listHosts(t.secret), status.UNAUTHENTICATED);
  });

  it("a user disabled or demoted by another connection is seen on the next call", async () => {
    const frank = await createUser("frank", Role.ROLE_ADMIN);
    const t = await createToken("frank-cli", Role.ROLE_ADMIN, frank.id);
    await createHost(t.secret, "by-frank");
    assert.equal(elsewhere(`UPDATE "User" SET "role" = 'viewer' WHERE "id" = ?`, frank.id), 1);
    await expectStatus(createHost(t.secret, "by-frank-2"), status.PERMISSION_DENIED);
    assert.equal(elsewhere(`UPDATE "User" SET "disabled" = 1 WHERE "id" = ?`, frank.id), 1);
    await expectStatus(listHosts(t.secret), status.UNAUTHENTICATED);
  });

  it("a token refused once is accepted once another connection inserts it", async () => {
    const secret = `cpm_${randomBytes(32).toString("base64url")}`;
    await expectStatus(listHosts(secret), status.UNAUTHENTICATED);
    const adminId = (await whoAmI(ADMIN)).userId;
    const tokenHash = createHash("sha256").update(secret).digest("hex");
    assert.equal(
      elsewhere(
        `INSERT INTO "ApiToken" ("id", "name", "tokenHash", "prefix", "role", "userId", "createdAt") VALUES ('t-ops', 'from-sqlite3', ?, '', 'viewer', ?, ?)`,
        tokenHash,
        adminId,
        sqliteTime(new Date()),
      ),
      1,
    );
    assert.equal((await whoAmI(secret)).tokenName, "from-sqlite3");
  });

  it("a token whose expiry passes is refused although it was checked before", async () => {
    const t = await createToken("short", Role.ROLE_VIEWER, "", new Date(Date.now() + 1500));
    await listHosts(t.secret);
    await listHosts(t.secret);
    await new Promise((r) => setTimeout(r, 1600));
    await expectStatus(listHosts(t.secret), status.UNAUTHENTICATED);
  });

  it("remembers a bounded number of unknown tokens", async () => {
    for (let i = 0; i < MAX_REMEMBERED_MISSES * 3; i++)
      assert.equal(await h.tokens.authenticate(`cpm_unknown_${i}`), undefined);
    assert.deepEqual(cached(), { tokens: 0, misses: MAX_REMEMBERED_MISSES });
    await listHosts(ADMIN);
    assert.deepEqual(cached(), { tokens: 1, misses: MAX_REMEMBERED_MISSES });
  });
});
