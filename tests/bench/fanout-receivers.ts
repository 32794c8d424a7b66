/**
 * Simulated slaves for `npm run bench:fanout`, all in this one process (forked by the bench,
 * messages over IPC): a SyncReceiver server on each port of 127.0.0.1 in CPM_BENCH_FANOUT_PORTS
 * (comma-separated), over TLS (CPM_BENCH_FANOUT_CERT / _KEY, signed by CPM_BENCH_FANOUT_CA), each taking the master's bearer token
 * CPM_BENCH_FANOUT_TOKEN. A receiver reads every snapshot whole, reads its version and content
 * hash from it (the snapshot's header fields, its hosts skipped over) and ACKs that version with
 * that hash. It neither decodes the rest nor applies it: a slave's decoding is part of its own
 * apply, on a machine of its own, and not the master's cost; here it would share the master's two
 * cores a thousand times over. One snapshot of each version (the first to arrive) is decoded
 * whole, off this thread, to check what the master sent: a snapshot that does not decode, or
 * whose content hash is not the one its header gave, ends the bench.
 *
 * To the bench: `{ type: "listening", ports }` once every port is bound (port i is slave i);
 * `{ type: "watching", version }` at once on `watch`, then `{ type: "all-acked", ... }` once every receiver has ACKed the version the bench asked to
 * `watch` (or a later one); `{ type: "stats", ... }` on `stats`.
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import {
  Server,
  ServerCredentials,
  status,
  type ServerDuplexStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { SyncReceiverService, type GetReceiverStatusResponse, type SyncResponse } from "@cpm/proto";
import { handshakeMetadata } from "@cpm/grpc-kit";
import { readSnapshotFrame } from "@cpm/snapshot-wire";

/** What the decoding worker tells of a snapshot (no version: the request held none). */
interface Decoded {
  version?: number;
  contentSha256?: string;
  hosts: number;
}

/** From the bench. */
export type ToReceivers = { type: "watch"; version: number } | { type: "stats" };

/** To the bench. Times are epoch milliseconds (performance.timeOrigin + performance.now()). */
export type FromReceivers =
  | { type: "listening"; ports: number[] }
  | { type: "watching"; version: number }
  | {
      type: "all-acked";
      version: number;
      /** The first snapshot of this version (or later) any receiver got: the push's start. */
      firstReceivedAt: number;
      /** The last receiver to get it. */
      lastReceivedAt: number;
      /** The last ACK written: every receiver has ACKed. */
      lastAckAt: number;
    }
  | {
      type: "stats";
      /** Streams open now, and opened since start (more than the receivers: a master reconnected). */
      open: number;
      opened: number;
      snapshots: number;
      bytes: number;
      /** Proxy hosts in the last snapshot decoded whole. */
      hosts: number;
      /** This process's CPU time since start (user + system), ms. */
      cpuMs: number;
    };

const wanted = (process.env.CPM_BENCH_FANOUT_PORTS ?? "").split(",").map(Number);
const count = wanted.length;
const token = process.env.CPM_BENCH_FANOUT_TOKEN ?? "";
const send = (m: FromReceivers) => process.send?.(m);
const now = () => performance.timeOrigin + performance.now();

let open = 0;
let opened = 0;
let snapshots = 0;
let bytes = 0;
let hosts = 0;
/** The highest version each receiver ACKed, by port. */
const acked = new Map<number, number>();
let watch:
  | { version: number; receivers: Set<number>; firstReceivedAt: number; lastReceivedAt: number; lastAckAt: number }
  | undefined;

function report(w: NonNullable<typeof watch>): void {
  send({
    type: "all-acked",
    version: w.version,
    firstReceivedAt: w.firstReceivedAt,
    lastReceivedAt: w.lastReceivedAt,
    lastAckAt: w.lastAckAt,
  });
  watch = undefined;
}

/**
 * The check of one snapshot per version runs in a worker thread, so that this thread, which holds
 * every connection, answers the master's HTTP/2 pings at once. The worker decodes each
 * SyncRequest it is given, all of it, with the generated code as built (a worker does not get
 * tsx, which runs this file), and answers in the order it was given.
 */
const DECODER = `
const { parentPort, workerData } = require("node:worker_threads");
import(workerData.proto).then(({ SyncRequest }) =>
  parentPort.on("message", (bytes) => {
    const s = SyncRequest.decode(bytes).snapshot;
    parentPort.postMessage(
      s ? { version: s.version, contentSha256: s.contentSha256, hosts: s.proxyHosts.length } : { hosts: 0 },
    );
  }),
);
`;
const decoder = new Worker(DECODER, {
  eval: true,
  execArgv: [],
  workerData: { proto: new URL("../../libs/proto/dist/index.js", import.meta.url).href },
});
const decoded: ((d: Decoded) => void)[] = [];
decoder.on("message", (d: Decoded) => decoded.shift()?.(d));
decoder.on("error", (err) => {
  console.error("the decoding worker failed:", err);
  process.exit(1);
});

/** Decodes all of `message` (a SyncRequest) off this thread. */
function decodeOffThread(message: Buffer): Promise<Decoded> {
  const copy = new Uint8Array(message);
  return new Promise((resolve) => {
    decoded.push(resolve);
    decoder.postMessage(copy, [copy.buffer]);
  });
}

const service: ServiceDefinition = {
  // The message as it came, whole: its header read here, one per version decoded in the worker.
  sync: { ...SyncReceiverService.sync, requestDeserialize: (b: Buffer) => b },
  getReceiverStatus: SyncReceiverService.getReceiverStatus,
};

/** The highest version whose snapshot was decoded whole and checked. */
let checkedVersion = 0;

/** Decodes `message` whole (off this thread) and checks it is the snapshot its header names. */
function check(message: Buffer, header: { version: number; contentSha256: string }): void {
  void decodeOffThread(message).then((s) => {
    hosts = s.hosts;
    if (s.version !== header.version || s.contentSha256 !== header.contentSha256) {
      console.error(
        `snapshot v${header.version}: decoded whole it is v${s.version} with content ${s.contentSha256}, its header said ${header.contentSha256}`,
      );
      process.exit(1);
    }
  });
}

/** The receiver on `port`: one master stream at a time, each snapshot ACKed as soon as it is read. */
function sync(call: ServerDuplexStream<Buffer, SyncResponse>): void {
  if (call.metadata.get("authorization")[0] !== `Bearer ${token}`) {
    call.emit("error", { code: status.UNAUTHENTICATED, details: "bad sync token" });
    return;
  }
  const port = Number(call.getHost().split(":").pop());
  open++;
  opened++;
  // Headers at once, with this release's handshake: the master counts the link as up when they arrive.
  call.sendMetadata(handshake);
  let ended = false;
  call.on("data", (message: Buffer) => {
    const received = now();
    bytes += message.length;
    let s: { version: number; contentSha256: string };
    try {
      s = readSnapshotFrame(message, "snapshot");
    } catch (err) {
      console.error(`a message that is not a snapshot: ${(err as Error).message}`);
      process.exit(1);
    }
    if (ended) return;
    snapshots++;
    if (s.version > checkedVersion) {
      checkedVersion = s.version;
      check(message, s);
    }
    const { version, contentSha256 } = s;
    call.write({ ack: { version, configSha256: contentSha256, contentSha256 }, nack: undefined });
    acked.set(port, Math.max(acked.get(port) ?? 0, version));
    if (watch && version >= watch.version && !watch.receivers.has(port)) {
      watch.receivers.add(port);
      watch.firstReceivedAt = Math.min(watch.firstReceivedAt, received);
      watch.lastReceivedAt = Math.max(watch.lastReceivedAt, received);
      watch.lastAckAt = now();
      if (watch.receivers.size === count) report(watch);
    }
  });
  const closed = () => {
    if (ended) return;
    ended = true;
    open--;
  };
  call.on("end", () => {
    closed();
    call.end();
  });
  call.on("cancelled", closed);
  call.on("error", closed);
}

const handshake = handshakeMetadata();

const impl: UntypedServiceImplementation = {
  sync,
  getReceiverStatus: (_call: unknown, done: (err: null, res: GetReceiverStatusResponse) => void) =>
    done(null, {
      masterInstanceId: "",
      appliedVersion: 0,
      configSha256: "",
      lastSyncTime: undefined,
      lastError: "",
      lastErrorTime: undefined,
      masterConnected: open > 0,
      masterRelease: "",
    }),
};

async function main() {
  if (!wanted.every((p) => Number.isInteger(p) && p > 0))
    throw new Error(
      `CPM_BENCH_FANOUT_PORTS must list ports, got ${JSON.stringify(process.env.CPM_BENCH_FANOUT_PORTS)}`,
    );
  // With the CA given (no client certificate is asked for), grpc-js does not load Node's root
  // store into every port's TLS context: about 3 ms a port instead of about 100.
  const creds = ServerCredentials.createSsl(readFileSync(process.env.CPM_BENCH_FANOUT_CA ?? ""), [
    {
      cert_chain: readFileSync(process.env.CPM_BENCH_FANOUT_CERT ?? ""),
      private_key: readFileSync(process.env.CPM_BENCH_FANOUT_KEY ?? ""),
    },
  ]);
  const server = new Server({ "grpc.max_receive_message_length": 256 * 1024 * 1024 });
  server.addService(service, impl);
  const ports: number[] = [];
  for (const want of wanted) {
    ports.push(
      await new Promise<number>((resolve, reject) =>
        server.bindAsync(`127.0.0.1:${want}`, creds, (err, port) => (err ? reject(err) : resolve(port))),
      ),
    );
  }
  process.on("message", (m: ToReceivers) => {
    if (m.type === "watch") {
      const done = [...acked].filter(([, v]) => v >= m.version).map(([p]) => p);
      const t = now();
      watch = {
        version: m.version,
        receivers: new Set(done),
        firstReceivedAt: Infinity,
        lastReceivedAt: 0,
        lastAckAt: 0,
      };
      send({ type: "watching", version: m.version });
      if (done.length === count) report({ ...watch, firstReceivedAt: t, lastReceivedAt: t, lastAckAt: t });
    } else if (m.type === "stats") {
      const cpu = process.cpuUsage();
      send({ type: "stats", open, opened, snapshots, bytes, hosts, cpuMs: (cpu.user + cpu.system) / 1000 });
    }
  });
  // The bench went away: so do the receivers.
  process.on("disconnect", () => process.exit(0));
  send({ type: "listening", ports });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
