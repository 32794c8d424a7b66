// Helpers shared by the render tests (*.test.ts in this folder): snapshot builders, golden
// files, and `caddy validate` with the project's Caddy (or Debian's). Not exported from the package.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { test, type TestContext } from "node:test";
import { Certificate, CertificateType, ProxyHost, Snapshot, type DeepPartial } from "@cpm/proto";
import { findBuiltCaddy, SNAPSHOT_SCHEMA_VERSION } from "@cpm/core";
import { render, type RenderOptions } from "./index.ts";

/** Render options without layer4 (the ports tests use unless they say otherwise). */
export const OPTS: RenderOptions = { httpPort: 8080, httpsPort: 8443, adminListen: "127.0.0.1:2019", layer4: false };

// ---- snapshot builders ---------------------------------------------------------------------

export const host = (id: string, domains: string[], over: DeepPartial<ProxyHost> = {}) =>
  ProxyHost.fromPartial({ id, name: `host ${id}`, domains, upstreams: [`${id}.internal:8080`], ...over });
/** A managed certificate (auto-renewed). */
export const cert = (id: string, domainNames: string[]) =>
  Certificate.fromPartial({
    id,
    name: `cert ${id}`,
    type: CertificateType.CERTIFICATE_TYPE_MANAGED,
    domainNames,
    autoRenew: true,
  });
export const snapshot = (over: DeepPartial<Snapshot> = {}) =>
  Snapshot.fromPartial({ schemaVersion: SNAPSHOT_SCHEMA_VERSION, masterInstanceId: "master-1", version: 1, ...over });

/** A self-signed certificate and key (PEM) for `sans`, e.g. "DNS:a.test", made by openssl in `dir`. */
let selfSignedCount = 0;
export function makeSelfSigned(dir: string, cn: string, sans: string[]): { cert: string; key: string } {
  const id = ++selfSignedCount;
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
      `k${id}.pem`,
      "-out",
      `c${id}.pem`,
      "-days",
      "5",
      "-subj",
      `/CN=${cn}`,
      "-addext",
      `subjectAltName=${sans.join(",")}`,
    ],
    { cwd: dir, stdio: "pipe" },
  );
  return {
    cert: readFileSync(path.join(dir, `c${id}.pem`), "utf8"),
    key: readFileSync(path.join(dir, `k${id}.pem`), "utf8"),
  };
}

/** Deterministic shuffle (mulberry32), so a failure can be reproduced. */
export function shuffled<T>(xs: readonly T[], seed: number): T[] {
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

// ---- golden files ----------------------------------------------------------------------------

export const GOLDEN_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "golden");
/** UPDATE_GOLDEN=1 rewrites the golden files instead of comparing with them. */
export const UPDATE = process.env.UPDATE_GOLDEN === "1";

export const goldenPath = (name: string) => path.join(GOLDEN_DIR, `${name}.json`);
/** Rendered JSON as stored in a golden file: indented, with a final newline. */
export const pretty = (json: string) => `${JSON.stringify(JSON.parse(json), null, 2)}\n`;

/** Asserts `got` is exactly the golden file `name` (or writes it, with UPDATE_GOLDEN=1). */
export function assertGolden(name: string, got: string): void {
  const file = goldenPath(name);
  if (UPDATE) {
    mkdirSync(GOLDEN_DIR, { recursive: true });
    writeFileSync(file, got);
    return;
  }
  assert.ok(existsSync(file), `missing ${file}; run with UPDATE_GOLDEN=1`);
  assert.equal(got, readFileSync(file, "utf8"));
}

/** A test `name` checking the pretty form of `json()` against its golden file. */
export function goldenTest(name: string, json: () => string): void {
  test(name, () => assertGolden(name, pretty(json())));
}

/**
 * What `caddy validate` should see for each case: the golden file when it exists (checked
 * against render's exact bytes by the golden tests), else the config rendered with `opts`.
 */
export const goldenConfigs = (
  cases: Record<string, Snapshot>,
  opts: RenderOptions = OPTS,
): Record<string, () => string | Buffer> =>
  Object.fromEntries(
    Object.entries(cases).map(([name, snap]) => [
      name,
      () => (existsSync(goldenPath(name)) ? readFileSync(goldenPath(name)) : render(snap, opts).json),
    ]),
  );

// ---- caddy validate --------------------------------------------------------------------------

/** Debian's package: Caddy without the layer4 module. */
export const DEBIAN_CADDY = "/usr/bin/caddy";
/** The Caddy that validates: the project's build with caddy-l4 (npm run caddy:build) when present, else Debian's. */
export const CADDY = findBuiltCaddy() ?? DEBIAN_CADDY;
const run = promisify(execFile);

/** Runs a Caddy (this package's validating one unless `bin` says) with `args` (e.g. list-modules). */
export const runCaddy = (args: string[], bin = CADDY) => run(bin, args);

/** Writes `config` to `dir/name.json` and runs `caddy validate` on it (HOME and XDG dirs in `dir`); rejects when Caddy does. */
export async function caddyValidate(dir: string, name: string, config: string | Buffer, bin = CADDY) {
  const file = path.join(dir, `${name}.json`);
  writeFileSync(file, config);
  return run(bin, ["validate", "--config", file], {
    timeout: 60_000,
    env: {
      ...process.env,
      HOME: dir,
      XDG_DATA_HOME: path.join(dir, "data"),
      XDG_CONFIG_HOME: path.join(dir, "config"),
    },
  });
}

/** As caddyValidate, failing the test with Caddy's output when it rejects the config (`what` names it). */
export async function assertCaddyAccepts(
  dir: string,
  name: string,
  config: string | Buffer,
  what = name,
  bin = CADDY,
): Promise<void> {
  try {
    await caddyValidate(dir, name, config, bin);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    assert.fail(`${bin} validate rejected ${what}: ${err.stderr || err.message}`);
  }
}

/** Runs `fn` with a new temporary directory (named after `prefix`), removed afterwards. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `caddy validate` on every config, one subtest each (skipped when there is no Caddy).
 * `configs` maps a name to a function giving the bytes to validate.
 */
export async function assertCaddyAcceptsAll(
  t: TestContext,
  prefix: string,
  configs: Record<string, () => string | Buffer>,
): Promise<void> {
  if (!existsSync(CADDY)) {
    t.skip("caddy binary not found");
    return;
  }
  await withTempDir(prefix, async (dir) => {
    for (const [name, config] of Object.entries(configs)) {
      await t.test(name, () => assertCaddyAccepts(dir, name, config()));
    }
  });
}

// ---- the rendered Caddy JSON as these tests read it ----------------------------------------

/** The members of a Caddy JSON object that the tests only compare (deepEqual, equal), never walk into. */
interface Rest {
  [member: string]: unknown;
}

/**
 * A rendered Caddy config (parseConfig), typed as far as the tests walk into it. An object the
 * tests walk through is typed as present: a test reading one the render left out fails when it
 * runs, as it did when the tests read untyped JSON. Everything else is `unknown`, for comparing.
 */
export interface CaddyConfig extends Rest {
  admin: { listen: string } & Rest;
  apps: {
    http: HttpApp;
    tls: TlsApp;
    layer4: { servers: Record<string, L4Server> };
    pki: unknown;
  };
}

export interface HttpApp extends Rest {
  http_port: number;
  https_port: number;
  servers: { http: HttpServer };
}

export interface HttpServer extends Rest {
  listen: string[];
  routes: Route[];
  tls_connection_policies: Rest[];
}

/** An HTTP route; `match` is absent on a route that matches every request. */
export interface Route extends Rest {
  match: MatcherSet[];
  handle: Handler[];
  terminal: boolean;
}

export interface MatcherSet extends Rest {
  host: string[];
  not: MatcherSet[];
  protocol: string;
  header_regexp: Record<string, { pattern: string }>;
  path: string[];
}

/** An HTTP handler: the members of the handlers the tests walk into (subroute, reverse_proxy, headers, authentication). */
export interface Handler extends Rest {
  handler: string;
  routes: Route[];
  upstreams: ({ dial: string } & Rest)[];
  headers: Rest;
  response: { set: Record<string, string[]> } & Rest;
  status_code: number;
  providers: { http_basic: { accounts: { username: string; password: string }[] } & Rest };
}

export interface TlsApp extends Rest {
  certificates: { load_pem: LoadedPem[]; automate: string[] };
  automation: { policies: AutomationPolicy[] };
}

export interface LoadedPem extends Rest {
  certificate: string;
  key: string;
  tags: string[];
}

export interface AutomationPolicy extends Rest {
  subjects: string[];
  issuers: Issuer[];
}

export interface Issuer extends Rest {
  module: string;
  email: string;
  ca: string;
  trusted_roots_pem_files: string[];
}

export interface L4Server extends Rest {
  listen: string[];
  routes: L4Route[];
}

export interface L4Route extends Rest {
  match: ({ tls: { sni: string[] }; http: MatcherSet[] } & Rest)[];
  handle: L4Handler[];
}

export interface L4Handler extends Rest {
  handler: string;
  upstreams: { dial: string[] }[];
  proxy_protocol: string;
  connection_policies: Rest[];
}

/** `render(...).json` read back as a Caddy config. */
export const parseConfig = (json: string): CaddyConfig => JSON.parse(json) as CaddyConfig;

// ---- reading a rendered HTTP config as Caddy would ------------------------------------------

/** A request as the route matchers see it. */
export interface Req {
  host: string;
  /** Arrived on the HTTPS listener (TLS); default plain HTTP. */
  https?: boolean;
  /** The Upgrade header, if any. */
  upgrade?: string;
  path?: string;
}

/** Caddy's host matcher for one name: case-insensitive, and "*" stands for exactly one label. */
export function hostMatches(patterns: string[], name: string): boolean {
  const parts = name.toLowerCase().split(".");
  return patterns.some((p) => {
    const pp = p.toLowerCase().split(".");
    return pp.length === parts.length && pp.every((x, i) => x === "*" || x === parts[i]);
  });
}

/** One matcher set against `req`; a matcher these tests cannot judge (remote_ip) fails the test. */
function matchSet(set: MatcherSet, req: Req): boolean {
  return Object.keys(set).every((kind) => {
    switch (kind) {
      case "host":
        return hostMatches(set.host, req.host);
      case "not":
        return !set.not.some((s) => matchSet(s, req));
      case "protocol":
        return set.protocol === (req.https ? "https" : "http");
      case "header_regexp":
        return Object.entries(set.header_regexp).every(([h, m]) => {
          assert.equal(h, "Upgrade", "only the Upgrade header is judged here");
          const re = new RegExp(
            String(m.pattern).replace(/^\(\?i\)/, ""),
            String(m.pattern).startsWith("(?i)") ? "i" : "",
          );
          return req.upgrade !== undefined && re.test(req.upgrade);
        });
      case "path":
        return set.path.some((p) =>
          p.endsWith("*") ? (req.path ?? "/").startsWith(p.slice(0, -1)) : (req.path ?? "/") === p,
        );
      default:
        assert.fail(`matcher ${kind} is not judged by these tests`);
    }
  });
}

/** An access list's gate (render/access.ts): judged by the access tests, listed here as one handler. */
const isGate = (subroute: Handler) =>
  subroute.routes.some((r) =>
    /"remote_ip"|"authentication"/.test(JSON.stringify([r.match, r.handle.filter((h) => h.handler !== "subroute")])),
  );

const matches = (route: Route, req: Req) => route.match === undefined || route.match.some((s) => matchSet(s, req));

/**
 * What the HTTP server runs for `req`, in order, as Caddy would: the handlers of each matching
 * route, subroutes opened, up to the handler that answers (static_response, reverse_proxy).
 * An access list's gate is listed as one handler, not opened (it asks for addresses and
 * credentials these tests do not model).
 */
export function handlersFor(cfg: CaddyConfig, req: Req): Handler[] {
  const out: Handler[] = [];
  const walk = (routes: Route[]): boolean => {
    for (const r of routes) {
      if (!matches(r, req)) continue;
      for (const h of r.handle) {
        if (h.handler === "subroute" && !isGate(h)) {
          if (walk(h.routes)) return true;
          continue;
        }
        out.push(h);
        if (h.handler === "static_response" || h.handler === "reverse_proxy") return true;
      }
      if (r.terminal) return true;
    }
    return false;
  };
  walk(cfg.apps.http.servers.http.routes);
  return out;
}

/** The reverse_proxy handler a request for `host` reaches (over HTTPS when `https`); fails when it gets none. */
export function proxyFor(cfg: CaddyConfig, host: string, https = false): Handler {
  const hs = handlersFor(cfg, { host, https });
  assert.equal(
    hs.at(-1)?.handler,
    "reverse_proxy",
    `${host} (${https ? "https" : "http"}) reaches no reverse_proxy: ${JSON.stringify(hs)}`,
  );
  return hs.at(-1)!;
}
