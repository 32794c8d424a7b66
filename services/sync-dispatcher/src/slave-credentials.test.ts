import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { sharedSecureContext } from "./slave-credentials.ts";
import { testLink, testReceiver, until } from "./test-support.ts";

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
    const slave = await testReceiver({ tls: { cert, key } });
    const link = testLink(slave.port, { caFile: certFile });
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
    const slave = await testReceiver({ tls: { cert, key } });
    const link = testLink(slave.port, { caFile: certFile });
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

  it("every link trusting the same CA shares one TLS context; a CA replaced in place is used from then on", async () => {
    const a = certificate(dir, "ca-a", "IP:127.0.0.1");
    const b = certificate(dir, "ca-b", "IP:127.0.0.1");
    const caFile = path.join(dir, "ca.crt");
    copyFileSync(a.certFile, caFile);
    const then = new Date(1_700_000_000_000);
    utimesSync(caFile, then, then);
    assert.equal(sharedSecureContext(caFile), sharedSecureContext(caFile), "one context for the same CA");
    const first = sharedSecureContext(caFile);
    // The file is looked at, not read, while it stays as it was: other bytes written under the
    // same size and modification time are not noticed (nobody rotates a CA that way).
    writeFileSync(caFile, "x".repeat(statSync(caFile).size));
    utimesSync(caFile, then, then);
    assert.equal(sharedSecureContext(caFile), first, "an unchanged file is not read again");
    // The operator rotates the CA file: the next link (or reconnection) trusts the new CA only.
    copyFileSync(b.certFile, caFile);
    assert.notEqual(sharedSecureContext(caFile), first);
    const slave = await testReceiver({ tls: { cert: b.cert, key: b.key } });
    const link = testLink(slave.port, { caFile });
    try {
      void link.run();
      await until("the push over the rotated CA", () => slave.received.length === 1);
    } finally {
      link.stop();
      slave.server.forceShutdown();
    }
  });
});
