// Tracing on (the SDK is global to a process: this file is a process of its own).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { NackCode, Snapshot } from "@cpm/proto";
import { initTracing, traceCarrier, withSpan, type Tracing } from "@cpm/grpc-kit";
import { startOtlpReceiver, type OtlpReceiver } from "@cpm/grpc-kit/testing";
import { CommitTraces, endPush, startPush } from "./push-trace.ts";
import { SNAPSHOT_SCHEMA_VERSION } from "@cpm/core";

const target = {
  name: "edge-1",
  url: "https://10.0.0.7:50443",
  address: "10.0.0.7:50443",
  tls: true,
  token: "a-secret-sync-token-0123456789",
};
const snapshotAt = (version: number) =>
  Snapshot.fromPartial({
    schemaVersion: SNAPSHOT_SCHEMA_VERSION,
    masterInstanceId: "m",
    version,
    contentSha256: `${version}`.repeat(64).slice(0, 64),
  });

describe("push spans", () => {
  let receiver: OtlpReceiver;
  let tracing: Tracing;

  before(async () => {
    receiver = await startOtlpReceiver();
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint;
    tracing = await initTracing("sync-dispatcher", { "cpm.instance.mode": "master" });
  });

  after(async () => {
    await receiver?.close();
  });

  it("keeps the trace contexts of the latest 64 versions", async () => {
    const commits = new CommitTraces();
    const carrier = await withSpan("c", {}, () => traceCarrier());
    for (let v = 1; v <= 100; v++) commits.record(v, carrier);
    commits.record(101, undefined);
    assert.equal(commits.get(36), undefined);
    assert.deepEqual(commits.get(37), carrier);
    assert.equal(commits.get(101), undefined);
    assert.equal(commits.between(90, 95).length, 4);
  });

  it("a push that coalesces versions is a child of the newest one's commit and links the others; it records the answer", async () => {
    const commits = new CommitTraces();
    for (const v of [4, 5, 6])
      await withSpan(`commit ${v}`, { attributes: { "cpm.config.version": v } }, () =>
        commits.record(v, traceCarrier()),
      );
    // The slave acked v4; v5 and v6 were committed while a push was in flight: one push carries v6.
    const ack = startPush(snapshotAt(6), commits, target, 4);
    assert.match(ack.carrier?.traceparent ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    endPush(ack, {
      response: { ack: { version: 6, configSha256: "ab".repeat(32), contentSha256: "" }, nack: undefined },
    });
    const nack = startPush(snapshotAt(7), commits, target, 6);
    endPush(nack, {
      response: {
        ack: undefined,
        nack: {
          version: 7,
          appliedVersion: 6,
          reason: "proxy_hosts[0]: secret.example.com refused",
          code: NackCode.NACK_CODE_CADDY_REJECTED,
          retryable: false,
        },
      },
    });
    await tracing.shutdown();

    const named = (name: string) => receiver.spans.filter((s) => s.name === name);
    const [c5, c6] = [named("commit 5")[0]!, named("commit 6")[0]!];
    const [p6, p7] = named("dispatcher.push");
    assert.ok(p6 && p7);
    assert.equal(p6.traceId, c6.traceId);
    assert.equal(p6.parentSpanId, c6.spanId);
    assert.deepEqual(p6.links, [{ traceId: c5.traceId, spanId: c5.spanId }]);
    assert.equal(p6.attributes["cpm.sync.result"], "ack");
    assert.equal(p6.attributes["cpm.config.version"], 6);
    assert.equal(p6.attributes["cpm.sync.acked_version"], 4);
    assert.equal(p6.attributes["server.address"], "10.0.0.7:50443");
    // No commit known for v7: a trace of its own, not joined to another version's.
    assert.equal(p7.parentSpanId, "");
    assert.equal(p7.attributes["cpm.sync.nack_code"], "NACK_CODE_CADDY_REJECTED");
    assert.equal(p7.attributes["error.type"], "NACK_CADDY_REJECTED");
    assert.equal(p7.statusCode, 2);
    const all = JSON.stringify(receiver.spans);
    for (const secret of ["secret.example.com", target.token])
      assert.ok(!all.includes(secret), `no span holds "${secret}"`);
  });
});
