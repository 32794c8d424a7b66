import {
  Metadata,
  ServerInterceptingCall,
  status,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
} from "@grpc/grpc-js";
import type { Logger } from "@cpm/core";
import { ANONYMOUS, permissionDenied, type Authenticate, type Principal } from "./auth.ts";
import { toServiceError } from "./errors.ts";
import { authorize, methodName, type MethodPolicy } from "./policy.ts";

/** The principal the interceptor admitted, keyed by the metadata object handed to the handler. */
const principals = new WeakMap<Metadata, Principal>();

/** The principal admitted for a call's metadata, or undefined when the interceptor did not run. */
export function principalOf(metadata: Metadata): Principal | undefined {
  return principals.get(metadata);
}

export interface AccessInterceptorOptions {
  /** Access table of this server, by full path (`/pkg.Service/Method`). A path not in it is refused. */
  policies: ReadonlyMap<string, MethodPolicy>;
  authenticate: Authenticate;
  log: Logger;
  /** The variable that sets this listener's receive limit, named in the status of a larger message. */
  limitVariable?: string;
}

/**
 * Authenticates and authorizes every call on its metadata, before any request message is
 * read: grpc-js keeps the request stream paused until the handler starts reading, and the
 * handler starts only when this interceptor passes the metadata on.
 */
export function accessInterceptor(opts: AccessInterceptorOptions): ServerInterceptor {
  return (descriptor, call) => {
    if (opts.limitVariable) nameLimitInStatus(call, opts.limitVariable);
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            admit(descriptor.path, metadata, opts).then(
              (principal) => {
                principals.set(metadata, principal);
                pass(metadata);
              },
              (err) => {
                const s = toServiceError(err, opts.log.child({ method: descriptor.path.slice(1) }));
                call.sendStatus({
                  code: s.code ?? status.INTERNAL,
                  details: s.details ?? "internal error",
                  metadata: new Metadata(),
                });
              },
            );
          },
        }),
    });
  };
}

async function admit(path: string, metadata: Metadata, opts: AccessInterceptorOptions): Promise<Principal> {
  const policy = opts.policies.get(path);
  // Fail closed: a method nobody declared is served to nobody.
  if (!policy) throw permissionDenied(`${methodName(path)} has no access policy on this server`);
  if (policy.includes("public")) return ANONYMOUS;
  const principal = await opts.authenticate(metadata);
  authorize(path, policy, principal);
  return principal;
}

/**
 * grpc-js refuses an oversized message from its frame header (before buffering it) with
 * "Received message larger than max (X vs Y)", sent from the innermost call, below every
 * interceptor's responder. The status is rewritten there so the client learns which
 * setting to raise.
 */
function nameLimitInStatus(call: ServerInterceptingCallInterface, variable: string): void {
  const send = call.sendStatus.bind(call);
  call.sendStatus = (s) =>
    send(
      s.code === status.RESOURCE_EXHAUSTED && s.details ? { ...s, details: oversizeDetails(s.details, variable) } : s,
    );
}

/** grpc-js's text for a received message over the limit, rewritten to name `variable`; other texts unchanged. */
export function oversizeDetails(details: string, variable: string): string {
  const larger = /^Received message larger than max \((\d+) vs\.? (\d+)\)/.exec(details);
  if (larger) return `request message of ${larger[1]} bytes is over the limit of ${larger[2]} bytes (${variable})`;
  const inflated = /^Received message that decompresses to a size larger than (\d+)/.exec(details);
  if (inflated) return `request message decompresses to more than the limit of ${inflated[1]} bytes (${variable})`;
  return details;
}
