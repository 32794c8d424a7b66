import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ProxyHost } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "@cpm/grpc-kit/testing";
import { Instance, ROOT, SPLIT } from "../support/instance.ts";
import { makePki, type TestPki } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";

const TOKEN = "tracing-slave-sync-token-0123456789";
const DOMAIN = "traced.sync.test";

describe("tracing: one change followed from the master's commit to the slave's Caddy, over OTLP/HTTP", () => {
  let pki: TestPki;
  let receiver: OtlpReceiver;
  let master: Instance;
  let slave: Instance;

  /** What a node needs to export its spans to the test's receiver; `node` tells the two apart. */
  const tracingEnv = (node: string) => ({
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_BSP_SCHEDULE_DELAY: "100",
    OTEL_RESOURCE_ATTRIBUTES: `cpm.node=${node}`,
  });

  before(async () => {
    pki = makePki(mkdtempSync(path.join(os.tmpdir(), "cpm-pki-")));
    receiver = await startOtlpReceiver();
    slave = await Instance.start({
      name: "slave",
      mode: "slave",
      env: {
        ...tracingEnv("slave"),
        INSTANCE_SYNC_TOKEN: TOKEN,
        CPM_SYNC_TLS_CERT: pki.cert,
        CPM_SYNC_TLS_KEY: pki.key,
      },
    });
    master = await Instance.start({
      name: "master",
      mode: "master",
      env: {
        ...tracingEnv("master"),
        INSTANCE_SLAVES: JSON.stringify([
          { name: "slave", url: `https://localhost:${slave.ports.sync}`, token: TOKEN },
        ]),
        CPM_SYNC_TLS_CA: pki.caCert,
      },
    });
  });

  after(async () => {
    for (const i of [master, slave]) await i?.stop();
    await receiver?.close();
  });

  /** The version the slave acked, when it is connected and on the master's version. */
  const acked = async () => {
    const r = await unary(master.dispatcher.getSyncStatus.bind(master.dispatcher), {}, master.adminToken);
    const s = r.slaves[0]!;
    return s.connected && s.ackedVersion === r.masterVersion && { version: r.masterVersion };
  };

  /** The one span named `name` from `service` on `node` for `version`. */
  const spanOf = (node: string, service: string, name: string, version: number): ReceivedSpan | undefined =>
    receiver.spans.find(
      (s) =>
        s.resource["cpm.node"] === node &&
        // One process is one service to a tracing backend: `cpm`; split, each service names its spans.
        s.resource["service.name"] === (SPLIT ? service : "cpm") &&
        s.name === name &&
        s.attributes["cpm.config.version"] === version,
    );

  it("the commit, the master's load, the push, the slave's apply, commit and Caddy load share one trace, each a child of the step before", async () => {
    // The slave is connected and on the master's version: the write below is pushed at once.
    await waitFor(acked, "the slave acked the master's version");
    const res = await unary(
      master.config.createProxyHost.bind(master.config),
      { proxyHost: ProxyHost.fromPartial({ name: "traced", domains: [DOMAIN], upstreams: ["127.0.0.1:9"] }) },
      master.adminToken,
    );
    const v = res.configVersion;
    await waitFor(async () => ((await acked()) || undefined)?.version === v, `the slave acked v${v}`);

    const find = (node: string, service: string, name: string) =>
      waitFor(() => spanOf(node, service, name, v), `${node} ${service} span ${name} for v${v}`, 15_000);
    const commit = await find("master", "config-service", "config.commit");
    const masterLoad = await find("master", "caddy-renderer", "renderer.load");
    const push = await find("master", "sync-dispatcher", "dispatcher.push");
    const apply = await find("slave", "sync-receiver", "receiver.apply");
    const preload = await find("slave", "caddy-renderer", "renderer.preload");
    const slaveCommit = await find("slave", "config-service", "config.apply");

    const trace = commit.traceId;
    for (const s of [masterLoad, push, apply, preload, slaveCommit])
      assert.equal(s.traceId, trace, `${s.resource["cpm.node"]} ${s.name} is in the commit's trace`);
    assert.equal(commit.parentSpanId, "", "the API write starts the trace");
    assert.equal(masterLoad.parentSpanId, commit.spanId, "the master's Caddy load follows its commit");
    assert.equal(push.parentSpanId, commit.spanId, "the push follows the commit of the version it carries");
    assert.equal(
      apply.parentSpanId,
      push.spanId,
      "the slave's apply follows the push (trace context in the SyncRequest)",
    );
    assert.equal(
      preload.parentSpanId,
      apply.spanId,
      "the slave's Caddy load follows its apply (traceparent in the call's metadata)",
    );
    assert.equal(slaveCommit.parentSpanId, apply.spanId, "the slave's commit follows its apply");

    // What the spans say: the version everywhere, the outcome, the slave's address; never a host name or a token.
    assert.equal(preload.attributes["cpm.config.version"], v);
    assert.equal(preload.attributes["cpm.config.config_sha256"], String(apply.attributes["cpm.config.config_sha256"]));
    assert.equal(push.attributes["cpm.sync.result"], "ack");
    assert.equal(apply.attributes["cpm.sync.result"], "ack");
    assert.equal(push.attributes["server.address"], `localhost:${slave.ports.sync}`);
    assert.equal(push.attributes["cpm.slave.name"], "slave");
    assert.equal(slaveCommit.attributes["cpm.apply.changed"], true);
    assert.equal(commit.attributes["cpm.config.content_sha256"], preload.attributes["cpm.config.content_sha256"]);
    const inTrace = JSON.stringify(receiver.spans.filter((s) => s.traceId === trace));
    for (const secret of [DOMAIN, TOKEN, master.adminToken])
      assert.ok(!inTrace.includes(secret), `no span of the trace holds "${secret}"`);
  });

  it("a bad tracing variable stops a service at start with a message naming it", async () => {
    const run = (env: Record<string, string>) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const base = {
          PATH: process.env.PATH ?? "",
          HOME: process.env.HOME ?? "/tmp",
          INSTANCE_MODE: "master",
          INSTANCE_SLAVES: "[]",
        };
        const dataDir = mkdtempSync(path.join(os.tmpdir(), "cpm-tracing-env-"));
        const main = path.join(ROOT, "services/sync-dispatcher/dist/main.js");
        const child = execFile(
          process.execPath,
          [main],
          { env: { ...base, CPM_DATA_DIR: dataDir, ...env }, timeout: 20_000 },
          (_err, _out, stderr) => {
            rmSync(dataDir, { recursive: true, force: true });
            resolve({ code: child.exitCode, stderr });
          },
        );
      });
    const exporter = await run({ OTEL_TRACES_EXPORTER: "jaeger" });
    assert.equal(exporter.code, 78);
    assert.match(exporter.stderr, /OTEL_TRACES_EXPORTER: "jaeger" is not one of otlp, console, none/);
    const endpoint = await run({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" });
    assert.equal(endpoint.code, 78);
    assert.match(
      endpoint.stderr,
      /OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" is not an http:\/\/ or https:\/\/ URL/,
    );
  });
});
