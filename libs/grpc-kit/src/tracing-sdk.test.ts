// Tracing on: the SDK is global to a process, so these tests have a file (a process) of their own.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CaddyRendererClient, CaddyRendererService, type CaddyRendererServer } from "@cpm/proto";
import { createLogger } from "@cpm/core";
import { status } from "@grpc/grpc-js";
import { ANONYMOUS } from "./auth.ts";
import { channelCredentials, unary } from "./client.ts";
import { definePolicy } from "./policy.ts";
import { GrpcServer, type AsyncService } from "./server.ts";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "./testing.ts";
import {
  contextFromCarrier,
  failSpan,
  initTracing,
  startSpan,
  spanCarrier,
  traceCarrier,
  withSpan,
  type Tracing,
} from "./tracing.ts";

describe("tracing on: spans reach an OTLP/HTTP receiver, and gRPC calls carry the trace", () => {
  let receiver: OtlpReceiver;
  let tracing: Tracing;
  let server: GrpcServer;
  let client: CaddyRendererClient;

  before(async () => {
    receiver = await startOtlpReceiver();
    // The exporter reads the standard variables itself, as in a service.
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint;
    process.env.OTEL_RESOURCE_ATTRIBUTES = "cpm.node=unit";
    tracing = await initTracing("grpc-kit-test", { "cpm.instance.mode": "standalone" });
    const impl: AsyncService<CaddyRendererServer> = {
      getRenderStatus: async () => withSpan("handler", {}, () => ({ status: undefined })),
    };
    const policy = definePolicy("cpm.render.v1.CaddyRenderer", {
      Render: ["public"],
      LoadSnapshot: ["public"],
      ReleasePreload: ["public"],
      GetRenderStatus: ["public"],
      WatchRenderStatus: ["public"],
    });
    server = new GrpcServer({
      log: createLogger("test", "silent"),
      authenticate: () => Promise.resolve(ANONYMOUS),
    }).add(CaddyRendererService, impl, policy);
    const port = await server.listen("127.0.0.1:0");
    client = new CaddyRendererClient(`127.0.0.1:${port}`, channelCredentials({}));
  });

  after(async () => {
    client?.close();
    await server?.shutdown();
    await receiver?.close();
  });

  const byName = (spans: ReceivedSpan[], name: string) => {
    const s = spans.find((x) => x.name === name);
    assert.ok(s, `span "${name}" exported (got: ${spans.map((x) => x.name).join(", ")})`);
    return s;
  };

  it("links a handler's span to the caller's through the call's metadata, a carrier to its span, and exports them on shutdown", async () => {
    assert.equal(tracing.enabled, true);
    await withSpan("caller", { attributes: { "cpm.config.version": 7 } }, () =>
      unary(client.getRenderStatus.bind(client), {}, undefined),
    );

    const push = startSpan("push");
    const carrier = spanCarrier(push);
    assert.match(carrier?.traceparent ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    await withSpan("apply", { parent: contextFromCarrier(carrier) }, (span) =>
      failSpan(span, Object.assign(new Error("example.com is refused"), { code: status.FAILED_PRECONDITION })),
    );
    push.end();
    assert.equal(traceCarrier(contextFromCarrier(undefined)), undefined);

    await tracing.shutdown();
    const spans = receiver.spans;
    const caller = byName(spans, "caller");
    const handler = byName(spans, "handler");
    assert.equal(handler.traceId, caller.traceId);
    assert.equal(handler.parentSpanId, caller.spanId);
    assert.equal(caller.parentSpanId, "");
    assert.equal(caller.attributes["cpm.config.version"], 7);
    assert.equal(caller.resource["service.name"], "grpc-kit-test");
    assert.equal(caller.resource["cpm.instance.mode"], "standalone");
    assert.equal(caller.resource["cpm.node"], "unit");

    const p = byName(spans, "push");
    const a = byName(spans, "apply");
    assert.equal(a.traceId, p.traceId);
    assert.equal(a.parentSpanId, p.spanId);
    // An error is recorded by its code, never by its message (which can quote configuration).
    assert.equal(a.statusCode, 2);
    assert.equal(a.attributes["error.type"], "FAILED_PRECONDITION");
    assert.ok(!JSON.stringify(a).includes("example.com"));
  });
});
