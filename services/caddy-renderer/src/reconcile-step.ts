/** A configuration state: version and content hash. */
export interface VersionedContent {
  version: number;
  contentSha256: string;
}

/** What the reconciler knows when it decides what to load into Caddy. */
export interface ReconcileView {
  /** The configuration service's newest committed state. */
  desired: VersionedContent;
  /** What was last loaded into Caddy (committed or preloaded). */
  applied: VersionedContent | undefined;
  /** Caddy runs the applied config (as of the last check or load). */
  caddyMatches: boolean;
  /** Content Caddy refused, not retried until the content changes. */
  rejectedContentSha256: string | undefined;
  /** A preloaded, not yet committed snapshot that Caddy must keep running (slave). */
  hold: VersionedContent | undefined;
}

/**
 * - `none`: Caddy already runs the desired state (or refused it);
 * - `bump-version`: Caddy runs the desired content under another version (a preload now committed);
 * - `keep-held`: a preload is held: nothing else is loaded, so Caddy never moves back to the
 *   database's older version between preload and commit;
 * - `reload-held`: as `keep-held`, but Caddy lost the held config (restart, drift): load it again;
 * - `load-desired`: fetch the database's snapshot and load it.
 */
export type ReconcileStep = "none" | "bump-version" | "keep-held" | "reload-held" | "load-desired";

/** What one reconcile does, from the reconciler's state alone. */
export function reconcileStep(v: ReconcileView): ReconcileStep {
  if (v.hold && v.hold.contentSha256 !== v.desired.contentSha256) {
    return !v.caddyMatches && v.applied?.contentSha256 === v.hold.contentSha256 ? "reload-held" : "keep-held";
  }
  if (v.rejectedContentSha256 === v.desired.contentSha256 && v.caddyMatches) return "none";
  const a = v.applied;
  if (a && a.contentSha256 === v.desired.contentSha256 && v.caddyMatches)
    return a.version === v.desired.version ? "none" : "bump-version";
  return "load-desired";
}
