import assert from "node:assert/strict";
import { it } from "node:test";
import { SyncDispatcherService } from "@cpm/proto";
import { policyGaps } from "@cpm/grpc-kit";
import { DISPATCHER_POLICY } from "./server.ts";

it("every SyncDispatcher method has exactly one entry, none open to the internal token", () => {
  assert.deepEqual(policyGaps(SyncDispatcherService, DISPATCHER_POLICY), { missing: [], unknown: [] });
  assert.ok(Object.values(DISPATCHER_POLICY.methods).every((callers) => !callers.includes("internal")));
});
