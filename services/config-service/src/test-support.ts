// The harness shared by this package's service-level tests (*.test.ts): the real gRPC server
// in-process on 127.0.0.1:0, a database of its own (a temporary SQLite file unless told
// otherwise), the generated grpc-js clients, and a helper for calls that must fail.
import { after, afterEach, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { AccountServiceClient, ConfigServiceClient } from "@cpm/proto";
import { createLogger, type InstanceMode, type ReservedAddress } from "@cpm/core";
import { channelCredentials, status } from "@cpm/grpc-kit";
import { openDatabase, type Db } from "./db.ts";
import { createServer, type ConfigServers } from "./server.ts";
import { ConfigStore } from "./store.ts";
import { ApiTokens } from "./tokens.ts";

export const ADMIN = "test-admin-token-0123456789abcdef";
export const INTERNAL = "test-internal-token-fedcba9876543210";

export interface Harness {
  db: Db;
  store: ConfigStore;
  tokens: ApiTokens;
  server: ConfigServers;
  /** ConfigService on the public listener (API tokens). */
  config: ConfigServiceClient;
  /** ConfigService on the internal listener (the internal token). */
  internal: ConfigServiceClient;
  /** host:port of the public and internal listeners. */
  apiAddress: string;
  internalAddress: string;
  account: AccountServiceClient;
  /** The migrations openDatabase applied when this harness started. */
  applied: string[];
  close(): Promise<void>;
}

export interface StartOptions {
  mode?: InstanceMode;
  /** The database to open; default: a new SQLite file in a temporary directory removed after the tests. */
  databaseUrl?: string;
  /** The bootstrap admin token (default ADMIN). */
  adminToken?: string;
  /** The internal token (ApplySnapshot); default INTERNAL. Pass `undefined` explicitly for none. */
  internalToken?: string | undefined;
  /** Addresses upstreams must not point at (default: none). */
  reservedUpstreams?: readonly ReservedAddress[];
  /** Receive limit of the public listener (default: CPM_API_MAX_MESSAGE_BYTES's). */
  apiMaxMessageBytes?: number;
}

let tmp: string | undefined;
let dbCounter = 0;
after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A URL of a new SQLite database file, in a temporary directory removed after the tests. */
export function freshSqliteUrl(): string {
  tmp ??= mkdtempSync(path.join(tmpdir(), "cpm-config-service-test-"));
  return `file:${path.join(tmp, `db-${++dbCounter}.sqlite`)}`;
}

/** A self-signed certificate (EC P-256, valid 30 days) for `name`, made with openssl: `{ cert, key }` in PEM. */
export function selfSignedCertificate(name: string): { cert: string; key: string } {
  tmp ??= mkdtempSync(path.join(tmpdir(), "cpm-config-service-test-"));
  const base = path.join(tmp, `self-signed-${++dbCounter}`);
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${base}.key`,
      "-out",
      `${base}.crt`,
      "-days",
      "30",
      "-subj",
      `/CN=${name}`,
      "-addext",
      `subjectAltName=DNS:${name}`,
    ],
    { stdio: "pipe" },
  );
  return { cert: readFileSync(`${base}.crt`, "utf8"), key: readFileSync(`${base}.key`, "utf8") };
}

const BETTER_SQLITE3 = createRequire(import.meta.url).resolve("better-sqlite3");
const RUN_SQL = `
const [, lib, file, sql, ...params] = process.argv;
const db = new (require(lib))(file);
db.pragma("busy_timeout = 5000");
process.stdout.write(String(db.prepare(sql).run(...params).changes));
db.close();`;

/**
 * Runs one SQL statement on the SQLite database `file` from another process (as an operator
 * with sqlite3 would) and returns how many rows it changed. Another process, not a second
 * connection here: two copies of SQLite in one process do not see each other's file locks.
 */
export function sqliteInAnotherProcess(file: string, sql: string, ...params: string[]): number {
  return Number(
    execFileSync(process.execPath, ["-e", RUN_SQL, BETTER_SQLITE3, file, sql, ...params], { encoding: "utf8" }),
  );
}

/** Starts config-service on a database of its own (nothing is shared between harnesses unless `databaseUrl` is). */
export async function startConfigService(opts: StartOptions = {}): Promise<Harness> {
  const adminToken = opts.adminToken ?? ADMIN;
  const internalToken = "internalToken" in opts ? opts.internalToken : INTERNAL;
  const log = createLogger("test", "silent");
  const { db, applied, dialect } = await openDatabase(opts.databaseUrl ?? freshSqliteUrl());
  const store = new ConfigStore(db, log, { dialect });
  await store.init();
  const tokens = new ApiTokens(db, { dialect });
  await tokens.ensure(adminToken);
  const server = createServer({
    store,
    tokens,
    mode: opts.mode ?? "standalone",
    internalToken,
    log,
    reservedUpstreams: opts.reservedUpstreams,
    apiMaxMessageBytes: opts.apiMaxMessageBytes,
  });
  const address = `127.0.0.1:${await server.api.listen("127.0.0.1:0")}`;
  const internalAddress = `127.0.0.1:${await server.internal.listen("127.0.0.1:0")}`;
  const config = new ConfigServiceClient(address, channelCredentials({}));
  const internal = new ConfigServiceClient(internalAddress, channelCredentials({}));
  const account = new AccountServiceClient(address, channelCredentials({}));
  return {
    db,
    store,
    tokens,
    server,
    config,
    internal,
    apiAddress: address,
    internalAddress,
    account,
    applied,
    async close() {
      config.close();
      internal.close();
      account.close();
      await server.shutdown();
      await db.$disconnect();
    },
  };
}

/**
 * A fresh harness for each test of the enclosing describe: started (and handed to `use`) in
 * beforeEach, closed in afterEach.
 */
export function harnessForEachTest(opts: StartOptions, use: (h: Harness) => void): void {
  let h: Harness | undefined;
  beforeEach(async () => {
    h = await startConfigService(opts);
    use(h);
  });
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });
}

/**
 * Asserts the call fails with the gRPC status `code`; returns the message (details) the client
 * sees. Fails the test when the call succeeds or fails with something that is not a gRPC error.
 */
export async function expectStatus(p: Promise<unknown>, code: status): Promise<string> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: unknown; details?: string };
    assert.equal(
      typeof err.code,
      "number",
      `expected ${status[code]}, got something that is not a gRPC error: ${String(e)}`,
    );
    const got = err.code as status;
    assert.equal(got, code, `expected ${status[code]}, got ${status[got] ?? got}: ${err.details}`);
    return err.details ?? "";
  }
  assert.fail(`expected ${status[code]}, the call succeeded`);
}
