import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ProxyHost } from "@cpm/proto";
import { caddyAdminRequest } from "@cpm/core";
import { unary } from "@cpm/grpc-kit";
import { Instance, stopCleanly } from "../support/instance.ts";
import { startUpstream } from "../support/net.ts";
import { waitFor } from "../support/wait.ts";

/** The pid of the Caddy the launcher `parent` runs (a direct child named caddy). */
function caddyPid(parent: number): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // "pid (comm) state ppid ..."; comm may hold spaces, so split after its closing parenthesis.
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (comm === "caddy" && ppid === parent) return Number(entry);
    } catch {
      /* gone meanwhile */
    }
  }
  return undefined;
}

describe("a killed Caddy: the launcher restarts it with the last config it ran", () => {
  let inst: Instance;
  let up: Awaited<ReturnType<typeof startUpstream>>;

  before(async () => {
    up = await startUpstream("A");
    // The renderer looks at Caddy once a minute only: what a restarted Caddy serves at once is its own doing.
    inst = await Instance.start({ name: "caddy-restart", env: { CPM_RECONCILE_INTERVAL_MS: "60000" } });
  });
  after(async () => {
    await stopCleanly(inst);
    await up?.close();
  });

  it("serves the hosts as soon as its admin API answers again, and logs to the data dir", async () => {
    await unary(
      inst.config.createProxyHost.bind(inst.config),
      { proxyHost: ProxyHost.fromPartial({ name: "r", domains: ["r.test"], upstreams: [`127.0.0.1:${up.port}`] }) },
      inst.adminToken,
    );
    await inst.waitServes("r.test", /upstream=A/);
    const pid = caddyPid(inst.child!.pid!);
    assert.ok(pid, "the launcher runs Caddy");

    process.kill(pid, "SIGKILL");
    const admin = `http://127.0.0.1:${inst.ports.caddyAdmin}/config/`;
    const restarted = await waitFor(
      async () => {
        const p = caddyPid(inst.child!.pid!);
        return p !== undefined && p !== pid && (await caddyAdminRequest(admin, { method: "GET" })).status === 200
          ? p
          : undefined;
      },
      "Caddy restarted, its admin API answering",
      15_000,
      10,
    );
    assert.notEqual(restarted, pid);
    const r = await waitFor(
      async () => {
        const res = await inst.get("r.test");
        return res.status === 200 ? res : undefined;
      },
      "r.test served by the restarted Caddy",
      1_000,
      20,
    );
    assert.match(r.body, /upstream=A/);

    // Caddy's own log is in its file under the data dir, not in the launcher's output.
    const caddyLog = readFileSync(path.join(inst.dataDir, "caddy", "caddy.log"), "utf8");
    assert.match(caddyLog, /admin endpoint started/);
    assert.doesNotMatch(inst.log(), /admin endpoint started/);
    assert.match(inst.log(), /caddy exited \(signal SIGKILL\); restarting in \d+ ms/);
  });
});
