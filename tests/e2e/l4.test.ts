// L4 proxy hosts served for real by the project's Caddy with caddy-l4: TCP, TLS SNI routing
// (passthrough), UDP and the PROXY protocol, first on a master's own Caddy, then on a slave
// that receives them over TLS sync. Two Caddies on one machine cannot both own one listener
// (caddy binds with SO_REUSEPORT and the kernel would share connections between them), so in
// the sync suite the master runs without the layer4 app and only the slave serves.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { L4Matcher, L4Protocol, L4ProxyHost, ProxyProtocolVersion, type DeepPartial } from "@cpm/proto";
import { unary } from "@cpm/grpc-kit";
import { Instance } from "../support/instance.ts";
import {
  freeUdpPort,
  startProxyProtocolReader,
  startTcpEcho,
  startTlsGreeter,
  startUdpEcho,
  tcpExchange,
  tcpRefused,
  tlsHello,
  udpExchange,
  type L4Server,
} from "../support/l4.ts";
import { freePort } from "../support/net.ts";
import { makeNamedCerts, makePki, type NamedCerts } from "../support/tls.ts";
import { waitFor } from "../support/wait.ts";

const SYNC_TOKEN = "l4-slave-sync-token-0123456789";

interface Setup {
  /** Where the API writes go. */
  writer: Instance;
  /** Whose Caddy serves the L4 hosts. */
  server: Instance;
  all: Instance[];
}

function l4Suite(title: string, start: (dir: string) => Promise<Setup>) {
  describe(title, () => {
    let dir: string;
    let s: Setup;
    let named: NamedCerts;
    let echo: L4Server, tlsA: L4Server, tlsB: L4Server, udp: L4Server, pp: L4Server;

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), "cpm-e2e-l4-"));
      named = makeNamedCerts(dir, ["a.l4.test", "b.l4.test"]);
      echo = await startTcpEcho();
      tlsA = await startTlsGreeter("A", named.certs["a.l4.test"]!.cert, named.certs["a.l4.test"]!.key);
      tlsB = await startTlsGreeter("B", named.certs["b.l4.test"]!.cert, named.certs["b.l4.test"]!.key);
      udp = await startUdpEcho("U");
      pp = await startProxyProtocolReader();
      s = await start(dir);
    });
    after(async () => {
      for (const i of s?.all ?? []) await i.stop();
      for (const x of [echo, tlsA, tlsB, udp, pp]) await x?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    /** The serving instance's Caddy runs `version` (or later) with no error and no L4 warning. */
    const served = async (version: number) => {
      await waitFor(async () => (await s.server.version()) >= version, `${s.server.opts.name} on v${version}`, 30_000);
      const st = await s.server.waitInSync();
      assert.equal(st.lastError, "", `render status error: ${st.lastError}`);
      assert.deepEqual(
        st.warnings.filter((w) => /L4/.test(w)),
        [],
        "every L4 host is served",
      );
    };
    const create = async (h: DeepPartial<L4ProxyHost>) => {
      const r = await unary(
        s.writer.config.createL4ProxyHost.bind(s.writer.config),
        { l4ProxyHost: L4ProxyHost.fromPartial(h) },
        s.writer.adminToken,
      );
      await served(r.configVersion);
      return r.l4ProxyHost!;
    };
    const remove = async (...hosts: L4ProxyHost[]) => {
      let v = 0;
      for (const h of hosts)
        v = (await unary(s.writer.config.deleteL4ProxyHost.bind(s.writer.config), { id: h.id }, s.writer.adminToken))
          .configVersion;
      await served(v);
    };
    const refused = (port: number) => waitFor(() => tcpRefused(port), `port ${port} refused after delete`, 10_000);

    it("a TCP host carries bytes both ways to an echo server; deleting it closes the listener", async () => {
      const port = await freePort();
      const h = await create({
        name: "echo",
        listenAddress: `127.0.0.1:${port}`,
        upstreams: [`127.0.0.1:${echo.port}`],
      });
      const payload = randomBytes(256 * 1024);
      const { data } = await waitFor(
        () => tcpExchange(port, payload, payload.length),
        `echo through port ${port}`,
        10_000,
        200,
      );
      assert.equal(data.length, payload.length);
      assert.ok(data.equals(payload), "the echo server's bytes come back unchanged");
      await remove(h);
      assert.equal(await refused(port), true);
    });

    it("TLS SNI routing sends two names to two upstreams, TLS passed through", async () => {
      const port = await freePort();
      const a = await create({
        name: "sni-a",
        listenAddress: `127.0.0.1:${port}`,
        matcher: L4Matcher.L4_MATCHER_TLS_SNI,
        matcherValues: ["a.l4.test"],
        upstreams: [`127.0.0.1:${tlsA.port}`],
      });
      const b = await create({
        name: "sni-b",
        listenAddress: `127.0.0.1:${port}`,
        matcher: L4Matcher.L4_MATCHER_TLS_SNI,
        matcherValues: ["b.l4.test"],
        upstreams: [`127.0.0.1:${tlsB.port}`],
      });
      // The handshake is verified against the test's CA: the upstream itself answered, not Caddy.
      const ra = await waitFor(() => tlsHello(port, "a.l4.test", named.caPem), "TLS a.l4.test", 10_000, 200);
      assert.deepEqual(ra, { data: "A", subject: "a.l4.test" });
      assert.deepEqual(await tlsHello(port, "b.l4.test", named.caPem), { data: "B", subject: "b.l4.test" });
      await assert.rejects(
        tlsHello(port, "c.l4.test", named.caPem),
        /closed before the TLS handshake|ECONNRESET|socket disconnected/,
        "a name no host matches gets no upstream",
      );
      await remove(a, b);
      assert.equal(await refused(port), true);
    });

    it("a UDP host answers through the UDP echo; deleting it stops the answers", async () => {
      const port = await freeUdpPort();
      const h = await create({
        name: "udp",
        protocol: L4Protocol.L4_PROTOCOL_UDP,
        listenAddress: `127.0.0.1:${port}`,
        upstreams: [`127.0.0.1:${udp.port}`],
      });
      assert.equal(
        await waitFor(() => udpExchange(port, "ping-1"), `UDP answer on port ${port}`, 10_000, 200),
        "U:ping-1",
      );
      assert.equal(await udpExchange(port, "ping-2"), "U:ping-2");
      await remove(h);
      await waitFor(
        () =>
          udpExchange(port, "after-delete").then(
            () => false,
            () => true,
          ),
        `no UDP answer on port ${port} after delete`,
        10_000,
        200,
      );
    });

    it("the PROXY protocol header reaches the upstream with the client's address (v1, v2, and one received from downstream)", async () => {
      const [p1, p2, p3] = [await freePort(), await freePort(), await freePort()];
      const upstreams = [`127.0.0.1:${pp.port}`];
      const v1 = await create({
        name: "pp-v1",
        listenAddress: `127.0.0.1:${p1}`,
        upstreams,
        proxyProtocolVersion: ProxyProtocolVersion.PROXY_PROTOCOL_VERSION_V1,
      });
      const v2 = await create({
        name: "pp-v2",
        listenAddress: `127.0.0.1:${p2}`,
        upstreams,
        proxyProtocolVersion: ProxyProtocolVersion.PROXY_PROTOCOL_VERSION_V2,
      });
      const relay = await create({
        name: "pp-relay",
        listenAddress: `127.0.0.1:${p3}`,
        upstreams,
        proxyProtocolReceive: true,
        proxyProtocolVersion: ProxyProtocolVersion.PROXY_PROTOCOL_VERSION_V2,
      });

      const line = (d: Buffer) => d.includes("\n");
      const r1 = await waitFor(() => tcpExchange(p1, "hello", line), `PROXY v1 through port ${p1}`, 10_000, 200);
      assert.equal(r1.data.toString(), `v1 127.0.0.1:${r1.localPort}\n`);
      const r2 = await tcpExchange(p2, "hello", line);
      assert.equal(r2.data.toString(), `v2 127.0.0.1:${r2.localPort}\n`);
      // A load balancer in front sends its client's address; Caddy reads it and passes it on.
      const r3 = await tcpExchange(p3, `PROXY TCP4 203.0.113.7 127.0.0.1 4444 ${p3}\r\nhello`, line);
      assert.equal(r3.data.toString(), "v2 203.0.113.7:4444\n");

      await remove(v1, v2, relay);
      for (const p of [p1, p2, p3]) assert.equal(await refused(p), true);
    });
  });
}

l4Suite("L4 proxy hosts on a master's own Caddy (caddy-l4)", async () => {
  const master = await Instance.start({ name: "l4-master", mode: "master", env: { INSTANCE_SLAVES: "[]" } });
  return { writer: master, server: master, all: [master] };
});

l4Suite("L4 proxy hosts synced to a TLS slave and served by its Caddy (caddy-l4)", async (dir) => {
  const pki = makePki(dir);
  const slave = await Instance.start({
    name: "l4-slave",
    mode: "slave",
    env: { INSTANCE_SYNC_TOKEN: SYNC_TOKEN, CPM_SYNC_TLS_CERT: pki.cert, CPM_SYNC_TLS_KEY: pki.key },
  });
  const master = await Instance.start({
    name: "l4-sync-master",
    mode: "master",
    env: {
      INSTANCE_SLAVES: JSON.stringify([
        { name: "l4-slave", url: `https://localhost:${slave.ports.sync}`, token: SYNC_TOKEN },
      ]),
      CPM_SYNC_TLS_CA: pki.caCert,
      // The master's Caddy leaves the listeners to the slave's (see the top of this file).
      CPM_CADDY_LAYER4: "false",
    },
  });
  return { writer: master, server: slave, all: [master, slave] };
});
