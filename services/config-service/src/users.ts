import { randomUUID } from "node:crypto";
import bcrypt from "bcryptjs";
import { Role, type User } from "@cpm/proto";
import { alreadyExists, failedPrecondition, notFound, ValidationError } from "@cpm/core";
import type { Db } from "./db.ts";
import { tokenCacheOf, type TokenCache } from "./token-cache.ts";

const USERNAME = /^[A-Za-z0-9._@-]{3,64}$/;
const MIN_PASSWORD = 12;

export type RoleName = "admin" | "viewer";

export function roleName(role: Role, field = "role"): RoleName {
  if (role === Role.ROLE_ADMIN) return "admin";
  if (role === Role.ROLE_VIEWER) return "viewer";
  throw new ValidationError(field, "must be ROLE_ADMIN or ROLE_VIEWER");
}

export const roleProto = (r: string): Role => (r === "admin" ? Role.ROLE_ADMIN : Role.ROLE_VIEWER);

/** bcrypt reads only the first 72 bytes: a longer password would be cut without a word. */
const MAX_PASSWORD_BYTES = 72;
const CONTROL = /\p{Cc}/u;

async function hashPassword(password: string, field: string): Promise<string | null> {
  if (!password) return null;
  if ([...password].length < MIN_PASSWORD)
    throw new ValidationError(field, `must be at least ${MIN_PASSWORD} characters`);
  const bytes = Buffer.byteLength(password, "utf8");
  if (bytes > MAX_PASSWORD_BYTES)
    throw new ValidationError(
      field,
      `must be at most ${MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt's limit), got ${bytes}`,
    );
  if (CONTROL.test(password)) throw new ValidationError(field, "must not contain control characters");
  return bcrypt.hash(password, 10);
}

let nobody: Promise<string> | undefined;
/** A hash no password is checked against for real: an unknown user costs one comparison too. */
const nobodyHash = () => (nobody ??= bcrypt.hash(`nobody-${Math.random()}`, 10));

type Row = { id: string; username: string; role: string; disabled: boolean; createdAt: Date; updatedAt: Date };
const toProto = (r: Row): User => ({
  id: r.id,
  username: r.username,
  role: roleProto(r.role),
  disabled: r.disabled,
  createdAt: r.createdAt,
  updatedAt: r.updatedAt,
});

/**
 * Users of this instance (never synced): admin users write, viewers only read. A user's
 * role caps the role of its tokens; disabling a user stops its tokens at once.
 */
export class Users {
  /** Every write here ends by emptying it: the token check sees the change at once. */
  private readonly tokenCache: TokenCache;

  constructor(private readonly db: Db) {
    this.tokenCache = tokenCacheOf(db);
  }

  /** The user that owns the bootstrap token (CPM_ADMIN_TOKEN). */
  async ensureAdmin(): Promise<string> {
    const existing = await this.db.user.findUnique({ where: { username: "admin" } });
    if (existing) return existing.id;
    return (
      await this.tokenCache.writing(() =>
        this.db.user.create({ data: { id: randomUUID(), username: "admin", role: "admin" } }),
      )
    ).id;
  }

  async create(username: string, role: Role, password: string): Promise<User> {
    const u = username.trim();
    if (!USERNAME.test(u))
      throw new ValidationError("username", `"${username}" must be 3..64 letters, digits or . _ @ -`);
    const r = roleName(role);
    const passwordHash = await hashPassword(password, "password");
    if (await this.db.user.findUnique({ where: { username: u } }))
      throw alreadyExists(`username: a user named "${u}" already exists`);
    const now = new Date();
    return toProto(
      await this.tokenCache.writing(() =>
        this.db.user.create({
          data: { id: randomUUID(), username: u, role: r, passwordHash, createdAt: now, updatedAt: now },
        }),
      ),
    );
  }

  /**
   * The enabled user `username` whose password is `password`; undefined otherwise (unknown
   * user, no password, wrong password, disabled), and in about the same time whichever it is:
   * an unknown user's attempt is compared with a hash of its own.
   */
  async checkPassword(username: string, password: string): Promise<Row | undefined> {
    const row = await this.db.user.findUnique({ where: { username: username.trim() } });
    const hash = row?.passwordHash ?? (await nobodyHash());
    const matches = Buffer.byteLength(password, "utf8") <= MAX_PASSWORD_BYTES && (await bcrypt.compare(password, hash));
    return row && row.passwordHash && matches && !row.disabled ? row : undefined;
  }

  async get(id: string): Promise<User> {
    if (!id) throw new ValidationError("id", "is required");
    const row = await this.db.user.findUnique({ where: { id } });
    if (!row) throw notFound("user", id);
    return toProto(row);
  }

  async list(): Promise<User[]> {
    return (await this.db.user.findMany({ orderBy: { username: "asc" } })).map(toProto);
  }

  async update(
    id: string,
    role: Role,
    disabled: boolean,
    password: string,
    callerUserId: string | undefined,
  ): Promise<User> {
    const current = await this.get(id);
    const r = roleName(role);
    if (id === callerUserId && (disabled || r !== "admin")) {
      throw failedPrecondition("a user cannot disable or demote itself (ask another admin)");
    }
    const passwordHash = await hashPassword(password, "password");
    const removesAdmin = (disabled || r !== "admin") && current.role === Role.ROLE_ADMIN;
    const row = await this.tokenCache.writing(() =>
      this.db.$transaction(async (tx) => {
        if (removesAdmin) await keepOneAdmin(tx, id);
        return tx.user.update({
          where: { id },
          data: { role: r, disabled, updatedAt: new Date(), ...(passwordHash ? { passwordHash } : {}) },
        });
      }),
    );
    return toProto(row);
  }

  async delete(id: string, callerUserId: string | undefined): Promise<void> {
    const current = await this.get(id);
    if (id === callerUserId) throw failedPrecondition("a user cannot delete itself");
    await this.tokenCache.writing(() =>
      this.db.$transaction(async (tx) => {
        if (current.role === Role.ROLE_ADMIN) await keepOneAdmin(tx, id);
        await tx.user.delete({ where: { id } });
      }),
    );
  }
}

type Tx = Parameters<Parameters<Db["$transaction"]>[0]>[0];

/**
 * Refuses, inside the transaction that makes the change, a change that would leave no
 * enabled admin. The enabled admins' rows are written (unchanged) first: that takes their
 * row locks on PostgreSQL and the write lock on SQLite, so two concurrent demotions of the
 * last two admins run one after the other and the second sees the first.
 */
async function keepOneAdmin(tx: Tx, exceptId: string): Promise<void> {
  const enabledAdmin = { role: "admin", disabled: false };
  await tx.user.updateMany({ where: enabledAdmin, data: enabledAdmin });
  const others = await tx.user.count({ where: { ...enabledAdmin, NOT: { id: exceptId } } });
  if (others === 0) throw failedPrecondition("this is the last enabled admin user");
}
