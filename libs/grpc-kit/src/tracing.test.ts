import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Metadata } from "@grpc/grpc-js";
import { ConfigError } from "@cpm/core";
import {
  contextFromCarrier,
  initTracing,
  injectTraceContext,
  traceCarrier,
  tracingConfigFromEnv,
  withSpan,
} from "./tracing.ts";

describe("tracing configuration from the standard OpenTelemetry variables", () => {
  it("is off when nothing is configured", () => {
    assert.deepEqual(tracingConfigFromEnv({}).exporters, []);
  });

  it("exports with OTLP when an endpoint is set, or as OTEL_TRACES_EXPORTER names", () => {
    assert.deepEqual(tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }).exporters, [
      "otlp",
    ]);
    assert.deepEqual(
      tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://c.example/v1/traces" }).exporters,
      ["otlp"],
    );
    assert.deepEqual(tracingConfigFromEnv({ OTEL_TRACES_EXPORTER: "console" }).exporters, ["console"]);
    assert.deepEqual(tracingConfigFromEnv({ OTEL_TRACES_EXPORTER: "otlp, console,otlp" }).exporters, [
      "otlp",
      "console",
    ]);
  });

  it("is off with OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true, whatever else is set", () => {
    assert.deepEqual(
      tracingConfigFromEnv({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }).exporters,
      [],
    );
    assert.deepEqual(
      tracingConfigFromEnv({ OTEL_SDK_DISABLED: "true", OTEL_TRACES_EXPORTER: "console" }).exporters,
      [],
    );
  });

  it("names the variable of an unknown exporter or a malformed endpoint", () => {
    assert.throws(
      () => tracingConfigFromEnv({ OTEL_TRACES_EXPORTER: "jaeger" }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.variable === "OTEL_TRACES_EXPORTER" &&
        /"jaeger" is not one of otlp, console, none/.test(e.message),
    );
    assert.throws(
      () => tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }),
      (e: unknown) => e instanceof ConfigError && e.variable === "OTEL_EXPORTER_OTLP_ENDPOINT",
    );
  });
});

describe("tracing off (no SDK started)", () => {
  it("starts nothing, and the helpers run the code they wrap and carry no trace context", async () => {
    const tracing = await initTracing("test", {}, {});
    assert.equal(tracing.enabled, false);
    assert.equal(await withSpan("x", {}, () => 42), 42);
    await assert.rejects(
      withSpan("x", {}, () => {
        throw new Error("boom");
      }),
      /boom/,
    );
    await withSpan("outer", {}, () => {
      assert.equal(traceCarrier(), undefined);
      assert.equal(injectTraceContext(new Metadata()).get("traceparent").length, 0);
    });
    // A carrier from a traced peer is ignored without an SDK: nothing to join.
    const ctx = contextFromCarrier({
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      tracestate: "",
    });
    assert.equal(traceCarrier(ctx), undefined);
    await tracing.shutdown();
  });

  it("costs next to nothing per span (measured, reported, not asserted)", async () => {
    const n = 200_000;
    const work = (i: number) => i * 2;
    let sink = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += await Promise.resolve(work(i));
    const t1 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += await withSpan("x", { attributes: { "cpm.config.version": i } }, () => work(i));
    const t2 = process.hrtime.bigint();
    const bare = Number(t1 - t0) / n;
    const traced = Number(t2 - t1) / n;
    assert.ok(sink > 0);
    console.log(
      `withSpan with tracing off: ${traced.toFixed(0)} ns per call, a bare awaited call ${bare.toFixed(0)} ns (${n} calls)`,
    );
  });
});
