import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CaddyRendererService } from "@cpm/proto";
import { createLogger } from "@cpm/core";
import { INTERNAL, policyGaps, sharedTokenAuthenticator, status, type GrpcServer } from "@cpm/grpc-kit";
import { rawGrpcCall } from "@cpm/grpc-kit/testing";
import type { Reconciler } from "./reconciler.ts";
import { createServer, RENDERER_POLICY } from "./server.ts";

const TOKEN = "renderer-test-internal-token-0123";

describe("caddy-renderer access", () => {
  let server: GrpcServer;
  let address: string;
  before(async () => {
    // No call here reaches a handler: the reconciler is never used.
    server = createServer({
      reconciler: {} as Reconciler,
      renderOptions: {
        httpPort: 80,
        httpsPort: 443,
        adminListen: "127.0.0.1:2019",
        layer4: false,
        tlsFilesDir: "/nonexistent",
      },
      authenticate: sharedTokenAuthenticator(TOKEN, INTERNAL, "internal token"),
      log: createLogger("test", "silent"),
      syncMaxMessageBytes: 64 * 1024,
    });
    address = `127.0.0.1:${await server.listen("127.0.0.1:0")}`;
  });
  after(() => server.shutdown(1000));

  it("every CaddyRenderer method has exactly one entry", () =>
    assert.deepEqual(policyGaps(CaddyRendererService, RENDERER_POLICY), { missing: [], unknown: [] }));

  it("an anonymous 70 MB Render gets UNAUTHENTICATED while its body is still incomplete", async () => {
    const r = await rawGrpcCall(address, "/cpm.render.v1.CaddyRenderer/Render", {
      announcedBytes: 70 * 1024 * 1024,
      sentBytes: 32 * 1024,
    });
    assert.equal(r.code, status.UNAUTHENTICATED, r.details);
    assert.equal(r.requestEnded, false);
  });

  it("the internal token cannot dry-run renders (a public method) and an oversized LoadSnapshot names CPM_SYNC_MAX_MESSAGE_BYTES", async () => {
    const render = await rawGrpcCall(address, "/cpm.render.v1.CaddyRenderer/Render", {
      token: TOKEN,
      announcedBytes: 70 * 1024 * 1024,
      sentBytes: 1024,
    });
    assert.equal(render.code, status.PERMISSION_DENIED, render.details);
    const load = await rawGrpcCall(address, "/cpm.render.v1.CaddyRenderer/LoadSnapshot", {
      token: TOKEN,
      announcedBytes: 70 * 1024 * 1024,
      sentBytes: 1024,
    });
    assert.equal(load.code, status.RESOURCE_EXHAUSTED, load.details);
    assert.equal(
      load.details,
      `request message of ${70 * 1024 * 1024} bytes is over the limit of ${64 * 1024 + 1024 * 1024} bytes (CPM_SYNC_MAX_MESSAGE_BYTES)`,
    );
  });
});
