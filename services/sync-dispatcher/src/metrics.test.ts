import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NackCode, SlaveStatus } from "@cpm/proto";
import type { SlaveTarget } from "@cpm/core";
import { Registry } from "@cpm/grpc-kit";
import { DispatcherMetrics } from "./metrics.ts";

const TARGET: SlaveTarget = {
  name: "edge-1",
  url: "https://edge-1.internal:50443",
  address: "edge-1.internal:50443",
  tls: true,
  token: "secret-sync-token-0123456789",
};
const LABELS = '{slave="edge-1",address="edge-1.internal:50443"}';

function value(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("dispatcher metrics", () => {
  it("counts pushes, bytes, ACKs and NACKs per slave, labelled by name and address, never the token or URL", async () => {
    const registry = new Registry();
    const m = new DispatcherMetrics(registry);
    const link = m.link(TARGET);
    m.observe(() => [
      { target: TARGET, status: SlaveStatus.fromPartial({ connected: true, ackedVersion: 4, lag: 2 }) },
    ]);
    link.pushed(1000);
    link.pushed(500);
    link.acked(4);
    link.nacked(NackCode.NACK_CODE_CADDY_REJECTED);
    const text = await registry.metrics();
    assert.equal(value(text, `cpm_dispatcher_pushes_total${LABELS}`), 2);
    assert.equal(value(text, `cpm_dispatcher_sent_bytes_total${LABELS}`), 1500);
    assert.equal(value(text, `cpm_dispatcher_acks_total${LABELS}`), 1);
    assert.equal(
      value(text, `cpm_dispatcher_nacks_total{slave="edge-1",address="edge-1.internal:50443",code="caddy_rejected"}`),
      1,
    );
    assert.equal(
      value(text, `cpm_dispatcher_nacks_total{slave="edge-1",address="edge-1.internal:50443",code="stale_version"}`),
      0,
      "every code starts at 0",
    );
    assert.equal(value(text, `cpm_dispatcher_slave_connected${LABELS}`), 1);
    assert.equal(value(text, `cpm_dispatcher_slave_acked_version${LABELS}`), 4);
    assert.equal(value(text, `cpm_dispatcher_slave_lag_versions${LABELS}`), 2);
    assert.ok(!text.includes(TARGET.token) && !text.includes(TARGET.url));
  });

  it("measures propagation once per version and slave, only for versions committed after the first announcement", async () => {
    const registry = new Registry();
    const m = new DispatcherMetrics(registry);
    const link = m.link(TARGET);
    const count = async () => value(await registry.metrics(), `cpm_dispatcher_propagation_seconds_count${LABELS}`);
    assert.equal(await count(), 0, "the series exists from the start");
    m.committed(7, new Date(Date.now() - 3_600_000)); // the version the dispatcher found at start: an hour old
    link.acked(7);
    assert.equal(await count(), 0, "a version committed before the dispatcher started is not measured");
    m.committed(8, new Date(Date.now() - 2000));
    link.acked(8);
    link.acked(8); // a forced push of the same version
    assert.equal(await count(), 1);
    const sum = value(await registry.metrics(), `cpm_dispatcher_propagation_seconds_sum${LABELS}`)!;
    assert.ok(sum >= 2 && sum < 3600, `from the commit to the ACK (${sum} s)`);
    m.committed(9, new Date());
    m.committed(10, new Date());
    link.acked(10); // 9 was coalesced away
    assert.equal(await count(), 2);
    m.committed(11, undefined);
    link.acked(11);
    assert.equal(await count(), 2, "no commit time, nothing measured");
  });
});
