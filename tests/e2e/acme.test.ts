// Managed certificates through a real ACME CA (the project's Caddy as acme_server, HTTP-01):
// the master orders them once, the slaves serve what the master obtained without contacting
// the CA. The CA issues 5-minute certificates (its shortest): Caddy then finds each one in
// its renewal window whenever it checks.
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { Certificate, CertificateIssuance, CertificateStatus, CertificateType, ProxyHost, Settings } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { Port80Forwarder, startAcmeCa, type AcmeCa } from "../support/acme-ca.ts";
import { Instance } from "../support/instance.ts";
import { launcherChildren } from "../support/procs.ts";
import { httpGet, startUpstream } from "../support/net.ts";
import { makePki } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";

const TOKEN = "acme-slave-sync-token-0123456789";

/** The chain Caddy presents for `servername`, verified against `ca` (the handshake fails otherwise). */
function verifiedChain(port: number, servername: string, ca: string): Promise<X509Certificate[]> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: "127.0.0.1", port, servername, ca, rejectUnauthorized: true, timeout: 5000 },
      () => {
        const chain: X509Certificate[] = [];
        let c = socket.getPeerCertificate(true);
        const seen = new Set<string>();
        while (c && c.raw && !seen.has(c.fingerprint256)) {
          seen.add(c.fingerprint256);
          chain.push(new X509Certificate(c.raw));
          c = c.issuerCertificate;
        }
        socket.end();
        resolve(chain);
      },
    );
    socket.on("timeout", () => socket.destroy(new Error("TLS handshake timed out")));
    socket.on("error", reject);
  });
}

const fingerprint = (c: X509Certificate) => createHash("sha256").update(c.raw).digest("hex");

describe("managed certificates from a real ACME CA: issued once by the master, served by every node", () => {
  let ca: AcmeCa | undefined;
  let port80: Port80Forwarder | undefined;
  let skipReason = "";
  let master: Instance;
  let slave: Instance;
  let up: Awaited<ReturnType<typeof startUpstream>>;
  let cert: Certificate;

  before(async () => {
    port80 = new Port80Forwarder();
    try {
      await port80.start();
      ca = await startAcmeCa({
        names: ["acme-site.localhost", "via-slave.localhost"],
        lifetime: "5m",
        deny: ["refused.localhost"],
      });
    } catch (e) {
      skipReason = (e as Error).message;
      await port80?.close().catch(() => undefined);
      port80 = undefined;
      return;
    }
    up = await startUpstream("ACME");
    const pki = makePki(mkdtempSync(path.join(os.tmpdir(), "cpm-pki-")));
    const masterPorts = await import("../support/instance.ts").then((m) => m.allocatePorts());
    slave = await Instance.start({
      name: "acme-slave",
      split: true,
      mode: "slave",
      env: {
        INSTANCE_SYNC_TOKEN: TOKEN,
        CPM_SYNC_TLS_CERT: pki.cert,
        CPM_SYNC_TLS_KEY: pki.key,
        CPM_MASTER_HTTP_URL: `http://127.0.0.1:${masterPorts.http}`,
        CPM_CADDY_BIND: "127.0.0.1",
      },
    });
    master = await Instance.start({
      name: "acme-master",
      mode: "master",
      ports: masterPorts,
      env: {
        INSTANCE_SLAVES: JSON.stringify([
          { name: "acme-slave", url: `https://localhost:${slave.ports.sync}`, token: TOKEN },
        ]),
        CPM_SYNC_TLS_CA: pki.caCert,
        CPM_CADDY_BIND: "127.0.0.1",
      },
    });
    port80.target = master.ports.http;
  });

  after(async () => {
    await master?.stop();
    await slave?.stop();
    await ca?.stop();
    await port80?.close();
    await up?.close();
  });

  const syncStatus = () => unary(master.dispatcher.getSyncStatus.bind(master.dispatcher), {}, master.adminToken);
  const createManaged = async (name: string) => {
    const c = await unary(
      master.config.createCertificate.bind(master.config),
      {
        certificate: Certificate.fromPartial({
          name,
          type: CertificateType.CERTIFICATE_TYPE_MANAGED,
          domainNames: [`${name}.localhost`],
        }),
      },
      master.adminToken,
    );
    await unary(
      master.config.createProxyHost.bind(master.config),
      {
        proxyHost: ProxyHost.fromPartial({
          name,
          domains: [`${name}.localhost`],
          upstreams: [`127.0.0.1:${up.port}`],
          certificateId: c.certificate!.id,
        }),
      },
      master.adminToken,
    );
    return c.certificate!;
  };
  const getCert = (inst: Instance, id: string, includePrivateKey = false) =>
    unary(inst.config.getCertificate.bind(inst.config), { id, includePrivateKey }, inst.adminToken).then(
      (r) => r.certificate!,
    );

  it("the master obtains the certificate through a real HTTP-01 challenge; master and slave present it, chained to the test CA", async (t) => {
    if (!ca) return t.skip(`needs port 80 on 127.0.0.1 and a mount namespace for the test CA: ${skipReason}`);
    await unary(
      master.config.updateSettings.bind(master.config),
      {
        settings: Settings.fromPartial({
          general: { acmeEmail: "ops@example.com" },
          acme: { caUrl: ca.directoryUrl, caRootPem: ca.rootPem },
        }),
      },
      master.adminToken,
    );
    const created = await unary(
      master.config.createCertificate.bind(master.config),
      {
        certificate: Certificate.fromPartial({
          name: "acme-site",
          type: CertificateType.CERTIFICATE_TYPE_MANAGED,
          domainNames: ["acme-site.localhost"],
        }),
      },
      master.adminToken,
    );
    cert = created.certificate!;
    assert.equal(cert.issuance, CertificateIssuance.CERTIFICATE_ISSUANCE_MASTER, "master-issued is the default");
    assert.equal(cert.status, CertificateStatus.CERTIFICATE_STATUS_PENDING);
    await unary(
      master.config.createProxyHost.bind(master.config),
      {
        proxyHost: ProxyHost.fromPartial({
          name: "acme-site",
          domains: ["acme-site.localhost"],
          upstreams: [`127.0.0.1:${up.port}`],
          certificateId: cert.id,
        }),
      },
      master.adminToken,
    );

    const issued = await waitFor(
      async () => {
        const c = await getCert(master, cert.id);
        return c.status === CertificateStatus.CERTIFICATE_STATUS_ISSUED ? c : undefined;
      },
      "the master records the issued certificate",
      90_000,
      500,
    );
    assert.ok(port80!.connections > 0, "the CA validated through port 80");
    assert.equal(issued.issued.length, 1);
    assert.equal(issued.issued[0]!.domainName, "acme-site.localhost");
    assert.equal(issued.issued[0]!.privateKeyPem, "", "Get omits the issued key unless asked");
    assert.ok(issued.expiresAt && issued.expiresAt.getTime() > Date.now(), "expires_at is the issued leaf's not-after");
    assert.match(issued.fingerprintSha256, /^[0-9a-f]{64}$/);

    // Caddy may be switching configs for a moment (the host was just created): retry the handshake.
    const onMaster = await waitFor(
      () => verifiedChain(master.ports.https, "acme-site.localhost", ca!.rootPem),
      "the master's handshake",
      15_000,
      300,
    );
    assert.equal(fingerprint(onMaster[0]!), issued.fingerprintSha256, "the master presents the recorded certificate");
    assert.ok(onMaster[0]!.subjectAltName?.includes("DNS:acme-site.localhost"));

    // The slave serves the very same certificate (it ordered none: its Caddy has no ACME issuer).
    const onSlave = await waitFor(
      async () => {
        const chain = await verifiedChain(slave.ports.https, "acme-site.localhost", ca!.rootPem);
        return fingerprint(chain[0]!) === issued.fingerprintSha256 ? chain : undefined;
      },
      "the slave presents the master's certificate",
      30_000,
      300,
    );
    assert.equal(onSlave.length, onMaster.length);
    const slaveConfig = (await httpGet(slave.ports.caddyAdmin, `127.0.0.1:${slave.ports.caddyAdmin}`, "/config/")).body;
    assert.match(
      slaveConfig,
      /"load_pem"/,
      `the slave's Caddy loads the master's certificate: ${slaveConfig.slice(0, 3000)}`,
    );
    assert.doesNotMatch(
      slaveConfig,
      /"module":"acme"|"automate"/,
      "the slave's Caddy has no ACME issuer and manages no name",
    );
  });

  it("status and issued material are visible on the slave; keys only for an admin who asks", async (t) => {
    if (!ca) return t.skip(`needs port 80 on 127.0.0.1 and a mount namespace for the test CA: ${skipReason}`);
    const onMaster = await getCert(master, cert.id);
    const onSlave = await waitFor(async () => {
      const c = await getCert(slave, cert.id);
      return c.fingerprintSha256 === onMaster.fingerprintSha256 ? c : undefined;
    }, "the slave's API shows the issued certificate");
    assert.equal(onSlave.status, CertificateStatus.CERTIFICATE_STATUS_ISSUED);
    assert.deepEqual(onSlave.expiresAt, onMaster.expiresAt);
    assert.equal(onSlave.issued[0]!.privateKeyPem, "");
    const withKey = await getCert(slave, cert.id, true);
    assert.match(withKey.issued[0]!.privateKeyPem, /BEGIN PRIVATE KEY/);
    const listed = await unary(
      slave.config.listCertificates.bind(slave.config),
      { includePrivateKeys: false },
      slave.adminToken,
    );
    assert.equal(listed.certificates.find((c) => c.id === cert.id)?.issued[0]?.privateKeyPem, "");
    assert.doesNotMatch(master.log() + slave.log(), /BEGIN (EC )?PRIVATE KEY/, "no private key in the services' logs");
  });

  it("GetSyncStatus shows the certificate issued on the master, with its not-after, and served by the slave", async (t) => {
    if (!ca) return t.skip(`needs port 80 on 127.0.0.1 and a mount namespace for the test CA: ${skipReason}`);
    const onMaster = await getCert(master, cert.id);
    const entry = await waitFor(
      async () => {
        const c = (await syncStatus()).certificates.find((e) => e.certificateId === cert.id);
        return c?.fingerprintSha256 === onMaster.fingerprintSha256 && c.slaves[0]?.servesCurrent ? c : undefined;
      },
      "the sync status shows the slave serving the issued certificate",
      30_000,
      300,
    );
    assert.equal(entry.name, "acme-site");
    assert.equal(entry.status, CertificateStatus.CERTIFICATE_STATUS_ISSUED);
    assert.deepEqual(entry.notAfter, onMaster.expiresAt);
    assert.equal(entry.statusDetail, "");
    assert.deepEqual(entry.slaves, [{ slaveName: "acme-slave", servesCurrent: true }]);
  });

  it("a renewal on the master reaches the slave: it presents the new certificate without contacting the CA", async (t) => {
    if (!ca) return t.skip(`needs port 80 on 127.0.0.1 and a mount namespace for the test CA: ${skipReason}`);
    const before = (await verifiedChain(slave.ports.https, "acme-site.localhost", ca.rootPem))[0]!;
    const recorded = await getCert(master, cert.id);
    assert.equal(fingerprint(before), recorded.fingerprintSha256);
    // A 5-minute certificate is always in Caddy's renewal window (under 50 minutes left). A
    // running Caddy checks every 10 minutes; a Caddy that starts checks at once: restart the
    // master's (the launcher brings it back with its last config).
    const caddyPid = launcherChildren(master.child!.pid!).get("caddy");
    assert.ok(caddyPid, "the master's launcher runs Caddy");
    process.kill(caddyPid, "SIGKILL");
    const renewed = await waitFor(
      async () => {
        const chain = await verifiedChain(slave.ports.https, "acme-site.localhost", ca!.rootPem);
        return chain[0]!.serialNumber !== before.serialNumber ? chain[0]! : undefined;
      },
      "the slave presents the renewed certificate",
      120_000,
      500,
    );
    assert.ok(
      new Date(renewed.validTo) > new Date(before.validTo),
      `later not-after: ${renewed.validTo} after ${before.validTo}`,
    );
    const onMaster = await getCert(master, cert.id);
    assert.notEqual(onMaster.fingerprintSha256, recorded.fingerprintSha256, "the master recorded the renewal");
    assert.match(
      readFileSync(path.join(master.dataDir, "caddy", "data", "caddy", "cpm", "issuance.log"), "utf8"),
      /"msg":"certificate renewed successfully","identifier":"acme-site.localhost"/,
      "Caddy on the master renewed it",
    );
    const slaveConfig = (await httpGet(slave.ports.caddyAdmin, `127.0.0.1:${slave.ports.caddyAdmin}`, "/config/")).body;
    assert.doesNotMatch(
      slaveConfig,
      /"module":"acme"|"automate"/,
      "the slave's Caddy has no ACME issuer: it contacted no CA",
    );
  });

  it("the CA's HTTP-01 validation reaching a slave succeeds: the slave forwards the challenge to the master", async (t) => {
    if (!ca) return t.skip(`needs port 80 on 127.0.0.1 and a mount namespace for the test CA: ${skipReason}`);
    port80!.target = slave.ports.http;
    const before = port80!.connections;
    // The slave's receiver is paused while the master orders: the CA's validation reaches a
    // slave that does not know the name yet (the order starts at the master's commit, before
    // any slave has it), and no reload of the slave's Caddy coincides with it (the test CA,
    // unlike a public one, leaves a challenge whose one validation failed pending for good).
    const receiver = launcherChildren(slave.child!.pid!).get("sync-receiver");
    assert.ok(receiver, "the slave's launcher runs its receiver");
    process.kill(receiver, "SIGSTOP");
    try {
      const c = await createManaged("via-slave");
      const issued = await waitFor(
        async () => {
          const got = await getCert(master, c.id);
          return got.status === CertificateStatus.CERTIFICATE_STATUS_ISSUED ? got : undefined;
        },
        "the master obtains via-slave.localhost through the slave",
        90_000,
        500,
      ).finally(() => process.kill(receiver, "SIGCONT"));
      assert.ok(port80!.connections > before, "the CA's validation went to the slave");
      const onSlave = await waitFor(
        async () => {
          const chain = await verifiedChain(slave.ports.https, "via-slave.localhost", ca!.rootPem);
          return fingerprint(chain[0]!) === issued.fingerprintSha256 ? chain : undefined;
        },
        "the slave presents via-slave.localhost",
        30_000,
        300,
      );
      assert.ok(onSlave[0]!.subjectAltName?.includes("DNS:via-slave.localhost"));
    } finally {
      process.kill(receiver, "SIGCONT");
      port80!.target = master.ports.http;
    }
  });

  it("a name the CA refuses ends FAILED with the CA's error, on the master, on the slave and in the sync status", async (t) => {
    if (!ca) return t.skip(`needs port 80 on 127.0.0.1 and a mount namespace for the test CA: ${skipReason}`);
    // (A name the CA cannot reach or whose challenge answer is wrong would do too with a CA
    // that gives up on a failed challenge; this one keeps the authorization pending, so Caddy
    // reports it only when its order times out, after minutes.)
    const c = await createManaged("refused");
    const failed = await waitFor(
      async () => {
        const got = await getCert(master, c.id);
        return got.status === CertificateStatus.CERTIFICATE_STATUS_FAILED ? got : undefined;
      },
      "the master records the failed order",
      120_000,
      500,
    );
    assert.match(
      failed.statusDetail,
      /^refused\.localhost: .*urn:ietf:params:acme:error:rejectedIdentifier - The server will not issue certificates for the identifier$/,
      failed.statusDetail,
    );
    assert.doesNotMatch(failed.statusDetail, /[\p{Cc}{}]/u, "sanitized");
    assert.equal(failed.issued.length, 0);
    const onSlave = await waitFor(async () => {
      const got = await getCert(slave, c.id);
      return got.status === CertificateStatus.CERTIFICATE_STATUS_FAILED ? got : undefined;
    }, "the slave shows the failure");
    assert.equal(onSlave.statusDetail, failed.statusDetail);
    const entry = await waitFor(
      async () =>
        (await syncStatus()).certificates.find(
          (e) => e.certificateId === c.id && e.status === CertificateStatus.CERTIFICATE_STATUS_FAILED,
        ),
      "the sync status shows the failure",
    );
    assert.equal(entry.statusDetail, failed.statusDetail);
    assert.equal(entry.notAfter, undefined);
    assert.deepEqual(entry.slaves, [{ slaveName: "acme-slave", servesCurrent: false }]);
  });
});
