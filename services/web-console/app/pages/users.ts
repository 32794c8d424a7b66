import { Role, type User } from "../../src/gen/cpm/config/v1/account_service_pb.ts";
import { account } from "../api.ts";
import { resourcePage, when, type ResourceKind } from "../crud.ts";
import { writesLocal, type Page } from "../shell.ts";

export const ROLES: [Role, string][] = [
  [Role.ADMIN, "admin"],
  [Role.VIEWER, "viewer"],
];
export const roleName = (r: Role) => ROLES.find(([v]) => v === r)?.[1] ?? "none";

const kind: ResourceKind<User> = {
  route: "#/users",
  title: "Users",
  singular: "user",
  prefix: "user",
  load: async () => (await account.listUsers({})).users,
  name: (x) => x.username,
  columns: [
    { label: "Username", cell: (x) => x.username },
    { label: "Role", cell: (x) => roleName(x.role) },
    { label: "Disabled", cell: (x) => (x.disabled ? "yes" : "no") },
    { label: "Created", cell: (x) => when(x.createdAt) },
  ],
  writable: writesLocal,
  intro: () => "The users of this instance (users are never synced).",
  form: (f, x) => {
    const username = x ? undefined : f.text("username", "Username", "", { autocomplete: "off" });
    const role = f.select("role", "Role", ROLES, x?.role || Role.VIEWER);
    const password = f.text("password", x ? "New password" : "Password", "", {
      type: "password",
      autocomplete: "new-password",
      hint: x ? "Leave empty to keep the password." : "At least twelve characters.",
    });
    const disabled = x ? f.check("disabled", "Disabled", x.disabled) : undefined;
    return async () => {
      if (x) await account.updateUser({ id: x.id, role: role(), disabled: disabled!(), password: password.value });
      else await account.createUser({ username: username!.value, role: role(), password: password.value });
      return {};
    };
  },
  remove: { verb: "Delete", run: (x) => account.deleteUser({ id: x.id }) },
};

export const usersPage: Page = {
  route: kind.route,
  title: kind.title,
  visible: (s) => s.admin,
  open: (s) => resourcePage(kind, s),
};
