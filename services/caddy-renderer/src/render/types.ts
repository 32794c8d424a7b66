/** Instance-local facts the renderer needs; never part of a snapshot. */
export interface RenderOptions {
  httpPort: number;
  httpsPort: number;
  /** host:port of Caddy's admin API; kept in every config so loading one never moves it. */
  adminListen: string;
  /** Host names Caddy's admin API must accept besides its listen address (see caddyAdminBlock). */
  adminOrigins?: string[];
  /** Whether this Caddy has the layer4 app (caddy-l4). */
  layer4: boolean;
}

export type Json = Record<string, unknown>;
