import { createHash } from "node:crypto";
import type { Metadata } from "@grpc/grpc-js";
import { bearerToken, secretsEqual, unauthenticated, type Principal } from "./auth.ts";
import type { ConfigClient } from "./clients.ts";

/**
 * Authentication for services that do not own the token table: the internal token is
 * checked locally, API tokens are resolved by config-service (cached for `ttlMs`).
 */
export function remoteAuthenticator(config: ConfigClient, internalToken: string | undefined, ttlMs = 5_000) {
  const cache = new Map<string, { p: Principal | undefined; until: number }>();
  return async (md: Metadata): Promise<Principal> => {
    const token = bearerToken(md);
    if (!token) throw unauthenticated("missing bearer token (metadata authorization: Bearer <token>)");
    if (internalToken && secretsEqual(token, internalToken)) return { kind: "internal", name: "internal", role: "admin" };
    const key = createHash("sha256").update(token).digest("hex");
    let hit = cache.get(key);
    if (!hit || hit.until <= Date.now()) {
      hit = { p: await config.principalFor(token), until: Date.now() + ttlMs };
      if (cache.size > 1000) cache.clear();
      cache.set(key, hit);
    }
    if (!hit.p) throw unauthenticated("invalid, expired or revoked token");
    return hit.p;
  };
}
