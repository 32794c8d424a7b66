import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { ConfigError, dialable, ENV_VARIABLES, envDefaultText, loadConfig, required, type EnvVariable } from "./env.ts";
import { assertThrowsNaming } from "./test-support.ts";

type Env = Record<string, string | undefined>;

const TOKEN = "0123456789abcdef-sync-token";

/** A temp dir with a readable file, for the CPM_SYNC_TLS_* variables. */
const tmp = mkdtempSync(path.join(tmpdir(), "cpm-env-test-"));
const CERT = path.join(tmp, "cert.pem");
const KEY = path.join(tmp, "key.pem");
writeFileSync(CERT, "-----BEGIN CERTIFICATE-----\n");
writeFileSync(KEY, "-----BEGIN PRIVATE KEY-----\n");
const MISSING = path.join(tmp, "does-not-exist.pem");
after(() => rmSync(tmp, { recursive: true, force: true }));

const slaves = (entries: unknown) => JSON.stringify(entries);
const master = (entries: unknown, extra: Env = {}): Env => ({
  INSTANCE_MODE: "master",
  INSTANCE_SLAVES: slaves(entries),
  ...extra,
});
const okSlave = (name: string, url = `https://${name}:50443`) => ({ name, url, token: TOKEN });

/** Asserts loadConfig(env) throws a ConfigError for `variable` whose message matches `detail`. */
function assertConfigError(env: Env, variable: string, detail?: RegExp): void {
  assertThrowsNaming(
    () => loadConfig(env),
    ConfigError,
    (err) => err.variable,
    variable,
    detail,
  );
}

describe("loadConfig defaults", () => {
  const c = loadConfig({});
  const dataDir = path.resolve("./data");
  const cases: [keyof typeof c, unknown][] = [
    ["mode", "standalone"],
    ["syncToken", undefined],
    ["syncIntervalSeconds", 0],
    ["syncAllowHttp", false],
    ["dataDir", dataDir],
    ["databaseUrl", `file:${path.join(dataDir, "cpm.db")}`],
    ["caddyApiUrl", "http://127.0.0.1:2019"],
    ["httpPort", 80],
    ["httpsPort", 443],
    ["apiListen", "127.0.0.1:50051"],
    ["syncListen", "0.0.0.0:50443"],
    ["rendererListen", "127.0.0.1:50052"],
    ["dispatcherListen", "127.0.0.1:50053"],
    ["consoleListen", "127.0.0.1:3000"],
    ["consoleListenIsDefault", true],
    ["configInternalListen", "127.0.0.1:50054"],
    ["configAddr", "127.0.0.1:50054"],
    ["apiAddr", "127.0.0.1:50051"],
    ["dispatcherAddr", "127.0.0.1:50053"],
    ["apiMaxMessageBytes", 4 * 1024 * 1024],
    ["rendererAddr", "127.0.0.1:50052"],
    ["syncTlsCert", undefined],
    ["syncTlsKey", undefined],
    ["syncTlsCa", undefined],
    ["adminToken", undefined],
    ["internalToken", undefined],
    ["logLevel", "info"],
    ["syncMaxMessageBytes", 64 * 1024 * 1024],
    ["syncAckTimeoutSeconds", 60],
    ["syncConnectTimeoutMs", 2000],
    ["syncKeepaliveTimeMs", 1_000],
    ["syncKeepaliveTimeoutMs", 1_000],
    ["receiverKeepaliveTimeMs", 20_000],
    ["receiverKeepaliveTimeoutMs", 10_000],
    ["logFormat", "json"],
    ["reconcileIntervalMs", 2000],
    ["caddyBin", undefined],
    ["target", ["caddy", "config-service", "caddy-renderer", "web-console"]],
    ["splitProcesses", false],
    ["caddyHasLayer4", undefined],
  ];
  for (const [key, want] of cases) {
    test(`${key} defaults to ${JSON.stringify(want)}`, () => {
      assert.deepEqual(c[key], want);
    });
  }

  test("slaves defaults to an empty list", () => {
    assert.deepEqual([...c.slaves], []);
  });

  test("the result and its slave list are frozen", () => {
    assert.ok(Object.isFrozen(c));
    assert.ok(Object.isFrozen(c.slaves));
  });

  test("blank and whitespace-only values count as unset", () => {
    const b = loadConfig({ INSTANCE_MODE: "  ", LOG_LEVEL: "", INSTANCE_SYNC_INTERVAL: " ", CPM_SYNC_TLS_CERT: "" });
    assert.equal(b.mode, "standalone");
    assert.equal(b.logLevel, "info");
    assert.equal(b.syncIntervalSeconds, 0);
    assert.equal(b.syncTlsCert, undefined);
  });

  test("DATABASE_URL defaults to file:<CPM_DATA_DIR>/cpm.db", () => {
    const d = loadConfig({ CPM_DATA_DIR: "/srv/cpm" });
    assert.equal(d.dataDir, "/srv/cpm");
    assert.equal(d.databaseUrl, "file:/srv/cpm/cpm.db");
  });

  test("a relative CPM_DATA_DIR is resolved against the working directory", () => {
    const d = loadConfig({ CPM_DATA_DIR: "state/x" });
    assert.equal(d.dataDir, path.resolve("state/x"));
    assert.equal(d.databaseUrl, `file:${path.resolve("state/x", "cpm.db")}`);
  });
});

describe("loadConfig accepted values", () => {
  const cases: { name: string; env: Env; check: (c: ReturnType<typeof loadConfig>) => void }[] = [
    {
      name: "explicit DATABASE_URL (postgresql)",
      env: { DATABASE_URL: "postgresql://u:p@db:5432/cpm" },
      check: (c) => assert.equal(c.databaseUrl, "postgresql://u:p@db:5432/cpm"),
    },
    {
      name: "explicit DATABASE_URL (postgres)",
      env: { DATABASE_URL: "postgres://db/cpm" },
      check: (c) => assert.equal(c.databaseUrl, "postgres://db/cpm"),
    },
    {
      name: "INSTANCE_SYNC_INTERVAL=30",
      env: { INSTANCE_SYNC_INTERVAL: "30" },
      check: (c) => assert.equal(c.syncIntervalSeconds, 30),
    },
    {
      name: "INSTANCE_SYNC_INTERVAL at its maximum (7 days)",
      env: { INSTANCE_SYNC_INTERVAL: "604800" },
      check: (c) => assert.equal(c.syncIntervalSeconds, 604800),
    },
    {
      name: "booleans: true",
      env: { INSTANCE_SYNC_ALLOW_HTTP: "true" },
      check: (c) => assert.equal(c.syncAllowHttp, true),
    },
    {
      name: "booleans: YES (case-insensitive)",
      env: { INSTANCE_SYNC_ALLOW_HTTP: "YES" },
      check: (c) => assert.equal(c.syncAllowHttp, true),
    },
    { name: "booleans: 1", env: { INSTANCE_SYNC_ALLOW_HTTP: "1" }, check: (c) => assert.equal(c.syncAllowHttp, true) },
    {
      name: "booleans: on",
      env: { INSTANCE_SYNC_ALLOW_HTTP: "on" },
      check: (c) => assert.equal(c.syncAllowHttp, true),
    },
    {
      name: "booleans: off",
      env: { INSTANCE_SYNC_ALLOW_HTTP: "off" },
      check: (c) => assert.equal(c.syncAllowHttp, false),
    },
    {
      name: "booleans: False",
      env: { INSTANCE_SYNC_ALLOW_HTTP: "False" },
      check: (c) => assert.equal(c.syncAllowHttp, false),
    },
    {
      name: "CPM_CADDY_LAYER4=false is false, not undefined",
      env: { CPM_CADDY_LAYER4: "false" },
      check: (c) => assert.equal(c.caddyHasLayer4, false),
    },
    {
      name: "CPM_CADDY_LAYER4=true",
      env: { CPM_CADDY_LAYER4: "true" },
      check: (c) => assert.equal(c.caddyHasLayer4, true),
    },
    {
      name: "CADDY_API_URL trailing slashes are trimmed",
      env: { CADDY_API_URL: "http://caddy:2019//" },
      check: (c) => assert.equal(c.caddyApiUrl, "http://caddy:2019"),
    },
    { name: "LOG_LEVEL=debug", env: { LOG_LEVEL: "debug" }, check: (c) => assert.equal(c.logLevel, "debug") },
    {
      name: "CPM_API_LISTEN 0.0.0.0 is dialed on 127.0.0.1",
      env: { CPM_API_LISTEN: "0.0.0.0:6000" },
      check: (c) => {
        assert.equal(c.apiListen, "0.0.0.0:6000");
        assert.equal(c.apiAddr, "127.0.0.1:6000");
      },
    },
    {
      name: "CPM_CONFIG_INTERNAL_LISTEN 0.0.0.0 is dialed on 127.0.0.1",
      env: { CPM_CONFIG_INTERNAL_LISTEN: "0.0.0.0:6004" },
      check: (c) => {
        assert.equal(c.configInternalListen, "0.0.0.0:6004");
        assert.equal(c.configAddr, "127.0.0.1:6004");
      },
    },
    {
      name: "CPM_API_ADDR overrides the dialed address",
      env: { CPM_API_LISTEN: "0.0.0.0:6000", CPM_API_ADDR: "config:6000" },
      check: (c) => assert.equal(c.apiAddr, "config:6000"),
    },
    {
      name: "CPM_DISPATCHER_LISTEN 0.0.0.0 is dialed on 127.0.0.1",
      env: { CPM_DISPATCHER_LISTEN: "0.0.0.0:6003" },
      check: (c) => assert.equal(c.dispatcherAddr, "127.0.0.1:6003"),
    },
    {
      name: "CPM_DISPATCHER_ADDR overrides the dialed address",
      env: { CPM_DISPATCHER_LISTEN: "0.0.0.0:6003", CPM_DISPATCHER_ADDR: "sync-dispatcher:6003" },
      check: (c) => assert.equal(c.dispatcherAddr, "sync-dispatcher:6003"),
    },
    {
      name: "CPM_API_MAX_MESSAGE_BYTES is read",
      env: { CPM_API_MAX_MESSAGE_BYTES: "1048576" },
      check: (c) => assert.equal(c.apiMaxMessageBytes, 1048576),
    },
    {
      name: "CPM_RENDERER_LISTEN [::] is dialed on [::1]",
      env: { CPM_RENDERER_LISTEN: "[::]:6001" },
      check: (c) => {
        assert.equal(c.rendererListen, "[::]:6001");
        assert.equal(c.rendererAddr, "[::1]:6001");
      },
    },
    {
      name: "CPM_CONFIG_ADDR overrides the dialed address",
      env: { CPM_API_LISTEN: "0.0.0.0:6000", CPM_CONFIG_ADDR: "config:6000" },
      check: (c) => assert.equal(c.configAddr, "config:6000"),
    },
    { name: "CPM_CADDY_BIND unset: every interface", env: {}, check: (c) => assert.equal(c.caddyBind, undefined) },
    {
      name: "CPM_CADDY_BIND IPv4",
      env: { CPM_CADDY_BIND: "127.0.0.1" },
      check: (c) => assert.equal(c.caddyBind, "127.0.0.1"),
    },
    {
      name: "CPM_CADDY_BIND IPv6, bracketed or not",
      env: { CPM_CADDY_BIND: "::1" },
      check: (c) => assert.equal(c.caddyBind, "[::1]"),
    },
    {
      name: "CPM_CADDY_BIND [FD00::1]",
      env: { CPM_CADDY_BIND: "[FD00::1]" },
      check: (c) => assert.equal(c.caddyBind, "[fd00::1]"),
    },
    {
      name: "CPM_HTTP_PORT / CPM_HTTPS_PORT",
      env: { CPM_HTTP_PORT: "8080", CPM_HTTPS_PORT: "8443" },
      check: (c) => {
        assert.equal(c.httpPort, 8080);
        assert.equal(c.httpsPort, 8443);
      },
    },
    {
      name: "slave mode with a long enough token and TLS files",
      env: { INSTANCE_MODE: "slave", INSTANCE_SYNC_TOKEN: TOKEN, CPM_SYNC_TLS_CERT: CERT, CPM_SYNC_TLS_KEY: KEY },
      check: (c) => {
        assert.equal(c.mode, "slave");
        assert.equal(c.syncToken, TOKEN);
        assert.deepEqual([...c.slaves], []);
      },
    },
    {
      name: "INSTANCE_SLAVES is ignored outside master mode",
      env: { INSTANCE_SLAVES: "not json" },
      check: (c) => assert.deepEqual([...c.slaves], []),
    },
    {
      name: "CPM_SYNC_TLS_CERT + CPM_SYNC_TLS_KEY pointing at readable files",
      env: { CPM_SYNC_TLS_CERT: CERT, CPM_SYNC_TLS_KEY: KEY, CPM_SYNC_TLS_CA: CERT },
      check: (c) => {
        assert.equal(c.syncTlsCert, CERT);
        assert.equal(c.syncTlsKey, KEY);
        assert.equal(c.syncTlsCa, CERT);
      },
    },
    {
      name: "CPM_ADMIN_TOKEN of 16 characters",
      env: { CPM_ADMIN_TOKEN: "x".repeat(16) },
      check: (c) => assert.equal(c.adminToken, "x".repeat(16)),
    },
  ];
  for (const { name, env, check } of cases) test(name, () => check(loadConfig(env)));
});

describe("INSTANCE_SLAVES parsing", () => {
  test("https url with a port: address host:port, tls on", () => {
    const [s] = loadConfig(master([okSlave("slave-1", "https://slave-1.example.net:50443")])).slaves;
    assert.deepEqual(
      { ...s },
      {
        name: "slave-1",
        url: "https://slave-1.example.net:50443",
        address: "slave-1.example.net:50443",
        tls: true,
        token: TOKEN,
      },
    );
  });

  test("https url without a port defaults to 443", () => {
    const [s] = loadConfig(master([okSlave("s", "https://s.example.net")])).slaves;
    assert.equal(s?.address, "s.example.net:443");
    assert.equal(s?.tls, true);
  });

  test("https url with an explicit :443 still gives port 443", () => {
    const [s] = loadConfig(master([okSlave("s", "https://s.example.net:443")])).slaves;
    assert.equal(s?.address, "s.example.net:443");
  });

  test("https url with an IPv6 literal keeps the brackets", () => {
    const [s] = loadConfig(master([okSlave("s", "https://[fd00::1]:50443")])).slaves;
    assert.equal(s?.address, "[fd00::1]:50443");
  });

  test("http url is accepted with INSTANCE_SYNC_ALLOW_HTTP=true: tls off, default port 80", () => {
    const c = loadConfig(
      master([okSlave("a", "http://slave-a:50443"), okSlave("b", "http://slave-b")], {
        INSTANCE_SYNC_ALLOW_HTTP: "true",
      }),
    );
    assert.deepEqual(
      c.slaves.map((s) => [s.name, s.address, s.tls]),
      [
        ["a", "slave-a:50443", false],
        ["b", "slave-b:80", false],
      ],
    );
    assert.equal(c.syncAllowHttp, true);
  });

  test("several slaves keep their order; names and urls are trimmed", () => {
    const c = loadConfig(master([{ name: " one ", url: " https://one:1 ", token: TOKEN }, okSlave("two")]));
    assert.deepEqual(
      c.slaves.map((s) => [s.name, s.url, s.address]),
      [
        ["one", "https://one:1", "one:1"],
        ["two", "https://two:50443", "two:50443"],
      ],
    );
    assert.ok(Object.isFrozen(c.slaves[0]));
  });

  test("the token is trimmed like the slave's INSTANCE_SYNC_TOKEN, so the two can match", () => {
    const [s] = loadConfig(master([{ name: "s", url: "https://s:1", token: `  ${TOKEN}\n` }])).slaves;
    const slaveSide = loadConfig({
      INSTANCE_MODE: "slave",
      INSTANCE_SYNC_TOKEN: `  ${TOKEN}\n`,
      INSTANCE_SYNC_ALLOW_HTTP: "true",
    });
    assert.equal(s?.token, TOKEN);
    assert.equal(s?.token, slaveSide.syncToken);
  });

  test("an empty array is allowed (a master with no slaves yet)", () => {
    assert.deepEqual([...loadConfig(master([])).slaves], []);
  });
});

describe("loadConfig rejects bad values, naming the variable", () => {
  const cases: { name: string; env: Env; variable: string; detail?: RegExp }[] = [
    // INSTANCE_MODE / INSTANCE_SYNC_TOKEN
    {
      name: "unknown INSTANCE_MODE",
      env: { INSTANCE_MODE: "primary" },
      variable: "INSTANCE_MODE",
      detail: /unknown mode "primary"/,
    },
    { name: "INSTANCE_MODE is case-sensitive", env: { INSTANCE_MODE: "Master" }, variable: "INSTANCE_MODE" },
    {
      name: "slave without INSTANCE_SYNC_TOKEN",
      env: { INSTANCE_MODE: "slave" },
      variable: "INSTANCE_SYNC_TOKEN",
      detail: /required when INSTANCE_MODE=slave/,
    },
    {
      name: "slave with a short INSTANCE_SYNC_TOKEN",
      env: { INSTANCE_MODE: "slave", INSTANCE_SYNC_TOKEN: "short" },
      variable: "INSTANCE_SYNC_TOKEN",
      detail: /too short/,
    },

    // INSTANCE_SLAVES as a whole
    {
      name: "master without INSTANCE_SLAVES",
      env: { INSTANCE_MODE: "master" },
      variable: "INSTANCE_SLAVES",
      detail: /required when INSTANCE_MODE=master/,
    },
    {
      name: "INSTANCE_SLAVES invalid JSON",
      env: { INSTANCE_MODE: "master", INSTANCE_SLAVES: "[{name: 'x'}" },
      variable: "INSTANCE_SLAVES",
      detail: /invalid JSON/,
    },
    {
      name: "INSTANCE_SLAVES not an array (object)",
      env: { INSTANCE_MODE: "master", INSTANCE_SLAVES: slaves(okSlave("a")) },
      variable: "INSTANCE_SLAVES",
      detail: /must be a JSON array/,
    },
    {
      name: "INSTANCE_SLAVES not an array (string)",
      env: { INSTANCE_MODE: "master", INSTANCE_SLAVES: '"https://a:1"' },
      variable: "INSTANCE_SLAVES",
      detail: /must be a JSON array/,
    },

    // INSTANCE_SLAVES entries: index and field
    {
      name: "entry that is not an object",
      env: master([okSlave("a"), "https://b:1"]),
      variable: "INSTANCE_SLAVES[1]",
      detail: /must be an object/,
    },
    { name: "entry that is null", env: master([null]), variable: "INSTANCE_SLAVES[0]", detail: /must be an object/ },
    {
      name: "entry that is an array",
      env: master([["a", "https://a:1", TOKEN]]),
      variable: "INSTANCE_SLAVES[0]",
      detail: /must be an object/,
    },
    {
      name: "missing name",
      env: master([{ url: "https://a:1", token: TOKEN }]),
      variable: "INSTANCE_SLAVES[0].name",
      detail: /is required/,
    },
    {
      name: "name that is not a string",
      env: master([{ name: 7, url: "https://a:1", token: TOKEN }]),
      variable: "INSTANCE_SLAVES[0].name",
      detail: /is required/,
    },
    {
      name: "missing url (second entry)",
      env: master([okSlave("a"), { name: "b", token: TOKEN }]),
      variable: "INSTANCE_SLAVES[1].url",
      detail: /is required/,
    },
    {
      name: "missing token (third entry)",
      env: master([okSlave("a"), okSlave("b"), { name: "c", url: "https://c:1" }]),
      variable: "INSTANCE_SLAVES[2].token",
      detail: /is required/,
    },
    {
      name: "empty token",
      env: master([{ name: "a", url: "https://a:1", token: "" }]),
      variable: "INSTANCE_SLAVES[0].token",
      detail: /non-empty/,
    },
    {
      name: "whitespace-only token",
      env: master([{ name: "a", url: "https://a:1", token: "   " }]),
      variable: "INSTANCE_SLAVES[0].token",
      detail: /non-empty/,
    },
    {
      name: "duplicate name",
      env: master([okSlave("a"), okSlave("b"), okSlave("a", "https://other:1")]),
      variable: "INSTANCE_SLAVES[2].name",
      detail: /duplicate slave name "a"/,
    },
    {
      name: "duplicate name after trimming",
      env: master([okSlave("a"), { ...okSlave("b"), name: " a " }]),
      variable: "INSTANCE_SLAVES[1].name",
      detail: /duplicate/,
    },
    {
      name: "url that is not a URL",
      env: master([okSlave("a", "not a url")]),
      variable: "INSTANCE_SLAVES[0].url",
      detail: /"not a url" is not a URL/,
    },
    {
      name: "url without a scheme (host:port)",
      env: master([okSlave("a", "slave-a:50443")]),
      variable: "INSTANCE_SLAVES[0].url",
      detail: /is not supported \(use https:\/\/\)/,
    },
    {
      name: "url with an unsupported scheme",
      env: master([okSlave("a", "grpc://slave-a:50443")]),
      variable: "INSTANCE_SLAVES[0].url",
      detail: /scheme "grpc:" is not supported/,
    },
    {
      name: "http url without INSTANCE_SYNC_ALLOW_HTTP",
      env: master([okSlave("a"), okSlave("b", "http://slave-b:50443")]),
      variable: "INSTANCE_SLAVES[1].url",
      detail: /plaintext http.*INSTANCE_SYNC_ALLOW_HTTP=true/,
    },
    {
      name: "http url with INSTANCE_SYNC_ALLOW_HTTP=false",
      env: master([okSlave("a", "http://a:1")], { INSTANCE_SYNC_ALLOW_HTTP: "false" }),
      variable: "INSTANCE_SLAVES[0].url",
      detail: /plaintext http/,
    },
    {
      name: "url with a path",
      env: master([okSlave("a", "https://slave-a:50443/sync")]),
      variable: "INSTANCE_SLAVES[0].url",
      detail: /must not have a path/,
    },

    // Booleans and numbers
    {
      name: "bad boolean INSTANCE_SYNC_ALLOW_HTTP",
      env: { INSTANCE_SYNC_ALLOW_HTTP: "maybe" },
      variable: "INSTANCE_SYNC_ALLOW_HTTP",
      detail: /"maybe" is not a boolean/,
    },
    {
      name: "bad boolean CPM_CADDY_LAYER4",
      env: { CPM_CADDY_LAYER4: "2" },
      variable: "CPM_CADDY_LAYER4",
      detail: /is not a boolean/,
    },
    {
      name: "non-numeric INSTANCE_SYNC_INTERVAL",
      env: { INSTANCE_SYNC_INTERVAL: "30s" },
      variable: "INSTANCE_SYNC_INTERVAL",
      detail: /"30s" is not a whole number/,
    },
    {
      name: "negative INSTANCE_SYNC_INTERVAL",
      env: { INSTANCE_SYNC_INTERVAL: "-5" },
      variable: "INSTANCE_SYNC_INTERVAL",
      detail: /not a whole number/,
    },
    {
      name: "fractional INSTANCE_SYNC_INTERVAL",
      env: { INSTANCE_SYNC_INTERVAL: "1.5" },
      variable: "INSTANCE_SYNC_INTERVAL",
      detail: /not a whole number/,
    },
    {
      name: "INSTANCE_SYNC_INTERVAL above 7 days",
      env: { INSTANCE_SYNC_INTERVAL: "604801" },
      variable: "INSTANCE_SYNC_INTERVAL",
      detail: /outside 0\.\.604800/,
    },
    { name: "CPM_HTTP_PORT 0", env: { CPM_HTTP_PORT: "0" }, variable: "CPM_HTTP_PORT", detail: /outside 1\.\.65535/ },
    {
      name: "CPM_CADDY_BIND host name",
      env: { CPM_CADDY_BIND: "localhost" },
      variable: "CPM_CADDY_BIND",
      detail: /"localhost" is not an IP address/,
    },
    {
      name: "CPM_CADDY_BIND with a port",
      env: { CPM_CADDY_BIND: "127.0.0.1:80" },
      variable: "CPM_CADDY_BIND",
      detail: /is not an IP address/,
    },
    {
      name: "CPM_HTTPS_PORT 65536",
      env: { CPM_HTTPS_PORT: "65536" },
      variable: "CPM_HTTPS_PORT",
      detail: /outside 1\.\.65535/,
    },
    {
      name: "CPM_SYNC_MAX_MESSAGE_BYTES below 1 MiB",
      env: { CPM_SYNC_MAX_MESSAGE_BYTES: "1000" },
      variable: "CPM_SYNC_MAX_MESSAGE_BYTES",
    },
    {
      name: "CPM_API_MAX_MESSAGE_BYTES below 64 KiB",
      env: { CPM_API_MAX_MESSAGE_BYTES: "1000" },
      variable: "CPM_API_MAX_MESSAGE_BYTES",
    },
    {
      name: "CPM_API_MAX_MESSAGE_BYTES not a number",
      env: { CPM_API_MAX_MESSAGE_BYTES: "4MB" },
      variable: "CPM_API_MAX_MESSAGE_BYTES",
    },
    {
      name: "CPM_CONFIG_INTERNAL_LISTEN not host:port",
      env: { CPM_CONFIG_INTERNAL_LISTEN: "50054" },
      variable: "CPM_CONFIG_INTERNAL_LISTEN",
    },

    // Listen addresses
    {
      name: "CPM_API_LISTEN without a port",
      env: { CPM_API_LISTEN: "localhost" },
      variable: "CPM_API_LISTEN",
      detail: /"localhost" is not a host:port address/,
    },
    {
      name: "CPM_API_LISTEN with port > 65535",
      env: { CPM_API_LISTEN: "127.0.0.1:70000" },
      variable: "CPM_API_LISTEN",
      detail: /not a host:port/,
    },
    {
      name: "CPM_API_LISTEN as a URL",
      env: { CPM_API_LISTEN: "http://127.0.0.1:50051" },
      variable: "CPM_API_LISTEN",
      detail: /not a host:port/,
    },
    {
      name: "CPM_API_LISTEN with a non-numeric port",
      env: { CPM_API_LISTEN: "127.0.0.1:http" },
      variable: "CPM_API_LISTEN",
    },
    { name: "bad CPM_RENDERER_LISTEN", env: { CPM_RENDERER_LISTEN: "renderer" }, variable: "CPM_RENDERER_LISTEN" },
    { name: "bad CPM_DISPATCHER_LISTEN", env: { CPM_DISPATCHER_LISTEN: "a b:1" }, variable: "CPM_DISPATCHER_LISTEN" },
    { name: "bad CPM_SYNC_LISTEN", env: { CPM_SYNC_LISTEN: "[::1]" }, variable: "CPM_SYNC_LISTEN" },

    // Other strings
    {
      name: "bad LOG_LEVEL",
      env: { LOG_LEVEL: "verbose" },
      variable: "LOG_LEVEL",
      detail: /"verbose" is not one of fatal, error, warn, info, debug, trace, silent/,
    },
    {
      name: "CPM_TARGET naming a module of another mode",
      env: { CPM_TARGET: "config-service,sync-dispatcher" },
      variable: "CPM_TARGET",
      detail: /"sync-dispatcher" runs only with INSTANCE_MODE=master, not standalone/,
    },
    {
      name: "CPM_TARGET naming no module",
      env: { CPM_TARGET: "everything" },
      variable: "CPM_TARGET",
      detail: /"everything" is not a module/,
    },
    {
      name: "DATABASE_URL with an unsupported scheme",
      env: { DATABASE_URL: "mysql://db/cpm" },
      variable: "DATABASE_URL",
      detail: /must start with file:/,
    },
    {
      name: "CADDY_API_URL that is not a URL",
      env: { CADDY_API_URL: "caddy:2019 x" },
      variable: "CADDY_API_URL",
      detail: /is not an http\(s\) URL/,
    },
    {
      name: "CADDY_API_URL with a non-http scheme",
      env: { CADDY_API_URL: "unix:///run/caddy.sock" },
      variable: "CADDY_API_URL",
    },
    {
      name: "short CPM_ADMIN_TOKEN",
      env: { CPM_ADMIN_TOKEN: "x".repeat(15) },
      variable: "CPM_ADMIN_TOKEN",
      detail: /too short/,
    },
    {
      name: "short CPM_INTERNAL_TOKEN",
      env: { CPM_INTERNAL_TOKEN: "abc" },
      variable: "CPM_INTERNAL_TOKEN",
      detail: /too short/,
    },

    // TLS files
    {
      name: "CPM_SYNC_TLS_CERT pointing at a missing file",
      env: { CPM_SYNC_TLS_CERT: MISSING, CPM_SYNC_TLS_KEY: KEY },
      variable: "CPM_SYNC_TLS_CERT",
      detail: /cannot read ".*does-not-exist\.pem": ENOENT/,
    },
    {
      name: "CPM_SYNC_TLS_KEY pointing at a missing file",
      env: { CPM_SYNC_TLS_CERT: CERT, CPM_SYNC_TLS_KEY: MISSING },
      variable: "CPM_SYNC_TLS_KEY",
      detail: /ENOENT/,
    },
    {
      name: "CPM_SYNC_TLS_CERT pointing at a directory",
      env: { CPM_SYNC_TLS_CERT: tmp, CPM_SYNC_TLS_KEY: KEY },
      variable: "CPM_SYNC_TLS_CERT",
      detail: /cannot read/,
    },
    {
      name: "CPM_SYNC_TLS_CERT without CPM_SYNC_TLS_KEY",
      env: { CPM_SYNC_TLS_CERT: CERT },
      variable: "CPM_SYNC_TLS_KEY",
      detail: /set both/,
    },
    {
      name: "CPM_SYNC_TLS_KEY without CPM_SYNC_TLS_CERT",
      env: { CPM_SYNC_TLS_KEY: KEY },
      variable: "CPM_SYNC_TLS_CERT",
      detail: /set both/,
    },
    {
      name: "CPM_SYNC_TLS_CA pointing at a missing file",
      env: { CPM_SYNC_TLS_CA: MISSING },
      variable: "CPM_SYNC_TLS_CA",
      detail: /ENOENT/,
    },
  ];
  for (const { name, env, variable, detail } of cases) {
    test(`${name} -> ${variable}`, () => assertConfigError(env, variable, detail));
  }
});

describe("helpers", () => {
  test("dialable", () => {
    const cases: [string, string][] = [
      ["0.0.0.0:50051", "127.0.0.1:50051"],
      ["[::]:50051", "[::1]:50051"],
      ["10.1.2.3:1", "10.1.2.3:1"],
      ["host:2", "host:2"],
    ];
    for (const [input, want] of cases) assert.equal(dialable(input), want, input);
  });

  test("required returns the value or throws a ConfigError naming the variable", () => {
    assert.equal(required("x", "CPM_X", "for the test"), "x");
    assert.equal(required(0, "CPM_X", "for the test"), 0);
    assert.throws(
      () => required(undefined, "CPM_CADDY_BIN", "to start Caddy"),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.variable === "CPM_CADDY_BIN" &&
        e.message === "CPM_CADDY_BIN: required to start Caddy",
    );
  });
});

describe("a slave serves sync over TLS unless plaintext is allowed", () => {
  test("no certificate and no INSTANCE_SYNC_ALLOW_HTTP: refused, naming CPM_SYNC_TLS_CERT", () => {
    assert.throws(
      () => loadConfig({ INSTANCE_MODE: "slave", INSTANCE_SYNC_TOKEN: TOKEN }),
      (e: unknown) =>
        e instanceof ConfigError && e.variable === "CPM_SYNC_TLS_CERT" && /INSTANCE_SYNC_ALLOW_HTTP/.test(e.message),
    );
  });
  test("no certificate with INSTANCE_SYNC_ALLOW_HTTP=true: accepted", () => {
    assert.equal(
      loadConfig({ INSTANCE_MODE: "slave", INSTANCE_SYNC_TOKEN: TOKEN, INSTANCE_SYNC_ALLOW_HTTP: "true" })
        .syncAllowHttp,
      true,
    );
  });
});

describe("metrics listeners (CPM_*_METRICS_LISTEN)", () => {
  test("are off unless set", () => {
    assert.deepEqual(
      { ...loadConfig({}).metricsListen },
      { config: undefined, renderer: undefined, dispatcher: undefined, receiver: undefined },
    );
  });
  test("take a host:port per service", () => {
    const c = loadConfig({
      CPM_CONFIG_METRICS_LISTEN: "127.0.0.1:9461",
      CPM_RENDERER_METRICS_LISTEN: "[::1]:9462",
      CPM_DISPATCHER_METRICS_LISTEN: "0.0.0.0:9463",
      CPM_RECEIVER_METRICS_LISTEN: "localhost:9464",
    });
    assert.deepEqual(
      { ...c.metricsListen },
      { config: "127.0.0.1:9461", renderer: "[::1]:9462", dispatcher: "0.0.0.0:9463", receiver: "localhost:9464" },
    );
  });
  test("a bad address names its variable", () => {
    assertConfigError({ CPM_RENDERER_METRICS_LISTEN: "9462" }, "CPM_RENDERER_METRICS_LISTEN", /not a host:port/);
    assertConfigError(
      { CPM_RECEIVER_METRICS_LISTEN: "127.0.0.1:70000" },
      "CPM_RECEIVER_METRICS_LISTEN",
      /not a host:port/,
    );
  });
  test("an address another listener of the instance uses names both variables", () => {
    assertConfigError(
      { CPM_CONFIG_METRICS_LISTEN: "127.0.0.1:50051" },
      "CPM_CONFIG_METRICS_LISTEN",
      /already used by CPM_API_LISTEN/,
    );
    assertConfigError(
      { CPM_CONFIG_METRICS_LISTEN: "127.0.0.1:9461", CPM_DISPATCHER_METRICS_LISTEN: "127.0.0.1:9461" },
      "CPM_DISPATCHER_METRICS_LISTEN",
      /already used by CPM_CONFIG_METRICS_LISTEN/,
    );
  });
});

describe("ENV_VARIABLES, the one description of the environment", () => {
  /** The names loadConfig(env) reads, recorded through a proxy. */
  function namesRead(env: Env): Set<string> {
    const read = new Set<string>();
    const proxy = new Proxy(env, {
      get(target, key) {
        if (typeof key === "string") read.add(key);
        return target[key as string];
      },
    });
    loadConfig(proxy);
    return read;
  }
  const declared = ENV_VARIABLES as Record<string, EnvVariable>;
  const parsed = Object.keys(declared).filter((n) => declared[n]!.kind !== "other");

  test("loadConfig reads only declared variables, and every variable declared as parsed", () => {
    const read = new Set([
      ...namesRead({}),
      ...namesRead(master([okSlave("edge-1")])),
      ...namesRead({
        INSTANCE_MODE: "slave",
        INSTANCE_SYNC_TOKEN: TOKEN,
        CPM_SYNC_TLS_CERT: CERT,
        CPM_SYNC_TLS_KEY: KEY,
      }),
      ...namesRead({ CPM_CONFIG_METRICS_LISTEN: "127.0.0.1:9461", CPM_CADDY_LAYER4: "true" }),
    ]);
    const undeclared = [...read].filter((n) => declared[n] === undefined || declared[n].kind === "other");
    assert.deepEqual(undeclared, [], "read by loadConfig but not declared as parsed in ENV_VARIABLES");
    assert.deepEqual(
      parsed.filter((n) => !read.has(n)),
      [],
      "declared as parsed but never read by loadConfig",
    );
  });

  test("the declared defaults are loadConfig's defaults", () => {
    const cfg = loadConfig({});
    assert.equal(cfg.httpPort, ENV_VARIABLES.CPM_HTTP_PORT.default);
    assert.equal(cfg.httpsPort, ENV_VARIABLES.CPM_HTTPS_PORT.default);
    assert.equal(cfg.apiListen, ENV_VARIABLES.CPM_API_LISTEN.default);
    assert.equal(cfg.syncListen, ENV_VARIABLES.CPM_SYNC_LISTEN.default);
    assert.equal(cfg.syncAckTimeoutSeconds, ENV_VARIABLES.CPM_SYNC_ACK_TIMEOUT.default);
    assert.equal(cfg.reconcileIntervalMs, ENV_VARIABLES.CPM_RECONCILE_INTERVAL_MS.default);
    assert.equal(cfg.mode, ENV_VARIABLES.INSTANCE_MODE.default);
    assert.equal(cfg.logLevel, ENV_VARIABLES.LOG_LEVEL.default);
    assert.equal(cfg.caddyApiUrl, ENV_VARIABLES.CADDY_API_URL.default);
    assert.equal(envDefaultText(ENV_VARIABLES.CPM_HTTP_PORT), "`80`");
    assert.equal(envDefaultText(ENV_VARIABLES.CPM_CADDY_LAYER4), "probe");
  });

  test("an int variable's declared bounds are the ones loadConfig enforces", () => {
    const { min, max } = ENV_VARIABLES.CPM_SYNC_ACK_TIMEOUT;
    assertConfigError(
      { CPM_SYNC_ACK_TIMEOUT: String(max + 1) },
      "CPM_SYNC_ACK_TIMEOUT",
      new RegExp(`outside ${min}\\.\\.${max}`),
    );
  });
});
