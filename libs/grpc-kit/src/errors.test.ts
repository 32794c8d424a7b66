import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { createLogger, DomainError, ValidationError } from "@cpm/core";
import { GrpcError, toServiceError } from "./errors.ts";

const log = createLogger("test", "silent");

describe("toServiceError", () => {
  const cases: [string, unknown, status, string | RegExp][] = [
    [
      "a validation error keeps its field path",
      new ValidationError("proxy_host.domains[0]", "is bad"),
      status.INVALID_ARGUMENT,
      "proxy_host.domains[0]: is bad",
    ],
    ["unauthenticated", new DomainError("unauthenticated", "no token"), status.UNAUTHENTICATED, "no token"],
    ["permission denied", new DomainError("permission_denied", "admin only"), status.PERMISSION_DENIED, "admin only"],
    ["resource exhausted", new DomainError("resource_exhausted", "too big"), status.RESOURCE_EXHAUSTED, "too big"],
    ["a GrpcError keeps its status", new GrpcError(status.ABORTED, "try again"), status.ABORTED, "try again"],
    ["Prisma P2025", Object.assign(new Error("x"), { code: "P2025" }), status.NOT_FOUND, "not found"],
    [
      "Prisma P2002 names the target",
      Object.assign(new Error("x"), { code: "P2002", meta: { target: "name" } }),
      status.ALREADY_EXISTS,
      "already exists (name)",
    ],
    ["Prisma P2003", Object.assign(new Error("x"), { code: "P2003" }), status.FAILED_PRECONDITION, /still referenced/],
    [
      "an unavailable dependency",
      Object.assign(new Error("14 UNAVAILABLE: connect ECONNREFUSED 10.0.0.1"), {
        code: status.UNAVAILABLE,
        details: "connect ECONNREFUSED 10.0.0.1",
      }),
      status.UNAVAILABLE,
      "a dependency is unavailable, try again",
    ],
    [
      "anything else is INTERNAL without its message",
      new Error("secret internals at /etc/x"),
      status.INTERNAL,
      "internal error",
    ],
  ];
  for (const [name, err, code, details] of cases) {
    it(name, () => {
      const s = toServiceError(err, log);
      assert.equal(s.code, code);
      if (typeof details === "string") assert.equal(s.details, details);
      else assert.match(s.details ?? "", details);
    });
  }
});
