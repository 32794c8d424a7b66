import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { projectCaddy } from "./instance.ts";
import { freePort } from "./net.ts";
import { waitFor } from "./wait.ts";

/**
 * A real ACME CA for the tests: the project's Caddy in a process of its own, with the `pki`
 * app and the `acme_server` handler on HTTPS (its own internal CA signs both the directory's
 * TLS certificate and what it issues; `rootPem` is that root). It offers only the HTTP-01
 * challenge, which it validates on port 80 of the name: see Port80Forwarder. Go's resolver
 * does not map `*.localhost` to the loopback address by itself, so the CA runs in a mount
 * namespace of its own (`unshare -m`, root) where /etc/hosts maps `names` to 127.0.0.1; the
 * machine's /etc/hosts is left alone. Rejects, saying why, where that is not possible.
 */
export interface AcmeCa {
  directoryUrl: string;
  rootPem: string;
  dir: string;
  log(): string;
  stop(): Promise<void>;
}

/**
 * `names`: resolved to 127.0.0.1 by the CA; `lifetime`: of what it issues (Caddy's duration,
 * at least "5m"); `deny`: names the CA refuses to order (its policy: new orders for them get
 * urn:ietf:params:acme:error:rejectedIdentifier).
 */
export async function startAcmeCa(opts: { names: string[]; lifetime?: string; deny?: string[] }): Promise<AcmeCa> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cpm-acme-ca-"));
  const port = await freePort();
  const admin = await freePort();
  const handler: Record<string, unknown> = { handler: "acme_server", ca: "local", challenges: ["http-01"] };
  if (opts.lifetime) handler.lifetime = opts.lifetime;
  if (opts.deny?.length) handler.policy = { deny: { domains: opts.deny } };
  const config = {
    admin: { listen: `127.0.0.1:${admin}` },
    apps: {
      pki: { certificate_authorities: { local: { install_trust: false } } },
      tls: {
        certificates: { automate: ["127.0.0.1"] },
        automation: { policies: [{ subjects: ["127.0.0.1"], issuers: [{ module: "internal" }] }] },
      },
      http: {
        servers: {
          acme: {
            listen: [`127.0.0.1:${port}`],
            routes: [{ handle: [handler] }],
            logs: {},
            tls_connection_policies: [{}],
            automatic_https: { disable: true },
          },
        },
      },
    },
  };
  const configFile = path.join(dir, "config.json");
  writeFileSync(configFile, JSON.stringify(config));
  mkdirSync(path.join(dir, "data"), { recursive: true });
  const hostsFile = path.join(dir, "hosts");
  writeFileSync(hostsFile, `127.0.0.1 localhost\n::1 localhost\n${opts.names.map((n) => `127.0.0.1 ${n}\n`).join("")}`);
  const probe = spawnSync(
    "unshare",
    ["-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && getent hosts "$1"', hostsFile, opts.names[0] ?? "localhost"],
    { encoding: "utf8" },
  );
  if (probe.status !== 0)
    throw new Error(
      `cannot give the test CA its own /etc/hosts (unshare -m, mount --bind; needs root): ${(probe.stderr || probe.error?.message || "").trim()}`,
    );
  const logFile = path.join(dir, "caddy.log");
  const out = createWriteStream(logFile);
  const child: ChildProcess = spawn(
    "unshare",
    [
      "-m",
      "sh",
      "-c",
      'mount --bind "$0" /etc/hosts && exec "$1" run --config "$2"',
      hostsFile,
      projectCaddy(),
      configFile,
    ],
    {
      env: {
        PATH: process.env.PATH ?? "",
        HOME: dir,
        XDG_DATA_HOME: path.join(dir, "data"),
        XDG_CONFIG_HOME: path.join(dir, "config"),
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
    out.end();
  };
  const rootFile = path.join(dir, "data", "caddy", "pki", "authorities", "local", "root.crt");
  const directoryUrl = `https://127.0.0.1:${port}/acme/local/directory`;
  let rootPem: string;
  try {
    rootPem = await waitFor(
      () => {
        try {
          return readFileSync(rootFile, "utf8");
        } catch {
          return undefined;
        }
      },
      "the test ACME CA's root certificate",
      30_000,
    );
    await waitFor(
      async () => ((await fetchDirectory(directoryUrl, rootPem)) ? true : undefined),
      "the test ACME CA's directory",
      30_000,
      200,
    );
  } catch (err) {
    // A CA that never came up must not outlive the test (its pipes would keep the process alive).
    await stop();
    throw err;
  }
  return {
    directoryUrl,
    rootPem,
    dir,
    log: () => readFileSync(logFile, "utf8"),
    stop,
  };
}

async function fetchDirectory(url: string, ca: string): Promise<boolean> {
  const https = await import("node:https");
  return new Promise((resolve) => {
    const req = https.get(url, { ca, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
  });
}

/**
 * The CA validates HTTP-01 on port 80, while the instances' Caddy listens on ports of their
 * own: a TCP forwarder on 127.0.0.1:80 sends each connection to `target` (changeable), which
 * picks the node the CA's validation reaches. Binding port 80 needs root (or
 * CAP_NET_BIND_SERVICE): `start` rejects with the reason otherwise.
 */
export class Port80Forwarder {
  private port = 0;
  connections = 0;
  private readonly open = new Set<net.Socket>();
  private readonly server = net.createServer((c) => {
    this.connections++;
    const up = net.connect(this.port, "127.0.0.1");
    this.open.add(c);
    c.pipe(up).pipe(c);
    const end = () => {
      this.open.delete(c);
      c.destroy();
      up.destroy();
    };
    c.on("error", end);
    c.on("close", end);
    up.on("error", end);
  });

  get target(): number {
    return this.port;
  }

  /**
   * Where new connections go. Open ones are closed: the CA's HTTP client keeps connections
   * alive, and a validation must reach the node chosen now, not the one an old connection leads to.
   */
  set target(port: number) {
    this.port = port;
    for (const c of this.open) c.destroy();
    this.open.clear();
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(80, "127.0.0.1", () => resolve());
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
