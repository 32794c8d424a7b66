import { Command, CommanderError, Option } from "commander";
import {
  certificateStatusToJSON,
  Compatibility,
  compatibilityIssueCodeToJSON,
  Role,
  type CertificateSyncStatus,
  type ImportConfigResponse,
  type ResourceDiff,
  type SlaveStatus,
} from "@cpm/proto";
import { RELEASE } from "@cpm/core/release";
import { Ctx, readDocumentFile, type Io } from "./context.ts";
import { exportDocument, importDocument, settingsFromDoc, settingsToDoc } from "./document.ts";
import { CliError, describeFailure, ExitCode, invalid } from "./exit-codes.ts";
import { completionScript } from "./completion.ts";
import { formatDocument, formatTable, formatTime, OUTPUT_FORMATS } from "./output.ts";
import { findByNameOrId, RESOURCE_KINDS, resourceCommand } from "./resources.ts";

const ROLES: Record<string, Role> = { admin: Role.ROLE_ADMIN, viewer: Role.ROLE_VIEWER };
const roleName = (r: Role) => (r === Role.ROLE_ADMIN ? "admin" : r === Role.ROLE_VIEWER ? "viewer" : "-");

/** `cpm`'s command tree; `run` reports every failure and records its exit code. */
export function buildProgram(io: Io, exit: { code: ExitCode }): Command {
  const program = new Command("cpm")
    .description(
      "Operate a Caddy Proxy Manager instance: resources, settings, accounts, sync status, export and import",
    )
    .addOption(new Option("--api <host:port>", "config-service API (env CPM_API; default 127.0.0.1:50051)"))
    .addOption(new Option("--token <token>", "API token (env CPM_TOKEN)"))
    .addOption(
      new Option(
        "--dispatcher <host:port>",
        "the master's sync-dispatcher (env CPM_DISPATCHER; default 127.0.0.1:50053)",
      ),
    )
    .option("--tls", "TLS to the API and the dispatcher (env CPM_TLS)")
    .option("--ca <file>", "CA bundle that verifies the server (env CPM_CA; implies --tls)")
    .addOption(new Option("-o, --output <format>", "output format").choices(OUTPUT_FORMATS).default("table"))
    .version(`cpm ${RELEASE}`, "-V, --version", "print the release of this cpm")
    .showHelpAfterError()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .exitOverride();

  const run = async (cmd: Command, fn: (ctx: Ctx) => Promise<void>) => {
    const ctx = new Ctx(io, cmd);
    try {
      await fn(ctx);
    } catch (err) {
      const f = describeFailure(err);
      io.stderr(`cpm: ${f.message}\n`);
      exit.code = f.code;
    } finally {
      ctx.close();
    }
  };

  for (const kind of RESOURCE_KINDS) program.addCommand(resourceCommandFor(kind, io, run));
  program.addCommand(settingsCommand(run));
  program.addCommand(userCommand(run));
  program.addCommand(tokenCommand(run));
  program.addCommand(syncCommand(io, run));

  program
    .command("export")
    .description("the whole synced configuration as one YAML (or JSON with -o json) document, stable for diffs (admin)")
    .option("--include-private-keys", "include imported certificates' private keys")
    .action(async (opts: { includePrivateKeys?: boolean }, c: Command) =>
      run(c, async (ctx) => {
        const { snapshot } = await ctx.api.config("getSnapshot", {}, 60_000);
        if (!snapshot) throw new CliError(ExitCode.UNAVAILABLE, "the server answered without a snapshot");
        const doc = exportDocument(snapshot, { privateKeys: opts.includePrivateKeys === true });
        io.stdout(formatDocument(doc, ctx.format === "json" ? "json" : "yaml"));
      }),
    );

  program
    .command("import <file>")
    .description(
      "replace the whole synced configuration with a document from `cpm export` (- for stdin), in one committed version (admin)",
    )
    .option("--dry-run", "print what would change, write nothing")
    .action(async (file: string, opts: { dryRun?: boolean }, c: Command) =>
      run(c, async (ctx) => {
        const config = importDocument(readDocumentFile(file));
        const r = await ctx.api.config("importConfig", { config, dryRun: opts.dryRun === true }, 120_000);
        ctx.print(importReportDoc(r), () => importReportText(r, opts.dryRun === true));
      }),
    );

  program
    .command("completion <shell>")
    .description("shell completion script: bash or zsh (e.g. source <(cpm completion bash))")
    .action(async (shell: string, _o, c: Command) =>
      run(c, () => {
        if (shell !== "bash" && shell !== "zsh")
          throw new CliError(ExitCode.USAGE, `completion: "${shell}" is not bash or zsh`);
        io.stdout(completionScript(program, shell));
        return Promise.resolve();
      }),
    );
  // Commands built on their own (addCommand) do not inherit these: every level reports
  // usage errors through `io` and returns instead of exiting the process.
  const configure = (cmd: Command) => {
    cmd.exitOverride().configureOutput({ writeOut: io.stdout, writeErr: io.stderr }).showHelpAfterError();
    cmd.commands.forEach(configure);
  };
  configure(program);
  return program;
}

function resourceCommandFor(
  kind: (typeof RESOURCE_KINDS)[number],
  io: Io,
  run: (cmd: Command, fn: (ctx: Ctx) => Promise<void>) => Promise<void>,
): Command {
  // Each kind is a ResourceKind of its own message; the builder only needs their common part.
  return resourceCommand(kind as never, io, run);
}
type Run = (cmd: Command, fn: (ctx: Ctx) => Promise<void>) => Promise<void>;

function settingsCommand(run: Run): Command {
  const cmd = new Command("settings").description("synced settings");
  cmd
    .command("get")
    .description("the settings, defaults filled")
    .action(async (_o, c: Command) =>
      run(c, async (ctx) => {
        const { settings } = await ctx.api.config("getSettings", {});
        ctx.print(settingsToDoc(settings));
      }),
    );
  cmd
    .command("update")
    .description("replace the whole settings from a file (sections left out return to their defaults)")
    .requiredOption("-f, --file <file>", "settings as YAML or JSON, as `cpm settings get -o yaml` prints them")
    .action(async (opts: { file: string }, c: Command) =>
      run(c, async (ctx) => {
        const settings = settingsFromDoc(readDocumentFile(opts.file), "settings");
        const r = await ctx.api.config("updateSettings", { settings });
        ctx.print(
          { ...settingsToDoc(r.settings), config_version: r.configVersion },
          () => `settings updated (version ${r.configVersion})\n`,
        );
      }),
    );
  return cmd;
}

const role = (raw: string) => {
  const r = ROLES[raw];
  if (r === undefined) throw invalid("--role", `"${raw}" is not admin or viewer`);
  return r;
};

function userCommand(run: Run): Command {
  const cmd = new Command("user").description("users of this instance (never synced; admin)");
  const userDoc = (u: {
    id: string;
    username: string;
    role: Role;
    disabled: boolean;
    createdAt?: Date | undefined;
  }) => ({
    id: u.id,
    username: u.username,
    role: roleName(u.role),
    disabled: u.disabled,
    created_at: formatTime(u.createdAt),
  });
  const users = async (ctx: Ctx) =>
    (await ctx.api.account("listUsers", {})).users.map((u) => ({ ...u, name: u.username }));
  cmd.command("list").action(async (_o, c: Command) =>
    run(c, async (ctx) => {
      const us = await users(ctx);
      ctx.print(us.map(userDoc), () =>
        formatTable(
          ["USERNAME", "ROLE", "DISABLED", "ID"],
          us.map((u) => [u.username, roleName(u.role), u.disabled ? "yes" : "no", u.id]),
        ),
      );
    }),
  );
  cmd
    .command("get <username-or-id>")
    .action(async (who: string, _o, c: Command) =>
      run(c, async (ctx) => ctx.print(userDoc(findByNameOrId(await users(ctx), who, "user")))),
    );
  cmd
    .command("create <username>")
    .addOption(new Option("--role <role>", "admin or viewer").choices(Object.keys(ROLES)).makeOptionMandatory())
    .option("--password <password>", "optional login password (12+ characters)")
    .action(async (username: string, opts: { role: string; password?: string }, c: Command) =>
      run(c, async (ctx) => {
        const { user } = await ctx.api.account("createUser", {
          username,
          role: role(opts.role),
          password: opts.password ?? "",
        });
        ctx.print(userDoc(user!), () => `created user "${user!.username}" (id ${user!.id})\n`);
      }),
    );
  cmd
    .command("update <username-or-id>")
    .addOption(new Option("--role <role>", "admin or viewer").choices(Object.keys(ROLES)))
    .option("--disabled", "disable the user (its tokens stop at once)")
    .option("--no-disabled", "enable the user")
    .option("--password <password>", "new password")
    .action(async (who: string, opts: { role?: string; disabled?: boolean; password?: string }, c: Command) =>
      run(c, async (ctx) => {
        const u = findByNameOrId(await users(ctx), who, "user");
        const req = {
          id: u.id,
          role: opts.role ? role(opts.role) : u.role,
          disabled: opts.disabled ?? u.disabled,
          password: opts.password ?? "",
        };
        const { user } = await ctx.api.account("updateUser", req);
        ctx.print(userDoc(user!), () => `updated user "${user!.username}"\n`);
      }),
    );
  cmd.command("delete <username-or-id>").action(async (who: string, _o, c: Command) =>
    run(c, async (ctx) => {
      const u = findByNameOrId(await users(ctx), who, "user");
      await ctx.api.account("deleteUser", { id: u.id });
      ctx.print({ deleted: u.username, id: u.id }, () => `deleted user "${u.username}"\n`);
    }),
  );
  return cmd;
}

/** "30d", "12h", "90m" from now, or an ISO 8601 instant. */
export function parseExpiry(raw: string, now = new Date()): Date {
  const m = /^(\d+)([dhm])$/.exec(raw);
  if (m)
    return new Date(now.getTime() + Number(m[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[m[2] as "d" | "h" | "m"]);
  const d = new Date(raw);
  if (Number.isNaN(d.getTime()))
    throw invalid("--expires", `"${raw}" is neither a duration (30d, 12h, 90m) nor an ISO 8601 time`);
  return d;
}

function tokenCommand(run: Run): Command {
  const cmd = new Command("token").description("API tokens of this instance (never synced; admin)");
  cmd.command("list").action(async (_o, c: Command) =>
    run(c, async (ctx) => {
      const { apiTokens } = await ctx.api.account("listApiTokens", {});
      const doc = apiTokens.map((t) => ({
        id: t.id,
        name: t.name,
        role: roleName(t.role),
        user_id: t.userId,
        prefix: t.prefix,
        expires_at: formatTime(t.expiresAt),
        revoked: t.revoked,
      }));
      ctx.print(doc, () =>
        formatTable(
          ["NAME", "ROLE", "PREFIX", "EXPIRES", "REVOKED", "ID"],
          apiTokens.map((t) => [
            t.name,
            roleName(t.role),
            t.prefix || "-",
            formatTime(t.expiresAt),
            t.revoked ? "yes" : "no",
            t.id,
          ]),
        ),
      );
    }),
  );
  cmd
    .command("create <name>")
    .addOption(
      new Option("--role <role>", "admin or viewer (at most the user's)")
        .choices(Object.keys(ROLES))
        .makeOptionMandatory(),
    )
    .option("--user <username-or-id>", "the user it acts for (default: the caller's)")
    .option("--expires <when>", "30d, 12h, 90m or an ISO 8601 time (default: never)")
    .action(async (name: string, opts: { role: string; user?: string; expires?: string }, c: Command) =>
      run(c, async (ctx) => {
        const expiresAt = opts.expires ? parseExpiry(opts.expires) : undefined;
        let userId = "";
        if (opts.user) {
          const us = (await ctx.api.account("listUsers", {})).users.map((u) => ({ ...u, name: u.username }));
          userId = findByNameOrId(us, opts.user, "user").id;
        }
        const r = await ctx.api.account("createApiToken", { name, role: role(opts.role), expiresAt, userId });
        // The secret is shown once, here; it is never stored or shown again.
        ctx.print(
          { id: r.apiToken?.id, name, secret: r.secret },
          () => `created token "${name}" (id ${r.apiToken?.id}); its secret, shown only now:\n${r.secret}\n`,
        );
      }),
    );
  cmd.command("revoke <name-or-id>").action(async (who: string, _o, c: Command) =>
    run(c, async (ctx) => {
      const ts = (await ctx.api.account("listApiTokens", {})).apiTokens.filter((t) => !t.revoked);
      const t = findByNameOrId(ts, who, "token");
      await ctx.api.account("revokeApiToken", { id: t.id });
      ctx.print({ revoked: t.name, id: t.id }, () => `revoked token "${t.name}"\n`);
    }),
  );
  return cmd;
}

/** A slave's compatibility as a word: ok, INCOMPATIBLE, or "-" before its stream first opened. */
function compatibilityWord(s: SlaveStatus): string {
  if (s.compatibility === Compatibility.COMPATIBILITY_OK) return "ok";
  if (s.compatibility === Compatibility.COMPATIBILITY_INCOMPATIBLE) return "INCOMPATIBLE";
  return "-";
}

/** One row per slave. */
export function syncStatusTable(slaves: SlaveStatus[]): string {
  return formatTable(
    [
      "SLAVE",
      "CONNECTED",
      "RELEASE",
      "SCHEMA",
      "COMPAT",
      "MASTER",
      "ACKED",
      "LAG",
      "LAST SYNC",
      "FAILURES",
      "LAST ERROR",
    ],
    slaves.map((s) => [
      s.name,
      s.connected ? "yes" : "no",
      s.release || "-",
      s.schemaVersion ? String(s.schemaVersion) : "-",
      compatibilityWord(s),
      String(s.masterVersion),
      String(s.ackedVersion),
      String(s.lag),
      formatTime(s.lastSyncTime),
      String(s.consecutiveFailures),
      s.lastError || "-",
    ]),
  );
}

/** The state of a certificate status as a word: ISSUED, PENDING, RENEWING, FAILED. */
function statusWord(c: CertificateSyncStatus): string {
  return certificateStatusToJSON(c.status).replace(/^CERTIFICATE_STATUS_/, "");
}

/** One row per master-issued certificate: its state on the master and which slaves serve it. */
export function certificateStatusTable(certs: CertificateSyncStatus[]): string {
  return formatTable(
    ["CERTIFICATE", "STATUS", "NOT AFTER", "SERVED BY", "ERROR"],
    certs.map((c) => [
      c.name,
      statusWord(c),
      formatTime(c.notAfter),
      c.slaves.length ? `${c.slaves.filter((s) => s.servesCurrent).length}/${c.slaves.length}` : "-",
      c.statusDetail || "-",
    ]),
  );
}

function syncCommand(io: Io, run: Run): Command {
  const cmd = new Command("sync").description("instance sync, from the master's dispatcher");
  cmd
    .command("status")
    .description(
      "one row per slave: connected, acked version, lag, last sync, last error; then one per master-issued certificate",
    )
    .option("-w, --watch", "refresh in place until interrupted")
    .option("--interval <seconds>", "refresh interval with --watch", "2")
    .action(async (opts: { watch?: boolean; interval: string }, c: Command) =>
      run(c, async (ctx) => {
        const interval = Number(opts.interval);
        if (!(interval > 0)) throw invalid("--interval", `"${opts.interval}" is not a positive number of seconds`);
        const sleep = io.sleep ?? ((ms: number) => new Promise<boolean>((r) => setTimeout(() => r(true), ms)));
        for (let more = true; more;) {
          const r = await ctx.api.dispatcher("getSyncStatus", {});
          const doc = {
            master_instance_id: r.masterInstanceId,
            slaves: r.slaves.map((s) => ({
              name: s.name,
              url: s.url,
              connected: s.connected,
              master_version: s.masterVersion,
              acked_version: s.ackedVersion,
              lag: s.lag,
              last_sync_time: formatTime(s.lastSyncTime),
              last_error: s.lastError,
              consecutive_failures: s.consecutiveFailures,
              release: s.release,
              snapshot_schemas: s.snapshotSchemas,
              capabilities: s.capabilities,
              schema_version: s.schemaVersion,
              compatibility: compatibilityWord(s),
              compatibility_issues: s.compatibilityIssues.map((i) => ({
                code: compatibilityIssueCodeToJSON(i.code).replace(/^COMPATIBILITY_ISSUE_CODE_/, ""),
                capability: i.capability,
                resources: i.resources,
                message: i.message,
              })),
            })),
            certificates: r.certificates.map((c) => ({
              name: c.name,
              status: statusWord(c),
              not_after: formatTime(c.notAfter),
              error: c.statusDetail,
              slaves_serving: c.slaves.filter((s) => s.servesCurrent).map((s) => s.slaveName),
              slaves_not_serving: c.slaves.filter((s) => !s.servesCurrent).map((s) => s.slaveName),
            })),
          };
          // In place: clear the screen and go home before each refresh.
          if (opts.watch && ctx.format === "table") io.stdout("\x1b[H\x1b[2J");
          ctx.print(
            doc,
            () =>
              `${opts.watch ? `${new Date().toISOString()}  every ${interval}s (Ctrl-C stops)\n` : ""}${r.slaves.length ? syncStatusTable(r.slaves) : "no slaves configured (INSTANCE_SLAVES)\n"}${r.certificates.length ? `\n${certificateStatusTable(r.certificates)}` : ""}`,
          );
          more = opts.watch === true && (await sleep(interval * 1000));
        }
      }),
    );
  return cmd;
}

const DIFF_KINDS = [
  ["certificates", "certificate"],
  ["accessLists", "access_list"],
  ["proxyHosts", "proxy_host"],
  ["l4ProxyHosts", "l4_proxy_host"],
] as const;

function importReportDoc(r: ImportConfigResponse) {
  const d = (x: ResourceDiff | undefined) => ({
    added: x?.added ?? [],
    changed: x?.changed ?? [],
    removed: x?.removed ?? [],
  });
  return {
    certificates: d(r.certificates),
    access_lists: d(r.accessLists),
    proxy_hosts: d(r.proxyHosts),
    l4_proxy_hosts: d(r.l4ProxyHosts),
    settings_changed: r.settingsChanged,
    committed: r.committed,
    config_version: r.configVersion,
  };
}

/** `+ proxy_host www` lines (added, changed ~, removed -), then what happened. */
function importReportText(r: ImportConfigResponse, dryRun: boolean): string {
  const lines: string[] = [];
  for (const [prop, noun] of DIFF_KINDS) {
    const x = r[prop];
    for (const n of x?.added ?? []) lines.push(`+ ${noun} ${n}`);
    for (const n of x?.changed ?? []) lines.push(`~ ${noun} ${n}`);
    for (const n of x?.removed ?? []) lines.push(`- ${noun} ${n}`);
  }
  if (r.settingsChanged) lines.push("~ settings");
  const n = lines.length;
  if (dryRun) lines.push(n ? `${n} change${n > 1 ? "s" : ""}; dry run, nothing written` : "no changes");
  else
    lines.push(
      r.committed
        ? `${n} change${n > 1 ? "s" : ""} committed as version ${r.configVersion}`
        : `no changes; still version ${r.configVersion}`,
    );
  return `${lines.join("\n")}\n`;
}

/** Runs `cpm` with `argv` (without node and script); resolves with the exit code. */
export async function runCli(argv: string[], io: Io): Promise<ExitCode> {
  const exit = { code: ExitCode.OK as ExitCode };
  const program = buildProgram(io, exit);
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    const f = describeFailure(err);
    io.stderr(`cpm: ${f.message}\n`);
    return f.code;
  }
  return exit.code;
}
