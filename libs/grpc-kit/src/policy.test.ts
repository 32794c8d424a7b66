import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SyncDispatcherService } from "@cpm/proto";
import { DomainError } from "@cpm/core";
import { ANONYMOUS, INTERNAL, type Principal } from "./auth.ts";
import { allows, assertPolicyCovers, authorize, definePolicy, methodName, policyGaps, type Caller } from "./policy.ts";

const viewer: Principal = { kind: "api_token", name: "v", role: "viewer" };
const admin: Principal = { kind: "api_token", name: "a", role: "admin" };
const master: Principal = { kind: "sync_master", name: "master", role: "admin" };

describe("allows", () => {
  const table: [Caller, Principal, boolean][] = [
    ["public", ANONYMOUS, true],
    ["viewer", viewer, true],
    ["viewer", admin, true],
    ["viewer", INTERNAL, false],
    ["viewer", master, false],
    ["viewer", ANONYMOUS, false],
    ["admin", admin, true],
    ["admin", viewer, false],
    // The internal token says role admin, yet it is no API token: it never passes as one.
    ["admin", INTERNAL, false],
    ["internal", INTERNAL, true],
    ["internal", admin, false],
    ["sync_master", master, true],
    ["sync_master", INTERNAL, false],
  ];
  for (const [caller, p, want] of table) {
    it(`${caller} ${want ? "lets in" : "keeps out"} ${p.kind}/${p.role}`, () =>
      assert.equal(allows([caller], p), want));
  }
});

describe("authorize", () => {
  const denied = (policy: readonly Caller[], p: Principal): string => {
    try {
      authorize("/cpm.x.v1.Svc/DoIt", policy, p);
    } catch (e) {
      assert.ok(e instanceof DomainError);
      assert.equal(e.kind, "permission_denied");
      return e.message;
    }
    return assert.fail("authorized");
  };

  it("passes a caller the policy names", () =>
    assert.doesNotThrow(() => authorize("/cpm.x.v1.Svc/DoIt", ["viewer", "internal"], INTERNAL)));
  it("tells a viewer that an admin token is needed", () =>
    assert.match(denied(["admin"], viewer), /^DoIt needs an admin token/));
  it("tells the internal token it is only for the instance's services", () =>
    assert.match(denied(["admin"], INTERNAL), /^DoIt is not an internal method/));
  it("tells an API token that an internal method is internal", () =>
    assert.match(denied(["internal"], admin), /^DoIt is internal to an instance/));
  it("names who may call otherwise", () =>
    assert.match(denied(["sync_master"], admin), /^DoIt may only be called with the sync token/));
});

describe("policy tables", () => {
  it("methodName takes the last path segment", () =>
    assert.equal(methodName("/cpm.sync.v1.SyncDispatcher/GetSyncStatus"), "GetSyncStatus"));

  it("a complete table has no gaps", () => {
    const p = definePolicy("cpm.sync.v1.SyncDispatcher", { GetSyncStatus: ["viewer"], TriggerFullSync: ["admin"] });
    assert.deepEqual(policyGaps(SyncDispatcherService, p), { missing: [], unknown: [] });
    assert.doesNotThrow(() => assertPolicyCovers(SyncDispatcherService, p));
  });

  it("names missing methods, misspelt ones and a wrong service", () => {
    const p = definePolicy("cpm.sync.v1.SyncDispatcher", { GetSyncStatus: ["viewer"], TriggerFullSnyc: ["admin"] });
    assert.deepEqual(policyGaps(SyncDispatcherService, p), {
      missing: ["TriggerFullSync"],
      unknown: ["TriggerFullSnyc"],
    });
    assert.throws(
      () => assertPolicyCovers(SyncDispatcherService, p),
      /no entry for TriggerFullSync; unknown TriggerFullSnyc/,
    );
    const other = definePolicy("cpm.sync.v1.Other", { GetSyncStatus: ["viewer"], TriggerFullSync: ["admin"] });
    assert.throws(() => assertPolicyCovers(SyncDispatcherService, other), /unknown service cpm\.sync\.v1\.Other/);
  });

  it("tables are frozen", () => {
    const p = definePolicy("s", { A: ["viewer"] });
    assert.ok(Object.isFrozen(p) && Object.isFrozen(p.methods));
  });
});
