import type { ProxyHost, Settings } from "@cpm/proto";
import { DEFAULT_HSTS_MAX_AGE_SECONDS } from "@cpm/core";
import type { Json } from "./types.ts";

/*
 * What the synced settings change in the HTTP config. Settings absent from a snapshot (an
 * instance that never wrote them) mean every default, which renders exactly as before
 * settings existed: HSTS max-age one year, Caddy's own upstream timeouts.
 */

/** Strict-Transport-Security value of a host with hsts_enabled. */
export function hstsValue(h: Pick<ProxyHost, "hstsSubdomains">, settings: Settings | undefined): string {
  const maxAge = settings?.http?.hstsMaxAgeSeconds ?? DEFAULT_HSTS_MAX_AGE_SECONDS;
  return `max-age=${maxAge}${h.hstsSubdomains ? "; includeSubDomains" : ""}`;
}

/**
 * Timeouts of reverse_proxy's http transport (durations as Caddy reads them, e.g. "5s");
 * undefined when both are 0, so Caddy's defaults apply and no transport is forced.
 */
export function transportTimeouts(settings: Settings | undefined): Json | undefined {
  const dial = settings?.http?.upstreamDialTimeoutSeconds ?? 0;
  const header = settings?.http?.upstreamResponseHeaderTimeoutSeconds ?? 0;
  const t: Json = {};
  if (dial > 0) t.dial_timeout = `${dial}s`;
  if (header > 0) t.response_header_timeout = `${header}s`;
  return Object.keys(t).length > 0 ? t : undefined;
}
