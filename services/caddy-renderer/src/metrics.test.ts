import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RenderStatus } from "@cpm/proto";
import { Registry } from "@cpm/grpc-kit";
import { CaddyRejectedError, CaddyUnreachableError } from "./caddy.ts";
import { RendererMetrics } from "./metrics.ts";

function value(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("renderer metrics", () => {
  it("counts and times every load, and failures by reason; the errors still reach the caller", async () => {
    const registry = new Registry();
    const m = new RendererMetrics(registry);
    const outcomes: (Error | undefined)[] = [
      undefined,
      new CaddyRejectedError(400, "bad"),
      new CaddyUnreachableError(new Error("ECONNREFUSED")),
      undefined,
    ];
    const caddy = m.instrument({
      load: () => {
        const e = outcomes.shift();
        return e ? Promise.reject(e) : Promise.resolve();
      },
      currentConfigHash: () => Promise.resolve("abc"),
      currentConfig: () => Promise.resolve({ json: "{}", sha256: "abc" }),
    });
    await caddy.load("{}");
    await assert.rejects(caddy.load("{}"), CaddyRejectedError);
    await assert.rejects(caddy.load("{}"), CaddyUnreachableError);
    await caddy.load("{}");
    assert.equal(await caddy.currentConfigHash(), "abc");
    m.observe(() =>
      RenderStatus.fromPartial({ appliedVersion: 12, desiredVersion: 13, caddyReachable: true, inSync: false }),
    );
    const text = await registry.metrics();
    assert.equal(value(text, "cpm_renderer_caddy_loads_total"), 4);
    assert.equal(value(text, "cpm_renderer_caddy_load_duration_seconds_count"), 4);
    assert.equal(value(text, 'cpm_renderer_caddy_load_failures_total{reason="rejected"}'), 1);
    assert.equal(value(text, 'cpm_renderer_caddy_load_failures_total{reason="unreachable"}'), 1);
    assert.equal(value(text, 'cpm_renderer_caddy_load_failures_total{reason="error"}'), 0);
    assert.equal(value(text, "cpm_renderer_applied_version"), 12);
    assert.equal(value(text, "cpm_renderer_desired_version"), 13);
    assert.equal(value(text, "cpm_renderer_caddy_reachable"), 1);
    assert.equal(value(text, "cpm_renderer_in_sync"), 0);
  });
});
