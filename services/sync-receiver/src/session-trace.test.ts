// Tracing on (the SDK is global to a process: this file is a process of its own).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { SyncResponse } from "@cpm/proto";
import { contextFromCarrier, initTracing, type Tracing } from "@cpm/grpc-kit";
import { startOtlpReceiver, type OtlpReceiver } from "@cpm/grpc-kit/testing";
import { SyncSession } from "./session.ts";
import { fakes, gate, log, snap } from "./test-support.ts";

const settle = () => new Promise((r) => setTimeout(r, 20));
/** The trace context a master's push would send with snapshot `v`. */
const pushOf = (v: number) => ({
  traceparent: `00-${"a".repeat(30)}${String(v).padStart(2, "0")}-${"b".repeat(14)}${String(v).padStart(2, "0")}-01`,
  tracestate: "",
});

describe("SyncSession with tracing: each snapshot is applied in its own push's trace", () => {
  let receiver: OtlpReceiver;
  let tracing: Tracing;

  before(async () => {
    receiver = await startOtlpReceiver();
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint;
    tracing = await initTracing("sync-receiver", { "cpm.instance.mode": "slave" });
  });

  after(async () => {
    await receiver?.close();
  });

  it("a pending snapshot that waited behind another is applied as a child of its own push, not of the one before", async () => {
    const { applier, renderer } = fakes(1);
    const g = gate();
    renderer.gate = g.promise;
    const sent: SyncResponse[] = [];
    const session = new SyncSession(applier, (r) => sent.push(r), log);
    for (const v of [2, 3, 4]) session.receive(snap(v), contextFromCarrier(pushOf(v)));
    g.open();
    await settle();
    assert.deepEqual(
      sent.map((r) => r.ack?.version ?? -(r.nack?.version ?? 0)),
      [-3, 2, 4],
    );
    await tracing.shutdown();

    const applies = receiver.spans.filter((s) => s.name === "receiver.apply");
    assert.deepEqual(
      applies.map((s) => [
        s.attributes["cpm.config.version"],
        s.traceId,
        s.parentSpanId,
        s.attributes["cpm.sync.result"],
      ]),
      [2, 4].map((v) => [v, pushOf(v).traceparent.slice(3, 35), pushOf(v).traceparent.slice(36, 52), "ack"]),
    );
  });
});
