import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Metadata, Server, ServerCredentials, status } from "@grpc/grpc-js";
import { AccountServiceService, Role } from "@cpm/proto";
import { DomainError } from "@cpm/core";
import { INTERNAL } from "./auth.ts";
import { RemoteAuthenticator } from "./remote-auth.ts";

const md = (token?: string) => {
  const m = new Metadata();
  if (token) m.set("authorization", `Bearer ${token}`);
  return m;
};

/** A config-service stand-in whose WhoAmI knows the tokens in `valid` (revoke = delete). */
describe("RemoteAuthenticator", () => {
  const valid = new Map<string, Role>();
  let lookups = 0;
  let server: Server;
  let auth: RemoteAuthenticator;

  before(async () => {
    server = new Server();
    const unimplemented = (_c: unknown, cb: (e: { code: number }) => void) => cb({ code: status.UNIMPLEMENTED });
    server.addService(AccountServiceService, {
      ...Object.fromEntries(Object.keys(AccountServiceService).map((k) => [k, unimplemented])),
      whoAmI: (
        call: { metadata: Metadata },
        cb: (e: { code: number; details?: string } | null, r?: unknown) => void,
      ) => {
        lookups++;
        const token = String(call.metadata.get("authorization")[0] ?? "").replace(/^Bearer /, "");
        const role = valid.get(token);
        if (role === undefined)
          return cb({ code: status.UNAUTHENTICATED, details: "invalid, expired or revoked token" });
        cb(null, { tokenName: `name-of-${token}`, role, userId: "u1", username: "alice" });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    auth = new RemoteAuthenticator(`127.0.0.1:${port}`, "internal-token-0123456789");
  });
  after(() => {
    auth.close();
    server.forceShutdown();
  });

  it("resolves an API token through config-service, with its role and user", async () => {
    valid.set("tok-admin", Role.ROLE_ADMIN);
    assert.deepEqual(await auth.authenticate(md("tok-admin")), {
      kind: "api_token",
      name: "name-of-tok-admin",
      role: "admin",
      userId: "u1",
      username: "alice",
    });
  });

  it("refuses a revoked token on the very next call (nothing is cached)", async () => {
    valid.set("tok-viewer", Role.ROLE_VIEWER);
    assert.equal((await auth.authenticate(md("tok-viewer"))).role, "viewer");
    valid.delete("tok-viewer");
    await assert.rejects(
      auth.authenticate(md("tok-viewer")),
      (e: DomainError) => e.kind === "unauthenticated" && /revoked/.test(e.message),
    );
  });

  it("sees a demotion on the very next call", async () => {
    valid.set("tok-demoted", Role.ROLE_ADMIN);
    assert.equal((await auth.authenticate(md("tok-demoted"))).role, "admin");
    valid.set("tok-demoted", Role.ROLE_VIEWER);
    assert.equal((await auth.authenticate(md("tok-demoted"))).role, "viewer");
  });

  it("checks the internal token locally, and refuses a call without a token without asking", async () => {
    const before = lookups;
    assert.equal(await auth.authenticate(md("internal-token-0123456789")), INTERNAL);
    await assert.rejects(
      auth.authenticate(md()),
      (e: DomainError) => e.kind === "unauthenticated" && /missing bearer token/.test(e.message),
    );
    assert.equal(lookups, before);
  });
});
