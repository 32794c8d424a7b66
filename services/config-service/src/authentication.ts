import { bearerToken, INTERNAL, sharedTokenAuthenticator, unauthenticated, type Authenticate } from "@cpm/grpc-kit";
import type { ApiTokens } from "./tokens.ts";

/** Authenticates an API token of this instance (the public listener knows no other). */
export function apiTokenAuthenticator(tokens: ApiTokens): Authenticate {
  return async (md) => {
    const token = bearerToken(md);
    if (!token) throw unauthenticated("missing bearer token (metadata authorization: Bearer <token>)");
    const p = await tokens.authenticate(token);
    if (!p) throw unauthenticated("invalid, expired or revoked token");
    return p;
  };
}

/**
 * Authenticates the token the other services of this instance present (CPM_INTERNAL_TOKEN), as
 * the internal caller; the internal listener knows no other.
 */
export function internalTokenAuthenticator(internalToken: string | undefined): Authenticate {
  return sharedTokenAuthenticator(internalToken, INTERNAL, "internal token (CPM_INTERNAL_TOKEN)");
}
