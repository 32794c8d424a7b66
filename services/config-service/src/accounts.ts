import { Role, type AccountServiceServer } from "@cpm/proto";
import type { AsyncService } from "@cpm/grpc-kit";
import type { ApiTokens } from "./tokens.ts";

/**
 * AccountService: users, API tokens and WhoAmI. The rules (last admin, own account, roles a
 * token may be given) live in users.ts and tokens.ts; these handlers map requests and answers.
 */
export function accountHandlers(tokens: ApiTokens): Required<AsyncService<AccountServiceServer>> {
  const users = tokens.users;
  return {
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
