export { Dispatcher } from "./dispatcher.ts";
export { createServer } from "./server.ts";
