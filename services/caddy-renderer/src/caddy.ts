import { caddyAdminRequest, canonicalJson, sha256Hex, type CaddyAdminResponse } from "@cpm/core";

/** Caddy answered but refused the config (it keeps running the previous one). */
export class CaddyRejectedError extends Error {
  constructor(
    readonly status: number,
    detail: string,
  ) {
    super(`Caddy refused the config (HTTP ${status}): ${detail}`);
    this.name = "CaddyRejectedError";
  }
}

/** Caddy's admin API could not be reached. */
export class CaddyUnreachableError extends Error {
  constructor(cause: unknown) {
    super(`Caddy admin API unreachable: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "CaddyUnreachableError";
  }
}

/** The parts of Caddy's admin API the renderer uses. */
export class CaddyAdmin {
  constructor(
    readonly baseUrl: string,
    private readonly timeoutMs = 30_000,
  ) {}

  /** POST /load. Caddy provisions the new config and swaps it in, or keeps the old one and answers 4xx/5xx. */
  async load(json: string): Promise<void> {
    let res: CaddyAdminResponse;
    try {
      res = await caddyAdminRequest(`${this.baseUrl}/load`, { method: "POST", body: json, timeoutMs: this.timeoutMs });
    } catch (e) {
      throw new CaddyUnreachableError(e);
    }
    if (res.status < 200 || res.status > 299) {
      const text = res.body.trim();
      let detail = text;
      try {
        detail = (JSON.parse(text) as { error?: string }).error ?? text;
      } catch {
        /* plain text */
      }
      throw new CaddyRejectedError(res.status, detail.slice(0, 2000));
    }
  }

  /** sha256 of the canonical form of the config Caddy runs now ("" when it runs none). */
  async currentConfigHash(): Promise<string> {
    return (await this.currentConfig()).sha256;
  }

  /** The config Caddy runs now (GET /config/) and the sha256 of its canonical form ("" when it runs none). */
  async currentConfig(): Promise<{ json: string; sha256: string }> {
    let res: CaddyAdminResponse;
    try {
      res = await caddyAdminRequest(`${this.baseUrl}/config/`, { timeoutMs: this.timeoutMs });
    } catch (e) {
      throw new CaddyUnreachableError(e);
    }
    const text = res.body;
    if (res.status !== 200) throw new CaddyUnreachableError(new Error(`GET /config/ answered ${res.status}`));
    const value = JSON.parse(text) as unknown;
    if (value === null) return { json: text, sha256: "" };
    return { json: text, sha256: sha256Hex(canonicalJson(value)) };
  }
}
