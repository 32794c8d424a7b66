import { performance } from "node:perf_hooks";
import { ProxyHost } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { Instance, type InstanceOptions } from "../support/instance.ts";
import { httpGet } from "../support/net.ts";
import type { TestPki } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";

/** The sync token every bench slave accepts. */
export const SYNC_TOKEN = "bench-sync-token-0123456789abcdef";

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
const quiet = () => ({ LOG_LEVEL: process.env.CPM_BENCH_LOG_LEVEL ?? "warn" });

/** Instances started here and not stopped yet. */
const live = new Set<Instance>();

/**
 * On SIGINT or SIGTERM, kills every instance started here and not stopped (each runs in its own
 * process group, which a Ctrl-C does not reach), then exits.
 */
export function killInstancesOnSignal(): void {
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => void Promise.all([...live].map((i) => i.kill())).finally(() => process.exit(130)));
  }
}

/** Launches an instance; one whose start fails is killed (no processes left behind) and the error rethrown. */
export async function startInstance(opts: InstanceOptions): Promise<Instance> {
  const inst = await Instance.prepare(opts);
  live.add(inst);
  try {
    await inst.launch();
  } catch (e) {
    await inst.kill();
    live.delete(inst);
    throw e;
  }
  return inst;
}

/** A slave serving sync over TLS with the bench PKI's certificate. */
export function startSlave(name: string, pki: TestPki, { split = false } = {}): Promise<Instance> {
  return startInstance({
    name,
    mode: "slave",
    split,
    env: { ...quiet(), INSTANCE_SYNC_TOKEN: SYNC_TOKEN, CPM_SYNC_TLS_CERT: pki.cert, CPM_SYNC_TLS_KEY: pki.key },
  });
}

/** A master pushing to `slaves` over TLS verified against the bench PKI's CA. */
export function startMaster(name: string, slaves: Instance[], pki: TestPki, { split = false } = {}): Promise<Instance> {
  const targets = slaves.map((s, i) => ({
    name: `s${i}`,
    url: `https://localhost:${s.ports.sync}`,
    token: SYNC_TOKEN,
  }));
  return startInstance({
    name,
    mode: "master",
    split,
    env: { ...quiet(), CPM_SYNC_TLS_CA: pki.caCert, INSTANCE_SLAVES: JSON.stringify(targets) },
  });
}

/** Stops every instance (SIGTERM, SIGKILL after the helper's grace period), concurrently. */
export async function stopAll(instances: Instance[]): Promise<void> {
  await Promise.all(instances.map((i) => i.stop()));
  for (const i of instances) live.delete(i);
}

/** Runs `fn(0..count-1)` with `inFlight` calls at a time. */
export async function inParallel(count: number, inFlight: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(inFlight, count) }, async () => {
      for (let i = next++; i < count; i = next++) await fn(i);
    }),
  );
}

/** Creates `n` proxy hosts `h<i>.bench.test` -> `upstreamPort`, `inFlight` at a time; returns them and the rate. */
export async function seed(
  master: Instance,
  n: number,
  upstreamPort: number,
  inFlight: number,
): Promise<{ hosts: ProxyHost[]; writesPerSecond: number }> {
  const hosts = new Array<ProxyHost>(n);
  const t0 = performance.now();
  await inParallel(n, inFlight, async (i) => {
    const r = await unary(
      master.config.createProxyHost.bind(master.config),
      {
        proxyHost: ProxyHost.fromPartial({
          name: `h${i}`,
          domains: [`h${i}.bench.test`],
          upstreams: [`127.0.0.1:${upstreamPort}`],
        }),
      },
      master.adminToken,
    );
    hosts[i] = r.proxyHost!;
  });
  return { hosts, writesPerSecond: n / ((performance.now() - t0) / 1000) };
}

/**
 * Gives `host` the single domain `domain` on the master, and its first upstream only (the one
 * `seed` gave it, which answers): a host the sync bench's single writes gave a second upstream
 * that does not answer would answer the poller 502 every other request, so the change would be
 * seen served one or more polls late. Resolves with the stored host and its version.
 */
export async function setDomain(
  master: Instance,
  host: ProxyHost,
  domain: string,
): Promise<{ host: ProxyHost; version: number }> {
  const r = await unary(
    master.config.updateProxyHost.bind(master.config),
    { proxyHost: { ...host, domains: [domain], upstreams: host.upstreams.slice(0, 1) } },
    master.adminToken,
  );
  return { host: r.proxyHost!, version: r.configVersion };
}

/** `slave` holds `version` in its database and its Caddy runs it. */
export async function slaveOn(slave: Instance, version: number): Promise<boolean> {
  if ((await slave.version()) !== version) return false;
  const s = await slave.renderStatus();
  return s.inSync && s.appliedVersion === version;
}

/** Waits until every slave holds the master's current version with its Caddy running it. */
export async function waitSlavesOn(
  master: Instance,
  slaves: Instance[],
  what: string,
  timeoutMs = 300_000,
): Promise<number> {
  const version = await master.version();
  await Promise.all(slaves.map((s) => waitFor(() => slaveOn(s, version), `${s.opts.name}: ${what}`, timeoutMs, 200)));
  return version;
}

/**
 * Milliseconds from the call until the Caddy of every slave answers 200 for Host `domain`, polled
 * over HTTP one request at a time round-robin over the slaves not serving it yet.
 */
export function untilServed(slaves: Instance[], domain: string, timeoutMs = 120_000): Promise<number> {
  return untilPortsServe(
    slaves.map((s) => ({ name: s.opts.name, port: s.ports.http })),
    domain,
    timeoutMs,
  );
}

/**
 * Milliseconds from the call until every HTTP port answers 200 for Host `domain`: one request at
 * a time round-robin over the ports not serving it yet, 1 ms apart. The bench's poller, for the
 * slaves' Caddies and for bare ones alike.
 */
export async function untilPortsServe(
  targets: { name: string; port: number }[],
  domain: string,
  timeoutMs = 120_000,
): Promise<number> {
  const t0 = performance.now();
  let pending = [...targets];
  while (pending.length > 0) {
    const still: typeof pending = [];
    for (const t of pending) {
      const r = await httpGet(t.port, domain).catch(() => undefined);
      if (r?.status !== 200) still.push(t);
    }
    pending = still;
    if (pending.length === 0) break;
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`${pending.map((t) => t.name).join(", ")} not serving ${domain} after ${timeoutMs} ms`);
    await sleep(1);
  }
  return performance.now() - t0;
}

/** Snapshots the master's dispatcher has sent to each slave since it started, in `INSTANCE_SLAVES` order. */
export async function snapshotsSent(master: Instance): Promise<number[]> {
  const r = await unary(master.dispatcher.getSyncStatus.bind(master.dispatcher), {}, master.adminToken);
  return r.slaves.map((s) => Number(s.snapshotsSent));
}

export interface BurstResult {
  writes: number;
  /** From the last write returning until every slave runs the final version and serves its last change. */
  settleMs: number;
  /** Snapshots sent during the burst and its settling, to the slave that got the most. */
  pushed: number;
}

/**
 * `count` updates of existing hosts (each a new domain) with `inFlight` at a time, as fast as the
 * master's API takes them (`hosts` is updated in place); then the time until every slave holds the
 * final version with its Caddy on it and serves the domain of the last write committed.
 * Needs more hosts than `inFlight`, so that one host never has two writes in flight.
 */
export async function burst(
  master: Instance,
  slaves: Instance[],
  hosts: ProxyHost[],
  count: number,
  inFlight: number,
  tag: string,
): Promise<BurstResult> {
  if (hosts.length <= inFlight)
    throw new Error(`a burst needs more hosts (${hosts.length}) than writes in flight (${inFlight})`);
  const sentBefore = await snapshotsSent(master);
  let last = { version: 0, domain: "" };
  await inParallel(count, inFlight, async (i) => {
    const k = i % hosts.length;
    const domain = `b${i}-${tag}.bench.test`;
    const r = await setDomain(master, hosts[k]!, domain);
    hosts[k] = r.host;
    if (r.version > last.version) last = { version: r.version, domain };
  });
  const t0 = performance.now();
  const final = await master.version();
  if (final !== last.version)
    throw new Error(`the master is on version ${final} after the burst, its last write committed ${last.version}`);
  await Promise.all(
    slaves.map((s) =>
      waitFor(() => slaveOn(s, final), `${s.opts.name} on the burst's final version ${final}`, 300_000, 5),
    ),
  );
  await untilServed(slaves, last.domain);
  const settleMs = performance.now() - t0;
  const sentAfter = await snapshotsSent(master);
  return { writes: count, settleMs, pushed: Math.max(...sentAfter.map((n, i) => n - (sentBefore[i] ?? 0))) };
}

/** Resolves once the slave's sync receiver answers `GetReceiverStatus` over TLS (a fresh channel per try). */
async function receiverAnswers(slave: Instance, ca: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const client = slave.receiverClient(ca);
    try {
      await unary(client.getReceiverStatus.bind(client), {}, SYNC_TOKEN, 1000);
      return;
    } catch (e) {
      if (performance.now() > deadline)
        throw new Error(
          `${slave.opts.name}: receiver not answering after ${timeoutMs} ms: ${e instanceof Error ? e.message : String(e)}`,
          { cause: e },
        );
    } finally {
      client.close();
    }
    await sleep(5);
  }
}

/**
 * The slave is killed (SIGKILL to its whole process group), `host` gets the domain `domain` on the
 * master, and the slave starts again on its data dir and ports: milliseconds from its sync
 * receiver answering `GetReceiverStatus` (its API up: the earliest moment the master can push)
 * until its Caddy serves `domain`. Resolves once the slave's launch is complete too.
 */
export async function restartUntilServed(
  master: Instance,
  slave: Instance,
  host: ProxyHost,
  domain: string,
  ca: string,
): Promise<{ ms: number; fromStartMs: number; host: ProxyHost }> {
  await slave.kill();
  const r = await setDomain(master, host, domain);
  const started = performance.now();
  const launched = slave.restart();
  launched.catch(() => undefined); // awaited below; a failure is reported there
  try {
    await receiverAnswers(slave, ca, 120_000);
    const t0 = performance.now();
    await untilServed([slave], domain);
    const ms = performance.now() - t0;
    return { ms, fromStartMs: performance.now() - started, host: r.host };
  } finally {
    await launched;
  }
}
