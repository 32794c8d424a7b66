export { webConsole } from "./service.ts";
export { createConsoleServer, loadAssets, CONTENT_SECURITY_POLICY } from "./server.ts";
export { ApiForwarder } from "./bridge.ts";
export { sessionCookie, sessionToken, COOKIE } from "./session.ts";
