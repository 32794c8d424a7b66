export { render, type RenderOptions, type Rendered } from "./render/index.ts";
export { createServer } from "./server.ts";
export { caddyRenderer } from "./service.ts";
