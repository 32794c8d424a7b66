export * from "./backoff.ts";
export * from "./caddy-admin-request.ts";
export * from "./caddy-build.ts";
export * from "./canonical.ts";
export * from "./env.ts";
export * from "./errors.ts";
export * from "./lifecycle.ts";
export * from "./modules.ts";
export * from "./logger.ts";
export * from "./reserved.ts";
export * from "./snapshot.ts";
export * from "./text.ts";
export * from "./validation.ts";
// Per-resource checks, used by the API and by snapshot validation alike.
export * from "./access-lists.ts";
export * from "./certificates.ts";
export * from "./l4.ts";
export * from "./settings.ts";
