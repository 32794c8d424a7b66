import type { ServiceDefinition } from "@grpc/grpc-js";
import { permissionDenied, type Principal } from "./auth.ts";

/**
 * Who may call a method:
 * - `public`: anyone, without a token;
 * - `viewer`: any API token of this instance (a viewer's or an admin's);
 * - `admin`: an API token whose effective role is admin;
 * - `internal`: another service of this instance (CPM_INTERNAL_TOKEN);
 * - `sync_master`: the master, presenting this slave's INSTANCE_SYNC_TOKEN.
 */
export type Caller = "public" | "viewer" | "admin" | "internal" | "sync_master";

/** The callers allowed to call one method (any of them). */
export type MethodPolicy = readonly Caller[];

/** One service's access table: every method (named as in the .proto) and who may call it. */
export interface ServicePolicy {
  /** Full service name, e.g. `cpm.config.v1.ConfigService`. */
  readonly service: string;
  readonly methods: Readonly<Record<string, MethodPolicy>>;
}

/** Declares a service's access table (frozen). */
export function definePolicy(service: string, methods: Record<string, MethodPolicy>): ServicePolicy {
  return Object.freeze({ service, methods: Object.freeze({ ...methods }) });
}

/** The method name at the end of a gRPC path (`/pkg.Service/Method` -> `Method`). */
export const methodName = (path: string): string => path.slice(path.lastIndexOf("/") + 1);

/** Whether `p` is one of the callers `policy` lets in. */
export function allows(policy: MethodPolicy, p: Principal): boolean {
  return policy.some((c) => {
    switch (c) {
      case "public":
        return true;
      case "viewer":
        return p.kind === "api_token";
      case "admin":
        return p.kind === "api_token" && p.role === "admin";
      case "internal":
        return p.kind === "internal";
      case "sync_master":
        return p.kind === "sync_master";
    }
  });
}

/** Throws PERMISSION_DENIED, saying who may call `path`, unless `policy` lets `p` in. */
export function authorize(path: string, policy: MethodPolicy, p: Principal): void {
  if (allows(policy, p)) return;
  const method = methodName(path);
  if (p.kind === "api_token" && policy.includes("admin"))
    throw permissionDenied(`${method} needs an admin token (this token may only read)`);
  if (p.kind === "internal")
    throw permissionDenied(
      `${method} is not an internal method: the internal token is only for the services of an instance`,
    );
  if (policy.length === 1 && policy[0] === "internal") throw permissionDenied(`${method} is internal to an instance`);
  throw permissionDenied(`${method} may only be called with ${policy.map(describe).join(" or ")}`);
}

const describe = (c: Caller): string =>
  ({
    public: "no token",
    viewer: "an API token",
    admin: "an admin API token",
    internal: "the internal token",
    sync_master: "the sync token",
  })[c];

/**
 * Where `policy` and `definition` disagree: methods without an entry (they would be
 * refused) and entries that name no method (a typo would leave the real one refused).
 */
export function policyGaps(
  definition: ServiceDefinition,
  policy: ServicePolicy,
): { missing: string[]; unknown: string[] } {
  const methods = Object.values(definition).map((d) => methodName(d.path));
  const services = new Set(Object.values(definition).map((d) => d.path.slice(1, d.path.lastIndexOf("/"))));
  const missing = methods.filter((m) => !Object.hasOwn(policy.methods, m));
  const unknown = Object.keys(policy.methods).filter((m) => !methods.includes(m));
  if (services.size !== 1 || !services.has(policy.service))
    unknown.push(`service ${policy.service} (definition: ${[...services].join(", ")})`);
  return { missing, unknown };
}

/** Throws at start-up when a table does not cover its service exactly. */
export function assertPolicyCovers(definition: ServiceDefinition, policy: ServicePolicy): void {
  const { missing, unknown } = policyGaps(definition, policy);
  if (missing.length || unknown.length) {
    throw new Error(
      `access policy of ${policy.service}: ${[missing.length ? `no entry for ${missing.join(", ")}` : "", unknown.length ? `unknown ${unknown.join(", ")}` : ""].filter(Boolean).join("; ")}`,
    );
  }
}
