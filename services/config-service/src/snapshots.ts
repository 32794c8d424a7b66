import {
  InstanceMode as ProtoMode,
  type GetSnapshotResponse,
  type Snapshot,
  type WatchConfigResponse,
} from "@cpm/proto";
import { failedPrecondition, RELEASE, validateSnapshotContent, type InstanceMode } from "@cpm/core";
import { allows, permissionDenied } from "@cpm/grpc-kit";
import { encodeNoticeWithFrame, encodeSnapshotFrame, snapshotFrameOf, type SnapshotFrame } from "@cpm/snapshot-wire";
import { applySnapshot } from "./apply.ts";
import { importConfig } from "./import.ts";
import { CONFIG_SERVICE_POLICY } from "./policy.ts";
import type { ConfigHandlers, ResourceDeps } from "./resources/kind.ts";

const MODE: Record<InstanceMode, ProtoMode> = {
  standalone: ProtoMode.INSTANCE_MODE_STANDALONE,
  master: ProtoMode.INSTANCE_MODE_MASTER,
  slave: ProtoMode.INSTANCE_MODE_SLAVE,
};

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** The methods that read or replace the configuration as a whole, rather than one resource. */
export type SnapshotMethods = "getSnapshot" | "watchConfig" | "applySnapshot" | "importConfig" | "getInstanceInfo";

/** A version as WatchConfig announces it, with its snapshot's frame when one was asked for and it is still current. */
export type CommitSink = (notice: WatchConfigResponse, encoded?: SnapshotFrame) => void;

/**
 * The current snapshot, checked and encoded once per version, and the commits as they happen:
 * what GetSnapshot and WatchConfig serve over gRPC, and what the services of the same process
 * read in place (local-port.ts).
 */
export interface SnapshotFeed {
  /** The current snapshot (checked once per reading of the database). */
  snapshot(): Promise<Snapshot>;
  /** The same, and its frame (encoded once per version; its header from the snapshot, not read back). */
  snapshotFrame(): Promise<{ snapshot: Snapshot; encoded: SnapshotFrame }>;
  /**
   * Calls `send` with the current version at once and with every commit after it, in order and
   * never older than one already sent, until `signal` aborts (see WatchRole).
   */
  watch(role: WatchRole, signal: AbortSignal, send: CommitSink): Promise<void>;
}

/**
 * How a watcher hears of the commits:
 * - `follows` (the renderer): each commit as it happens, or a turn of the event loop after the
 *   pushers while one watches;
 * - `pushes` (a dispatcher in this process): each commit once the API reply has gone out, ahead
 *   of the followers, so the push starts before this machine's own reload competes with it for
 *   the CPU; with no frame: a link asks for it (SnapshotFeed.snapshotFrame) when it writes a
 *   version, so a commit that no link sends (no slave ready, or a newer commit first) is never
 *   encoded;
 * - `pushes frames` (a dispatcher in another process, WatchConfig's include_snapshot): the same,
 *   each notice with its snapshot's frame while it is current (encoded for every commit it is
 *   told of: the bytes must cross the socket).
 */
export type WatchRole = "follows" | "pushes" | "pushes frames";

export function snapshotFeed(
  deps: Pick<ResourceDeps, "store">,
  /** Encodes a snapshot's frame (tests count the calls). */
  encode: typeof encodeSnapshotFrame = encodeSnapshotFrame,
): SnapshotFeed {
  const { store } = deps;

  // A snapshot is checked (structure, every reference resolves) before it is served, once per
  // reading of the content from the database: the database's constraints should make this
  // hold, and a master must never ship a configuration its slaves would refuse. What changes
  // afterwards comes from this store's writes, each validated against the whole content
  // before it commits, so a commit is not checked again on its way to the slaves. Its content
  // hash is not computed again either: the store derives it from the digests of the very
  // resources the snapshot carries. The store never changes a resource object once made, so
  // one unchanged since the last check is not normalized again.
  let checkedRead = -1;
  const normalized = new WeakMap<object, unknown>();
  const consistentSnapshot = async () => {
    const before = store.databaseReads;
    const s = await store.snapshot();
    const read = store.databaseReads;
    if (read !== checkedRead && s.version > 0) {
      try {
        validateSnapshotContent(s, "snapshot", normalized);
      } catch (err) {
        throw failedPrecondition(
          `the stored configuration is inconsistent, refusing to serve it: ${(err as Error).message}`,
        );
      }
      // Which read a snapshot built across a read comes from is not known: check the next one too.
      if (before === read) checkedRead = read;
    }
    return s;
  };

  // Encoded once per version and served as is to every asker (the renderer's GetSnapshot, the
  // dispatcher's WatchConfig notice): the store keeps one Snapshot object per version, and
  // the resource objects it did not change, so their encodings are kept too (`parts`).
  let pushers = 0;
  const encodedFrames = new WeakMap<Snapshot, SnapshotFrame>();
  const parts = new WeakMap<object, Uint8Array>();
  const snapshotFrame = async () => {
    const s = await consistentSnapshot();
    let encoded = encodedFrames.get(s);
    if (!encoded) {
      encoded = snapshotFrameOf(s, encode(s, parts));
      encodedFrames.set(s, encoded);
    }
    return { snapshot: s, encoded };
  };

  const watch = async (role: WatchRole, signal: AbortSignal, sink: CommitSink) => {
    const pushes = role !== "follows";
    // Subscribe before reading the current state so no commit is missed; never send a
    // version older than one already sent (the initial read can race a commit).
    let last = { version: -1, sha: "" };
    const send = (notice: WatchConfigResponse, frame?: SnapshotFrame) => {
      if (notice.version < last.version || (notice.version === last.version && notice.contentSha256 === last.sha))
        return;
      last = { version: notice.version, sha: notice.contentSha256 };
      sink(notice, frame);
    };
    // A notice that waits (a pusher's, or any while a pusher watches) waits in commit order and
    // only until the API reply has gone out; with frames, for its snapshot's encoding too, and
    // a version already superseded when its turn comes goes without one.
    let queue = Promise.resolve();
    const notify = (notice: WatchConfigResponse) => {
      if (!pushes && pushers === 0) return send(notice);
      queue = queue.then(async () => {
        await nextTurn();
        if (role !== "pushes frames") {
          if (!pushes) await nextTurn();
          return send(notice);
        }
        const { snapshot, encoded: frame } = await snapshotFrame().catch(() => ({
          snapshot: undefined,
          encoded: undefined,
        }));
        const current = snapshot?.version === notice.version && snapshot.contentSha256 === notice.contentSha256;
        send(notice, current ? frame : undefined);
      });
    };
    if (pushes) pushers++;
    const unsubscribe = store.onCommit((c) =>
      notify({
        version: c.version,
        committedAt: c.committedAt,
        contentSha256: c.contentSha256,
        traceContext: c.traceContext,
        snapshot: undefined,
      }),
    );
    try {
      const s = await store.snapshot();
      notify({
        version: s.version,
        committedAt: s.generatedAt,
        contentSha256: s.contentSha256,
        traceContext: store.traceContextOf(s.version, s.contentSha256),
        snapshot: undefined,
      });
      await new Promise<void>((resolve) =>
        signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true }),
      );
    } finally {
      unsubscribe();
      if (pushes) pushers--;
    }
  };

  return { snapshot: consistentSnapshot, snapshotFrame, watch };
}

/**
 * The configuration as a whole: GetSnapshot and WatchConfig (served as bytes encoded once per
 * version, see service-definition.ts), ApplySnapshot (a slave's receiver), ImportConfig and
 * GetInstanceInfo.
 */
export function snapshotHandlers(
  deps: ResourceDeps,
  feed: SnapshotFeed = snapshotFeed(deps),
): ConfigHandlers<SnapshotMethods> {
  const { store, mode } = deps;
  return {
    getSnapshot: async () => (await feed.snapshotFrame()).encoded.frame as unknown as GetSnapshotResponse,
    watchConfig: async (req, ctx, call) => {
      // The snapshot holds private keys: only who may call GetSnapshot gets it with the notices.
      if (req.includeSnapshot && !allows(CONFIG_SERVICE_POLICY.methods.GetSnapshot!, ctx.principal)) {
        throw permissionDenied(
          "include_snapshot: needs an admin token, as GetSnapshot does (the snapshot holds private keys)",
        );
      }
      // A watcher that asks for the snapshot is a dispatcher (only it may: see above).
      await feed.watch(req.includeSnapshot ? "pushes frames" : "follows", ctx.signal, (notice, frame) =>
        call.write(frame ? (encodeNoticeWithFrame(notice, frame.frame) as unknown as WatchConfigResponse) : notice),
      );
    },
    applySnapshot: async (req, ctx) => {
      if (mode !== "slave") throw failedPrecondition("ApplySnapshot is only accepted on a slave (INSTANCE_MODE=slave)");
      const r = await applySnapshot(store, req.snapshot);
      ctx.log.info({ version: r.version, changed: r.changed }, "snapshot applied");
      return r;
    },
    importConfig: async (req, ctx) => {
      const r = await importConfig(store, req.config, req.dryRun, deps.reservedUpstreams);
      if (r.committed) ctx.log.info({ version: r.configVersion }, "configuration imported");
      return r;
    },
    getInstanceInfo: async () => {
      const { info: i, contentSha256 } = await store.state();
      return {
        mode: MODE[mode],
        instanceId: i.instanceId,
        version: i.version,
        masterInstanceId: i.masterInstanceId,
        versionCommittedAt: i.committedAt,
        contentSha256,
        release: RELEASE,
      };
    },
  };
}
