import { readFileSync, statSync } from "node:fs";
import { createSecureContext, type SecureContext } from "node:tls";

let shared:
  { caFile: string | undefined; stamp: string | undefined; ca: Buffer | undefined; context: SecureContext } | undefined;

/** What tells a file rewritten in place from the one read before: inode, size and modification time. */
function stampOf(file: string): string {
  const s = statSync(file, { bigint: true });
  return `${s.ino}:${s.size}:${s.mtimeNs}`;
}

/**
 * One TLS context for every link that trusts the same CA: OpenSSL's context (its certificate
 * store with the CA parsed) costs native memory and CPU to build, and a master with a thousand
 * slaves would otherwise hold a thousand identical ones and build one per connection attempt.
 * A rotated CA is used from the next connection on, without a restart: each call looks at the
 * file's inode, size and modification time, and reads it again only when one of them moved
 * (a slave that refuses connections is retried every 200 ms; that costs a stat, not a read).
 */
export function sharedSecureContext(caFile: string | undefined): SecureContext {
  const stamp = caFile ? stampOf(caFile) : undefined;
  if (shared && shared.caFile === caFile && shared.stamp === stamp) return shared.context;
  const ca = caFile ? readFileSync(caFile) : undefined;
  if (!shared || shared.caFile !== caFile || !(ca && shared.ca ? ca.equals(shared.ca) : ca === shared.ca)) {
    shared = { caFile, stamp, ca, context: createSecureContext({ ca }) };
  } else shared.stamp = stamp;
  return shared.context;
}
