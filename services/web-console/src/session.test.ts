import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sessionCookie, sessionToken } from "./session.ts";

describe("the session cookie", () => {
  const cases: [string | undefined, string | undefined][] = [
    [undefined, undefined],
    ["", undefined],
    ["cpm_session=abc", "abc"],
    ["a=1; cpm_session=cpm_x-Y_z; b=2", "cpm_x-Y_z"],
    ["cpm_session=", undefined],
    ["xcpm_session=abc", undefined],
  ];
  for (const [header, want] of cases)
    it(`${JSON.stringify(header)} holds ${String(want)}`, () => assert.equal(sessionToken(header), want));

  it("is HttpOnly, Secure and SameSite=Strict, and clears with Max-Age=0", () => {
    assert.equal(sessionCookie("t", 60), "cpm_session=t; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Strict");
    assert.match(sessionCookie("", 0), /^cpm_session=; Path=\/; Max-Age=0; /);
  });
});
