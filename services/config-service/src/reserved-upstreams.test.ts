// Upstreams that point at this instance's own control plane (Caddy's admin API, CPM ports) are
// refused at write time with INVALID_ARGUMENT naming the field, and nothing is written.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { L4ProxyHost, ProxyHost, Settings } from "@cpm/proto";
import { loadConfig, reservedAddresses } from "@cpm/core";
import { status, unary } from "@cpm/grpc-kit";
import { ADMIN, expectStatus, harnessForEachTest, type Harness } from "./test-support.ts";

const reserved = reservedAddresses(
  loadConfig({ CPM_DATA_DIR: "/tmp/cpm-reserved", CADDY_API_URL: "http://127.0.0.1:2999" }),
);

describe("upstreams pointing at this instance", () => {
  let h!: Harness;
  harnessForEachTest({ reservedUpstreams: reserved }, (x) => (h = x));
  const version = async () => (await unary(h.config.getInstanceInfo.bind(h.config), {}, ADMIN)).version;
  const createHost = (upstreams: string[]) =>
    unary(
      h.config.createProxyHost.bind(h.config),
      { proxyHost: ProxyHost.fromPartial({ name: "site", domains: ["a.example.com"], upstreams }) },
      ADMIN,
    );
  const createL4 = (upstreams: string[]) =>
    unary(
      h.config.createL4ProxyHost.bind(h.config),
      { l4ProxyHost: L4ProxyHost.fromPartial({ name: "db", listenAddress: ":5432", upstreams }) },
      ADMIN,
    );

  it("a proxy host upstream on Caddy's admin API is refused naming the field; nothing is written", async () => {
    const before = await version();
    const msg = await expectStatus(createHost(["10.0.0.1:80", "localhost:2999"]), status.INVALID_ARGUMENT);
    assert.match(msg, /^proxy_host\.upstreams\[1\]: "localhost:2999" points at this instance's Caddy admin API/);
    assert.equal(await version(), before);
    assert.equal(
      (await unary(h.config.listProxyHosts.bind(h.config), { pageSize: 0, pageToken: "", query: "" }, ADMIN)).proxyHosts
        .length,
      0,
    );
  });

  it("a proxy host update onto the config-service port is refused", async () => {
    const { proxyHost } = await createHost(["10.0.0.1:80"]);
    const msg = await expectStatus(
      unary(
        h.config.updateProxyHost.bind(h.config),
        { proxyHost: { ...proxyHost!, upstreams: ["https://[::ffff:127.0.0.1]:50051"] } },
        ADMIN,
      ),
      status.INVALID_ARGUMENT,
    );
    assert.match(msg, /^proxy_host\.upstreams\[0\]: .*config-service \(CPM_API_LISTEN\)/);
  });

  it("an L4 host upstream on a CPM port is refused naming the field", async () => {
    const msg = await expectStatus(createL4(["127.0.0.1:50443"]), status.INVALID_ARGUMENT);
    assert.match(msg, /^l4_proxy_host\.upstreams\[0\]: "127\.0\.0\.1:50443" points at this instance's sync-receiver/);
    const { l4ProxyHost } = await createL4(["10.0.0.5:5432"]);
    const upd = await expectStatus(
      unary(
        h.config.updateL4ProxyHost.bind(h.config),
        { l4ProxyHost: { ...l4ProxyHost!, upstreams: ["10.0.0.5:5432", "0.0.0.0:50052"] } },
        ADMIN,
      ),
      status.INVALID_ARGUMENT,
    );
    assert.match(upd, /^l4_proxy_host\.upstreams\[1\]: .*caddy-renderer/);
  });

  it("other loopback ports and the same port elsewhere are accepted", async () => {
    await createHost(["127.0.0.1:8090", "10.0.0.1:2999"]);
    await createL4(["127.0.0.1:5433"]);
  });

  it("placeholder e-mail in the settings is refused naming the field", async () => {
    const msg = await expectStatus(
      unary(
        h.config.updateSettings.bind(h.config),
        {
          settings: Settings.fromPartial({
            general: { acmeEmail: "{env.CPM_INTERNAL_TOKEN}.{env.CPM_ADMIN_TOKEN}@example.com" },
          }),
        },
        ADMIN,
      ),
      status.INVALID_ARGUMENT,
    );
    assert.match(msg, /^settings\.general\.acme_email: contains "\{" or "\}", which Caddy would read as a placeholder/);
  });
});
