import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Metadata, Server, ServerCredentials, type ServerDuplexStream } from "@grpc/grpc-js";
import { Snapshot, SyncReceiverService, type SyncRequest, type SyncResponse } from "@cpm/proto";
import { createLogger, type SlaveTarget, SNAPSHOT_SCHEMA_VERSION } from "@cpm/core";
import type { ConfigClient } from "@cpm/grpc-kit";
import { encodeSnapshotFrame, readSnapshotFrame } from "@cpm/snapshot-wire";
import { SlaveLink, type MasterState } from "./slave-link.ts";
import { SnapshotCache } from "./snapshots.ts";

/** A self-signed receiver certificate (it is its own CA) for the given SANs, made with openssl. */
function certificate(dir: string, name: string, san: string): { cert: string; key: string; certFile: string } {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      "-subj",
      `/CN=CPM test ${name}`,
      "-addext",
      `subjectAltName=${san}`,
    ],
    { cwd: dir, stdio: "pipe" },
  );
  const certFile = path.join(dir, `${name}.crt`);
  return { cert: readFileSync(certFile, "utf8"), key: readFileSync(path.join(dir, `${name}.key`), "utf8"), certFile };
}

/** A TLS receiver on 127.0.0.1 that opens the stream and records the versions pushed to it. */
async function tlsReceiver(cert: string, key: string): Promise<{ received: number[]; server: Server; port: number }> {
  const received: number[] = [];
  const server = new Server();
  server.addService(SyncReceiverService, {
    sync: (call: ServerDuplexStream<SyncRequest, SyncResponse>) => {
      call.sendMetadata(new Metadata());
      call.on("data", (req: SyncRequest) => received.push(req.snapshot!.version));
      call.on("end", () => call.end());
    },
    getReceiverStatus: (_c: unknown, cb: (e: null, r: object) => void) => cb(null, {}),
  });
  const credentials = ServerCredentials.createSsl(null, [
    { private_key: Buffer.from(key), cert_chain: Buffer.from(cert) },
  ]);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", credentials, (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { received, server, port };
}

function tlsLink(port: number, caFile: string): SlaveLink {
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
  const target: SlaveTarget = {
    name: "s",
    url: `https://127.0.0.1:${port}`,
    address: `127.0.0.1:${port}`,
    tls: true,
    token: "t".repeat(20),
  };
  return new SlaveLink(
    target,
    () => state,
    new SnapshotCache(config),
    {
      caFile,
      maxMessageBytes: 1 << 20,
      ackTimeoutMs: 30_000,
      connectTimeoutMs: 2_000,
      keepalive: { timeMs: 10_000, timeoutMs: 5_000 },
    },
    createLogger("test", "silent"),
  );
}

const until = async (what: string, f: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe("SlaveLink over TLS to a slave named by its IP address", () => {
  let dir: string;
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "cpm-link-tls-"));
    process.on("warning", onWarning);
  });
  after(() => {
    process.off("warning", onWarning);
    rmSync(dir, { recursive: true, force: true });
  });

  it("connects, checking the certificate against the IP, without DEP0123 (no server name set to an IP)", async () => {
    const { cert, key, certFile } = certificate(dir, "ip", "IP:127.0.0.1");
    const slave = await tlsReceiver(cert, key);
    const link = tlsLink(slave.port, certFile);
    try {
      void link.run();
      await until("the push", () => slave.received.length === 1);
      assert.equal(link.status().connected, true);
      // A warning is emitted on the next tick of the handshake at the latest.
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(
        warnings.map((w) => `${(w as Error & { code?: string }).code ?? w.name}: ${w.message}`),
        [],
      );
    } finally {
      link.stop();
      slave.server.forceShutdown();
    }
  });

  it("does not connect when the certificate does not name the IP", async () => {
    const { cert, key, certFile } = certificate(dir, "name-only", "DNS:localhost");
    const slave = await tlsReceiver(cert, key);
    const link = tlsLink(slave.port, certFile);
    try {
      void link.run();
      await until("a failed attempt", () => link.status().lastError !== "");
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(link.status().connected, false);
      assert.deepEqual(slave.received, []);
      assert.match(link.status().lastError, /127\.0\.0\.1|altnames|certificate/i);
    } finally {
      link.stop();
      slave.server.forceShutdown();
    }
  });
});
