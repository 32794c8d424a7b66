import { readFileSync } from "node:fs";
import { createSecureContext, type SecureContext } from "node:tls";

let shared: { caFile: string | undefined; ca: Buffer | undefined; context: SecureContext } | undefined;

/**
 * One TLS context for every link that trusts the same CA: OpenSSL's context (its certificate
 * store with the CA parsed) costs native memory and CPU to build, and a master with a thousand
 * slaves would otherwise hold a thousand identical ones and build one per connection attempt.
 * The CA file is read again on every call, so a rotated CA is used from the next connection on,
 * as before, without a restart.
 */
export function sharedSecureContext(caFile: string | undefined): SecureContext {
  const ca = caFile ? readFileSync(caFile) : undefined;
  if (!shared || shared.caFile !== caFile || !(ca && shared.ca ? ca.equals(shared.ca) : ca === shared.ca)) {
    shared = { caFile, ca, context: createSecureContext({ ca }) };
  }
  return shared.context;
}
