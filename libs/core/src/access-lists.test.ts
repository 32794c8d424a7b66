import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AccessList, AccessListSatisfy, Settings, Snapshot, type DeepPartial } from "@cpm/proto";
import { assertValidationError } from "./test-support.ts";
import { normalizeAccessList, normalizeIpRange } from "./access-lists.ts";
import { snapshotContentHash, validateSnapshot, SNAPSHOT_SCHEMA_VERSION } from "./snapshot.ts";

/** A real bcrypt hash (cost 4) of "correct horse". */
const HASH = "$2b$04$w8k8X9FJHDuWcgFriAIDRezjksZR5uWONuBu2QSZoSXcSMmL3Ce6e";

const api = (over: DeepPartial<AccessList> = {}) => AccessList.fromPartial({ name: "office", ...over });
const stored = (over: DeepPartial<AccessList> = {}) =>
  AccessList.fromPartial({ id: "acl-1", name: "office", users: [{ username: "alice", passwordHash: HASH }], ...over });

describe("normalizeIpRange", () => {
  const valid: [string, string][] = [
    ["127.0.0.1", "127.0.0.1"],
    [" 10.0.0.0/8 ", "10.0.0.0/8"],
    ["10.1.2.3/8", "10.0.0.0/8"],
    ["192.168.1.77/24", "192.168.1.0/24"],
    ["127.0.0.1/32", "127.0.0.1"],
    ["0.0.0.0/0", "0.0.0.0/0"],
    ["::1", "::1"],
    ["::1/128", "::1"],
    ["2001:DB8::1", "2001:db8::1"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:1::1/48", "2001:db8:1::/48"],
    ["2001:db8::/32", "2001:db8::/32"],
    ["1:0:0:1:0:0:0:1", "1:0:0:1::1"],
    ["fe80::/10", "fe80::/10"],
    ["::/0", "::/0"],
    ["::ffff:10.0.0.1", "10.0.0.1"],
    ["::ffff:10.0.0.0/104", "10.0.0.0/8"],
  ];
  for (const [input, want] of valid) {
    test(`valid: ${JSON.stringify(input)} -> ${want}`, () => assert.equal(normalizeIpRange(input, "f"), want));
  }
  const invalid: [string, RegExp][] = [
    ["", /empty/],
    ["   ", /empty/],
    ["example.com", /not an IP/],
    ["10.0.0", /not an IP/],
    ["256.0.0.1", /not an IP/],
    ["010.0.0.1", /not an IP/],
    ["10.0.0.1:80", /not an IP/],
    ["1.2.3.4/33", /above 32/],
    ["::1/129", /above 128/],
    ["1.2.3.4/", /prefix/],
    ["1.2.3.4/-1", /prefix/],
    ["1.2.3.4/8/8", /prefix/],
    ["a::b::c", /not an IP/],
    ["fe80::1%eth0", /zone/],
  ];
  for (const [input, detail] of invalid) {
    test(`invalid: ${JSON.stringify(input)}`, () =>
      assertValidationError(() => normalizeIpRange(input, "f"), "f", detail));
  }
});

describe("normalizeAccessList (API input)", () => {
  const norm = (a: AccessList) => normalizeAccessList(a, "access_list", { source: "api" });

  test("normalizes name, description, addresses and satisfy; keeps clear-text passwords for the service to hash", () => {
    const got = norm(
      api({
        name: "  office  ",
        description: " the office ",
        users: [{ username: "alice", password: "correct horse" }, { username: "bob" }],
        allow: ["10.1.2.3/8", "2001:DB8::1", "127.0.0.1/32"],
        deny: ["10.0.0.5"],
      }),
    );
    assert.equal(got.name, "office");
    assert.equal(got.description, "the office");
    assert.deepEqual(got.allow, ["10.0.0.0/8", "2001:db8::1", "127.0.0.1"]);
    assert.deepEqual(got.deny, ["10.0.0.5"]);
    assert.equal(got.satisfy, AccessListSatisfy.ACCESS_LIST_SATISFY_ANY, "UNSPECIFIED is treated as ANY");
    assert.deepEqual(got.users, [
      { username: "alice", password: "correct horse", passwordHash: "" },
      { username: "bob", password: "", passwordHash: "" },
    ]);
    assert.equal(got.passAuth, false);
  });

  test("keeps ALL, and an empty list (gates nothing) is valid", () => {
    assert.equal(
      norm(api({ satisfy: AccessListSatisfy.ACCESS_LIST_SATISFY_ALL })).satisfy,
      AccessListSatisfy.ACCESS_LIST_SATISFY_ALL,
    );
    assert.deepEqual(norm(api()).users, []);
  });

  test("accepts the password edge cases: exactly 8 characters, 72 bytes, a colon, non-ASCII", () => {
    for (const password of ["12345678", "x".repeat(72), "pass:word", "pässwörd", "日本語のパスワード"]) {
      assert.equal(norm(api({ users: [{ username: "u", password }] })).users[0]!.password, password);
    }
  });

  const bad: { name: string; input: DeepPartial<AccessList>; field: string; detail?: RegExp }[] = [
    { name: "blank name", input: { name: "  " }, field: "access_list.name" },
    { name: "long description", input: { description: "d".repeat(1001) }, field: "access_list.description" },
    {
      name: "invalid third allow entry",
      input: { allow: ["10.0.0.0/8", "::1", "not-an-ip"] },
      field: "access_list.allow[2]",
      detail: /not-an-ip/,
    },
    { name: "invalid deny entry", input: { deny: ["1.2.3.4/40"] }, field: "access_list.deny[0]" },
    {
      name: "duplicate allow entry after normalization",
      input: { allow: ["10.0.0.0/8", "10.9.9.9/8"] },
      field: "access_list.allow[1]",
      detail: /twice/,
    },
    {
      name: "empty username",
      input: { users: [{ username: "", password: "12345678" }] },
      field: "access_list.users[0].username",
    },
    {
      name: "username with a colon",
      input: {
        users: [
          { username: "a", password: "12345678" },
          { username: "b:c", password: "12345678" },
        ],
      },
      field: "access_list.users[1].username",
      detail: /":"/,
    },
    {
      name: "username with a control character",
      input: { users: [{ username: "a\tb", password: "12345678" }] },
      field: "access_list.users[0].username",
    },
    {
      name: "username with surrounding space",
      input: { users: [{ username: " a", password: "12345678" }] },
      field: "access_list.users[0].username",
    },
    {
      name: "long username",
      input: { users: [{ username: "u".repeat(129), password: "12345678" }] },
      field: "access_list.users[0].username",
    },
    {
      name: "duplicate username",
      input: {
        users: [
          { username: "a", password: "12345678" },
          { username: "a", password: "87654321" },
        ],
      },
      field: "access_list.users[1].username",
      detail: /twice/,
    },
    {
      name: "short password",
      input: { users: [{ username: "a", password: "1234567" }] },
      field: "access_list.users[0].password",
      detail: /at least 8/,
    },
    {
      name: "password over 72 bytes",
      input: { users: [{ username: "a", password: "x".repeat(73) }] },
      field: "access_list.users[0].password",
      detail: /72 bytes/,
    },
    {
      name: "password over 72 bytes of UTF-8",
      input: { users: [{ username: "a", password: "ä".repeat(37) }] },
      field: "access_list.users[0].password",
      detail: /72 bytes/,
    },
    {
      name: "password with a control character",
      input: { users: [{ username: "a", password: "1234\n5678" }] },
      field: "access_list.users[0].password",
    },
    {
      name: "client-supplied hash",
      input: { users: [{ username: "a", passwordHash: HASH }] },
      field: "access_list.users[0].password_hash",
      detail: /server/,
    },
    { name: "unknown satisfy", input: { satisfy: 7 as AccessListSatisfy }, field: "access_list.satisfy" },
  ];
  for (const tc of bad) {
    test(`refuses ${tc.name}: ${tc.field}`, () =>
      assertValidationError(() => norm(api(tc.input)), tc.field, tc.detail));
  }

  test("refuses too many addresses", () => {
    const allow = Array.from({ length: 1001 }, (_, i) => `10.${i >> 8}.${i & 255}.1`);
    assertValidationError(() => norm(api({ allow })), "access_list.allow");
  });
});

describe("normalizeAccessList (stored: database and snapshots)", () => {
  test("accepts an entry with password_hash and no password as is", () => {
    const a = stored({ allow: ["10.0.0.0/8"], satisfy: AccessListSatisfy.ACCESS_LIST_SATISFY_ALL, passAuth: true });
    assert.deepEqual(normalizeAccessList(a), a);
    assert.deepEqual(normalizeAccessList(a, "snapshot.access_lists[0]"), a);
  });

  test("refuses a user without a hash, with a malformed hash, or with a clear-text password", () => {
    assertValidationError(
      () => normalizeAccessList(stored({ users: [{ username: "a" }] }), "s"),
      "s.users[0].password_hash",
      /required/,
    );
    assertValidationError(
      () => normalizeAccessList(stored({ users: [{ username: "a", passwordHash: "plain" }] }), "s"),
      "s.users[0].password_hash",
      /bcrypt/,
    );
    assertValidationError(
      () => normalizeAccessList(stored({ users: [{ username: "a", passwordHash: HASH, password: "12345678" }] }), "s"),
      "s.users[0].password",
      /clear-text/,
    );
  });

  test("a snapshot with access lists validates; a bad entry is named by its path", () => {
    const content = {
      proxyHosts: [],
      l4ProxyHosts: [],
      certificates: [],
      accessLists: [stored()],
      settings: Settings.fromPartial({}),
    };
    const snap = Snapshot.fromPartial({
      schemaVersion: SNAPSHOT_SCHEMA_VERSION,
      masterInstanceId: "m",
      version: 3,
      ...content,
      contentSha256: snapshotContentHash(content),
    });
    validateSnapshot(snap);
    const badContent = {
      ...content,
      accessLists: [stored(), stored({ id: "acl-2", name: "other", deny: ["10.0.0.300"] })],
    };
    const bad = Snapshot.fromPartial({
      schemaVersion: SNAPSHOT_SCHEMA_VERSION,
      masterInstanceId: "m",
      version: 3,
      ...badContent,
      contentSha256: snapshotContentHash(badContent),
    });
    assertValidationError(() => validateSnapshot(bad), "snapshot.access_lists[1].deny[0]");
  });
});
