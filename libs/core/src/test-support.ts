// Assertion helpers shared by this package's tests (*.test.ts). Not exported from index.ts.
import assert from "node:assert/strict";
import { ValidationError } from "./errors.ts";

/**
 * Asserts `fn` throws an instance of `type` (with that class's `name`) that names `name`
 * (read with `nameOf`), whose message starts with `${name}: ` and matches `detail` when
 * given. Returns the error, for further checks.
 */
export function assertThrowsNaming<E extends Error>(
  fn: () => unknown,
  type: new (...args: never[]) => E,
  nameOf: (err: E) => string,
  name: string,
  detail?: RegExp,
): E {
  let caught: E | undefined;
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
    assert.equal(err.name, type.name);
    assert.equal(nameOf(err), name, err.message);
    assert.ok(err.message.startsWith(`${name}: `), `message should start with "${name}: ": ${err.message}`);
    if (detail) assert.match(err.message, detail);
    caught = err;
    return true;
  });
  return caught!;
}

/**
 * Asserts fn throws a ValidationError (invalid_argument) for exactly `field`, with the message
 * `${field}: ...` (matching `detail` when given), and returns it.
 */
export function expectValidationError(fn: () => unknown, field: string, detail?: RegExp): ValidationError {
  const err = assertThrowsNaming(fn, ValidationError, (e) => e.field, field, detail);
  assert.equal(err.kind, "invalid_argument", err.message);
  return err;
}

/** expectValidationError, for use as a test body (returns nothing). */
export function assertValidationError(fn: () => unknown, field: string, detail?: RegExp): void {
  expectValidationError(fn, field, detail);
}
