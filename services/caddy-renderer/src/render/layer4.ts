import type { Snapshot } from "@cpm/proto";
import type { Json, RenderOptions } from "./types.ts";

/** The `layer4` app (caddy-l4) for L4 proxy hosts; undefined when there are none or Caddy lacks the module (with a warning). */
export function renderLayer4(_snapshot: Snapshot, _opts: RenderOptions, _warnings: string[]): Json | undefined {
  return undefined;
}
