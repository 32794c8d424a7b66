import { Server, ServerCredentials, type ServerDuplexStream } from "@grpc/grpc-js";
import { Snapshot, SyncReceiverService, type SyncRequest, type SyncResponse } from "@cpm/proto";
import { createLogger, type SlaveTarget, SNAPSHOT_SCHEMA_VERSION } from "@cpm/core";
import { handshakeMetadata, type ConfigClient } from "@cpm/grpc-kit";
import { encodeSnapshotFrame, readSnapshotFrame } from "@cpm/snapshot-wire";
import type { LinkKeepalive } from "./link-loss.ts";
import { SlaveLink, type MasterState } from "./slave-link.ts";
import { SnapshotCache } from "./snapshots.ts";

/** The keepalive of a testLink unless given: long enough that no test sees it unless it means to. */
const TEST_KEEPALIVE: LinkKeepalive = { timeMs: 10_000, timeoutMs: 5_000 };

/**
 * A link to the receiver at 127.0.0.1:`port` whose master is at version 1 (one empty snapshot):
 * over TLS checked against `caFile` when given, plaintext otherwise; presenting `token` as its
 * sync token (20 `t`s unless given), with `keepalive`'s HTTP/2 pings.
 */
export function testLink(
  port: number,
  opts: { caFile?: string; connectTimeoutMs?: number; token?: string; keepalive?: LinkKeepalive } = {},
): SlaveLink {
  const state: MasterState = { version: 1, contentSha256: "content-1" };
  const frame = readSnapshotFrame(
    encodeSnapshotFrame(
      Snapshot.fromPartial({
        schemaVersion: SNAPSHOT_SCHEMA_VERSION,
        masterInstanceId: "m",
        version: 1,
        contentSha256: "content-1",
      }),
    ),
  );
  const config = { getSnapshotFrame: () => Promise.resolve(frame) } as unknown as ConfigClient;
  const tls = opts.caFile !== undefined;
  const target: SlaveTarget = {
    name: "s",
    url: `${tls ? "https" : "http"}://127.0.0.1:${port}`,
    address: `127.0.0.1:${port}`,
    tls,
    token: opts.token ?? "t".repeat(20),
  };
  return new SlaveLink(
    target,
    () => state,
    new SnapshotCache(config),
    {
      caFile: opts.caFile,
      maxMessageBytes: 1 << 20,
      ackTimeoutMs: 30_000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 2_000,
      keepalive: opts.keepalive ?? TEST_KEEPALIVE,
    },
    createLogger("test", "silent"),
  );
}

/**
 * A receiver on 127.0.0.1 (`port`, or one the system picks) that opens each stream and records
 * the versions pushed to it; `answer` may reply to each; TLS with `tls`' certificate and key.
 */
export async function testReceiver(
  opts: {
    port?: number;
    tls?: { cert: string; key: string };
    answer?: (version: number, snapshot: Snapshot) => SyncResponse | undefined;
    /** The handshake headers it answers a stream with: this release's by default, `{}` for release 0.1.0's silence. */
    handshake?: Record<string, string>;
    /** The largest message it reads (grpc-js's default, 4 MiB, unless given). */
    maxReceiveBytes?: number;
  } = {},
): Promise<{ received: number[]; schemas: number[]; masterReleases: string[]; server: Server; port: number }> {
  const received: number[] = [];
  const schemas: number[] = [];
  const masterReleases: string[] = [];
  const server = new Server(
    opts.maxReceiveBytes ? { "grpc.max_receive_message_length": opts.maxReceiveBytes } : undefined,
  );
  server.addService(SyncReceiverService, {
    sync: (call: ServerDuplexStream<SyncRequest, SyncResponse>) => {
      call.sendMetadata(handshakeMetadata(opts.handshake));
      masterReleases.push(String(call.metadata.get("cpm-release")[0] ?? ""));
      call.on("data", (req: SyncRequest) => {
        received.push(req.snapshot!.version);
        schemas.push(req.snapshot!.schemaVersion);
        const res = opts.answer?.(req.snapshot!.version, req.snapshot!);
        if (res) call.write(res);
      });
      call.on("end", () => call.end());
    },
    getReceiverStatus: (_c: unknown, cb: (e: null, r: object) => void) => cb(null, {}),
  });
  const credentials = opts.tls
    ? ServerCredentials.createSsl(null, [
        { private_key: Buffer.from(opts.tls.key), cert_chain: Buffer.from(opts.tls.cert) },
      ])
    : ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${opts.port ?? 0}`, credentials, (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { received, schemas, masterReleases, server, port };
}

/** Waits until `f()` holds, polling every 10 ms; fails naming `what` after `ms`. */
export async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
