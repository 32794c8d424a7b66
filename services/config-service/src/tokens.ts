import { createHash, randomBytes, randomUUID } from "node:crypto";
import { ApiToken, Role } from "@cpm/proto";
import { notFound, ValidationError, checkName } from "@cpm/core";
import type { Principal } from "@cpm/grpc-kit";
import type { Db } from "./db.ts";

const hash = (secret: string) => createHash("sha256").update(secret).digest("hex");

/**
 * API tokens of this instance. Secrets are random (256 bits) and only their sha256 is
 * stored, so a plain hash is the right tool (no password stretching needed).
 */
export class ApiTokens {
  constructor(private readonly db: Db) {}

  /** Makes sure `secret` is a valid admin token named "bootstrap" (idempotent). */
  async ensure(secret: string, name = "bootstrap"): Promise<void> {
    const tokenHash = hash(secret);
    const existing = await this.db.apiToken.findUnique({ where: { tokenHash } });
    if (existing) {
      if (existing.revokedAt || existing.role !== "admin") {
        await this.db.apiToken.update({ where: { tokenHash }, data: { revokedAt: null, role: "admin", expiresAt: null } });
      }
      return;
    }
    await this.db.apiToken.create({ data: { id: randomUUID(), name, tokenHash, prefix: secret.slice(0, 6), role: "admin" } });
  }

  async authenticate(secret: string): Promise<Principal | undefined> {
    const row = await this.db.apiToken.findUnique({ where: { tokenHash: hash(secret) } });
    if (!row || row.revokedAt || (row.expiresAt && row.expiresAt.getTime() <= Date.now())) return undefined;
    return { kind: "api_token", name: row.name, role: row.role === "admin" ? "admin" : "viewer" };
  }

  async create(name: string, role: Role, expiresAt: Date | undefined): Promise<{ token: ApiToken; secret: string }> {
    const n = checkName(name, "name");
    if (role !== Role.ROLE_ADMIN && role !== Role.ROLE_VIEWER) throw new ValidationError("role", "must be ROLE_ADMIN or ROLE_VIEWER");
    if (expiresAt && expiresAt.getTime() <= Date.now()) throw new ValidationError("expires_at", "must be in the future");
    const secret = `cpm_${randomBytes(32).toString("base64url")}`;
    const row = await this.db.apiToken.create({
      data: { id: randomUUID(), name: n, tokenHash: hash(secret), prefix: secret.slice(0, 8), role: role === Role.ROLE_ADMIN ? "admin" : "viewer", expiresAt: expiresAt ?? null },
    });
    return { token: toProto(row), secret };
  }

  async list(): Promise<ApiToken[]> {
    return (await this.db.apiToken.findMany({ orderBy: { createdAt: "asc" } })).map(toProto);
  }

  async revoke(id: string): Promise<void> {
    if (!id) throw new ValidationError("id", "is required");
    const row = await this.db.apiToken.findUnique({ where: { id } });
    if (!row) throw notFound("API token", id);
    await this.db.apiToken.update({ where: { id }, data: { revokedAt: new Date() } });
  }
}

function toProto(r: { id: string; name: string; role: string; createdAt: Date; expiresAt: Date | null; revokedAt: Date | null; prefix: string }): ApiToken {
  return {
    id: r.id,
    name: r.name,
    role: r.role === "admin" ? Role.ROLE_ADMIN : Role.ROLE_VIEWER,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt ?? undefined,
    revoked: r.revokedAt !== null,
    prefix: r.prefix,
  };
}
