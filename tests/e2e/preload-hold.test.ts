// A slave's Caddy never moves back a version when a process dies between a snapshot's preload
// (Caddy runs version N+1) and its commit (the database still has N): a real TLS slave, its
// real processes and Caddy. The preload is the receiver's own call to the renderer; the
// receiver's commit never comes (it died, or the process under it did); the master's resend
// goes through the real receiver.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ProxyHost, Snapshot, type SyncResponse } from "@cpm/proto";
import { caddyAdminRequest, canonicalJson, sha256Hex, snapshotContentHash, SNAPSHOT_SCHEMA_VERSION } from "@cpm/core";
import { ConfigClient, RendererClient } from "@cpm/grpc-kit";
import { status } from "@grpc/grpc-js";
import { regressions, RenderWatch } from "../chaos/watch.ts";
import { Instance } from "../support/instance.ts";
import { startUpstream, type TestServer } from "../support/net.ts";
import { launcherChildren, type ServiceName } from "../support/procs.ts";
import { makePki, type TestPki } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";

const SYNC_TOKEN = "preload-hold-sync-token-0123456789";
const INTERNAL_TOKEN = "preload-hold-internal-token-0123456789";
const MASTER_ID = "master-preload-hold";

describe("a slave's preload survives a process killed before its commit: Caddy never moves back", () => {
  let pki: TestPki;
  let up: TestServer;
  let slave: Instance;
  let watch: RenderWatch;

  /** Version n serves `v<n>.hold.test`: the first one as the slave stored it, the domain changed. */
  let base: Snapshot;
  function snapshot(version: number): Snapshot {
    const s = {
      ...base,
      version,
      generatedAt: new Date(),
      proxyHosts: base.proxyHosts.map((h) => ({ ...h, domains: [`v${version}.hold.test`] })),
    };
    return { ...s, contentSha256: snapshotContentHash(s) };
  }

  /** One snapshot over a fresh TLS stream to the slave's receiver, as the master sends it. */
  async function push(s: Snapshot): Promise<SyncResponse> {
    // As the master does: a receiver not listening yet (it opens its port once its
    // config-service and renderer answer) and a retryable NACK (a service of the slave not
    // reachable, e.g. its channel to a config-service that has just started) are tried again,
    // at most 30 s long.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await slave.pushSnapshot(s, SYNC_TOKEN, pki.caCert).catch((err: { code?: number }) => {
        if (err.code !== status.UNAVAILABLE || Date.now() > deadline) throw err;
        return undefined;
      });
      if (r && (!r.nack?.retryable || Date.now() > deadline)) return r;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** The receiver's first step: the snapshot preloaded into Caddy through the renderer, nothing committed. */
  async function preload(s: Snapshot): Promise<string> {
    const renderer = new RendererClient(`127.0.0.1:${slave.ports.renderer}`, INTERNAL_TOKEN);
    try {
      return (await renderer.loadSnapshot({ snapshot: s }, 30_000)).configSha256;
    } finally {
      renderer.close();
    }
  }

  async function caddyHash(): Promise<string> {
    const res = await caddyAdminRequest(`http://127.0.0.1:${slave.ports.caddyAdmin}/config/`, { timeoutMs: 3000 });
    return sha256Hex(canonicalJson(JSON.parse(res.body)));
  }

  /** SIGKILL of one process of the slave; resolves once the launcher runs a new one. */
  async function kill(service: ServiceName): Promise<void> {
    const pid = launcherChildren(slave.child!.pid!).get(service)!;
    process.kill(pid, "SIGKILL");
    await waitFor(
      () => {
        const now = launcherChildren(slave.child!.pid!).get(service);
        return now !== undefined && now !== pid;
      },
      `${service} restarted`,
      30_000,
      50,
    );
  }

  /** The renderer's status once it has read the database's version and decided what Caddy runs. */
  const decided = (dbVersion: number) =>
    waitFor(
      async () => {
        const s = await slave.renderStatus().catch(() => undefined);
        return s && s.desiredVersion === dbVersion && s.appliedVersion !== 0 && s.caddyReachable ? s : undefined;
      },
      `the renderer on the database's v${dbVersion}`,
      30_000,
      50,
    );

  /** The master's resend goes through and the slave is in sync on it. */
  async function commit(s: Snapshot, configSha256: string): Promise<void> {
    const r = await push(s);
    assert.deepEqual(
      r.ack,
      { version: s.version, configSha256, contentSha256: s.contentSha256 },
      `ACK of v${s.version}: ${JSON.stringify(r.nack)}`,
    );
    let last = "";
    await waitFor(
      async () => {
        const st = await slave.renderStatus();
        last = JSON.stringify(st);
        return st.inSync && st.appliedVersion === s.version && st.desiredVersion === s.version;
      },
      `Caddy in sync on v${s.version}`,
      30_000,
      50,
    ).catch((e) => {
      throw new Error(`${e}; last status: ${last}`);
    });
    assert.equal(await caddyHash(), configSha256);
  }

  before(async () => {
    pki = makePki(mkdtempSync(path.join(os.tmpdir(), "cpm-hold-pki-")));
    up = await startUpstream("U");
    slave = await Instance.start({
      name: "hold-slave",
      split: true,
      mode: "slave",
      env: {
        CPM_CADDY_BIND: "127.0.0.1",
        INSTANCE_SYNC_TOKEN: SYNC_TOKEN,
        CPM_SYNC_TLS_CERT: pki.cert,
        CPM_SYNC_TLS_KEY: pki.key,
        CPM_INTERNAL_TOKEN: INTERNAL_TOKEN,
      },
    });
    const first = Snapshot.fromPartial({
      schemaVersion: SNAPSHOT_SCHEMA_VERSION,
      masterInstanceId: MASTER_ID,
      version: 1,
      proxyHosts: [
        ProxyHost.fromPartial({
          id: "ph-1",
          name: "h",
          domains: ["v1.hold.test"],
          upstreams: [`127.0.0.1:${up.port}`],
          enabled: true,
        }),
      ],
    });
    const r = await push({ ...first, contentSha256: snapshotContentHash(first) });
    assert.equal(r.ack?.version, 1, JSON.stringify(r.nack));
    const config = new ConfigClient(`127.0.0.1:${slave.ports.configInternal}`, INTERNAL_TOKEN);
    base = await config.getSnapshot().finally(() => config.close());
    watch = new RenderWatch(slave.ports.renderer, slave.adminToken);
  });

  after(async () => {
    watch?.close();
    await slave?.stop();
    await up?.close();
  });

  it("the renderer killed between preload and commit: restarted, it keeps Caddy on the preload", async () => {
    const v2 = snapshot(2);
    const sha = await preload(v2);
    await kill("caddy-renderer");
    const s = await decided(1);
    assert.equal(s.appliedVersion, 2, "the restarted renderer reports the preload Caddy runs, not the database's v1");
    assert.equal(await caddyHash(), sha, "Caddy still runs the preload");
    await commit(v2, sha);
    assert.deepEqual(regressions(watch.seen), [], "Caddy's version never moved back");
  });

  it("the whole slave killed between preload and commit: Caddy resumes the preload and keeps it", async () => {
    const v3 = snapshot(3);
    const sha = await preload(v3);
    await slave.kill();
    const relaunch = slave.restart(); // waits for Caddy in sync: only after the resend below
    const s = await decided(2);
    assert.equal(
      s.appliedVersion,
      3,
      "the restarted renderer reports the preload Caddy resumed, not the database's v2",
    );
    assert.equal(await caddyHash(), sha);
    await commit(v3, sha);
    await relaunch;
    assert.deepEqual(regressions(watch.seen), [], "Caddy's version never moved back");
  });

  it("the receiver or config-service killed between preload and commit: the renderer keeps holding it", async () => {
    for (const service of ["sync-receiver", "config-service"] as const) {
      const v = (await slave.version()) + 1;
      const next = snapshot(v);
      const sha = await preload(next);
      await kill(service);
      await waitFor(() => slave.info().then(() => true), "config-service answering", 30_000, 50);
      const s = await decided(v - 1);
      assert.equal(s.appliedVersion, v, `${service}: Caddy stays on the preload`);
      assert.equal(await caddyHash(), sha);
      await waitFor(
        () =>
          push(next)
            .then((r) => (r.ack ? true : undefined))
            .catch(() => undefined),
        `${service}: the resend of v${v} ACKed`,
        30_000,
        100,
      );
      await commit(next, sha);
    }
    assert.deepEqual(regressions(watch.seen), [], "Caddy's version never moved back");
  });
});
