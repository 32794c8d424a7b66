import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Service } from "@cpm/core";
import { initTracing } from "@cpm/grpc-kit";
import { ApiForwarder } from "./bridge.ts";
import { createConsoleServer, loadAssets } from "./server.ts";

/** The built app: dist/app beside the compiled server (src/ under tsx reads the same folder). */
const APP_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist/app");

/**
 * The web console: serves the built app at CPM_CONSOLE_LISTEN and forwards the browser's
 * calls (Connect protocol) to this instance's public gRPC API (CPM_API_ADDR) and, on a
 * master, to the dispatcher (CPM_DISPATCHER_ADDR), each with the caller's session token:
 * the API's own authentication and roles decide every call, in one process or split.
 */
export const webConsole: Service = {
  name: "web-console",
  async start({ config: cfg, log }) {
    const tracing = await initTracing("web-console", { "cpm.instance.mode": cfg.mode });
    const assets = loadAssets(APP_DIR);
    const config = new ApiForwarder(cfg.apiAddr);
    const dispatcher = cfg.mode === "master" ? new ApiForwarder(cfg.dispatcherAddr) : undefined;
    const server = createConsoleServer({ config, dispatcher, assets, log });
    const [host, port] = splitHostPort(cfg.consoleListen);
    const busy = await new Promise<boolean>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) => {
        // Several nodes on one host (a master and a slave side by side, say) would otherwise fight
        // over the default port: the first has the console, the others run without one and say
        // so. An address the operator chose must be bound, or the node does not start.
        if (err.code === "EADDRINUSE" && cfg.consoleListenIsDefault) resolve(true);
        else reject(new Error(`cannot listen on ${cfg.consoleListen} (CPM_CONSOLE_LISTEN): ${err.message}`));
      });
      server.listen(port, host, () => resolve(false));
    });
    if (busy) {
      log.warn(
        { listen: cfg.consoleListen },
        "the console's default address is in use (another node on this host?): running without the console; set CPM_CONSOLE_LISTEN to serve it",
      );
      config.close();
      dispatcher?.close();
      return { stop: () => tracing.shutdown() };
    }
    const address = server.address();
    const bound = typeof address === "object" && address ? address.port : port;
    log.info(
      { listen: cfg.consoleListen, port: bound, api: cfg.apiAddr, dispatcher: dispatcher?.address },
      "web-console ready",
    );
    return {
      async stop() {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        config.close();
        dispatcher?.close();
        await tracing.shutdown();
      },
    };
  },
};

function splitHostPort(listen: string): [string, number] {
  const i = listen.lastIndexOf(":");
  return [listen.slice(0, i).replace(/^\[(.*)\]$/, "$1"), Number(listen.slice(i + 1))];
}
