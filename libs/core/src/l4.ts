import type { L4ProxyHost } from "@cpm/proto";

/** Checks one L4 proxy host on its own and returns its normalized form. */
export function normalizeL4ProxyHost(input: L4ProxyHost, _field = "l4_proxy_host"): L4ProxyHost {
  return input;
}
