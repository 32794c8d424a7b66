import type { Snapshot } from "@cpm/proto";
import type { Json, RenderOptions } from "./types.ts";

/**
 * The `tls` app: imported certificates (load_pem) and managed ones (automation policies
 * with the ACME issuer from settings, or Caddy's internal issuer). Undefined when nothing
 * needs it.
 */
export function renderTls(_snapshot: Snapshot, _opts: RenderOptions, _warnings: string[]): Json | undefined {
  return undefined;
}
