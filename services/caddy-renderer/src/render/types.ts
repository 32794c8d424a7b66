import type { ReservedAddress } from "@cpm/core";

/** Instance-local facts the renderer needs; never part of a snapshot. */
export interface RenderOptions {
  httpPort: number;
  httpsPort: number;
  /**
   * The address ("127.0.0.1", "[::1]") the HTTP/HTTPS servers and L4 listeners written
   * without one (":5432") bind to (CPM_CADDY_BIND); unset: every interface.
   */
  bindAddress?: string;
  /** host:port of Caddy's admin API; kept in every config so loading one never moves it. */
  adminListen: string;
  /** Host names Caddy's admin API must accept besides its listen address (see caddyAdminBlock). */
  adminOrigins?: string[];
  /** Whether this Caddy has the layer4 app (caddy-l4). */
  layer4: boolean;
  /**
   * A directory Caddy can read where the renderer writes TLS files Caddy only takes as files
   * (the private ACME CA's root: render/tls.ts). Unset: such files are left out, with a warning.
   */
  tlsFilesDir?: string;
  /**
   * This instance's own addresses (Caddy admin API, CPM ports; @cpm/core reservedAddresses):
   * a proxy host or L4 host with an upstream there is left out, with a warning.
   */
  reservedUpstreams?: readonly ReservedAddress[];
  /**
   * Set when Caddy refused the whole config and accepted it without the layer4 app: the
   * reason. L4 hosts are then left out, with a warning that quotes it, so one listener Caddy
   * cannot open (a port another process holds) never stops the HTTP hosts from being served.
   */
  layer4RefusedBecause?: string;
  /**
   * A slave: master-issued managed certificates are served from the snapshot's issued
   * material (load_pem) and never ordered from a CA here. Unset: this instance obtains them.
   */
  servesMasterIssued?: boolean;
  /**
   * A slave: host:port of the master's Caddy HTTP port (CPM_MASTER_HTTP_URL). ACME HTTP-01
   * challenges for master-issued names that reach this node are proxied there.
   */
  masterHttpAddress?: string;
  /**
   * Master or standalone: a file Caddy writes its certificate manager's log lines to (JSON,
   * loggers tls.obtain and tls.renew), read back by the issuance recorder for each order's
   * state and the CA's errors. Unset: no such log.
   */
  issuanceLogFile?: string;
}

export type Json = Record<string, unknown>;
