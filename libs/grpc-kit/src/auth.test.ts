import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Metadata } from "@grpc/grpc-js";
import { DomainError } from "@cpm/core";
import { bearerToken, INTERNAL, secretsEqual, sharedTokenAuthenticator } from "./auth.ts";

const md = (authorization?: string) => {
  const m = new Metadata();
  if (authorization !== undefined) m.set("authorization", authorization);
  return m;
};

describe("bearerToken", () => {
  const cases: [string | undefined, string | undefined][] = [
    ["Bearer abc123", "abc123"],
    ["bearer abc123", "abc123"],
    ["Bearer   abc123  ", "abc123"],
    [undefined, undefined],
    ["", undefined],
    ["Bearer", undefined],
    ["Bearer ", undefined],
    ["Basic abc123", undefined],
    ["abc123", undefined],
    ["Bearer abc 123", undefined],
  ];
  for (const [header, want] of cases) {
    it(`${JSON.stringify(header)} -> ${JSON.stringify(want)}`, () => assert.equal(bearerToken(md(header)), want));
  }
});

describe("secretsEqual", () => {
  it("is true only for the same secret", () => {
    assert.equal(secretsEqual("s3cret-token-value", "s3cret-token-value"), true);
    assert.equal(secretsEqual("s3cret-token-value", "s3cret-token-valuE"), false);
    assert.equal(secretsEqual("s3cret-token-value", "s3cret-token-value-longer"), false);
    assert.equal(secretsEqual("", "x"), false);
  });
});

describe("sharedTokenAuthenticator", () => {
  const auth = sharedTokenAuthenticator("internal-token-0123456789", INTERNAL, "internal token");

  it("admits the secret as the given principal", async () => {
    assert.equal(await auth(md("Bearer internal-token-0123456789")), INTERNAL);
  });

  for (const [name, header] of [
    ["a wrong token", "Bearer internal-token-0123456788"],
    ["no token", undefined],
  ] as const) {
    it(`refuses ${name} with UNAUTHENTICATED naming what was expected, never echoing the token`, async () => {
      const err = await auth(md(header)).then(
        () => assert.fail("admitted"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof DomainError);
      assert.equal(err.kind, "unauthenticated");
      assert.match(err.message, /internal token was missing or wrong/);
      assert.doesNotMatch(err.message, /0123456788/);
    });
  }

  it("refuses everything when no secret is configured", async () => {
    const none = sharedTokenAuthenticator(undefined, INTERNAL, "internal token");
    await assert.rejects(none(md("Bearer anything-at-all-123")), (e: DomainError) => e.kind === "unauthenticated");
  });
});
