import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { loadConfig } from "./env.ts";
import { checkUpstreamsNotReserved, isThisMachine, reservedAddresses, reservedUpstream } from "./reserved.ts";
import { assertValidationError } from "./test-support.ts";

const cfg = loadConfig({ CPM_DATA_DIR: "/tmp/cpm-reserved-test" });
const RESERVED = reservedAddresses(cfg);

describe("reservedAddresses", () => {
  test("the defaults: Caddy's admin API and every CPM port", () => {
    const ports = [...new Set(RESERVED.map((r) => r.port))].sort();
    assert.deepEqual(ports, [2019, 50051, 50052, 50053, 50054, 50443]);
    assert.match(RESERVED.find((r) => r.port === 2019)!.what, /Caddy admin API/);
  });

  test("follows the configuration, including names the services are reached under", () => {
    const r = reservedAddresses(
      loadConfig({
        CPM_DATA_DIR: "/tmp/x",
        CADDY_API_URL: "http://caddy:2999",
        CPM_CADDY_ADMIN_LISTEN: "0.0.0.0:2999",
        CPM_API_LISTEN: "0.0.0.0:6000",
        CPM_CONFIG_ADDR: "config-service:6000",
      }),
    );
    assert.ok(reservedUpstream("caddy", 2999, r));
    assert.ok(reservedUpstream("config-service", 6000, r));
    assert.ok(reservedUpstream("127.0.0.1", 6000, r));
    assert.equal(reservedUpstream("127.0.0.1", 2019, r), undefined);
  });
});

describe("isThisMachine", () => {
  const local = [
    "127.0.0.1",
    "127.9.8.7",
    "localhost",
    "LOCALHOST",
    "app.localhost",
    "localhost.",
    "::1",
    "[::1]",
    "0:0:0:0:0:0:0:1",
    "0.0.0.0",
    "::",
    "[::]",
    "::ffff:127.0.0.1",
    "[::ffff:7f00:1]",
    "::ffff:0.0.0.0",
    "127.1",
    "2130706433",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "0",
  ];
  for (const h of local) test(`${h} is this machine`, () => assert.equal(isThisMachine(h), true));
  const remote = [
    "10.0.0.1",
    "db.internal",
    "localhost.example.com",
    "::2",
    "2001:db8::1",
    "::ffff:10.0.0.1",
    "128.0.0.1",
    "1.127.0.0",
  ];
  for (const h of remote) test(`${h} is not`, () => assert.equal(isThisMachine(h), false));
});

describe("checkUpstreamsNotReserved", () => {
  const bad: [string, RegExp][] = [
    ["127.0.0.1:2019", /Caddy admin API/],
    ["localhost:2019", /Caddy admin API/],
    ["https://[::1]:2019", /Caddy admin API/],
    ["[::ffff:127.0.0.1]:50051", /config-service/],
    ["0.0.0.0:50052", /caddy-renderer/],
    ["127.0.0.2:50053", /sync-dispatcher/],
    ["cpm.localhost:50443", /sync-receiver/],
  ];
  for (const [u, what] of bad) {
    test(`${u} is refused naming the field`, () =>
      assertValidationError(
        () => checkUpstreamsNotReserved(["10.0.0.1:80", u], "proxy_host.upstreams", RESERVED),
        "proxy_host.upstreams[1]",
        what,
      ));
  }
  for (const u of ["127.0.0.1:8080", "10.0.0.1:2019", "db.internal:50051", "https://example.com:443"]) {
    test(`${u} is accepted`, () =>
      assert.doesNotThrow(() => checkUpstreamsNotReserved([u], "proxy_host.upstreams", RESERVED)));
  }
  test("no reserved addresses: nothing is refused", () =>
    assert.doesNotThrow(() => checkUpstreamsNotReserved(["127.0.0.1:2019"], "f", [])));
});
