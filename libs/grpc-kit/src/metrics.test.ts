import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import {
  GetSyncStatusResponse,
  SyncDispatcherClient,
  SyncDispatcherService,
  type SyncDispatcherServer,
} from "@cpm/proto";
import { createLogger, ValidationError } from "@cpm/core";
import { Counter, Registry } from "prom-client";
import { sharedTokenAuthenticator } from "./auth.ts";
import { channelCredentials, unary } from "./client.ts";
import { metricSet, serveMetrics, type MetricsServer } from "./metrics.ts";
import { definePolicy } from "./policy.ts";
import { GrpcServer, type AsyncService } from "./server.ts";

const log = createLogger("test", "silent");
const TOKEN = "metrics-test-token-0123456789";
const POLICY = definePolicy("cpm.sync.v1.SyncDispatcher", {
  GetSyncStatus: ["sync_master"],
  TriggerFullSync: ["sync_master"],
});

/** The value of one sample line of a Prometheus text exposition, or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function scrape(port: number, path = "/metrics") {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, type: res.headers.get("content-type") ?? "", text: await res.text() };
}

describe("gRPC server metrics and the /metrics listener", () => {
  const registry = new Registry();
  let server: GrpcServer;
  let metrics: MetricsServer;
  let client: SyncDispatcherClient;

  before(async () => {
    const impl: AsyncService<SyncDispatcherServer> = {
      getSyncStatus: async () => GetSyncStatusResponse.fromPartial({}),
      triggerFullSync: async () => {
        throw new ValidationError("slave_name", "no such slave");
      },
    };
    server = new GrpcServer({
      log,
      authenticate: sharedTokenAuthenticator(
        TOKEN,
        { kind: "sync_master", name: "master", role: "admin" },
        "sync token",
      ),
      metricsRegistry: registry,
    }).add(SyncDispatcherService, impl, POLICY);
    const port = await server.listen("127.0.0.1:0");
    client = new SyncDispatcherClient(`127.0.0.1:${port}`, channelCredentials({}));
    metrics = await serveMetrics("127.0.0.1:0", { variable: "CPM_TEST_METRICS_LISTEN", registry });
  });

  after(async () => {
    client.close();
    await server.shutdown(1000);
    await metrics.close();
  });

  it("counts calls by method and status code, with a latency histogram", async () => {
    for (let i = 0; i < 2; i++) await unary(client.getSyncStatus.bind(client), {}, TOKEN);
    await assert.rejects(
      unary(client.triggerFullSync.bind(client), { slaveName: "x" }, TOKEN),
      (e: { code: status }) => e.code === status.INVALID_ARGUMENT,
    );
    // Refused by the access interceptor before any handler runs: still counted.
    await assert.rejects(
      unary(client.getSyncStatus.bind(client), {}, "wrong-token-0123456789"),
      (e: { code: status }) => e.code === status.UNAUTHENTICATED,
    );

    const { status: code, type, text } = await scrape(metrics.port);
    assert.equal(code, 200);
    assert.match(type, /^text\/plain; version=0\.0\.4/);
    const labels = (method: string, grpcCode: string) =>
      `{grpc_service="cpm.sync.v1.SyncDispatcher",grpc_method="${method}",grpc_type="unary",grpc_code="${grpcCode}"}`;
    assert.equal(sample(text, `cpm_grpc_server_handled_total${labels("GetSyncStatus", "OK")}`), 2);
    assert.equal(sample(text, `cpm_grpc_server_handled_total${labels("TriggerFullSync", "INVALID_ARGUMENT")}`), 1);
    assert.equal(sample(text, `cpm_grpc_server_handled_total${labels("GetSyncStatus", "UNAUTHENTICATED")}`), 1);
    assert.equal(sample(text, `cpm_grpc_server_handling_seconds_count${labels("GetSyncStatus", "OK")}`), 2);
    const inf = `cpm_grpc_server_handling_seconds_bucket{le="+Inf",grpc_service="cpm.sync.v1.SyncDispatcher",grpc_method="GetSyncStatus",grpc_type="unary",grpc_code="OK"}`;
    assert.equal(sample(text, inf), 2);
    // Node's process metrics come with the listener.
    assert.ok(sample(text, "process_cpu_user_seconds_total") !== undefined, "process metrics are served");
  });

  it(
    "serves what promtool check metrics accepts",
    {
      skip:
        spawnSync("promtool", ["--version"]).status === 0
          ? false
          : "promtool is not installed (Debian package prometheus)",
    },
    async () => {
      const { text } = await scrape(metrics.port);
      const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
      assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
      assert.ok(sample(text, "nodejs_active_handles_total") === undefined, "no gauge named like a counter");
    },
  );

  it("serves nothing but /metrics", async () => {
    const r = await scrape(metrics.port, "/");
    assert.equal(r.status, 404);
    assert.match(r.text, /metrics are served at \/metrics/);
    const post = await fetch(`http://127.0.0.1:${metrics.port}/metrics`, { method: "POST" });
    assert.equal(post.status, 405);
  });

  it("names the variable when the address cannot be bound", async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const port = (busy.address() as { port: number }).port;
    try {
      await assert.rejects(
        serveMetrics(`127.0.0.1:${port}`, { variable: "CPM_RENDERER_METRICS_LISTEN", registry: new Registry() }),
        /^Error: CPM_RENDERER_METRICS_LISTEN: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/,
      );
    } finally {
      busy.close();
    }
  });
});

describe("metricSet", () => {
  it("defines a group once per registry", () => {
    let created = 0;
    const group = metricSet((registry) => {
      created++;
      return new Counter({ name: "cpm_test_things_total", help: "things", registers: [registry] });
    });
    const a = new Registry();
    const b = new Registry();
    assert.equal(group(a), group(a));
    assert.notEqual(group(a), group(b));
    assert.equal(created, 2);
  });
});
