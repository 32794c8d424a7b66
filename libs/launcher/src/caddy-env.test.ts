import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { caddyEnvironment } from "./caddy-env.ts";

describe("caddyEnvironment: Caddy gets PATH, HOME and its XDG dirs, nothing else", () => {
  const parent: NodeJS.ProcessEnv = {
    PATH: "/usr/local/bin:/usr/bin",
    HOME: "/home/cpm",
    CPM_INTERNAL_TOKEN: "internal-secret-token",
    CPM_ADMIN_TOKEN: "admin-secret-token-0123",
    INSTANCE_SYNC_TOKEN: "sync-secret-token-0123",
    INSTANCE_SLAVES: '[{"name":"s","url":"https://s:50443","token":"slave-secret-token"}]',
    DATABASE_URL: "postgresql://cpm:pw@db/cpm",
    AWS_SECRET_ACCESS_KEY: "aws",
    XDG_DATA_HOME: "/home/cpm/.local/share",
  };

  it("holds exactly PATH, HOME, XDG_DATA_HOME and XDG_CONFIG_HOME", () => {
    const env = caddyEnvironment(parent, "/var/lib/cpm/caddy");
    assert.deepEqual(env, {
      PATH: "/usr/local/bin:/usr/bin",
      HOME: "/home/cpm",
      XDG_DATA_HOME: path.join("/var/lib/cpm/caddy", "data"),
      XDG_CONFIG_HOME: path.join("/var/lib/cpm/caddy", "config"),
    });
  });

  it("never passes a secret or an instance variable on", () => {
    const env = caddyEnvironment(parent, "/d/caddy");
    for (const name of Object.keys(env)) assert.doesNotMatch(name, /^(CPM_|INSTANCE_|DATABASE_URL|AWS_)/);
    const values = Object.values(env).join("\n");
    for (const secret of [
      "internal-secret-token",
      "admin-secret-token",
      "sync-secret-token",
      "slave-secret-token",
      "pw@db",
    ])
      assert.ok(!values.includes(secret), `${secret} leaked`);
  });

  it("without HOME, points HOME at Caddy's own directory", () => {
    const env = caddyEnvironment({ PATH: "/bin" }, "/d/caddy");
    assert.equal(env.HOME, "/d/caddy");
    assert.equal(env.PATH, "/bin");
  });
});
