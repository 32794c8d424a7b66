// Page tokens and the checks on a List request's page_size, page_token and query.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ValidationError } from "@cpm/core";
import { decodePageToken, encodePageToken, MAX_PAGE_SIZE, pageRequest } from "./paging.ts";

const req = (x: Partial<{ pageSize: number; pageToken: string; query: string }>) => ({
  pageSize: 0,
  pageToken: "",
  query: "",
  ...x,
});

describe("page tokens", () => {
  for (const [after, query] of [
    ["app-01", ""],
    ["app-01", "example.com"],
    ["ünïcode näme", "ÄÖ"],
    ['quote " and \\ slash', "%_"],
  ]) {
    it(`round-trip after=${JSON.stringify(after)} query=${JSON.stringify(query)}`, () => {
      const token = encodePageToken(after!, query!);
      assert.match(token, /^[A-Za-z0-9_-]+$/, "URL-safe, opaque");
      assert.deepEqual(decodePageToken(token), { after, query });
    });
  }

  const b64 = (s: string) => Buffer.from(s).toString("base64url");
  for (const [what, token] of [
    ["not base64url", "abc$%^"],
    ["not JSON", b64("{nope")],
    ["JSON but not an object", b64("42")],
    ["null", b64("null")],
    ["no after", b64('{"query":""}')],
    ["empty after", b64('{"after":"","query":""}')],
    ["after not a string", b64('{"after":1,"query":""}')],
    ["no query", b64('{"after":"a"}')],
  ]) {
    it(`a token that is ${what} is refused naming page_token`, () => {
      assert.throws(
        () => decodePageToken(token!),
        (e: unknown) => e instanceof ValidationError && e.field === "page_token",
      );
    });
  }
});

describe("pageRequest", () => {
  const ok: [string, ReturnType<typeof req>, ReturnType<typeof pageRequest>][] = [
    ["defaults: everything", req({}), { pageSize: 0, query: "", after: undefined }],
    ["a page size", req({ pageSize: 10 }), { pageSize: 10, query: "", after: undefined }],
    [
      "a page size over the max is the max",
      req({ pageSize: 5000 }),
      { pageSize: MAX_PAGE_SIZE, query: "", after: undefined },
    ],
    ["a query", req({ query: "Example" }), { pageSize: 0, query: "Example", after: undefined }],
    [
      "a token with its query",
      req({ pageSize: 10, query: "ex", pageToken: encodePageToken("b", "ex") }),
      { pageSize: 10, query: "ex", after: "b" },
    ],
  ];
  for (const [what, input, want] of ok) it(`accepts ${what}`, () => assert.deepEqual(pageRequest(input), want));

  const bad: [string, ReturnType<typeof req>, string][] = [
    ["a negative page size", req({ pageSize: -1 }), "page_size"],
    ["a query over 200 characters", req({ query: "x".repeat(201) }), "query"],
    ["a query with a control character", req({ query: "a\nb" }), "query"],
    ["a token that is garbage", req({ pageToken: "garbage!" }), "page_token"],
    ["a token of another query", req({ query: "b", pageToken: encodePageToken("x", "a") }), "page_token"],
    ["a token of a query when none is given", req({ pageToken: encodePageToken("x", "a") }), "page_token"],
  ];
  for (const [what, input, field] of bad) {
    it(`refuses ${what}, naming ${field}`, () => {
      assert.throws(
        () => pageRequest(input),
        (e: unknown) => e instanceof ValidationError && e.field === field && e.message.startsWith(`${field}: `),
      );
    });
  }
});
