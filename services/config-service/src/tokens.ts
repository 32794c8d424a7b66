import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { ApiToken, Role } from "@cpm/proto";
import { checkName, notFound, ValidationError } from "@cpm/core";
import type { Principal } from "@cpm/grpc-kit";
import type { Db } from "./db.ts";
import { tokenCacheOf, type TokenCache, type TokenFacts } from "./token-cache.ts";
import { roleName, roleProto, Users } from "./users.ts";

const hash = (secret: string) => createHash("sha256").update(secret).digest("hex");

export interface ApiTokensOptions {
  /** On SQLite the check is a lookup in memory (see TokenCache); elsewhere it reads every time. */
  dialect?: "sqlite" | "postgresql";
}

/**
 * API tokens of this instance. Secrets are random (256 bits) and only their sha256 is
 * stored, so a plain hash is the right tool (no password stretching needed). Every token
 * acts for a user; its effective role is the lower of its own and its user's.
 */
export class ApiTokens {
  /** The users of this instance; their writes invalidate the token check's cache too. */
  readonly users: Users;
  private readonly cache: TokenCache;

  constructor(
    private readonly db: Db,
    opts: ApiTokensOptions = {},
  ) {
    this.users = new Users(db);
    this.cache = tokenCacheOf(db);
    if (opts.dialect === "sqlite") this.cache.enable();
  }

  /**
   * Makes sure `secret` is a valid admin token named "bootstrap" of the user "admin"
   * (idempotent). No part of it is stored or listed: its prefix stays empty.
   */
  async ensure(secret: string, name = "bootstrap"): Promise<void> {
    const userId = await this.users.ensureAdmin();
    await this.cache.writing(() => this.ensureToken(hash(secret), name, userId));
  }

  private async ensureToken(tokenHash: string, name: string, userId: string): Promise<void> {
    const existing = await this.db.apiToken.findUnique({ where: { tokenHash } });
    if (existing) {
      if (
        existing.revokedAt ||
        existing.role !== "admin" ||
        existing.userId !== userId ||
        existing.expiresAt ||
        existing.prefix
      ) {
        await this.db.apiToken.update({
          where: { tokenHash },
          data: { revokedAt: null, role: "admin", expiresAt: null, userId, prefix: "" },
        });
      }
      await this.db.user.update({ where: { id: userId }, data: { disabled: false, role: "admin" } });
      return;
    }
    await this.db.apiToken.create({ data: { id: randomUUID(), name, tokenHash, prefix: "", role: "admin", userId } });
  }

  /** Who `secret` acts for; undefined when it is unknown, revoked, expired or its user is disabled. */
  async authenticate(secret: string): Promise<Principal | undefined> {
    const tokenHash = hash(secret);
    const t = await this.cache.lookup(tokenHash, () => this.read(tokenHash));
    if (!t || t.revoked || (t.expiresAt !== null && t.expiresAt <= Date.now())) return undefined;
    if (t.user?.disabled) return undefined;
    const role = t.role === "admin" && (!t.user || t.user.role === "admin") ? "admin" : "viewer";
    return { kind: "api_token", name: t.name, role, userId: t.userId ?? undefined, username: t.user?.username };
  }

  private async read(tokenHash: string): Promise<TokenFacts | undefined> {
    const row = await this.db.apiToken.findUnique({ where: { tokenHash }, include: { user: true } });
    if (!row) return undefined;
    const user = row.user && { role: row.user.role, disabled: row.user.disabled, username: row.user.username };
    return {
      name: row.name,
      role: row.role,
      userId: row.userId,
      expiresAt: row.expiresAt?.getTime() ?? null,
      revoked: row.revokedAt !== null,
      user,
    };
  }

  async create(
    name: string,
    role: Role,
    expiresAt: Date | undefined,
    userId: string,
    caller: Principal,
  ): Promise<{ token: ApiToken; secret: string }> {
    const n = checkName(name, "name");
    const r = roleName(role);
    if (expiresAt && expiresAt.getTime() <= Date.now())
      throw new ValidationError("expires_at", "must be in the future");
    const owner = userId || caller.userId;
    if (!owner) throw new ValidationError("user_id", "is required for this caller");
    const user = await this.db.user.findUnique({ where: { id: owner } });
    if (!user) throw new ValidationError("user_id", `user "${owner}" does not exist`);
    if (user.disabled) throw new ValidationError("user_id", `user "${user.username}" is disabled`);
    if (r === "admin" && user.role !== "admin")
      throw new ValidationError("role", `exceeds the role of user "${user.username}" (viewer)`);
    const secret = `cpm_${randomBytes(32).toString("base64url")}`;
    const row = await this.cache.writing(() =>
      this.db.apiToken.create({
        data: {
          id: randomUUID(),
          name: n,
          tokenHash: hash(secret),
          prefix: secret.slice(0, 8),
          role: r,
          expiresAt: expiresAt ?? null,
          userId: user.id,
        },
      }),
    );
    return { token: toProto(row), secret };
  }

  async list(): Promise<ApiToken[]> {
    return (await this.db.apiToken.findMany({ orderBy: { createdAt: "asc" } })).map(toProto);
  }

  /** Revokes the token whose secret is `secret` (a session's sign-out); unknown: NOT_FOUND. */
  async revokeSecret(secret: string): Promise<void> {
    const tokenHash = hash(secret);
    const row = await this.db.apiToken.findUnique({ where: { tokenHash } });
    if (!row) throw notFound("API token", "of this call");
    await this.cache.writing(() => this.db.apiToken.update({ where: { tokenHash }, data: { revokedAt: new Date() } }));
  }

  async revoke(id: string): Promise<void> {
    if (!id) throw new ValidationError("id", "is required");
    const row = await this.db.apiToken.findUnique({ where: { id } });
    if (!row) throw notFound("API token", id);
    await this.cache.writing(() => this.db.apiToken.update({ where: { id }, data: { revokedAt: new Date() } }));
  }
}

function toProto(r: {
  id: string;
  name: string;
  role: string;
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  prefix: string;
  userId: string | null;
}): ApiToken {
  return {
    id: r.id,
    name: r.name,
    role: roleProto(r.role),
    createdAt: r.createdAt,
    expiresAt: r.expiresAt ?? undefined,
    revoked: r.revokedAt !== null,
    prefix: r.prefix,
    userId: r.userId ?? "",
  };
}
