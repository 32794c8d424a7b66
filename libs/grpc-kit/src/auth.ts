import { createHash, timingSafeEqual } from "node:crypto";
import type { Metadata } from "@grpc/grpc-js";
import { DomainError } from "@cpm/core";

/**
 * Who is calling. `internal` is another service of this instance; `anonymous` calls a
 * public method (health, reflection where it is open) without a token.
 */
export interface Principal {
  readonly kind: "internal" | "api_token" | "sync_master" | "anonymous";
  readonly name: string;
  readonly role: "admin" | "viewer";
  /** For API tokens: the user the token acts for. */
  readonly userId?: string;
  readonly username?: string;
}

/** The token in `authorization: Bearer <token>`, or undefined. */
export function bearerToken(md: Metadata): string | undefined {
  const v = md.get("authorization")[0];
  if (typeof v !== "string") return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(v);
  return m?.[1];
}

/** Compares two secrets in time that does not depend on where they differ (or their lengths). */
export function secretsEqual(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** Turns request metadata into a principal; throws UNAUTHENTICATED (a DomainError) when it cannot. */
export type Authenticate = (metadata: Metadata) => Promise<Principal>;

export const ANONYMOUS: Principal = Object.freeze({ kind: "anonymous", name: "anonymous", role: "viewer" });
export const INTERNAL: Principal = Object.freeze({ kind: "internal", name: "internal", role: "admin" });

/** Accepts exactly one shared secret (the internal token, a slave's sync token) as `principal`. */
export function sharedTokenAuthenticator(secret: string | undefined, principal: Principal, what: string): Authenticate {
  return async (md) => {
    const token = bearerToken(md);
    // Constant-time comparison; the token itself is never logged.
    if (!token || !secret || !secretsEqual(token, secret)) throw unauthenticated(`the ${what} was missing or wrong`);
    return principal;
  };
}

export const unauthenticated = (why = "missing or invalid bearer token") => new DomainError("unauthenticated", why);
export const permissionDenied = (why: string) => new DomainError("permission_denied", why);
