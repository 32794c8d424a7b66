import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { caddyEnvironment } from "./caddy-env.ts";
import { caddyAutosavePath, caddyRunArgs } from "./caddy-run.ts";

describe("caddyRunArgs: resume the last config Caddy ran, when it keeps the admin API in place", () => {
  const root = mkdtempSync(path.join(tmpdir(), "cpm-caddy-run-"));
  after(() => rmSync(root, { recursive: true, force: true }));
  const admin = { listen: "127.0.0.1:2019" };
  let n = 0;
  const caddyDir = (saved?: unknown) => {
    const dir = path.join(root, String(++n));
    if (saved !== undefined) {
      mkdirSync(path.dirname(caddyAutosavePath(dir)), { recursive: true });
      writeFileSync(caddyAutosavePath(dir), typeof saved === "string" ? saved : JSON.stringify(saved));
    }
    return dir;
  };

  it("the autosave file is where Caddy writes it under the environment the launcher gives it", () => {
    assert.equal(
      caddyAutosavePath("/d/caddy"),
      path.join(caddyEnvironment({}, "/d/caddy").XDG_CONFIG_HOME!, "caddy", "autosave.json"),
    );
  });

  it("without a saved config: the initial config only", () => {
    assert.deepEqual(caddyRunArgs(caddyDir(), "/i.json", admin), ["run", "--config", "/i.json"]);
  });

  it("with a saved config for the same admin API: --resume, the initial config as its fallback", () => {
    assert.deepEqual(caddyRunArgs(caddyDir({ admin, apps: { http: {} } }), "/i.json", admin), [
      "run",
      "--config",
      "/i.json",
      "--resume",
    ]);
    const withOrigins = { listen: "0.0.0.0:2019", origins: ["caddy:2019", "0.0.0.0:2019"] };
    assert.deepEqual(caddyRunArgs(caddyDir({ admin: withOrigins }), "/i.json", withOrigins).at(-1), "--resume");
  });

  it("a saved config with the admin API elsewhere, or unreadable, is not resumed", () => {
    for (const saved of [
      { admin: { listen: "127.0.0.1:2020" } },
      { admin: { listen: "127.0.0.1:2019", origins: ["x:2019"] } },
      {},
      "not json",
      "null",
    ]) {
      assert.deepEqual(
        caddyRunArgs(caddyDir(saved), "/i.json", admin),
        ["run", "--config", "/i.json"],
        JSON.stringify(saved),
      );
    }
  });
});
