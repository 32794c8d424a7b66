import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { InstanceMode } from "./env.ts";
import { MODULE_NAMES, MODULES, parseTarget, remoteCallers, startOrder, type ModuleName } from "./modules.ts";

describe("parseTarget", () => {
  const cases: [string, InstanceMode, string[] | RegExp][] = [
    ["all", "standalone", ["caddy", "config-service", "caddy-renderer", "web-console"]],
    ["all", "master", ["caddy", "config-service", "caddy-renderer", "sync-dispatcher", "web-console"]],
    ["all", "slave", ["caddy", "config-service", "caddy-renderer", "sync-receiver", "web-console"]],
    [" all ", "slave", ["caddy", "config-service", "caddy-renderer", "sync-receiver", "web-console"]],
    ["config-service", "master", ["config-service"]],
    ["sync-dispatcher, config-service", "master", ["config-service", "sync-dispatcher"]],
    ["caddy-renderer,caddy", "standalone", ["caddy", "caddy-renderer"]],
    [
      "sync-receiver,caddy-renderer,config-service,caddy",
      "slave",
      ["caddy", "config-service", "caddy-renderer", "sync-receiver"],
    ],
    ["sync-dispatcher", "slave", /"sync-dispatcher" runs only with INSTANCE_MODE=master, not slave/],
    ["sync-receiver", "standalone", /"sync-receiver" runs only with INSTANCE_MODE=slave, not standalone/],
    ["renderer", "standalone", /"renderer" is not a module; the modules are caddy, config-service/],
    ["config-service,,caddy", "standalone", /entry 2 is empty/],
    ["", "standalone", /entry 1 is empty/],
    ["caddy,caddy", "standalone", /"caddy" is named twice/],
    ["ALL", "standalone", /"ALL" is not a module/],
  ];
  for (const [value, mode, want] of cases) {
    it(`${JSON.stringify(value)} in ${mode}`, () => {
      const got = parseTarget(value, mode);
      if (Array.isArray(want)) assert.deepEqual(got, { modules: want });
      else {
        assert.ok("error" in got, `refused: ${JSON.stringify(got)}`);
        assert.match(got.error, want);
      }
    });
  }
});

describe("the module declarations", () => {
  it("start every module after the modules it depends on", () => {
    const order = startOrder([...MODULE_NAMES].reverse());
    for (const name of MODULE_NAMES)
      for (const dep of MODULES[name].dependsOn)
        assert.ok(order.indexOf(dep) < order.indexOf(name), `${dep} before ${name}`);
  });

  it("only depend on modules that run in each of their modes", () => {
    for (const name of MODULE_NAMES)
      for (const mode of MODULES[name].modes)
        for (const dep of MODULES[name].dependsOn)
          assert.ok(MODULES[dep].modes.includes(mode), `${name} (${mode}) depends on ${dep}`);
  });
});

describe("remoteCallers", () => {
  const cases: [string, InstanceMode, string[], string[]][] = [
    ["config-service", "master", ["caddy", "config-service", "caddy-renderer", "sync-dispatcher"], []],
    ["config-service", "slave", ["caddy", "config-service", "caddy-renderer", "sync-receiver"], []],
    ["config-service", "standalone", ["caddy", "config-service"], ["caddy-renderer"]],
    ["config-service", "master", ["config-service", "caddy-renderer"], ["sync-dispatcher"]],
    ["caddy-renderer", "slave", ["caddy-renderer"], ["sync-receiver"]],
    ["caddy-renderer", "standalone", ["caddy-renderer"], []],
    ["sync-receiver", "slave", ["sync-receiver"], []],
  ];
  for (const [module, mode, target, want] of cases)
    it(`${module} in ${mode} with ${target.join(",")}: ${want.join(",") || "none"}`, () => {
      assert.deepEqual(remoteCallers(module as ModuleName, target as ModuleName[], mode), want);
    });
});
