import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nodeServiceArgs, nodeServiceEnv } from "./node-runtime.ts";

describe("how a Node service is run", () => {
  it("caps glibc's arenas unless the operator chose a number", () => {
    assert.equal(nodeServiceEnv({ PATH: "/bin" }).MALLOC_ARENA_MAX, "2");
    assert.equal(nodeServiceEnv({ MALLOC_ARENA_MAX: "8" }).MALLOC_ARENA_MAX, "8");
    assert.equal(nodeServiceEnv({ PATH: "/bin" }).PATH, "/bin");
  });

  it("caps V8's young generation unless NODE_OPTIONS sets it, runs WebAssembly on Liftoff only; the entry comes last", () => {
    assert.deepEqual(nodeServiceArgs("/app/main.js", {}), [
      "--liftoff-only",
      "--max-semi-space-size=2",
      "/app/main.js",
    ]);
    assert.deepEqual(
      nodeServiceArgs("/app/main.js", { NODE_OPTIONS: "--max-semi-space-size=16 --enable-source-maps" }),
      ["--liftoff-only", "/app/main.js"],
    );
  });
});
