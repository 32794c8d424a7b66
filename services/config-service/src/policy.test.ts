// The access tables against the generated service definitions, and what the two listeners
// of config-service refuse before reading a request.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AccountServiceService, ConfigServiceService } from "@cpm/proto";
import { policyGaps, status, unary } from "@cpm/grpc-kit";
import { rawGrpcCall } from "@cpm/grpc-kit/testing";
import { ACCOUNT_SERVICE_POLICY, CONFIG_SERVICE_POLICY } from "./policy.ts";
import { ADMIN, expectStatus, harnessForEachTest, INTERNAL, type Harness } from "./test-support.ts";

describe("access tables", () => {
  for (const [definition, policy] of [
    [ConfigServiceService, CONFIG_SERVICE_POLICY],
    [AccountServiceService, ACCOUNT_SERVICE_POLICY],
  ] as const) {
    it(`${policy.service}: every method has exactly one entry`, () =>
      assert.deepEqual(policyGaps(definition, policy), { missing: [], unknown: [] }));
  }

  it("the internal token reaches only what the other services call", () => {
    const internal = Object.entries(CONFIG_SERVICE_POLICY.methods)
      .filter(([, callers]) => callers.includes("internal"))
      .map(([m]) => m);
    assert.deepEqual(internal.sort(), [
      "ApplySnapshot",
      "GetInstanceInfo",
      "GetSnapshot",
      "RecordCertificateIssuance",
      "WatchConfig",
    ]);
    assert.ok(Object.values(ACCOUNT_SERVICE_POLICY.methods).every((callers) => !callers.includes("internal")));
  });

  it("SignIn is the only method called without a token", () => {
    const open = [CONFIG_SERVICE_POLICY, ACCOUNT_SERVICE_POLICY].flatMap((p) =>
      Object.entries(p.methods)
        .filter(([, callers]) => callers.includes("public"))
        .map(([m]) => `${p.service}/${m}`),
    );
    assert.deepEqual(open, ["cpm.config.v1.AccountService/SignIn"]);
  });
});

describe("config-service listeners", () => {
  let h: Harness;
  harnessForEachTest({ apiMaxMessageBytes: 64 * 1024 }, (started) => (h = started));
  const SEVENTY_MB = 70 * 1024 * 1024;

  it("public API: an anonymous 70 MB request gets UNAUTHENTICATED while its body is still incomplete", async () => {
    const r = await rawGrpcCall(h.apiAddress, "/cpm.config.v1.ConfigService/CreateProxyHost", {
      announcedBytes: SEVENTY_MB,
      sentBytes: 32 * 1024,
    });
    assert.equal(r.code, status.UNAUTHENTICATED, r.details);
    assert.equal(r.requestEnded, false);
  });

  it("public API: an admin's oversized request gets RESOURCE_EXHAUSTED naming CPM_API_MAX_MESSAGE_BYTES, from the frame header", async () => {
    const r = await rawGrpcCall(h.apiAddress, "/cpm.config.v1.ConfigService/CreateProxyHost", {
      token: ADMIN,
      announcedBytes: SEVENTY_MB,
      sentBytes: 32 * 1024,
    });
    assert.equal(r.code, status.RESOURCE_EXHAUSTED, r.details);
    assert.equal(r.requestEnded, false);
    assert.match(r.details, /over the limit of 65536 bytes \(CPM_API_MAX_MESSAGE_BYTES\)$/);
  });

  it("public API: the internal token is not accepted, not even for reads", async () => {
    await expectStatus(unary(h.config.getInstanceInfo.bind(h.config), {}, INTERNAL), status.UNAUTHENTICATED);
    await expectStatus(
      unary(h.config.listProxyHosts.bind(h.config), { pageSize: 0, pageToken: "", query: "" }, INTERNAL),
      status.UNAUTHENTICATED,
    );
  });

  it("internal listener: the internal token reads snapshots but never reaches resource CRUD or settings", async () => {
    assert.equal((await unary(h.internal.getSnapshot.bind(h.internal), {}, INTERNAL)).snapshot!.version, 0);
    const m1 = await expectStatus(
      unary(h.internal.listProxyHosts.bind(h.internal), { pageSize: 0, pageToken: "", query: "" }, INTERNAL),
      status.PERMISSION_DENIED,
    );
    assert.match(m1, /^ListProxyHosts is not an internal method/);
    await expectStatus(
      unary(h.internal.updateSettings.bind(h.internal), { settings: undefined }, INTERNAL),
      status.PERMISSION_DENIED,
    );
    // An API token is unknown here, even an admin's.
    await expectStatus(unary(h.internal.getSnapshot.bind(h.internal), {}, ADMIN), status.UNAUTHENTICATED);
  });

  it("internal listener: an anonymous 70 MB ApplySnapshot gets UNAUTHENTICATED before its body is read", async () => {
    const r = await rawGrpcCall(h.internalAddress, "/cpm.config.v1.ConfigService/ApplySnapshot", {
      announcedBytes: SEVENTY_MB,
      sentBytes: 32 * 1024,
    });
    assert.equal(r.code, status.UNAUTHENTICATED, r.details);
    assert.equal(r.requestEnded, false);
  });

  it("internal listener: a snapshot over the sync limit gets RESOURCE_EXHAUSTED naming CPM_SYNC_MAX_MESSAGE_BYTES", async () => {
    const r = await rawGrpcCall(h.internalAddress, "/cpm.config.v1.ConfigService/ApplySnapshot", {
      token: INTERNAL,
      announcedBytes: SEVENTY_MB,
      sentBytes: 32 * 1024,
    });
    assert.equal(r.code, status.RESOURCE_EXHAUSTED, r.details);
    assert.match(r.details, /\(CPM_SYNC_MAX_MESSAGE_BYTES\)$/);
  });

  it("health answers without a token on both listeners", async () => {
    for (const address of [h.apiAddress, h.internalAddress]) {
      const r = await rawGrpcCall(address, "/grpc.health.v1.Health/Check", { announcedBytes: 0 });
      assert.equal(r.code, status.OK, r.details);
    }
  });
});
