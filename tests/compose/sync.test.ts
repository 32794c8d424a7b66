import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { L4ProxyHost, ProxyHost } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import {
  consoleCall,
  consoleSignsIn,
  dockerMissing,
  hostGateway,
  removeDir,
  removeStack,
  secretsDir,
  Stack,
  token,
} from "../support/compose.ts";
import { startTcpEcho, tcpExchange, type L4Server } from "../support/l4.ts";
import { freePort, startUpstream, type TestServer } from "../support/net.ts";
import { makeNamedCerts } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";

const skip = dockerMissing();
// The master's containers dial each slave's published sync port through the host.
const SLAVE_HOST = "host.docker.internal";

describe("docker compose: a master and two slaves, each its own compose project, syncing over TLS", { skip }, () => {
  let master: Stack | undefined;
  const slaves: Stack[] = [];
  let upstream: TestServer;
  let echo: L4Server;
  const dirs: string[] = [];

  before(async () => {
    const gw = await hostGateway();
    upstream = await startUpstream("S", gw);
    echo = await startTcpEcho(gw);
    const pki = mkdtempSync(path.join(os.tmpdir(), "cpm-pki-"));
    dirs.push(pki);
    const { caPem, certs } = makeNamedCerts(pki, [SLAVE_HOST]);
    const slaveSecrets = secretsDir({ "slave.crt": certs[SLAVE_HOST]!.cert, "slave.key": certs[SLAVE_HOST]!.key });
    const masterSecrets = secretsDir({ "ca.crt": caPem });
    dirs.push(slaveSecrets, masterSecrets);

    const tokens = [token(), token()];
    const syncPorts = [await freePort(), await freePort()];
    // Each slave is recorded as soon as it is up, so `after` removes it even if another fails.
    await Promise.all(
      tokens.map(async (syncToken, i) => {
        slaves[i] = await Stack.up({
          project: `cpm-ct-slave${i + 1}-${process.pid}`,
          profile: "slave",
          env: {
            INSTANCE_MODE: "slave",
            INSTANCE_SYNC_TOKEN: syncToken,
            CPM_SYNC_TLS_CERT: "/secrets/slave.crt",
            CPM_SYNC_TLS_KEY: "/secrets/slave.key",
            CPM_SECRETS_DIR: slaveSecrets,
            // Reachable from the master's containers through the bridge gateway only, on a
            // fixed port: the master's INSTANCE_SLAVES names it, and a restarted container
            // would get another random one.
            CPM_PUBLISH_SYNC: `${gw}:${syncPorts[i]}`,
          },
        });
      }),
    );
    const list = await Promise.all(
      slaves.map(async (s, i) => ({
        name: `edge-${i + 1}`,
        url: `https://${SLAVE_HOST}:${await s.port("sync-receiver", 50443)}`,
        token: tokens[i],
      })),
    );
    master = await Stack.up({
      project: `cpm-ct-master-${process.pid}`,
      profile: "master",
      env: {
        INSTANCE_MODE: "master",
        INSTANCE_SLAVES: JSON.stringify(list),
        CPM_SYNC_TLS_CA: "/secrets/ca.crt",
        CPM_SECRETS_DIR: masterSecrets,
      },
    });
  });
  after(async () => {
    await Promise.all([master, ...slaves].map(removeStack));
    await upstream?.close();
    await echo?.close();
    for (const d of dirs) removeDir(d);
  });

  const createHost = async (name: string) => {
    const config = await master!.config();
    const h = ProxyHost.fromPartial({ name, domains: [`${name}.test`], upstreams: [`${SLAVE_HOST}:${upstream.port}`] });
    return (await unary(config.createProxyHost.bind(config), { proxyHost: h }, master!.adminToken)).configVersion;
  };
  /** Both slaves acked `version` (the master's dispatcher says so). */
  const acked = async (version: number) => {
    const dispatcher = await master!.dispatcher();
    return waitFor(
      async () => {
        const st = await unary(dispatcher.getSyncStatus.bind(dispatcher), {}, master!.adminToken);
        return st.slaves.length === 2 && st.slaves.every((s) => s.connected && s.ackedVersion >= version)
          ? st
          : undefined;
      },
      `both slaves acked v${version}`,
      60_000,
      500,
    );
  };
  const echoes = (stack: Stack) =>
    waitFor(
      async () => {
        const port = await stack.port("caddy", 7000);
        const { data } = await tcpExchange(port, "ping-l4", 7, 2000);
        return data.toString() === "ping-l4";
      },
      `${stack.opts.project}: L4 :7000 echoes`,
      60_000,
      500,
    );

  it("reports every container of the three instances healthy", async () => {
    for (const s of [master!, ...slaves]) {
      const health = await s.waitHealthy();
      assert.equal(
        Object.keys(health).length,
        5,
        `${s.opts.project}: caddy, config-service, caddy-renderer, the sync service and the web console`,
      );
    }
  });

  it("serves a proxy host and an L4 host created on the master on both slaves' published ports", async () => {
    await createHost("site");
    const config = await master!.config();
    const l4 = L4ProxyHost.fromPartial({
      name: "echo",
      listenAddress: ":7000",
      upstreams: [`${SLAVE_HOST}:${echo.port}`],
    });
    const v = (await unary(config.createL4ProxyHost.bind(config), { l4ProxyHost: l4 }, master!.adminToken))
      .configVersion;
    await acked(v);
    for (const s of slaves) {
      await s.waitServes("site.test", /upstream=S host=/);
      await echoes(s);
    }
  });

  it("serves each console on its published port; the master's shows the fleet from the dispatcher", async () => {
    const { url, cookie } = await consoleSignsIn(master!);
    const fleet = await waitFor(
      async () => {
        const r = await consoleCall(url, cookie, "cpm.sync.v1.SyncDispatcher/GetSyncStatus");
        assert.equal(r.status, 200, JSON.stringify(r.json));
        const list = (r.json.slaves ?? []) as { name: string; connected?: boolean }[];
        return list.length === 2 && list.every((s) => s.connected) ? list : undefined;
      },
      "the master's console: both slaves connected (GetSyncStatus through the console)",
      60_000,
      500,
    );
    assert.deepEqual(fleet.map((s) => s.name).sort(), ["edge-1", "edge-2"]);
    // A slave's console: its own users, the synced hosts read-only, no fleet.
    const slave = await consoleSignsIn(slaves[0]!, "sam");
    const hosts = await consoleCall(slave.url, slave.cookie, "cpm.config.v1.ConfigService/ListProxyHosts");
    assert.equal(hosts.status, 200, JSON.stringify(hosts.json));
    assert.ok(
      (hosts.json.proxyHosts as { name: string }[]).some((h) => h.name === "site"),
      "the slave's console lists the synced host",
    );
    const refused = await consoleCall(slave.url, slave.cookie, "cpm.config.v1.ConfigService/CreateProxyHost", {
      proxyHost: { name: "local", domains: ["local.test"], upstreams: ["127.0.0.1:1"] },
    });
    assert.equal(refused.json.code, "failed_precondition", `a slave refuses a change: ${JSON.stringify(refused.json)}`);
  });

  it("a slave whose containers are killed and started again converges", async () => {
    const [one, two] = slaves as [Stack, Stack];
    await one.docker("kill", "sync-receiver");
    await one.docker("kill", "caddy");
    const v = await createHost("late");
    await two.waitServes("late.test", /upstream=S/);
    await one.docker("start", "caddy");
    await one.docker("start", "sync-receiver");
    await acked(v);
    await one.waitServes("late.test", /upstream=S/);
    await one.waitServes("site.test", /upstream=S/);
    await echoes(one);
    await one.waitHealthy();
  });
});
