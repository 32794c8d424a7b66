import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";

/**
 * Expects a gRPC call to fail with the status `code`; returns the error's details (the message
 * the client sees). Fails the test, naming the expected and the actual status and the details,
 * when the call succeeds, fails with another status, or fails with something not a gRPC error.
 */
export async function expectStatus(p: Promise<unknown>, code: status): Promise<string> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: unknown; details?: string };
    assert.equal(
      typeof err.code,
      "number",
      `expected ${status[code]}, got something that is not a gRPC error: ${String(e)}`,
    );
    const got = err.code as status;
    assert.equal(got, code, `expected ${status[code]}, got ${status[got] ?? got}: ${err.details}`);
    return err.details ?? "";
  }
  assert.fail(`expected ${status[code]}, the call succeeded`);
}
