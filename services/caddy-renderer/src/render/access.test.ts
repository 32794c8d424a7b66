import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AccessList, AccessListSatisfy, Certificate, ProxyHost, Snapshot, type DeepPartial } from "@cpm/proto";
import { accessListHandlers } from "./access.ts";
import { render } from "./index.ts";
import {
  assertCaddyAcceptsAll,
  cert,
  goldenConfigs,
  goldenTest,
  handlersFor,
  OPTS,
  parseConfig,
  type Handler,
  type Route,
} from "./test-support.ts";
import { SNAPSHOT_SCHEMA_VERSION } from "@cpm/core";

// Real bcrypt hashes (cost 4) of "alice-password" and "bob-password".
const ALICE = "$2b$04$uRl80ISibjka9zT2SoGU7OJcRPF4M35qu.Z9Bsu.jZQuSXO8zGXdG";
const BOB = "$2b$04$/hfHZ1f3TcgNn7wLmkf9UuBUPWuY7jfJvvdG0N.M2tAtUwpjen77y";
const b64 = (s: string) => Buffer.from(s).toString("base64");
const { ACCESS_LIST_SATISFY_ANY: ANY, ACCESS_LIST_SATISFY_ALL: ALL } = AccessListSatisfy;

const acl = (id: string, over: DeepPartial<AccessList> = {}) =>
  AccessList.fromPartial({ id, name: `acl ${id}`, satisfy: ANY, ...over });
const users = [
  { username: "bob", passwordHash: BOB },
  { username: "alice", passwordHash: ALICE },
];
const host = (id: string, accessListId: string, over: DeepPartial<ProxyHost> = {}) =>
  ProxyHost.fromPartial({
    id,
    name: `host ${id}`,
    domains: [`${id}.example.com`],
    upstreams: [`${id}.internal:8080`],
    accessListId,
    ...over,
  });
const snapshot = (accessLists: AccessList[], proxyHosts: ProxyHost[], certificates: Certificate[] = []) =>
  Snapshot.fromPartial({
    schemaVersion: SNAPSHOT_SCHEMA_VERSION,
    masterInstanceId: "master-1",
    version: 1,
    accessLists,
    proxyHosts,
    certificates,
  });
const one = (a: AccessList) => snapshot([a], [host("app", a.id)]);

/** One golden case per shape of access list (see the semantics at the top of access.ts). */
const CASES: Record<string, Snapshot> = {
  "access-users-only": one(acl("users", { users })),
  "access-addresses-only": one(acl("addr", { allow: ["10.0.0.0/8", "2001:db8::/32"], deny: ["10.0.0.5"] })),
  "access-deny-only": one(acl("deny", { deny: ["192.0.2.0/24", "2001:db8::bad"] })),
  "access-any": one(acl("any", { users, allow: ["10.0.0.0/8"], deny: ["10.66.0.0/16"], satisfy: ANY })),
  "access-all": one(acl("all", { users, allow: ["10.0.0.0/8"], deny: ["10.66.0.0/16"], satisfy: ALL })),
  "access-pass-auth": one(acl("pass", { users: [users[1]!], passAuth: true })),
  "access-shared": snapshot(
    [acl("shared", { users: [users[1]!], allow: ["127.0.0.1"] }), acl("unused", { deny: ["0.0.0.0/0"] })],
    [host("one", "shared"), host("two", "shared", { allowWebsocket: true }), host("open", "")],
  ),
};

/** What a request for `domain` runs (render/test-support.ts handlersFor), with an Upgrade header when `upgrade`. */
const routeHandlers = (s: Snapshot, domain: string, server: "http" | "https" = "http", upgrade?: string): Handler[] =>
  handlersFor(parseConfig(render(s, OPTS).json), { host: domain, https: server === "https", upgrade });
/** The gate's subroute routes for a single access list. */
const gate = (a: AccessList): Route[] => {
  const hs = accessListHandlers(a);
  assert.equal(hs.length, 1);
  assert.equal(hs[0]!.handler, "subroute");
  return (hs[0] as Handler).routes;
};
const FORBIDDEN = { handler: "static_response", status_code: 403, body: "Access denied.\n" };
const notIn = (ranges: string[]) => [{ not: [{ remote_ip: { ranges } }] }];
const inRanges = (ranges: string[]) => [{ remote_ip: { ranges } }];
const auth = (accounts: { username: string; password: string }[]) => ({
  handler: "authentication",
  providers: { http_basic: { accounts, hash: { algorithm: "bcrypt" }, hash_cache: {} } },
});
const STRIP = { handle: [{ handler: "headers", request: { delete: ["Authorization"] } }] };

describe("access list golden files", () => {
  for (const [name, snap] of Object.entries(CASES)) goldenTest(name, () => render(snap, OPTS).json);
});

describe("accessListHandlers: semantics", () => {
  test("no access list, or one with no users and no addresses: no handlers", () => {
    assert.deepEqual(accessListHandlers(undefined), []);
    assert.deepEqual(accessListHandlers(acl("empty")), []);
    assert.deepEqual(accessListHandlers(acl("empty-all", { satisfy: ALL })), []);
  });

  test("users only: basic auth for everyone (satisfy does not matter), Authorization removed before proxying", () => {
    const accounts = [
      { username: "alice", password: b64(ALICE) },
      { username: "bob", password: b64(BOB) },
    ];
    for (const satisfy of [ANY, ALL, AccessListSatisfy.ACCESS_LIST_SATISFY_UNSPECIFIED]) {
      assert.deepEqual(gate(acl("u", { users, satisfy })), [{ handle: [auth(accounts)] }, STRIP], `satisfy ${satisfy}`);
    }
  });

  test("Caddy 2.6 gets the bcrypt hash base64-encoded", () => {
    const routes = gate(acl("u", { users: [users[1]!] }));
    const account = routes[0]!.handle[0]!.providers.http_basic.accounts[0]!;
    assert.equal(Buffer.from(account.password, "base64").toString(), ALICE);
    assert.match(Buffer.from(account.password, "base64").toString(), /^\$2b\$04\$/);
  });

  test("pass_auth keeps the Authorization header", () => {
    const routes = gate(acl("p", { users, passAuth: true }));
    assert.equal(routes.length, 1);
    assert.equal(routes[0]!.handle[0]!.handler, "authentication");
  });

  test("addresses only: deny first (403), then anything outside allow (403); satisfy does not matter", () => {
    for (const satisfy of [ANY, ALL]) {
      assert.deepEqual(gate(acl("a", { allow: ["10.0.0.0/8", "::1"], deny: ["10.0.0.5"], satisfy })), [
        { match: inRanges(["10.0.0.5"]), handle: [FORBIDDEN] },
        { match: notIn(["10.0.0.0/8", "::1"]), handle: [FORBIDDEN] },
      ]);
    }
  });

  test("deny only: everything else passes", () => {
    assert.deepEqual(gate(acl("d", { deny: ["192.0.2.0/24"] })), [
      { match: inRanges(["192.0.2.0/24"]), handle: [FORBIDDEN] },
    ]);
  });

  test("ANY with users and allow: allowed addresses pass, others must authenticate; deny still wins", () => {
    const routes = gate(
      acl("any", { users: [users[1]!], allow: ["10.0.0.0/8"], deny: ["10.66.0.0/16"], satisfy: ANY }),
    );
    assert.deepEqual(routes, [
      { match: inRanges(["10.66.0.0/16"]), handle: [FORBIDDEN] },
      { match: notIn(["10.0.0.0/8"]), handle: [auth([{ username: "alice", password: b64(ALICE) }])] },
      STRIP,
    ]);
  });

  test("ANY with users and only a deny list: everyone not denied must authenticate", () => {
    const routes = gate(acl("any-deny", { users: [users[1]!], deny: ["10.66.0.0/16"], satisfy: ANY }));
    assert.deepEqual(routes, [
      { match: inRanges(["10.66.0.0/16"]), handle: [FORBIDDEN] },
      { handle: [auth([{ username: "alice", password: b64(ALICE) }])] },
      STRIP,
    ]);
  });

  test("ALL with users and allow: outside allow gets 403 at once, inside must authenticate; deny wins", () => {
    const routes = gate(
      acl("all", { users: [users[1]!], allow: ["10.0.0.0/8"], deny: ["10.66.0.0/16"], satisfy: ALL }),
    );
    assert.deepEqual(routes, [
      { match: inRanges(["10.66.0.0/16"]), handle: [FORBIDDEN] },
      { match: notIn(["10.0.0.0/8"]), handle: [FORBIDDEN] },
      { handle: [auth([{ username: "alice", password: b64(ALICE) }])] },
      STRIP,
    ]);
  });

  test("the gate sits after the websocket refusal and right before reverse_proxy; hosts can share a list", () => {
    const s = CASES["access-shared"]!;
    const one = routeHandlers(s, "one.example.com");
    assert.deepEqual(
      one.map((x) => x.handler),
      ["subroute", "reverse_proxy"],
    );
    assert.deepEqual(one[0], accessListHandlers(s.accessLists[0])[0]);
    assert.deepEqual(
      routeHandlers(s, "one.example.com", "http", "websocket").map((x) => x.status_code),
      [403],
      "the websocket refusal comes first",
    );
    const two = routeHandlers(s, "two.example.com", "http", "websocket");
    assert.deepEqual(
      two.map((x) => x.handler),
      ["subroute", "reverse_proxy"],
      "websockets allowed: only the gate",
    );
    assert.deepEqual(two[0], accessListHandlers(s.accessLists[0])[0]);
    assert.deepEqual(
      routeHandlers(s, "open.example.com").map((x) => x.handler),
      ["reverse_proxy"],
      "a host without an access list is not gated",
    );
    assert.equal(render(s, OPTS).json.includes("0.0.0.0/0"), false, "an unused access list renders nothing");
  });

  test("a host with a certificate is gated on https too, and on http when not forced to https", () => {
    const a = acl("tls", { users: [users[1]!] });
    const s = snapshot(
      [a],
      [host("secure", "tls", { certificateId: "cert-1" })],
      [cert("cert-1", ["secure.example.com"])],
    );
    const gateHandler = accessListHandlers(a)[0];
    for (const server of ["https", "http"] as const) {
      const hs = routeHandlers(s, "secure.example.com", server);
      assert.equal(hs.at(-1)!.handler, "reverse_proxy", server);
      assert.deepEqual(hs.at(-2), gateHandler, `${server}: the gate is right before reverse_proxy`);
    }
  });

  test("a host whose access list is missing from the snapshot is not gated by another list", () => {
    const s = snapshot([acl("other", { deny: ["0.0.0.0/0"] })], [host("app", "missing")]);
    assert.deepEqual(
      routeHandlers(s, "app.example.com").map((x) => x.handler),
      ["reverse_proxy"],
    );
  });

  test("deterministic: the order of users and addresses does not change the bytes", () => {
    const a = one(acl("x", { users, allow: ["10.0.0.0/8", "192.168.0.0/16", "::1"], deny: ["10.0.0.5", "10.0.0.6"] }));
    const b = one(
      acl("x", {
        users: [...users].reverse(),
        allow: ["::1", "192.168.0.0/16", "10.0.0.0/8"],
        deny: ["10.0.0.6", "10.0.0.5"],
      }),
    );
    assert.equal(render(a, OPTS).json, render(b, OPTS).json);
    assert.equal(render(a, OPTS).sha256, render(b, OPTS).sha256);
  });

  test("render does not modify the access list", () => {
    const a = acl("x", { users, allow: ["192.168.0.0/16", "10.0.0.0/8"] });
    const before = structuredClone(a);
    accessListHandlers(a);
    render(one(a), OPTS);
    assert.deepEqual(a, before);
  });
});

describe("access list configs: caddy validate", () => {
  test("every access golden config is accepted by caddy validate", (t) =>
    assertCaddyAcceptsAll(t, "cpm-caddy-validate-access-", goldenConfigs(CASES)));
});
