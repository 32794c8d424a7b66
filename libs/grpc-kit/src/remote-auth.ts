import { AccountServiceClient, Role } from "@cpm/proto";
import { status } from "@grpc/grpc-js";
import { bearerToken, INTERNAL, secretsEqual, unauthenticated, type Authenticate, type Principal } from "./auth.ts";
import { channelCredentials, clientOptions, unary } from "./client.ts";

/**
 * Authentication for services that do not own the token table: the internal token is
 * checked locally; an API token is resolved by config-service's public API (WhoAmI, with
 * the token itself) on every call. Nothing is cached, so a revoked token, or one of a
 * disabled or deleted user, is refused on every service from the moment it is refused
 * by config-service.
 */
export class RemoteAuthenticator {
  private readonly accounts: AccountServiceClient;

  /** `apiAddress`: config-service's public listener (CPM_API_ADDR). */
  constructor(
    apiAddress: string,
    private readonly internalToken: string | undefined,
  ) {
    this.accounts = new AccountServiceClient(apiAddress, channelCredentials({}), clientOptions({}));
  }

  readonly authenticate: Authenticate = async (md) => {
    const token = bearerToken(md);
    if (!token) throw unauthenticated("missing bearer token (metadata authorization: Bearer <token>)");
    if (this.internalToken && secretsEqual(token, this.internalToken)) return INTERNAL;
    const p = await this.principalFor(token);
    if (!p) throw unauthenticated("invalid, expired or revoked token");
    return p;
  };

  /** The principal of an API token of this instance, or undefined when config-service refuses it. */
  private async principalFor(token: string): Promise<Principal | undefined> {
    try {
      const r = await unary(this.accounts.whoAmI.bind(this.accounts), {}, token, 5_000);
      return {
        kind: "api_token",
        name: r.tokenName,
        role: r.role === Role.ROLE_ADMIN ? "admin" : "viewer",
        userId: r.userId || undefined,
        username: r.username || undefined,
      };
    } catch (e) {
      if ((e as { code?: number }).code === status.UNAUTHENTICATED) return undefined;
      throw e;
    }
  }

  close(): void {
    this.accounts.close();
  }
}
