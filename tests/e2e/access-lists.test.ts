// Access lists end to end: gRPC API -> config-service -> renderer -> a real Caddy (2.6.2),
// with HTTP requests through Caddy. Requests come from 127.0.0.1, so address rules are tested
// with lists that do or do not contain it.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { AccessList, AccessListSatisfy, ProxyHost, type DeepPartial } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { expectStatus } from "../support/grpc.ts";
import { Instance, stopCleanly } from "../support/instance.ts";
import { serveHttp } from "../support/net.ts";

const { ACCESS_LIST_SATISFY_ANY: ANY, ACCESS_LIST_SATISFY_ALL: ALL } = AccessListSatisfy;

/** An upstream that says what it received, including the Authorization header. */
const startEchoUpstream = () =>
  serveHttp((req, res) => {
    res.setHeader("content-type", "text/plain");
    res.end(`upstream=acl host=${req.headers.host} authorization=${req.headers.authorization ?? "none"}\n`);
  });

const basic = (user: string, password: string) => ({
  Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`,
});

function assertNoSecrets(a: AccessList | undefined): void {
  assert.ok(a);
  for (const u of a.users) {
    assert.equal(u.password, "", `password of ${u.username} returned`);
    assert.equal(u.passwordHash, "", `password hash of ${u.username} returned`);
  }
}

describe("access lists: API -> config-service -> renderer -> real Caddy", () => {
  let inst: Instance;
  let up: Awaited<ReturnType<typeof startEchoUpstream>>;

  before(async () => {
    up = await startEchoUpstream();
    inst = await Instance.start({ name: "access-lists" });
  });
  after(async () => {
    await stopCleanly(inst);
    await up?.close();
  });

  const createAcl = (a: DeepPartial<AccessList>) =>
    unary(
      inst.config.createAccessList.bind(inst.config),
      { accessList: AccessList.fromPartial(a) },
      inst.adminToken,
      30_000,
    );
  const updateAcl = (a: DeepPartial<AccessList>) =>
    unary(
      inst.config.updateAccessList.bind(inst.config),
      { accessList: AccessList.fromPartial(a) },
      inst.adminToken,
      30_000,
    );
  const getAcl = async (id: string) =>
    (await unary(inst.config.getAccessList.bind(inst.config), { id }, inst.adminToken)).accessList;
  const listAcls = async () =>
    (await unary(inst.config.listAccessLists.bind(inst.config), {}, inst.adminToken)).accessLists;
  const deleteAcl = (id: string) => unary(inst.config.deleteAccessList.bind(inst.config), { id }, inst.adminToken);
  const createHost = async (name: string, accessListId: string) =>
    (
      await unary(
        inst.config.createProxyHost.bind(inst.config),
        {
          proxyHost: ProxyHost.fromPartial({
            name,
            domains: [`${name}.test`],
            upstreams: [`127.0.0.1:${up.port}`],
            accessListId,
          }),
        },
        inst.adminToken,
      )
    ).proxyHost!;
  const updateHost = (h: ProxyHost) =>
    unary(inst.config.updateProxyHost.bind(inst.config), { proxyHost: h }, inst.adminToken);

  /** After Caddy runs the current version: a request to `host` gets `code` (200 means the upstream answered). */
  async function expectHttp(host: string, code: number, headers: Record<string, string> = {}, what = "") {
    const r = await inst.get(`${host}.test`, "/", headers);
    assert.equal(r.status, code, `${host}.test ${what}: expected ${code}, got ${r.status} ${r.body}`);
    if (code === 200) assert.match(r.body, /upstream=acl/);
    return r;
  }

  it("basic auth: 401 without or with wrong credentials, 200 with the right ones; no hash is ever returned", async () => {
    const created = await createAcl({
      name: "staff",
      users: [
        { username: "alice", password: "alice-password" },
        { username: "bob", password: "bob-password" },
      ],
    });
    assertNoSecrets(created.accessList);
    await createHost("auth", created.accessList!.id);
    await inst.waitInSync();

    const r = await expectHttp("auth", 401, {}, "without credentials");
    assert.match(String(r.headers["www-authenticate"]), /^Basic /);
    await expectHttp("auth", 401, basic("alice", "wrong-password"), "wrong password");
    await expectHttp("auth", 401, basic("alice", "bob-password"), "another user's password");
    await expectHttp("auth", 401, basic("mallory", "alice-password"), "unknown user");
    await expectHttp("auth", 401, { Authorization: "Bearer alice-password" }, "not basic");
    const ok = await expectHttp("auth", 200, basic("alice", "alice-password"));
    assert.match(ok.body, /authorization=none/, "the credentials are removed before proxying (pass_auth off)");
    await expectHttp("auth", 200, basic("bob", "bob-password"));

    assertNoSecrets(await getAcl(created.accessList!.id));
    const listed = await listAcls();
    assert.ok(listed.length >= 1);
    listed.forEach(assertNoSecrets);
  });

  it("addresses: an allow list without 127.0.0.1 gives 403, with it 200; deny always wins", async () => {
    const acl = (await createAcl({ name: "office", allow: ["10.0.0.0/8"] })).accessList!;
    await createHost("addr", acl.id);
    await inst.waitInSync();
    const r = await expectHttp("addr", 403, {}, "127.0.0.1 outside allow");
    assert.match(r.body, /Access denied/);

    await updateAcl({ ...acl, allow: ["10.0.0.0/8", "127.0.0.1"] });
    await inst.waitInSync();
    await expectHttp("addr", 200, {}, "127.0.0.1 allowed");

    await updateAcl({ ...acl, allow: ["127.0.0.1"], deny: ["127.0.0.0/8"] });
    await inst.waitInSync();
    await expectHttp("addr", 403, {}, "allowed but denied: deny wins");

    await updateAcl({ ...acl, allow: [], deny: ["127.0.0.1/32"] });
    await inst.waitInSync();
    await expectHttp("addr", 403, {}, "deny-only list containing 127.0.0.1");
    await updateAcl({ ...acl, allow: [], deny: ["192.0.2.0/24", "2001:db8::/32"] });
    await inst.waitInSync();
    await expectHttp("addr", 200, {}, "deny-only list without 127.0.0.1");
  });

  it("satisfy ANY vs ALL, with users and an allow list that does or does not hold 127.0.0.1", async () => {
    const users = [{ username: "alice", password: "alice-password" }];
    const cases: {
      name: string;
      allow: string[];
      deny?: string[];
      satisfy: AccessListSatisfy;
      none: number;
      good: number;
      bad: number;
    }[] = [
      // ANY: an allowed address passes without credentials; any other must authenticate.
      { name: "any-in", allow: ["127.0.0.1"], satisfy: ANY, none: 200, good: 200, bad: 200 },
      { name: "any-out", allow: ["10.0.0.0/8"], satisfy: ANY, none: 401, good: 200, bad: 401 },
      { name: "any-denied", allow: ["127.0.0.1"], deny: ["127.0.0.1"], satisfy: ANY, none: 403, good: 403, bad: 403 },
      { name: "any-deny-only", allow: [], deny: ["10.0.0.0/8"], satisfy: ANY, none: 401, good: 200, bad: 401 },
      // ALL: the address must be allowed and the credentials valid.
      { name: "all-in", allow: ["127.0.0.1"], satisfy: ALL, none: 401, good: 200, bad: 401 },
      { name: "all-out", allow: ["10.0.0.0/8"], satisfy: ALL, none: 403, good: 403, bad: 403 },
      { name: "all-denied", allow: ["127.0.0.0/8"], deny: ["127.0.0.1"], satisfy: ALL, none: 403, good: 403, bad: 403 },
    ];
    const ids = new Map<string, AccessList>();
    for (const tc of cases) {
      const acl = (
        await createAcl({ name: `sat-${tc.name}`, users, allow: tc.allow, deny: tc.deny ?? [], satisfy: tc.satisfy })
      ).accessList!;
      ids.set(tc.name, acl);
      await createHost(tc.name, acl.id);
    }
    await inst.waitInSync();
    for (const tc of cases) {
      await expectHttp(tc.name, tc.none, {}, "no credentials");
      await expectHttp(tc.name, tc.good, basic("alice", "alice-password"), "right password");
      await expectHttp(tc.name, tc.bad, basic("alice", "wrong-password"), "wrong password");
    }

    // Switching a list from ANY to ALL changes what Caddy enforces, and back.
    const anyIn = ids.get("any-in")!;
    await updateAcl({ ...anyIn, satisfy: ALL });
    await inst.waitInSync();
    await expectHttp("any-in", 401, {}, "now ALL: credentials needed");
    await expectHttp("any-in", 200, basic("alice", "alice-password"), "now ALL, right password (hash kept)");
    await updateAcl({ ...anyIn, satisfy: ANY });
    await inst.waitInSync();
    await expectHttp("any-in", 200, {}, "ANY again");
  });

  it("updates change what Caddy enforces: passwords, users, pass_auth, removing every rule", async () => {
    const acl = (await createAcl({ name: "changing", users: [{ username: "alice", password: "first-password" }] }))
      .accessList!;
    await createHost("change", acl.id);
    await inst.waitInSync();
    await expectHttp("change", 200, basic("alice", "first-password"));

    // A user sent without a password keeps it; a description change alone keeps access working.
    await updateAcl({ ...acl, description: "renamed nothing", users: [{ username: "alice" }] });
    await inst.waitInSync();
    await expectHttp("change", 200, basic("alice", "first-password"), "password kept");

    // A new password replaces the old one; a new user comes in.
    await updateAcl({
      ...acl,
      users: [
        { username: "alice", password: "second-password" },
        { username: "carol", password: "carol-password" },
      ],
    });
    await inst.waitInSync();
    await expectHttp("change", 401, basic("alice", "first-password"), "old password");
    await expectHttp("change", 200, basic("alice", "second-password"), "new password");
    await expectHttp("change", 200, basic("carol", "carol-password"), "new user");

    // A user left out is removed.
    await updateAcl({ ...acl, users: [{ username: "carol" }] });
    await inst.waitInSync();
    await expectHttp("change", 401, basic("alice", "second-password"), "removed user");
    await expectHttp("change", 200, basic("carol", "carol-password"));

    // pass_auth forwards the credentials to the upstream.
    await updateAcl({ ...acl, users: [{ username: "carol" }], passAuth: true });
    await inst.waitInSync();
    const passed = await expectHttp("change", 200, basic("carol", "carol-password"));
    assert.match(
      passed.body,
      new RegExp(`authorization=Basic ${Buffer.from("carol:carol-password").toString("base64")}`),
    );

    // No users and no addresses: the list gates nothing.
    await updateAcl({ ...acl, users: [] });
    await inst.waitInSync();
    await expectHttp("change", 200, {}, "empty list");
  });

  it("refuses to delete an access list in use (FAILED_PRECONDITION naming the host); deletes once detached", async () => {
    const acl = (await createAcl({ name: "in-use", users: [{ username: "alice", password: "alice-password" }] }))
      .accessList!;
    const host = await createHost("guarded", acl.id);
    await inst.waitInSync();
    await expectHttp("guarded", 401);
    const v = await inst.version();

    const msg = await expectStatus(deleteAcl(acl.id), status.FAILED_PRECONDITION);
    assert.match(msg, /"guarded"/);
    assert.equal(await inst.version(), v, "a refused delete does not move the version");
    await expectHttp("guarded", 401, {}, "still gated");

    await updateHost({ ...host, accessListId: "" });
    await inst.waitInSync();
    await expectHttp("guarded", 200, {}, "detached: open");
    const del = await deleteAcl(acl.id);
    assert.equal(del.configVersion, v + 2);
    await expectStatus(getAcl(acl.id), status.NOT_FOUND);
    await inst.waitInSync();
  });

  it("answers bad input with the precise status and field, and the version does not move", async () => {
    await createAcl({ name: "taken" });
    const v = await inst.version();
    const cases: [DeepPartial<AccessList>, status, string][] = [
      [{ name: "x", allow: ["10.0.0.0/8", "::1", "10.0.0.300"] }, status.INVALID_ARGUMENT, "access_list.allow[2]"],
      [{ name: "x", deny: ["not-an-ip"] }, status.INVALID_ARGUMENT, "access_list.deny[0]"],
      [
        { name: "x", users: [{ username: "a:b", password: "12345678" }] },
        status.INVALID_ARGUMENT,
        "access_list.users[0].username",
      ],
      [
        { name: "x", users: [{ username: "a", password: "short" }] },
        status.INVALID_ARGUMENT,
        "access_list.users[0].password",
      ],
      [{ name: "x", users: [{ username: "a" }] }, status.INVALID_ARGUMENT, "access_list.users[0].password"],
      [{ name: "" }, status.INVALID_ARGUMENT, "access_list.name"],
      [{ name: "taken" }, status.ALREADY_EXISTS, "access_list.name"],
    ];
    for (const [a, code, field] of cases) {
      const details = await expectStatus(createAcl(a), code);
      assert.ok(details.startsWith(`${field}: `), `"${details}" should start with ${field}`);
    }
    const missing = await expectStatus(
      unary(
        inst.config.createProxyHost.bind(inst.config),
        {
          proxyHost: ProxyHost.fromPartial({
            name: "dangling",
            domains: ["dangling.test"],
            upstreams: ["127.0.0.1:1"],
            accessListId: "no-such-list",
          }),
        },
        inst.adminToken,
      ),
      status.INVALID_ARGUMENT,
    );
    assert.ok(missing.startsWith("proxy_host.access_list_id: "), missing);
    assert.equal(await inst.version(), v);
  });
});
