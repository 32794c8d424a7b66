import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { builtCaddyPath, builtCaddyRelPath, findBuiltCaddy, parseCaddyPins } from "./caddy-build.ts";

describe("the project's Caddy build pins", () => {
  const root = mkdtempSync(path.join(tmpdir(), "cpm-caddy-pins-"));
  after(() => rmSync(root, { recursive: true, force: true }));

  test("parses KEY=VALUE lines, ignoring comments", () => {
    const pins = parseCaddyPins(
      "# pinned\nCADDY_VERSION=v2.11.9\n\nCADDY_L4_VERSION=v0.1.2\r\nXCADDY_VERSION=v0.4.5\n",
    );
    assert.deepEqual(pins, { caddy: "v2.11.9", caddyL4: "v0.1.2", xcaddy: "v0.4.5" });
    assert.equal(builtCaddyRelPath(pins), path.join(".cache", "caddy", "v2.11.9-v0.1.2-v0.4.5", "caddy"));
  });

  test("a missing pin is named", () => {
    assert.throws(
      () => parseCaddyPins("CADDY_VERSION=v2.11.9\nXCADDY_VERSION=v0.4.5\n"),
      /CADDY_L4_VERSION is not set/,
    );
  });

  test("this repository pins all three versions", () => {
    const bin = builtCaddyPath();
    assert.ok(bin, "scripts/caddy-versions.env is readable");
    assert.match(bin, /\.cache\/caddy\/v2\.\d+\.\d+-v\d+\.\d+\.\d+-v\d+\.\d+\.\d+\/caddy$/);
  });

  test("the built binary is found only once it exists and is executable", () => {
    assert.equal(builtCaddyPath(path.join(root, "nothing")), undefined, "no pins file: no built Caddy");
    mkdirSync(path.join(root, "scripts"));
    writeFileSync(
      path.join(root, "scripts", "caddy-versions.env"),
      "CADDY_VERSION=v2.0.0\nCADDY_L4_VERSION=v0.0.1\nXCADDY_VERSION=v0.1.0\n",
    );
    const bin = path.join(root, ".cache", "caddy", "v2.0.0-v0.0.1-v0.1.0", "caddy");
    assert.equal(builtCaddyPath(root), bin);
    assert.equal(findBuiltCaddy(root), undefined);
    mkdirSync(path.dirname(bin), { recursive: true });
    writeFileSync(bin, "#!/bin/sh\n");
    assert.equal(findBuiltCaddy(root), undefined, "not executable");
    chmodSync(bin, 0o755);
    assert.equal(findBuiltCaddy(root), bin);
  });
});
