export * from "./auth.ts";
export * from "./client.ts";
export * from "./errors.ts";
export * from "./server.ts";
export * from "./clients.ts";
export * from "./remote-auth.ts";
export * from "./policy.ts";
export * from "./interceptor.ts";
