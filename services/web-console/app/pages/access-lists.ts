import { create } from "@bufbuild/protobuf";
import {
  AccessListSatisfy,
  AccessListSchema,
  BasicAuthUserSchema,
  type AccessList,
} from "../../src/gen/cpm/config/v1/resources_pb.ts";
import { config } from "../api.ts";
import { lines, resourcePage, type ResourceKind } from "../crud.ts";
import { writesSynced, type Page } from "../shell.ts";

/**
 * Basic-auth users as "name:password" lines; a line with a name alone keeps that user's stored
 * password (the API never returns passwords nor their hashes).
 */
function readUsers(text: string) {
  return lines(text).map((line) => {
    const i = line.indexOf(":");
    return i < 0
      ? create(BasicAuthUserSchema, { username: line })
      : create(BasicAuthUserSchema, { username: line.slice(0, i), password: line.slice(i + 1) });
  });
}

const kind: ResourceKind<AccessList> = {
  route: "#/access-lists",
  title: "Access lists",
  singular: "access list",
  prefix: "access_list",
  load: async () => (await config.listAccessLists({})).accessLists,
  name: (x) => x.name,
  searchable: (x) => [x.name, x.description, ...x.allow, ...x.deny, ...x.users.map((u) => u.username)],
  searchHint: "name, address or user",
  columns: [
    { label: "Name", cell: (x) => x.name },
    { label: "Description", cell: (x) => x.description },
    { label: "Allow", cell: (x) => x.allow.join(", ") },
    { label: "Deny", cell: (x) => x.deny.join(", ") },
    { label: "Users", cell: (x) => x.users.map((u) => u.username).join(", ") },
    { label: "Satisfy", cell: (x) => (x.satisfy === AccessListSatisfy.ALL ? "all" : "any") },
  ],
  writable: writesSynced,
  form: (f, x) => {
    const name = f.text("name", "Name", x?.name ?? "");
    const description = f.text("description", "Description", x?.description ?? "");
    const allow = f.list("allow", "Allow", x?.allow ?? [], "Addresses or CIDR ranges, one per line.");
    const deny = f.list("deny", "Deny", x?.deny ?? [], "Addresses or CIDR ranges, one per line.");
    const users = f.area(
      "users",
      "Basic-auth users",
      x?.users.map((u) => u.username).join("\n") ?? "",
      "name:password, one per line; a name alone keeps its password.",
    );
    const satisfy = f.select(
      "satisfy",
      "Satisfy",
      [
        [AccessListSatisfy.ANY, "any (an allowed address or a user)"],
        [AccessListSatisfy.ALL, "all (an allowed address and a user)"],
      ],
      x?.satisfy || AccessListSatisfy.ANY,
    );
    const passAuth = f.check("pass_auth", "Pass the Authorization header upstream", x?.passAuth ?? false);
    return () => {
      const msg: AccessList = x ? { ...x } : create(AccessListSchema);
      Object.assign(msg, {
        name: name.value,
        description: description.value,
        allow: allow(),
        deny: deny(),
        users: readUsers(users.value),
        satisfy: satisfy(),
        passAuth: passAuth(),
      });
      return x ? config.updateAccessList({ accessList: msg }) : config.createAccessList({ accessList: msg });
    };
  },
  remove: { verb: "Delete", run: (x) => config.deleteAccessList({ id: x.id }) },
};

export const accessListsPage: Page = { route: kind.route, title: kind.title, open: (s) => resourcePage(kind, s) };
