import { Command, Option } from "commander";
import { AccessList, Certificate, L4ProxyHost, ProxyHost } from "@cpm/proto";
import type { Api } from "./api.ts";
import { Ctx, readDocumentFile, readTextFile, type Io } from "./context.ts";
import {
  ACCESS_LIST_FIELDS,
  CERTIFICATE_FIELDS,
  enumChoices,
  enumName,
  fieldValue,
  fromDoc,
  L4_PROXY_HOST_FIELDS,
  PROXY_HOST_FIELDS,
  toDoc,
  type FieldSpec,
  type References,
} from "./document.ts";
import { CliError, ExitCode, invalid } from "./exit-codes.ts";
import { formatTime } from "./output.ts";

interface Named {
  id: string;
  name: string;
}

/** One kind of synced resource as the CLI drives it: its fields, table columns and API calls. */
interface ResourceKind<T extends Named> {
  command: string;
  noun: string;
  /** Field path prefix of the server's messages (`proxy_host.domains[0]`). */
  field: string;
  fields: FieldSpec[];
  message: { fromPartial(x: object): T };
  columns: [string, (x: T, refs: References) => string][];
  list(api: Api): Promise<T[]>;
  /** The server's search (`list --query`), where the kind has one. */
  search?(api: Api, query: string): Promise<T[]>;
  create(api: Api, x: T): Promise<{ item: T | undefined; version: number }>;
  update(api: Api, x: T): Promise<{ item: T | undefined; version: number }>;
  remove(api: Api, id: string): Promise<number>;
}

const enabled = (x: { enabled?: boolean | undefined }) => (x.enabled === false ? "no" : "yes");
const list = (xs: string[]) => xs.join(",") || "-";
const ref = (refs: References, kind: "certificate" | "access_list", id: string) => (id ? refs.nameOf(kind, id) : "-");

const PROXY_HOSTS: ResourceKind<ProxyHost> = {
  command: "proxy-host",
  noun: "proxy host",
  field: "proxy_host",
  fields: PROXY_HOST_FIELDS,
  message: ProxyHost,
  columns: [
    ["NAME", (x) => x.name],
    ["DOMAINS", (x) => list(x.domains)],
    ["UPSTREAMS", (x) => list(x.upstreams)],
    ["CERTIFICATE", (x, r) => ref(r, "certificate", x.certificateId)],
    ["ACCESS LIST", (x, r) => ref(r, "access_list", x.accessListId)],
    ["ENABLED", enabled],
  ],
  list: async (api) => (await api.config("listProxyHosts", { pageSize: 0, pageToken: "", query: "" })).proxyHosts,
  search: async (api, query) => (await api.config("listProxyHosts", { pageSize: 0, pageToken: "", query })).proxyHosts,
  create: async (api, x) => {
    const r = await api.config("createProxyHost", { proxyHost: x });
    return { item: r.proxyHost, version: r.configVersion };
  },
  update: async (api, x) => {
    const r = await api.config("updateProxyHost", { proxyHost: x });
    return { item: r.proxyHost, version: r.configVersion };
  },
  remove: async (api, id) => (await api.config("deleteProxyHost", { id })).configVersion,
};

const L4_PROXY_HOSTS: ResourceKind<L4ProxyHost> = {
  command: "l4-host",
  noun: "L4 proxy host",
  field: "l4_proxy_host",
  fields: L4_PROXY_HOST_FIELDS,
  message: L4ProxyHost,
  columns: [
    ["NAME", (x) => x.name],
    ["PROTOCOL", (x) => enumName(L4_PROXY_HOST_FIELDS[1]!.enum!, x.protocol) ?? "tcp"],
    ["LISTEN", (x) => x.listenAddress],
    ["MATCHER", (x) => [enumName(L4_PROXY_HOST_FIELDS[4]!.enum!, x.matcher) ?? "none", ...x.matcherValues].join(" ")],
    ["UPSTREAMS", (x) => list(x.upstreams)],
    ["ENABLED", enabled],
  ],
  list: async (api) => (await api.config("listL4ProxyHosts", {})).l4ProxyHosts,
  create: async (api, x) => {
    const r = await api.config("createL4ProxyHost", { l4ProxyHost: x });
    return { item: r.l4ProxyHost, version: r.configVersion };
  },
  update: async (api, x) => {
    const r = await api.config("updateL4ProxyHost", { l4ProxyHost: x });
    return { item: r.l4ProxyHost, version: r.configVersion };
  },
  remove: async (api, id) => (await api.config("deleteL4ProxyHost", { id })).configVersion,
};

const CERTIFICATES: ResourceKind<Certificate> = {
  command: "certificate",
  noun: "certificate",
  field: "certificate",
  fields: CERTIFICATE_FIELDS,
  message: Certificate,
  columns: [
    ["NAME", (x) => x.name],
    ["TYPE", (x) => enumName(CERTIFICATE_FIELDS[1]!.enum!, x.type) ?? "-"],
    ["DOMAINS", (x) => list(x.domainNames)],
    ["EXPIRES", (x) => formatTime(x.expiresAt)],
  ],
  list: async (api) => (await api.config("listCertificates", { includePrivateKeys: false })).certificates,
  create: async (api, x) => {
    const r = await api.config("createCertificate", { certificate: x });
    return { item: r.certificate, version: r.configVersion };
  },
  update: async (api, x) => {
    const r = await api.config("updateCertificate", { certificate: x });
    return { item: r.certificate, version: r.configVersion };
  },
  remove: async (api, id) => (await api.config("deleteCertificate", { id })).configVersion,
};

const ACCESS_LISTS: ResourceKind<AccessList> = {
  command: "access-list",
  noun: "access list",
  field: "access_list",
  fields: ACCESS_LIST_FIELDS,
  message: AccessList,
  columns: [
    ["NAME", (x) => x.name],
    ["USERS", (x) => list(x.users.map((u) => u.username))],
    ["ALLOW", (x) => list(x.allow)],
    ["DENY", (x) => list(x.deny)],
    ["SATISFY", (x) => enumName(ACCESS_LIST_FIELDS[2]!.enum!, x.satisfy) ?? "any"],
  ],
  list: async (api) => (await api.config("listAccessLists", {})).accessLists,
  create: async (api, x) => {
    const r = await api.config("createAccessList", { accessList: x });
    return { item: r.accessList, version: r.configVersion };
  },
  update: async (api, x) => {
    const r = await api.config("updateAccessList", { accessList: x });
    return { item: r.accessList, version: r.configVersion };
  },
  remove: async (api, id) => (await api.config("deleteAccessList", { id })).configVersion,
};

export const RESOURCE_KINDS = [PROXY_HOSTS, L4_PROXY_HOSTS, CERTIFICATES, ACCESS_LISTS] as const;

/** Names <-> ids of certificates and access lists, loaded only when a kind has references. */
async function loadReferences(api: Api, fields: FieldSpec[]): Promise<References> {
  const kinds = new Set(fields.filter((f) => f.kind === "ref").map((f) => f.ref!));
  const all: { kind: "certificate" | "access_list"; items: Named[] }[] = [];
  if (kinds.has("certificate")) all.push({ kind: "certificate", items: await CERTIFICATES.list(api) });
  if (kinds.has("access_list")) all.push({ kind: "access_list", items: await ACCESS_LISTS.list(api) });
  return {
    idOf(kind, name, field) {
      const hit = all.find((a) => a.kind === kind)?.items.find((x) => x.name === name);
      if (!hit) throw invalid(field, `no ${kind.replace("_", " ")} named "${name}"`);
      return hit.id;
    },
    nameOf(kind, id) {
      return all.find((a) => a.kind === kind)?.items.find((x) => x.id === id)?.name ?? id;
    },
  };
}

/** The resource named `nameOrId` (its name first, else its id); NOT_FOUND (exit 2) otherwise. */
export function findByNameOrId<T extends Named>(items: T[], nameOrId: string, noun: string): T {
  const hit = items.find((x) => x.name === nameOrId) ?? items.find((x) => x.id === nameOrId);
  if (!hit) throw new CliError(ExitCode.NOT_FOUND, `${noun} "${nameOrId}" not found`);
  return hit;
}

const optionName = (f: FieldSpec) => (f.kind === "text" ? `${f.flag}-file` : f.flag!);
const camel = (flag: string) => flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/** Adds one option per field that has a flag (create and update take the same ones). */
function addFieldOptions(cmd: Command, fields: FieldSpec[]): Command {
  cmd.option("-f, --file <file>", "the whole resource as YAML or JSON (- for stdin); flags override it");
  for (const f of fields) {
    if (!f.flag || f.readOnly) continue;
    const help = f.help ?? f.key.replaceAll("_", " ");
    const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];
    switch (f.kind) {
      case "bool":
      case "enabled":
        cmd.option(`--${f.flag}`, help);
        cmd.option(`--no-${f.flag}`, `not ${help}`);
        break;
      case "strings":
        cmd.option(`--${f.flag} <value>`, help, collect);
        break;
      case "users":
        cmd.option(`--${f.flag} <name:password>`, help, collect);
        break;
      case "enum":
        cmd.addOption(new Option(`--${f.flag} <value>`, help).choices(enumChoices(f.enum!)));
        break;
      case "text":
        cmd.option(`--${optionName(f)} <path>`, `${help} (read from a file)`);
        break;
      default:
        cmd.option(`--${f.flag} <value>`, help);
    }
  }
  return cmd;
}

/** Message properties from the flags given on the command line. */
function fromFlags(
  fields: FieldSpec[],
  opts: Record<string, unknown>,
  refs: References,
  prefix: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    if (!f.flag || f.readOnly) continue;
    const v = opts[camel(optionName(f))];
    if (v === undefined) continue;
    const at = `--${optionName(f)}`;
    if (f.kind === "text") out[f.prop] = readTextFile(v as string, at);
    else if (f.kind === "users") {
      out[f.prop] = (v as string[]).map((s) => {
        const i = s.indexOf(":");
        if (i <= 0) throw invalid(at, `"${s.split(":")[0]}..." is not name:password`);
        return { username: s.slice(0, i), password: s.slice(i + 1), passwordHash: "" };
      });
    } else out[f.prop] = fieldValue(f, v, `${prefix}.${f.key}`, refs);
  }
  return out;
}

function fromFile(
  kind: ResourceKind<Named>,
  file: string | undefined,
  refs: References,
): Record<string, unknown> | undefined {
  if (!file) return undefined;
  return fromDoc(kind.fields, readDocumentFile(file), kind.field, refs);
}

/** `cpm <kind> list|get|create|update|delete`. */
export function resourceCommand(
  kind: ResourceKind<Named>,
  io: Io,
  run: (cmd: Command, fn: (ctx: Ctx) => Promise<void>) => Promise<void>,
): Command {
  const cmd = new Command(kind.command).description(`${kind.noun}s of the instance`);
  const view = (x: Named, refs: References) => ({ id: x.id, ...toDoc(kind.fields, x, refs, { view: true }) });

  const list = cmd.command("list").description(`list ${kind.noun}s, by name`);
  if (kind.search) list.option("--query <text>", "only those whose name or a domain contains <text>, ignoring case");
  list.action(async (o: { query?: string }, c: Command) =>
    run(c, async (ctx) => {
      const found = o.query !== undefined && kind.search ? kind.search(ctx.api, o.query) : kind.list(ctx.api);
      const items = [...(await found)].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const refs = await loadReferences(ctx.api, kind.fields);
      ctx.print(
        items.map((x) => view(x, refs)),
        () =>
          ctx.table(
            kind.columns.map(([h]) => h),
            items.map((x) => kind.columns.map(([, get]) => get(x, refs))),
          ),
      );
    }),
  );

  cmd
    .command("get <name-or-id>")
    .description(`one ${kind.noun}`)
    .action(async (nameOrId: string, _o, c: Command) =>
      run(c, async (ctx) => {
        const x = findByNameOrId(await kind.list(ctx.api), nameOrId, kind.noun);
        ctx.print(view(x, await loadReferences(ctx.api, kind.fields)));
      }),
    );

  addFieldOptions(
    cmd.command("create").description(`create a ${kind.noun} from flags and/or -f file`),
    kind.fields,
  ).action(async (opts: Record<string, unknown>, c: Command) =>
    run(c, async (ctx) => {
      const refs = await loadReferences(ctx.api, kind.fields);
      const props = {
        ...fromFile(kind, opts.file as string | undefined, refs),
        ...fromFlags(kind.fields, opts, refs, kind.field),
      };
      const { item, version } = await kind.create(ctx.api, kind.message.fromPartial(props));
      report(ctx, "created", kind, item, version, refs, view);
    }),
  );

  addFieldOptions(
    cmd
      .command("update <name-or-id>")
      .description(`change a ${kind.noun}: the flags given, or the whole resource from -f file`),
    kind.fields,
  ).action(async (nameOrId: string, opts: Record<string, unknown>, c: Command) =>
    run(c, async (ctx) => {
      const existing = findByNameOrId(await kind.list(ctx.api), nameOrId, kind.noun);
      const refs = await loadReferences(ctx.api, kind.fields);
      const base = fromFile(kind, opts.file as string | undefined, refs) ?? existing;
      const props = { ...base, ...fromFlags(kind.fields, opts, refs, kind.field), id: existing.id };
      const { item, version } = await kind.update(ctx.api, kind.message.fromPartial(props));
      report(ctx, "updated", kind, item, version, refs, view);
    }),
  );

  cmd
    .command("delete <name-or-id>")
    .description(`delete a ${kind.noun}`)
    .action(async (nameOrId: string, _o, c: Command) =>
      run(c, async (ctx) => {
        const x = findByNameOrId(await kind.list(ctx.api), nameOrId, kind.noun);
        const version = await kind.remove(ctx.api, x.id);
        ctx.print(
          { deleted: x.name, id: x.id, config_version: version },
          () => `deleted ${kind.noun} "${x.name}" (version ${version})\n`,
        );
      }),
    );
  void io;
  return cmd;
}

function report(
  ctx: Ctx,
  what: string,
  kind: ResourceKind<Named>,
  item: Named | undefined,
  version: number,
  refs: References,
  view: (x: Named, r: References) => object,
): void {
  if (!item) throw new CliError(ExitCode.UNAVAILABLE, "the server answered without the resource");
  ctx.print(
    { ...view(item, refs), config_version: version },
    () => `${what} ${kind.noun} "${item.name}" (id ${item.id}, version ${version})\n`,
  );
}
