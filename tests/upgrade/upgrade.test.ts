// An in-place upgrade: the previous release (scripts/previous-release.env, built from git by
// scripts/build-previous-release.sh) writes a database through its API; the current build started
// on the same database keeps every resource, the configuration version and the tokens, and serves
// what the older release served. Then a database one release ahead of this build (a stand-in
// migration row) is refused before anything is written. SQLite always; PostgreSQL when
// CPM_TEST_POSTGRES_URL names a server (a fresh database per test).
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import pg from "pg";
import * as current from "@cpm/proto";
import {
  AccessList,
  AccessListSatisfy,
  Certificate,
  CertificateType,
  CreateUserRequest,
  L4ProxyHost,
  ProxyHost,
  Role,
  Settings,
} from "@cpm/proto";
import { selfSignedCertificate } from "@cpm/config-service/testing";
import { RELEASE } from "@cpm/core";
import { unary } from "@cpm/grpc-kit";
import { Instance, ROOT, runLauncher, stopCleanly } from "../support/instance.ts";
import { startTcpEcho, tcpExchange, type L4Server } from "../support/l4.ts";
import { freePort, startUpstream, type TestServer } from "../support/net.ts";
import { previousRelease, type PreviousRelease } from "../support/previous-release.ts";
import { waitFor } from "../support/wait.ts";

const POSTGRES = process.env.CPM_TEST_POSTGRES_URL;

/** The stand-in for a migration of a release newer than this build. */
const FUTURE_MIGRATION = "20270101000000_newer_release_stand_in";
const FUTURE_RELEASE = "99.0.0";

/** This build's migrations for `engine` (with or without migrations added since the previous release). */
function migrations(engine: "sqlite" | "postgresql"): string[] {
  const dir = path.join(
    ROOT,
    "services/config-service/prisma",
    ...(engine === "postgresql" ? ["postgresql"] : []),
    "migrations",
  );
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
}

/** A message type of @cpm/proto as ts-proto generates it (the part used here). */
interface MessageFns {
  encode(message: unknown): { finish(): Uint8Array };
  decode(bytes: Uint8Array): unknown;
  toJSON(message: unknown): unknown;
}

/** The answers compared across the upgrade, each by its response message type. */
const ANSWER_TYPES = [
  "ListProxyHostsResponse",
  "ListL4ProxyHostsResponse",
  "ListCertificatesResponse",
  "ListAccessListsResponse",
  "GetSettingsResponse",
  "ListUsersResponse",
  "ListApiTokensResponse",
] as const;
type AnswerType = (typeof ANSWER_TYPES)[number];

/**
 * An answer as the previous release's own messages see it: encoded with this build's types,
 * decoded with the previous release's (fields it does not know are dropped), as JSON. Both
 * releases' answers go through it, so a field the older release does not know is not compared.
 */
async function previousView(rel: PreviousRelease) {
  const old = (await import(path.join(rel.root, "libs/proto/dist/index.js"))) as Record<string, MessageFns>;
  const cur = current as unknown as Record<string, MessageFns>;
  return (type: AnswerType, answer: unknown): unknown => {
    const [c, o] = [cur[type], old[type]];
    assert.ok(c && o, `${type} is a message of both releases`);
    return o.toJSON(o.decode(c.encode(answer).finish()));
  };
}

/** Every kind of resource, read through the API. */
async function answers(inst: Instance) {
  const t = inst.adminToken;
  const { config: c, account: a } = inst;
  return {
    ListProxyHostsResponse: await unary(c.listProxyHosts.bind(c), { pageSize: 0, pageToken: "", query: "" }, t),
    ListL4ProxyHostsResponse: await unary(c.listL4ProxyHosts.bind(c), {}, t),
    ListCertificatesResponse: await unary(c.listCertificates.bind(c), { includePrivateKeys: true }, t),
    ListAccessListsResponse: await unary(c.listAccessLists.bind(c), {}, t),
    GetSettingsResponse: await unary(c.getSettings.bind(c), {}, t),
    ListUsersResponse: await unary(a.listUsers.bind(a), {}, t),
    ListApiTokensResponse: await unary(a.listApiTokens.bind(a), {}, t),
  } satisfies Record<AnswerType, unknown>;
}

interface Written {
  /** The secret of an API token the previous release created (for an operator's user). */
  operatorToken: string;
  operatorUsername: string;
  l4Port: number;
  version: number;
}

/** Creates resources of every kind through the API of `inst`; returns what the checks after the upgrade need. */
async function writeEveryKind(inst: Instance, upstream: TestServer, echo: L4Server): Promise<Written> {
  const t = inst.adminToken;
  const { config: c, account: a } = inst;
  const pem = selfSignedCertificate("secure.upgrade.test");
  const cert = (
    await unary(
      c.createCertificate.bind(c),
      {
        certificate: Certificate.fromPartial({
          name: "imported",
          type: CertificateType.CERTIFICATE_TYPE_IMPORTED,
          certificatePem: pem.cert,
          privateKeyPem: pem.key,
        }),
      },
      t,
    )
  ).certificate!;
  const acl = (
    await unary(
      c.createAccessList.bind(c),
      {
        accessList: AccessList.fromPartial({
          name: "office",
          description: "office and a login",
          users: [{ username: "alice", password: "alice-password-123" }],
          allow: ["10.0.0.0/8"],
          deny: ["10.9.9.9"],
          satisfy: AccessListSatisfy.ACCESS_LIST_SATISFY_ANY,
        }),
      },
      t,
      30_000,
    )
  ).accessList!;
  await unary(
    c.createProxyHost.bind(c),
    {
      proxyHost: ProxyHost.fromPartial({
        name: "app",
        domains: ["app.upgrade.test", "www.app.upgrade.test"],
        upstreams: [`127.0.0.1:${upstream.port}`],
        allowWebsocket: true,
        preserveHostHeader: true,
      }),
    },
    t,
  );
  await unary(
    c.createProxyHost.bind(c),
    {
      proxyHost: ProxyHost.fromPartial({
        name: "secure",
        domains: ["secure.upgrade.test"],
        upstreams: [`127.0.0.1:${upstream.port}`],
        certificateId: cert.id,
        accessListId: acl.id,
        sslForced: true,
        hstsEnabled: true,
      }),
    },
    t,
  );
  await unary(
    c.createProxyHost.bind(c),
    {
      proxyHost: ProxyHost.fromPartial({
        name: "off",
        domains: ["off.upgrade.test"],
        upstreams: [`127.0.0.1:${upstream.port}`],
        enabled: false,
      }),
    },
    t,
  );
  const l4Port = await freePort();
  await unary(
    c.createL4ProxyHost.bind(c),
    {
      l4ProxyHost: L4ProxyHost.fromPartial({
        name: "echo",
        listenAddress: `127.0.0.1:${l4Port}`,
        upstreams: [`127.0.0.1:${echo.port}`],
      }),
    },
    t,
  );
  await unary(
    c.updateSettings.bind(c),
    {
      settings: Settings.fromPartial({
        general: { primaryDomain: "upgrade.test" },
        http: { upstreamDialTimeoutSeconds: 7, upstreamResponseHeaderTimeoutSeconds: 30 },
      }),
    },
    t,
  );
  const operatorUsername = "deployer";
  const operator = await unary(
    a.createUser.bind(a),
    CreateUserRequest.fromPartial({ username: operatorUsername, role: Role.ROLE_ADMIN }),
    t,
  );
  await unary(
    a.createUser.bind(a),
    CreateUserRequest.fromPartial({ username: "viewer", role: Role.ROLE_VIEWER, password: "viewer-password-123" }),
    t,
  );
  const operatorToken = (
    await unary(
      a.createApiToken.bind(a),
      { name: "deploy", role: Role.ROLE_ADMIN, userId: operator.user!.id, expiresAt: undefined },
      t,
    )
  ).secret;
  return { operatorToken, operatorUsername, l4Port, version: await inst.version() };
}

/** Caddy of `inst` serves the HTTP proxy host and the L4 host the previous release created. */
async function servesWhatWasWritten(inst: Instance, w: Written): Promise<void> {
  await inst.waitServes("app.upgrade.test", /upstream=U host=app\.upgrade\.test/);
  const payload = randomBytes(4096);
  const { data } = await waitFor(
    () => tcpExchange(w.l4Port, payload, payload.length),
    `${inst.opts.name}: echo through the L4 host on port ${w.l4Port}`,
    15_000,
    200,
  );
  assert.ok(data.equals(payload), "the L4 host carries bytes to its upstream and back");
}

/** One engine's database: where it is, and its whole content (to show it untouched). */
interface Engine {
  name: "sqlite" | "postgresql";
  env: Record<string, string>;
  /** A fingerprint of everything the database holds. */
  fingerprint(): Promise<string>;
  /** The names of the migrations applied to the database, sorted. */
  applied(): Promise<string[]>;
  /** Inserts the stand-in row of a newer release's migration. */
  insertFutureMigration(): Promise<void>;
  drop(): Promise<void>;
}

const APPLIED_SQL = `SELECT "migration_name" AS "name" FROM "_prisma_migrations" WHERE "finished_at" IS NOT NULL ORDER BY "migration_name"`;
const FUTURE_ROW_SQL = (p: (i: number) => string) =>
  `INSERT INTO "_prisma_migrations" ("id","checksum","finished_at","migration_name","logs","started_at","applied_steps_count") VALUES (${p(1)},${p(2)},${p(3)},${p(4)},${p(5)},${p(6)},1)`;
const futureRowParams = () => {
  const now = new Date().toISOString();
  return ["future-stand-in", "0".repeat(64), now, FUTURE_MIGRATION, `applied by release ${FUTURE_RELEASE}`, now];
};

function sqliteEngine(dataDir: string): Engine {
  const file = path.join(dataDir, "cpm.db");
  return {
    name: "sqlite",
    env: {},
    fingerprint: async () => {
      // The bytes of the file, and no write waiting in a write-ahead log beside it.
      const wal = `${file}-wal`;
      assert.ok(!existsSync(wal) || statSync(wal).size === 0, `${wal} holds no write`);
      return createHash("sha256").update(readFileSync(file)).digest("hex");
    },
    applied: async () => {
      const db = new Database(file, { readonly: true });
      try {
        return (db.prepare(APPLIED_SQL).all() as { name: string }[]).map((r) => r.name).sort();
      } finally {
        db.close();
      }
    },
    insertFutureMigration: async () => {
      const db = new Database(file);
      try {
        db.prepare(FUTURE_ROW_SQL(() => "?")).run(...futureRowParams());
      } finally {
        db.close();
      }
    },
    drop: async () => undefined,
  };
}

async function postgresEngine(base: string): Promise<Engine> {
  const name = `cpm_upgrade_${process.pid}_${Date.now()}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: base });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE "${name}"`);
  const u = new URL(base);
  u.pathname = `/${name}`;
  const url = u.toString();
  const onDb = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  return {
    name: "postgresql",
    env: { DATABASE_URL: url },
    // Every table's columns and rows, in a stable order.
    fingerprint: () =>
      onDb(async (c) => {
        const tables = (
          await c.query<{ table_name: string }>(
            `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
          )
        ).rows.map((r) => r.table_name);
        const hash = createHash("sha256");
        for (const t of tables) {
          const cols = await c.query(
            `SELECT column_name, data_type, column_default, is_nullable FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY column_name`,
            [t],
          );
          const rows = await c.query(`SELECT t::text AS row FROM "${t}" t ORDER BY 1`);
          hash.update(JSON.stringify({ t, cols: cols.rows, rows: rows.rows }));
        }
        return hash.digest("hex");
      }),
    applied: () => onDb(async (c) => (await c.query<{ name: string }>(APPLIED_SQL)).rows.map((r) => r.name).sort()),
    insertFutureMigration: () =>
      onDb(
        async (c) =>
          void (await c.query(
            FUTURE_ROW_SQL((i) => `$${i}`),
            futureRowParams(),
          )),
      ),
    drop: () => admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
  };
}

function upgradeSuite(engineName: "sqlite" | "postgresql", skip: string | false) {
  describe(`in-place upgrade from the previous release (${engineName})`, { skip }, () => {
    let rel: PreviousRelease;
    let dataDir: string;
    let engine: Engine;
    let upstream: TestServer;
    let echo: L4Server;
    let previous: Instance | undefined;
    let upgraded: Instance | undefined;
    let written: Written;
    const adminToken = `admin-upgrade-${randomBytes(8).toString("hex")}`;

    before(async () => {
      rel = previousRelease();
      dataDir = mkdtempSync(path.join(tmpdir(), `cpm-upgrade-${engineName}-`));
      engine = engineName === "sqlite" ? sqliteEngine(dataDir) : await postgresEngine(POSTGRES!);
      upstream = await startUpstream("U");
      echo = await startTcpEcho();
    });
    after(async () => {
      await previous?.kill();
      await upgraded?.kill();
      await upstream?.close();
      await echo?.close();
      await engine?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it("the current build keeps every resource, the version and the tokens the previous release wrote, and serves them", async () => {
      const view = await previousView(rel);
      previous = await Instance.start({
        name: `previous-${engineName}`,
        root: rel.root,
        dataDir,
        adminToken,
        env: engine.env,
      });
      const info = await previous.info();
      assert.equal(info.release, "", `release ${rel.version} announces no release`);
      written = await writeEveryKind(previous, upstream, echo);
      await previous.waitInSync();
      await servesWhatWasWritten(previous, written);
      const wroteAnswers = await answers(previous);
      const names = (list: { name: string }[]) => list.map((r) => r.name).sort();
      assert.deepEqual(names(wroteAnswers.ListProxyHostsResponse.proxyHosts), ["app", "off", "secure"]);
      assert.deepEqual(names(wroteAnswers.ListL4ProxyHostsResponse.l4ProxyHosts), ["echo"]);
      assert.deepEqual(names(wroteAnswers.ListCertificatesResponse.certificates), ["imported"]);
      assert.deepEqual(names(wroteAnswers.ListAccessListsResponse.accessLists), ["office"]);
      assert.ok(wroteAnswers.ListApiTokensResponse.apiTokens.some((k) => k.name === "deploy"));
      assert.ok(wroteAnswers.ListUsersResponse.users.some((u) => u.username === "viewer"));
      assert.equal(await previous.version(), written.version);
      await stopCleanly(previous);
      previous = undefined;

      upgraded = await Instance.start({ name: `upgraded-${engineName}`, dataDir, adminToken, env: engine.env });
      assert.equal((await upgraded.info()).release, RELEASE);
      const read = await answers(upgraded);
      for (const type of ANSWER_TYPES)
        assert.deepEqual(view(type, read[type]), view(type, wroteAnswers[type]), `${type} is unchanged by the upgrade`);
      assert.equal(await upgraded.version(), written.version, "the configuration version did not move");
      const who = await unary(upgraded.account.whoAmI.bind(upgraded.account), {}, written.operatorToken);
      assert.equal(who.username, written.operatorUsername, "a token the previous release created authenticates");
      await unary(
        upgraded.config.listProxyHosts.bind(upgraded.config),
        { pageSize: 0, pageToken: "", query: "" },
        written.operatorToken,
      );
      await servesWhatWasWritten(upgraded, written);
      await stopCleanly(upgraded);
      upgraded = undefined;
      assert.deepEqual(await engine.applied(), migrations(engineName), "every migration of this build is applied");
    });

    it("the current build refuses a database of a newer release, exits non-zero and leaves it untouched", async () => {
      assert.ok(written, "the upgrade above wrote the database");
      await engine.insertFutureMigration();
      const untouched = await engine.fingerprint();
      const inst = await Instance.prepare({ name: `refuses-${engineName}`, dataDir, adminToken, env: engine.env });
      // A build that (wrongly) starts is SIGKILLed after the timeout: its Caddy is taken down by its pid.
      const { code, output } = await runLauncher(inst.env, 60_000).finally(() => inst.kill());
      const ours = migrations(engineName).at(-1);
      const release = RELEASE;
      assert.ok(code !== 0 && code !== null, `the launcher exits non-zero (got ${code}):\n${output}`);
      assert.ok(
        output.includes(
          `database schema ${FUTURE_MIGRATION} is newer than this build's ${ours} (release ${release}): run release ${FUTURE_RELEASE} or later`,
        ),
        `the message names both schema versions and the release to run:\n${output}`,
      );
      assert.equal(await engine.fingerprint(), untouched, "the database is exactly as it was");
    });
  });
}

upgradeSuite("sqlite", false);
upgradeSuite(
  "postgresql",
  POSTGRES ? false : "CPM_TEST_POSTGRES_URL is not set: no PostgreSQL server to upgrade a database on",
);
