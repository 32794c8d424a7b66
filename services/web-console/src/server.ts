import { readFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import path from "node:path";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "@cpm/core";
import { consoleRoutes, type ApiForwarder } from "./bridge.ts";
import { Sessions } from "./session.ts";

/**
 * What the console's pages may load: their own script and style, nothing from elsewhere, no
 * inline code, no frames; the browser talks only to this origin.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
};

/** The built single-page app (dist/app): its files, read once at start. */
const ASSETS: Record<string, string> = {
  "/app.js": "text/javascript; charset=utf-8",
  "/app.css": "text/css; charset=utf-8",
  "/index.html": "text/html; charset=utf-8",
};

export function loadAssets(dir: string): Map<string, { type: string; body: Buffer }> {
  const out = new Map<string, { type: string; body: Buffer }>();
  for (const [file, type] of Object.entries(ASSETS)) {
    try {
      out.set(file, { type, body: readFileSync(path.join(dir, file)) });
    } catch {
      throw new Error(`${path.join(dir, file)} is missing: run \`npm run build\` first`);
    }
  }
  return out;
}

export interface ConsoleServerDeps {
  config: ApiForwarder;
  /** The master's dispatcher API; undefined on other modes. */
  dispatcher: ApiForwarder | undefined;
  assets: Map<string, { type: string; body: Buffer }>;
  log: Logger;
}

/**
 * A request that changes something must come from the console's own pages: the session
 * cookie is SameSite=Strict already, and a browser's Origin, when sent, must be this host.
 */
function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/** The console's HTTP server: the app's files, /session, and the Connect API under /api. Does not listen. */
export function createConsoleServer(deps: ConsoleServerDeps): http.Server {
  const sessions = new Sessions(deps.config, deps.log);
  const api = connectNodeAdapter({
    routes: consoleRoutes(deps.config, deps.dispatcher),
    requestPathPrefix: "/api",
    // The browser speaks Connect; gRPC-Web is served too, for tools.
    grpc: false,
  });
  const serveAsset = (res: ServerResponse, file: string) => {
    const a = deps.assets.get(file)!;
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": a.type,
      "content-length": String(a.body.length),
      "cache-control": "no-cache",
    });
    res.end(a.body);
  };
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://console");
    const p = url.pathname;
    if (req.method !== "GET" && req.method !== "HEAD" && !sameOrigin(req)) {
      res.writeHead(403, SECURITY_HEADERS).end("cross-origin request refused");
      return;
    }
    if (p.startsWith("/api/")) {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
      res.setHeader("cache-control", "no-store");
      api(req, res);
      return;
    }
    if (p === "/session") {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
      void sessions.handle(req, res);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { ...SECURITY_HEADERS, allow: "GET" }).end();
      return;
    }
    if (deps.assets.has(p) && p !== "/index.html") return serveAsset(res, p);
    // Every other path is a page of the app.
    if (/^\/[a-z0-9/-]*$/.test(p)) return serveAsset(res, "/index.html");
    res.writeHead(404, SECURITY_HEADERS).end("not found");
  });
}
