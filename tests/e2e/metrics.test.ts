import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ProxyHost } from "@cpm/proto";
import { CONFIG_ERROR_EXIT_CODE, RELEASE } from "@cpm/core";
import { unary } from "@cpm/grpc-kit";
import { Instance, ROOT, runLauncher } from "../support/instance.ts";
import { freePort, startUpstream } from "../support/net.ts";
import { makePki, type TestPki } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";

const TOKEN = "metrics-slave-sync-token-0123456789";
const PROMTOOL = spawnSync("promtool", ["--version"]).status === 0;

/** One scrape of a /metrics listener, with its samples by series (name and labels as exposed). */
class Scrape {
  constructor(readonly text: string) {}

  static async of(port: number): Promise<Scrape> {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(res.status, 200, `GET /metrics on port ${port}`);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    return new Scrape(await res.text());
  }

  /** The value of `series` (e.g. `cpm_config_version` or `name{label="x"}`); fails when it is absent. */
  value(series: string): number {
    const line = this.text.split("\n").find((l) => l.startsWith(`${series} `));
    assert.ok(line !== undefined, `${series} is exposed`);
    return Number(line.slice(series.length + 1));
  }
}

/** `promtool check metrics` on one scrape: exit code and what it said. */
function promtoolCheck(text: string): { status: number | null; output: string } {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe("Prometheus metrics of a master and a TLS slave", () => {
  let pki: TestPki;
  let master: Instance;
  let slave: Instance;
  let up: Awaited<ReturnType<typeof startUpstream>>;
  const port = { masterConfig: 0, masterRenderer: 0, dispatcher: 0, slaveConfig: 0, slaveRenderer: 0, receiver: 0 };

  before(async () => {
    for (const k of Object.keys(port) as (keyof typeof port)[]) port[k] = await freePort();
    pki = makePki(mkdtempSync(path.join(os.tmpdir(), "cpm-pki-")));
    up = await startUpstream("M");
    slave = await Instance.start({
      name: "metrics-slave",
      mode: "slave",
      env: {
        INSTANCE_SYNC_TOKEN: TOKEN,
        CPM_SYNC_TLS_CERT: pki.cert,
        CPM_SYNC_TLS_KEY: pki.key,
        CPM_CONFIG_METRICS_LISTEN: `127.0.0.1:${port.slaveConfig}`,
        CPM_RENDERER_METRICS_LISTEN: `127.0.0.1:${port.slaveRenderer}`,
        CPM_RECEIVER_METRICS_LISTEN: `127.0.0.1:${port.receiver}`,
      },
    });
    master = await Instance.start({
      name: "metrics-master",
      mode: "master",
      env: {
        INSTANCE_SLAVES: JSON.stringify([
          { name: "edge-1", url: `https://localhost:${slave.ports.sync}`, token: TOKEN },
        ]),
        CPM_SYNC_TLS_CA: pki.caCert,
        CPM_CONFIG_METRICS_LISTEN: `127.0.0.1:${port.masterConfig}`,
        CPM_RENDERER_METRICS_LISTEN: `127.0.0.1:${port.masterRenderer}`,
        CPM_DISPATCHER_METRICS_LISTEN: `127.0.0.1:${port.dispatcher}`,
      },
    });
  });

  after(async () => {
    for (const i of [master, slave]) await i?.stop();
    await up?.close();
  });

  const slaveLabels = () => `{slave="edge-1",address="localhost:${slave.ports.sync}"}`;
  const ackedVersion = async () =>
    (await Scrape.of(port.dispatcher)).value(`cpm_dispatcher_slave_acked_version${slaveLabels()}`);

  it("after a write, every service's /metrics reports what happened, and promtool accepts each scrape", async (t) => {
    // A first write, acked, proves the dispatcher follows the master; the measured write is the next one.
    const first = await unary(
      master.config.createProxyHost.bind(master.config),
      {
        proxyHost: ProxyHost.fromPartial({
          name: "first",
          domains: ["first.metrics.test"],
          upstreams: [`127.0.0.1:${up.port}`],
        }),
      },
      master.adminToken,
    );
    await waitFor(
      async () => (await ackedVersion()) === first.configVersion,
      `the slave acked v${first.configVersion}`,
    );
    await master.waitInSync();
    const before = {
      config: await Scrape.of(port.masterConfig),
      renderer: await Scrape.of(port.masterRenderer),
      dispatcher: await Scrape.of(port.dispatcher),
    };
    const startedAt = Date.now();

    const created = await unary(
      master.config.createProxyHost.bind(master.config),
      {
        proxyHost: ProxyHost.fromPartial({
          name: "web",
          domains: ["web.metrics.test"],
          upstreams: [`127.0.0.1:${up.port}`],
        }),
      },
      master.adminToken,
    );
    const v = created.configVersion;
    await waitFor(async () => (await ackedVersion()) === v, `the slave acked v${v}`);
    await master.waitInSync();
    await slave.waitInSync();

    // config-service (master): the version, one more commit, the new host, the API call.
    const mc = await Scrape.of(port.masterConfig);
    assert.equal(mc.value("cpm_config_version"), v);
    assert.equal(
      mc.value("cpm_config_commits_total") - before.config.value("cpm_config_commits_total"),
      1,
      "one write is one commit",
    );
    assert.equal(mc.value('cpm_config_resources{kind="proxy_host"}'), 2);
    assert.ok(
      mc.value("cpm_config_snapshot_bytes") > before.config.value("cpm_config_snapshot_bytes"),
      "the snapshot grew with the new host",
    );
    const createOk =
      '{grpc_service="cpm.config.v1.ConfigService",grpc_method="CreateProxyHost",grpc_type="unary",grpc_code="OK"}';
    assert.equal(mc.value(`cpm_grpc_server_handled_total${createOk}`), 2);
    assert.equal(mc.value(`cpm_grpc_server_handling_seconds_count${createOk}`), 2);

    // caddy-renderer (master): Caddy loaded the new version, and runs it.
    const mr = await Scrape.of(port.masterRenderer);
    assert.equal(mr.value("cpm_renderer_applied_version"), v);
    assert.equal(mr.value("cpm_renderer_in_sync"), 1);
    assert.equal(mr.value("cpm_renderer_caddy_reachable"), 1);
    assert.ok(
      mr.value("cpm_renderer_caddy_loads_total") - before.renderer.value("cpm_renderer_caddy_loads_total") >= 1,
      "the write loaded Caddy",
    );
    assert.equal(
      mr.value("cpm_renderer_caddy_load_duration_seconds_count"),
      mr.value("cpm_renderer_caddy_loads_total"),
      "every load is timed",
    );
    assert.equal(mr.value('cpm_renderer_caddy_load_failures_total{reason="rejected"}'), 0);

    // sync-dispatcher: the slave is connected, on v, not behind; pushes were answered by ACKs.
    const d = await Scrape.of(port.dispatcher);
    const s = slaveLabels();
    assert.equal(d.value(`cpm_dispatcher_slave_connected${s}`), 1);
    assert.equal(d.value(`cpm_dispatcher_slave_acked_version${s}`), v);
    assert.equal(d.value(`cpm_dispatcher_slave_lag_versions${s}`), 0);
    // The slave announced this release and reads the newest schema: compatible, sent schema 3.
    assert.equal(d.value(`cpm_dispatcher_slave_incompatible${s}`), 0);
    assert.equal(d.value(`cpm_dispatcher_slave_info${s.replace("}", `,release="${RELEASE}",schema_version="3"}`)}`), 1);
    assert.equal(d.value("cpm_dispatcher_master_version"), v);
    const pushes = d.value(`cpm_dispatcher_pushes_total${s}`);
    const acks = d.value(`cpm_dispatcher_acks_total${s}`);
    assert.ok(pushes - before.dispatcher.value(`cpm_dispatcher_pushes_total${s}`) >= 1, "the write was pushed");
    assert.ok(acks - before.dispatcher.value(`cpm_dispatcher_acks_total${s}`) >= 1, "the push was ACKed");
    assert.equal(acks, pushes, "every push was ACKed (none NACKed, none in flight)");
    assert.ok(d.value(`cpm_dispatcher_sent_bytes_total${s}`) > 0);
    // The write's version, measured once from its commit to the slave's ACK.
    const measured = (x: Scrape, part: "count" | "sum") => x.value(`cpm_dispatcher_propagation_seconds_${part}${s}`);
    assert.equal(measured(d, "count") - measured(before.dispatcher, "count"), 1);
    assert.ok(measured(d, "sum") > measured(before.dispatcher, "sum"));

    // sync-receiver (slave): the snapshot arrived and was applied; its config-service and Caddy are on v.
    const r = await Scrape.of(port.receiver);
    assert.equal(r.value("cpm_receiver_applied_version"), v);
    assert.ok(r.value("cpm_receiver_snapshots_received_total") >= 2, "both writes' snapshots arrived");
    assert.equal(
      r.value("cpm_receiver_snapshots_applied_total"),
      acks,
      "each ACK the master counted left the receiver",
    );
    assert.equal(r.value('cpm_receiver_snapshots_refused_total{code="stale_version"}'), 0);
    assert.ok(
      r.value("cpm_receiver_last_sync_timestamp_seconds") * 1000 >= startedAt - 1000,
      "the last sync is the write's",
    );
    const receiverSync = '{grpc_service="cpm.sync.v1.SyncReceiver",grpc_method="Sync",grpc_type="bidi_stream"';
    assert.ok(
      !r.text.includes(`cpm_grpc_server_handled_total${receiverSync},grpc_code="UNAUTHENTICATED"}`),
      "the master's token was accepted",
    );
    const sc = await Scrape.of(port.slaveConfig);
    assert.equal(sc.value("cpm_config_version"), v);
    assert.equal(sc.value('cpm_config_resources{kind="proxy_host"}'), 2);
    const sr = await Scrape.of(port.slaveRenderer);
    assert.equal(sr.value("cpm_renderer_applied_version"), v);
    assert.equal(sr.value("cpm_renderer_in_sync"), 1);

    const scrapes = {
      "master config-service": mc,
      "master caddy-renderer": mr,
      "sync-dispatcher": d,
      "sync-receiver": r,
      "slave config-service": sc,
      "slave caddy-renderer": sr,
    };
    for (const [name, scrape] of Object.entries(scrapes)) {
      // No secret and no user string in any label: the token, the admin token, the host name.
      for (const secret of [TOKEN, master.adminToken, slave.adminToken, "web.metrics.test", "first.metrics.test"])
        assert.ok(!scrape.text.includes(secret), `${name} does not expose "${secret}"`);
    }
    if (!PROMTOOL) {
      t.diagnostic("promtool is not installed (Debian package prometheus): the scrapes were not checked by it");
      return;
    }
    for (const [name, scrape] of Object.entries(scrapes)) {
      const check = promtoolCheck(scrape.text);
      assert.equal(check.status, 0, `promtool check metrics on ${name}: ${check.output}`);
    }
  });

  it(
    "promtool check metrics is available to check the scrapes",
    { skip: PROMTOOL ? false : "promtool is not installed (apt-get install prometheus)" },
    () => {
      // Proves the check can fail: a counter without _total is refused.
      const bad = promtoolCheck("# HELP cpm_bad a counter\n# TYPE cpm_bad counter\ncpm_bad 1\n");
      assert.notEqual(bad.status, 0, "promtool refuses a badly named counter");
    },
  );
});

describe("metrics listener addresses", () => {
  it("a bad address names its variable and stops the instance", async () => {
    const r = await runLauncher({
      CPM_RENDERER_METRICS_LISTEN: "not-an-address",
      CPM_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), "cpm-metrics-bad-")),
    });
    assert.equal(r.code, CONFIG_ERROR_EXIT_CODE);
    assert.match(r.output, /CPM_RENDERER_METRICS_LISTEN: "not-an-address" is not a host:port address/);
  });

  it("a service that cannot bind its metrics address says why and exits non-zero", async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const taken = (busy.address() as net.AddressInfo).port;
    try {
      const child = spawn(process.execPath, [path.join(ROOT, "services/caddy-renderer/dist/main.js")], {
        env: {
          PATH: process.env.PATH ?? "",
          CPM_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), "cpm-metrics-busy-")),
          CPM_CADDY_LAYER4: "false",
          CPM_RENDERER_LISTEN: `127.0.0.1:${await freePort()}`,
          CPM_RENDERER_METRICS_LISTEN: `127.0.0.1:${taken}`,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      const code = await new Promise<number | null>((r) => child.once("exit", r));
      clearTimeout(timer);
      assert.equal(code, 1);
      assert.match(
        stderr,
        new RegExp(
          `caddy-renderer: cannot start: CPM_RENDERER_METRICS_LISTEN: cannot listen on 127\\.0\\.0\\.1:${taken}: .*EADDRINUSE`,
        ),
      );
    } finally {
      busy.close();
    }
  });
});
