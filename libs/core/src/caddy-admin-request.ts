import http from "node:http";

export interface CaddyAdminResponse {
  status: number;
  body: string;
}

/**
 * One request to Caddy's admin API (`url` is http://host:port/path), over node:http.
 * Not `fetch`: it always sends `Sec-Fetch-Mode`, on which current Caddy enforces its
 * cross-origin check and, without an Origin header, answers 403 "client is not allowed to
 * access from origin ''". Rejects when Caddy cannot be reached or does not answer in time.
 */
export function caddyAdminRequest(
  url: string,
  opts: { method?: string; body?: string; timeoutMs?: number } = {},
): Promise<CaddyAdminResponse> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders =
      opts.body === undefined
        ? {}
        : { "content-type": "application/json", "content-length": Buffer.byteLength(opts.body) };
    const req = http.request(url, { method: opts.method ?? "GET", headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") });
      });
      res.on("error", reject);
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end(opts.body);
  });
}
