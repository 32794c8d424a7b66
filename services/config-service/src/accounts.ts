import { Role, type AccountServiceServer, type SignInRequest, type SignInResponse } from "@cpm/proto";
import { checkName, DomainError, SignInLimiter, USER_SIGN_IN_LIMIT, ValidationError } from "@cpm/core";
import { bearerToken, unauthenticated, type AsyncService } from "@cpm/grpc-kit";
import type { ApiTokens } from "./tokens.ts";
import { roleProto } from "./users.ts";

const DEFAULT_SESSION_SECONDS = 12 * 3600;
const MAX_SESSION_SECONDS = 7 * 24 * 3600;

/**
 * SignIn: a user's name and password for a new API token of that user, with an expiry, whose
 * role is the user's. Every refusal reads the same (no user, no password, a wrong one, a
 * disabled user); a username's failures are limited (USER_SIGN_IN_LIMIT).
 */
async function signIn(tokens: ApiTokens, limiter: SignInLimiter, req: SignInRequest): Promise<SignInResponse> {
  const ttl = req.ttlSeconds || DEFAULT_SESSION_SECONDS;
  if (ttl > MAX_SESSION_SECONDS) throw new ValidationError("ttl_seconds", `must be at most ${MAX_SESSION_SECONDS}`);
  // Checked before the password: a bad label is refused naming its field, not as a token's name.
  const client = checkName(req.client.trim() || "session", "client");
  const username = req.username.trim();
  if (!username || !req.password) throw unauthenticated("wrong username or password");
  const key = username.toLowerCase();
  const allowed = limiter.check(key);
  if (!allowed.ok)
    throw new DomainError(
      "resource_exhausted",
      `too many failed sign-ins for this user: try again in ${Math.ceil(allowed.retryAfterMs / 1000)} s`,
    );
  const user = await tokens.users.checkPassword(username, req.password);
  if (!user) {
    limiter.fail(key);
    throw unauthenticated("wrong username or password");
  }
  limiter.succeed(key);
  const { token, secret } = await tokens.create(
    `${client} ${user.username}`,
    roleProto(user.role),
    new Date(Date.now() + ttl * 1000),
    user.id,
    { kind: "api_token", name: "sign-in", role: "viewer" },
  );
  return { apiToken: token, secret, username: user.username };
}

/**
 * AccountService: users, API tokens and WhoAmI. The rules (last admin, own account, roles a
 * token may be given) live in users.ts and tokens.ts; these handlers map requests and answers.
 */
export function accountHandlers(tokens: ApiTokens): Required<AsyncService<AccountServiceServer>> {
  const users = tokens.users;
  const limiter = new SignInLimiter(USER_SIGN_IN_LIMIT);
  return {
    signIn: (req) => signIn(tokens, limiter, req),
    signOut: async (_req, ctx) => {
      const secret = bearerToken(ctx.metadata);
      if (!secret) throw unauthenticated("missing bearer token");
      await tokens.revokeSecret(secret);
      return {};
    },
    createUser: async (req) => ({ user: await users.create(req.username, req.role, req.password) }),
    getUser: async (req) => ({ user: await users.get(req.id) }),
    listUsers: async () => ({ users: await users.list() }),
    updateUser: async (req, ctx) => ({
      user: await users.update(req.id, req.role, req.disabled, req.password, ctx.principal.userId),
    }),
    deleteUser: async (req, ctx) => {
      await users.delete(req.id, ctx.principal.userId);
      return {};
    },
    createApiToken: async (req, ctx) => {
      const { token, secret } = await tokens.create(
        req.name,
        req.role,
        req.expiresAt,
        req.userId.trim(),
        ctx.principal,
      );
      return { apiToken: token, secret };
    },
    listApiTokens: async () => ({ apiTokens: await tokens.list() }),
    revokeApiToken: async (req) => {
      await tokens.revoke(req.id);
      return {};
    },
    whoAmI: (_req, ctx) =>
      Promise.resolve({
        tokenName: ctx.principal.name,
        role: ctx.principal.role === "admin" ? Role.ROLE_ADMIN : Role.ROLE_VIEWER,
        userId: ctx.principal.userId ?? "",
        username: ctx.principal.username ?? "",
      }),
  };
}
