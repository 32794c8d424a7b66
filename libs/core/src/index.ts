export * from "./backoff.ts";
export * from "./canonical.ts";
export * from "./env.ts";
export * from "./errors.ts";
export * from "./logger.ts";
export * from "./snapshot.ts";
export * from "./validation.ts";
export * from "./resources.ts";
