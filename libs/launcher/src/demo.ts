import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * `npm run demo`: a local master and one slave, each with its own Caddy, database and
 * ports, syncing over TLS with a CA made here, so a change on the master is seen served
 * by the slave. State lives in ./data/demo (delete it to start over). The instructions are
 * printed last, once both instances serve; Caddy's own logs go to each instance's
 * caddy/caddy.log, not to the terminal.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const dir = path.resolve(process.env.CPM_DEMO_DIR ?? path.join(root, "data", "demo"));
const say = (m: string) => process.stderr.write(`[demo] ${m}\n`);

function secret(name: string): string {
  const f = path.join(dir, name);
  if (!existsSync(f)) writeFileSync(f, randomBytes(24).toString("base64url"), { mode: 0o600 });
  return readFileSync(f, "utf8").trim();
}

function pki(): { ca: string; cert: string; key: string } {
  const p = path.join(dir, "pki");
  const out = { ca: path.join(p, "ca.crt"), cert: path.join(p, "slave.crt"), key: path.join(p, "slave.key") };
  if (existsSync(out.cert)) return out;
  mkdirSync(p, { recursive: true });
  const run = (args: string[]) => execFileSync("openssl", args, { cwd: p, stdio: "pipe" });
  writeFileSync(path.join(p, "san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  run([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "825",
    "-subj",
    "/CN=CPM demo CA",
  ]);
  run([
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "slave.key",
    "-out",
    "slave.csr",
    "-subj",
    "/CN=localhost",
  ]);
  run([
    "x509",
    "-req",
    "-in",
    "slave.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "slave.crt",
    "-days",
    "825",
    "-extfile",
    "san.ext",
  ]);
  return out;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port` (polled), false after `timeoutMs`. */
async function listening(port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

async function main() {
  mkdirSync(dir, { recursive: true });
  const t = pki();
  const syncToken = secret("sync-token");
  const adminToken = `cpm_demo_${secret("admin-token")}`;
  const common = { ...process.env, CPM_ADMIN_TOKEN: adminToken, LOG_LEVEL: process.env.LOG_LEVEL ?? "warn" };
  const instances: Record<string, NodeJS.ProcessEnv> = {
    slave: {
      ...common,
      INSTANCE_MODE: "slave",
      INSTANCE_SYNC_TOKEN: syncToken,
      CPM_DATA_DIR: path.join(dir, "slave"),
      CPM_SYNC_TLS_CERT: t.cert,
      CPM_SYNC_TLS_KEY: t.key,
      CPM_SYNC_LISTEN: "127.0.0.1:50443",
      CPM_API_LISTEN: "127.0.0.1:50061",
      CPM_RENDERER_LISTEN: "127.0.0.1:50062",
      CPM_CONFIG_INTERNAL_LISTEN: "127.0.0.1:50064",
      CPM_CONSOLE_LISTEN: "127.0.0.1:3001",
      CADDY_API_URL: "http://127.0.0.1:2020",
      CPM_HTTP_PORT: "8081",
      CPM_HTTPS_PORT: "8444",
    },
    master: {
      ...common,
      INSTANCE_MODE: "master",
      INSTANCE_SLAVES: JSON.stringify([{ name: "slave-1", url: "https://localhost:50443", token: syncToken }]),
      CPM_SYNC_TLS_CA: t.ca,
      CPM_DATA_DIR: path.join(dir, "master"),
      CPM_API_LISTEN: "127.0.0.1:50051",
      CPM_RENDERER_LISTEN: "127.0.0.1:50052",
      CPM_DISPATCHER_LISTEN: "127.0.0.1:50053",
      CPM_CONSOLE_LISTEN: "127.0.0.1:3000",
      CADDY_API_URL: "http://127.0.0.1:2019",
      CPM_HTTP_PORT: "8080",
      CPM_HTTPS_PORT: "8443",
    },
  };
  const children: ChildProcess[] = [];
  for (const [name, env] of Object.entries(instances)) {
    // As `npm start` runs a node: with the memory defaults of scripts/node.sh.
    const child = spawn("sh", [path.join(root, "scripts/node.sh"), path.join(root, "libs/launcher/dist/main.js")], {
      env: { ...env, NODE: process.execPath },
      stdio: ["ignore", "inherit", "inherit"],
    });
    child.on("exit", (code) => {
      say(`${name} stopped (code ${code})`);
      for (const c of children) c.kill("SIGTERM");
      upstream.close();
      process.exitCode = code ?? 1;
    });
    children.push(child);
  }
  // A tiny upstream for the example host.
  const upstream = http
    .createServer((req, res) => res.end(`hello from the demo upstream (Host: ${req.headers.host})\n`))
    .listen(8090, "127.0.0.1");
  const stop = () => {
    upstream.close();
    children.forEach((c) => c.kill("SIGTERM"));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  // Both APIs, the slave's receiver and both Caddies (they listen once their renderer loaded them).
  const ports = [50051, 50061, 50443, 8080, 8081];
  const up = await Promise.all(ports.map((p) => listening(p, 120_000)));
  if (children.some((c) => c.exitCode !== null || c.signalCode !== null)) return;
  if (up.includes(false))
    say(`still waiting for ${ports.filter((_, i) => !up[i]).join(", ")}; the commands below may fail until then`);
  say(
    `master: API 127.0.0.1:50051, Caddy on :8080  |  slave: API 127.0.0.1:50061, Caddy on :8081, sync on :50443 (TLS)`,
  );
  say("try, in another terminal in this repository (`npx cpm --help` lists every command):");
  say(`  export CPM_TOKEN=${adminToken}   # admin on both (tokens are per instance, never synced)`);
  say(`  npx cpm proxy-host create --name demo --domain demo.localhost --upstream 127.0.0.1:8090   # on the master`);
  say(`  curl -si -H 'Host: demo.localhost' http://127.0.0.1:8081/ | head -1      # served by the slave`);
  say(`  npx cpm sync status                                # the master's view of its slave`);
  say(`  npx cpm --api 127.0.0.1:50061 proxy-host list      # the slave's copy`);
  say(
    `Caddy's logs: ${path.join(dir, "master", "caddy", "caddy.log")} and ${path.join(dir, "slave", "caddy", "caddy.log")}`,
  );
  say("Ctrl-C stops both.");
}

void main();
