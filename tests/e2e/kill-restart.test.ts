import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ProxyHost } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { Instance, stopCleanly } from "../support/instance.ts";
import { startUpstream } from "../support/net.ts";
import { waitFor } from "../support/wait.ts";

/** Whether something accepts TCP connections on the loopback `port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Whether `pid` is a live process (a zombie not reaped yet is not). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

describe("a node killed hard: Caddy keeps serving, and the next start adopts or stops it", () => {
  let inst: Instance;
  let a: Awaited<ReturnType<typeof startUpstream>>;
  let b: Awaited<ReturnType<typeof startUpstream>>;

  before(async () => {
    a = await startUpstream("A");
    b = await startUpstream("B");
    inst = await Instance.start({ name: "kill-restart" });
  });
  after(async () => {
    await stopCleanly(inst);
    await a?.close();
    await b?.close();
  });

  const create = (name: string, upstream: number) =>
    unary(
      inst.config.createProxyHost.bind(inst.config),
      { proxyHost: ProxyHost.fromPartial({ name, domains: [`${name}.test`], upstreams: [`127.0.0.1:${upstream}`] }) },
      inst.adminToken,
    );

  /** The launcher's output and Caddy's restarts since `from` (a length of the log). */
  const logSince = (from: number) => inst.log().slice(from);

  it("SIGKILL to the launcher and its services: Caddy serves on; the restart adopts it and serves changes", async () => {
    const one = await create("one", a.port);
    await inst.waitServes("one.test", /upstream=A/);
    const caddy = inst.caddyPid();
    assert.ok(caddy, "the launcher records Caddy's pid");

    await inst.killControlPlane();
    // The services die with the launcher (same process group): nothing answers on the API.
    await waitFor(async () => !(await accepts(inst.ports.api)), "the control plane down", 5_000, 20);
    assert.ok(alive(caddy), "Caddy outlives the killed launcher");
    const r = await inst.get("one.test");
    assert.equal(r.status, 200);
    assert.match(r.body, /upstream=A/, "Caddy serves the host while the control plane is down");

    const from = inst.log().length;
    await inst.restart();
    assert.equal(inst.caddyPid(), caddy, "the running Caddy is adopted, no second one started");
    const said = logSince(from);
    assert.match(said, new RegExp(`adopting the Caddy still running from the last start \\(pid ${caddy}\\)`));
    assert.doesNotMatch(said, /caddy exited/, "no Caddy crash loop on the ports it holds");

    await create("two", b.port);
    await inst.waitServes("two.test", /upstream=B/);
    await unary(
      inst.config.updateProxyHost.bind(inst.config),
      { proxyHost: { ...one.proxyHost!, upstreams: [`127.0.0.1:${b.port}`] } },
      inst.adminToken,
    );
    await inst.waitServes("one.test", /upstream=B/);
  });

  it("an adopted Caddy that dies is restarted by the launcher", async () => {
    const adopted = inst.caddyPid()!;
    const from = inst.log().length;
    process.kill(adopted, "SIGKILL");
    const next = await waitFor(
      () => {
        const p = inst.caddyPid();
        return p !== undefined && p !== adopted ? p : undefined;
      },
      "a new Caddy",
      15_000,
      20,
    );
    assert.notEqual(next, adopted);
    await inst.waitServes("two.test", /upstream=B/);
    assert.match(logSince(from), /caddy exited .*; restarting in \d+ ms/);
  });

  it("a Caddy on the instance's admin address that is not its own is stopped through the admin API", async () => {
    const left = inst.caddyPid()!;
    await inst.killControlPlane();
    // Its pid forgotten: the next start cannot tell it is its own.
    rmSync(path.join(inst.dataDir, "caddy", "caddy.pid"));
    assert.equal((await inst.get("two.test")).status, 200, "still serving meanwhile");
    const from = inst.log().length;
    await inst.restart();
    assert.match(logSince(from), /is not this launcher's answers at .*; stopping it \(POST \/stop\)/);
    assert.equal(alive(left), false, "the old Caddy is stopped");
    const mine = inst.caddyPid();
    assert.ok(mine !== undefined && mine !== left, "the launcher runs its own Caddy");
    assert.doesNotMatch(logSince(from), /caddy exited/, "no Caddy crash loop on the ports it held");
    await inst.waitServes("two.test", /upstream=B/);
    await inst.waitServes("one.test", /upstream=B/);
  });

  it("SIGTERM to the process group stops the node, Caddy included, within 1 s", async () => {
    const caddy = inst.caddyPid()!;
    inst.closeClients();
    const t0 = performance.now();
    process.kill(-inst.child!.pid!, "SIGTERM");
    const code = await inst.exited;
    await waitFor(() => !alive(caddy), "Caddy gone", 10_000, 5);
    const ms = performance.now() - t0;
    console.log(`SIGTERM to the process group -> launcher and Caddy gone in ${ms.toFixed(0)} ms`);
    assert.equal(code, 0);
    assert.ok(ms < 1_000, `stopped in ${ms.toFixed(0)} ms`);
    assert.equal(await accepts(inst.ports.http), false, "nothing serves any more");
  });
});
