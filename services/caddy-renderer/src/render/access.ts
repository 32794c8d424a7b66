import { AccessListSatisfy, type AccessList } from "@cpm/proto";
import type { Json } from "./types.ts";

/*
 * What an access list means for a request (A = allow list, D = deny list, U = users),
 * with "the address" being the TCP peer address Caddy sees (remote_ip):
 *
 * 1. Deny always wins: an address in D gets 403, whatever its credentials.
 * 2. Only addresses (U empty): `satisfy` does not matter. With A non-empty an address
 *    outside A gets 403; with A empty (a deny-only list) every address not in D passes.
 * 3. Only users (A and D empty): `satisfy` does not matter; every request needs valid
 *    credentials (401 with a basic-auth challenge otherwise).
 * 4. Users and addresses:
 *    - ANY: an address in A passes without credentials; any other address (not in D) must
 *      give valid credentials (401 otherwise). An empty A admits nobody by address, so with
 *      users and only a deny list everyone not denied must authenticate (otherwise the users
 *      would never be asked for).
 *    - ALL: the address must pass the address rules (in A when A is non-empty; not in D)
 *      AND the credentials must be valid. An address outside a non-empty A gets 403 at once
 *      (credentials could not help); an allowed address gets the 401 challenge.
 * 5. An access list with no users and no addresses gates nothing.
 *
 * With users, the client's Authorization header is removed before proxying unless
 * `pass_auth` is set (the credentials are for the proxy, not the upstream).
 *
 * Rendering: one `subroute` handler placed before reverse_proxy. Its routes run in order; a
 * `static_response` ends the request, `authentication` answers 401 or goes on. In Caddy 2.6
 * `http_basic` accounts carry the bcrypt hash base64-encoded in `password`; `hash_cache`
 * keeps Caddy from running bcrypt on every request of an authenticated client.
 */

const FORBIDDEN: Json = { handler: "static_response", status_code: 403, body: "Access denied.\n" };

const sorted = (xs: string[]) => [...new Set(xs)].sort();
const remoteIp = (ranges: string[]): Json => ({ remote_ip: { ranges: sorted(ranges) } });

/** Handlers that gate a proxy host with its access list (placed before reverse_proxy). */
export function accessListHandlers(acl: AccessList | undefined): Json[] {
  if (!acl) return [];
  const allow = acl.allow;
  const deny = acl.deny;
  const users = acl.users.filter((u) => u.username && u.passwordHash);
  if (allow.length === 0 && deny.length === 0 && users.length === 0) return [];
  const all = acl.satisfy === AccessListSatisfy.ACCESS_LIST_SATISFY_ALL;

  const routes: Json[] = [];
  if (deny.length > 0) routes.push({ match: [remoteIp(deny)], handle: [FORBIDDEN] });
  const outsideAllow = allow.length > 0 ? [{ not: [remoteIp(allow)] }] : undefined;
  if (users.length === 0) {
    if (outsideAllow) routes.push({ match: outsideAllow, handle: [FORBIDDEN] });
  } else if (all) {
    if (outsideAllow) routes.push({ match: outsideAllow, handle: [FORBIDDEN] });
    routes.push({ handle: [basicAuth(acl)] });
  } else {
    routes.push(outsideAllow ? { match: outsideAllow, handle: [basicAuth(acl)] } : { handle: [basicAuth(acl)] });
  }
  if (users.length > 0 && !acl.passAuth) {
    routes.push({ handle: [{ handler: "headers", request: { delete: ["Authorization"] } }] });
  }
  return [{ handler: "subroute", routes }];
}

function basicAuth(acl: AccessList): Json {
  const accounts = acl.users
    .filter((u) => u.username && u.passwordHash)
    .map((u) => ({ username: u.username, password: Buffer.from(u.passwordHash, "utf8").toString("base64") }))
    .sort((a, b) => (a.username < b.username ? -1 : a.username > b.username ? 1 : 0));
  return {
    handler: "authentication",
    providers: { http_basic: { accounts, hash: { algorithm: "bcrypt" }, hash_cache: {} } },
  };
}
