import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ApiToken } from "../../src/gen/cpm/config/v1/account_service_pb.ts";
import { account } from "../api.ts";
import { h } from "../dom.ts";
import { resourcePage, when, type ResourceKind } from "../crud.ts";
import { writesLocal, type Page } from "../shell.ts";
import { ROLES, roleName } from "./users.ts";

let usernames = new Map<string, string>();

const kind: ResourceKind<ApiToken> = {
  route: "#/tokens",
  title: "API tokens",
  singular: "API token",
  prefix: "api_token",
  load: async () => {
    const [tokens, users] = await Promise.all([account.listApiTokens({}), account.listUsers({})]);
    usernames = new Map(users.users.map((u) => [u.id, u.username]));
    return tokens.apiTokens;
  },
  name: (x) => x.name,
  searchable: (x) => [x.name, x.prefix, usernames.get(x.userId) ?? ""],
  searchHint: "name, prefix or user",
  columns: [
    { label: "Name", cell: (x) => x.name },
    { label: "Role", cell: (x) => roleName(x.role) },
    { label: "User", cell: (x) => (x.userId ? (usernames.get(x.userId) ?? x.userId) : "none") },
    { label: "Prefix", cell: (x) => h("code", {}, x.prefix) },
    { label: "Expires", cell: (x) => when(x.expiresAt) },
    { label: "State", cell: (x) => (x.revoked ? h("span", { class: "bad" }, "revoked") : "active") },
  ],
  writable: writesLocal,
  intro: () => "This instance's API tokens. A token's secret is shown once, when it is created.",
  editable: () => false,
  form: (f) => {
    const name = f.text("name", "Name", "");
    const role = f.select("role", "Role", ROLES, ROLES[1]![0]);
    const user = f.choice("user_id", "User", [["", "none"], ...usernames.entries()], "");
    const expires = f.text("expires_at", "Expires", "", { type: "date", hint: "Empty: never." });
    return async () => {
      const r = await account.createApiToken({
        name: name.value,
        role: role(),
        userId: user(),
        expiresAt: expires.value ? timestampFromDate(new Date(`${expires.value}T00:00:00`)) : undefined,
      });
      const secret = h("input", { type: "text", readonly: true, value: r.secret, class: "secret" });
      return {
        show: h(
          "div",
          { class: "field" },
          h("label", { for: "token-secret" }, `Secret of ${r.apiToken?.name ?? name.value}`),
          Object.assign(secret, { id: "token-secret" }),
          h("p", { class: "muted" }, "Copy it now: it is not shown again."),
        ),
      };
    };
  },
  remove: { verb: "Revoke", run: (x) => account.revokeApiToken({ id: x.id }), when: (x) => !x.revoked },
};

export const tokensPage: Page = {
  route: kind.route,
  title: kind.title,
  visible: (s) => s.admin,
  open: (s) => resourcePage(kind, s),
};
