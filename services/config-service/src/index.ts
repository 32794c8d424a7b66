export { createServer, type ConfigServers, type ConfigServiceDeps } from "./server.ts";
export { ConfigStore } from "./store.ts";
export { ApiTokens } from "./tokens.ts";
export { openDatabase } from "./db.ts";
export { configService } from "./service.ts";
