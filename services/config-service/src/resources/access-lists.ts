import { randomUUID } from "node:crypto";
import bcrypt from "bcryptjs";
import { AccessList, type BasicAuthUser } from "@cpm/proto";
import { alreadyExists, normalizeAccessList, notFound, ValidationError } from "@cpm/core";
import { inUse } from "./in-use.ts";
import type { Collection, ConfigHandlers, CrudMethods, ResourceDeps } from "./kind.ts";
import { accessListRow, type ConfigStore, type Tx } from "../store.ts";

const F = "access_list";

/**
 * bcrypt cost for basic-auth passwords. Caddy checks the hash on requests (with its hash
 * cache in front, see caddy-renderer's render/access.ts), so the cost is a balance between
 * brute-force resistance and the CPU each authenticated request costs: 10 (2^10 rounds).
 */
export const BCRYPT_COST = 10;

/** What API clients see: users by name only, never a password or a hash. */
export function redactAccessList(a: AccessList): AccessList {
  return { ...a, users: a.users.map((u) => ({ username: u.username, password: "", passwordHash: "" })) };
}

/**
 * Access list CRUD.
 * - Passwords are bcrypt-hashed here, before the write (outside the transaction: hashing is
 *   slow and needs nothing from the database); the database and snapshots hold hashes only.
 * - Update: the users given replace the list (users left out are removed); a user given
 *   without a password keeps its stored hash (matched by exact username); a user that did
 *   not exist needs a password (renaming a user makes it a new user).
 * - Names are unique (ALREADY_EXISTS); deleting a list that proxy hosts use fails with
 *   FAILED_PRECONDITION naming those hosts.
 */
export class AccessLists implements Collection<AccessList> {
  constructor(private readonly store: ConfigStore) {}

  async list(): Promise<AccessList[]> {
    const rows = await this.store.db.accessList.findMany({ orderBy: { name: "asc" } });
    return rows.map((r) => AccessList.fromJSON(JSON.parse(r.data)));
  }

  async get(id: string): Promise<AccessList> {
    if (!id) throw new ValidationError("id", "is required");
    const row = await this.store.db.accessList.findUnique({ where: { id } });
    if (!row) throw notFound("access list", id);
    return AccessList.fromJSON(JSON.parse(row.data));
  }

  async create(input: AccessList | undefined) {
    if (!input) throw new ValidationError(F, "is required");
    const acl = normalizeAccessList(input, F, { source: "api" });
    acl.users.forEach((u, i) => {
      if (!u.password) throw new ValidationError(`${F}.users[${i}].password`, "is required for a new user");
    });
    const hashed = await hashPasswords(acl.users);
    return this.store.write(async (tx, now, changes) => {
      const created = stored({ ...acl, id: randomUUID(), users: hashed, createdAt: now, updatedAt: now });
      await checkName(tx, created);
      await tx.accessList.create({ data: accessListRow(created, now) });
      changes.put("accessLists", created);
      return created;
    });
  }

  async update(input: AccessList | undefined) {
    if (!input) throw new ValidationError(F, "is required");
    if (!input.id) throw new ValidationError(`${F}.id`, "is required");
    const acl = normalizeAccessList(input, F, { source: "api" });
    const hashed = await hashPasswords(acl.users);
    return this.store.write(async (tx, now, changes) => {
      const existing = await tx.accessList.findUnique({ where: { id: acl.id } });
      if (!existing) throw notFound("access list", acl.id);
      const before = AccessList.fromJSON(JSON.parse(existing.data));
      const users = hashed.map((u, i) => {
        if (u.passwordHash) return u;
        const kept = before.users.find((b) => b.username === u.username);
        if (!kept?.passwordHash)
          throw new ValidationError(
            `${F}.users[${i}].password`,
            `is required for a new user ("${u.username}" has no password yet)`,
          );
        return { username: u.username, password: "", passwordHash: kept.passwordHash };
      });
      const updated = stored({ ...acl, users, createdAt: existing.createdAt, updatedAt: now });
      await checkName(tx, updated);
      const row = accessListRow(updated, now);
      await tx.accessList.update({ where: { id: acl.id }, data: { ...row, id: undefined } });
      changes.put("accessLists", updated);
      return updated;
    });
  }

  delete(id: string) {
    if (!id) throw new ValidationError("id", "is required");
    return this.store.write(async (tx, _now, changes) => {
      const existing = await tx.accessList.findUnique({ where: { id } });
      if (!existing) throw notFound("access list", id);
      const users = await tx.proxyHost.findMany({
        where: { accessListId: id },
        orderBy: { name: "asc" },
        select: { name: true },
      });
      const used = inUse(
        "access list",
        existing.name,
        [{ kind: "proxy host", names: users.map((h) => h.name) }],
        "detach it first",
      );
      if (used) throw used;
      await tx.accessList.delete({ where: { id } });
      changes.remove("accessLists", id);
    });
  }
}

/** ConfigService handlers for access lists: callers see the users by name only (redactAccessList). */
export function accessListHandlers(deps: ResourceDeps): ConfigHandlers<CrudMethods<"AccessList">> {
  const acls = new AccessLists(deps.store);
  return {
    createAccessList: async (req) => {
      const { result, version } = await acls.create(req.accessList);
      return { accessList: redactAccessList(result), configVersion: version };
    },
    getAccessList: async (req) => ({ accessList: redactAccessList(await acls.get(req.id)) }),
    listAccessLists: async () => ({ accessLists: (await acls.list()).map(redactAccessList) }),
    updateAccessList: async (req) => {
      const { result, version } = await acls.update(req.accessList);
      return { accessList: redactAccessList(result), configVersion: version };
    },
    deleteAccessList: async (req) => ({ configVersion: (await acls.delete(req.id)).version }),
  };
}

/** Hashes each given clear-text password; users without one are returned without a hash. */
async function hashPasswords(users: BasicAuthUser[]): Promise<BasicAuthUser[]> {
  const out: BasicAuthUser[] = [];
  // One at a time: bcryptjs yields to the event loop between rounds, and a burst of
  // parallel hashes would only compete for the same CPU.
  for (const u of users) {
    out.push({
      username: u.username,
      password: "",
      passwordHash: u.password ? await bcrypt.hash(u.password, BCRYPT_COST) : "",
    });
  }
  return out;
}

/** The form kept in the database (and in snapshots): checked as a stored entry must be. */
function stored(a: AccessList): AccessList {
  return normalizeAccessList(a, F);
}

async function checkName(tx: Tx, a: AccessList): Promise<void> {
  const sameName = await tx.accessList.findFirst({ where: { name: a.name, NOT: { id: a.id } } });
  if (sameName) throw alreadyExists(`${F}.name: an access list named "${a.name}" already exists`);
}
