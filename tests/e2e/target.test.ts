import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ProxyHost } from "@cpm/proto";
import { CONFIG_ERROR_EXIT_CODE } from "@cpm/core";
import { unary } from "@cpm/grpc-kit";
import { Instance, runLauncher, stopCleanly } from "../support/instance.ts";
import { startUpstream } from "../support/net.ts";

describe("CPM_TARGET: which modules a node runs", () => {
  it("refuses a module of another mode, naming CPM_TARGET, and starts nothing", async () => {
    const r = await runLauncher({ INSTANCE_MODE: "standalone", CPM_TARGET: "config-service,sync-dispatcher" });
    assert.equal(r.code, CONFIG_ERROR_EXIT_CODE, r.output);
    assert.match(r.output, /CPM_TARGET: "sync-dispatcher" runs only with INSTANCE_MODE=master, not standalone/);
    assert.doesNotMatch(r.output, /starting a/);
  });

  describe("one instance split over two nodes on one host", () => {
    // Node A: Caddy and config-service; node B: the renderer, which reaches both at their
    // configured addresses. One internal token, as an operator who splits a node sets it.
    let a: Instance;
    let b: Instance;
    let upstream: Awaited<ReturnType<typeof startUpstream>>;
    const internal = { CPM_INTERNAL_TOKEN: randomBytes(24).toString("base64url") };

    before(async () => {
      upstream = await startUpstream("A");
      a = await Instance.prepare({ name: "split-a", env: { ...internal, CPM_TARGET: "caddy,config-service" } });
      b = await Instance.prepare({
        name: "split-b",
        ports: a.ports,
        dataDir: a.dataDir,
        adminToken: a.adminToken,
        env: { ...internal, CPM_TARGET: "caddy-renderer" },
      });
      // Each launch returns once the API answers and Caddy runs the current version: only
      // once both nodes run.
      await Promise.all([a.launch(), b.launch()]);
    });
    after(async () => {
      await stopCleanly(b);
      await stopCleanly(a);
      await upstream?.close();
    });

    it("each launcher runs only its target's modules, and together they serve a change", async () => {
      const log = readFileSync(path.join(a.dataDir, "instance.log"), "utf8");
      assert.match(log, /starting a standalone node (in one process|split over processes): caddy, config-service \(/);
      assert.match(log, /starting a standalone node (in one process|split over processes): caddy-renderer \(/);
      const created = await unary(
        a.config.createProxyHost.bind(a.config),
        {
          proxyHost: ProxyHost.fromPartial({
            name: "split",
            domains: ["split.test"],
            upstreams: [`127.0.0.1:${upstream.port}`],
          }),
        },
        a.adminToken,
      );
      await a.waitServes("split.test", /upstream=A/);
      assert.equal((await a.waitInSync()).appliedVersion, created.configVersion);
    });
  });
});
