import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { createLogger } from "@cpm/core";
import { sharedTokenAuthenticator } from "./auth.ts";
import { HTTP2_DEFAULT_WINDOW_BYTES, MAX_RECEIVE_WINDOW_BYTES, receiveWindowBytes } from "./receive-window.ts";
import { GrpcServer } from "./server.ts";

const MiB = 1024 * 1024;

describe("receiveWindowBytes", () => {
  const cases: [string, number, number][] = [
    ["a tiny limit keeps HTTP/2's default", 1024, HTTP2_DEFAULT_WINDOW_BYTES],
    ["room for one whole message", 4 * MiB, 4 * MiB],
    ["at most the cap", 64 * MiB, MAX_RECEIVE_WINDOW_BYTES],
  ];
  for (const [name, limit, want] of cases) it(name, () => assert.equal(receiveWindowBytes(limit), want));
});

describe("a server's HTTP/2 receive window, as a client sees it", () => {
  let server: GrpcServer;
  let port: number;
  before(async () => {
    server = new GrpcServer({
      log: createLogger("test", "silent"),
      authenticate: sharedTokenAuthenticator("t".repeat(32), { kind: "sync_master", name: "m", role: "admin" }, "t"),
      maxReceiveBytes: 4 * MiB,
    });
    port = await server.listen("127.0.0.1:0");
  });
  after(() => server.shutdown(1000));

  it("lets a client send a whole message of the server's limit without waiting for a window update", async () => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const deadline = Date.now() + 5000;
      // The stream window comes in the server's SETTINGS, the connection's in a WINDOW_UPDATE.
      while (!(
        session.remoteSettings?.initialWindowSize === 4 * MiB && (session.state.remoteWindowSize ?? 0) >= 4 * MiB
      )) {
        if (Date.now() > deadline)
          assert.fail(
            `window: stream ${session.remoteSettings?.initialWindowSize}, connection ${session.state.remoteWindowSize}; want ${4 * MiB} each`,
          );
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      session.close();
    }
  });
});
