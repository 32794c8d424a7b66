/**
 * The systemd unit in docs/operations.md ("Under systemd") is one systemd accepts
 * (`systemd-analyze verify`, when installed) and says what the docs promise: the service
 * manager restarts the node when it dies, a crash of the node leaves Caddy serving
 * (KillMode=process), and ExecStart runs the launcher this checkout builds.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The first ```ini block after `heading` in `md`. */
export function unitAfter(md: string, heading: string): string {
  const at = md.indexOf(heading);
  assert.ok(at >= 0, `no "${heading}" in the docs`);
  const block = /```ini\n([\s\S]*?)```/.exec(md.slice(at));
  assert.ok(block, `no ini block after "${heading}"`);
  return block[1]!;
}

/** A unit file's `Key=value` lines of `section`. */
export function directives(unit: string, section: string): Map<string, string> {
  const out = new Map<string, string>();
  let current = "";
  for (const line of unit.split("\n")) {
    const head = /^\[(.+)\]$/.exec(line.trim());
    if (head) current = head[1]!;
    else if (current === section && /^[A-Za-z]+=/.test(line)) {
      const i = line.indexOf("=");
      out.set(line.slice(0, i), line.slice(i + 1));
    }
  }
  return out;
}

const unit = unitAfter(readFileSync(path.join(ROOT, "docs/operations.md"), "utf8"), "### Under systemd");

describe("the systemd unit in the docs", () => {
  const service = directives(unit, "Service");

  test("restarts the node when it dies, and leaves Caddy serving when the node crashes", () => {
    assert.equal(service.get("Restart"), "on-failure");
    assert.equal(service.get("KillMode"), "process");
  });

  test("runs the launcher of the checkout, whose source exists", () => {
    const exec = service.get("ExecStart") ?? "";
    const m = /^(\S+)((?: --\S+)*) \/opt\/cpm\/(\S+)$/.exec(exec);
    assert.ok(m, `ExecStart "${exec}" is <node> [--flags] /opt/cpm/<entry>`);
    assert.equal(m[3], "libs/launcher/dist/main.js");
    // The memory defaults npm start applies (scripts/node.sh).
    assert.equal(m[2], " --liftoff-only --max-semi-space-size=2");
    assert.match(unit, /^Environment=MALLOC_ARENA_MAX=2$/m);
    assert.ok(existsSync(path.join(ROOT, "libs/launcher/src/main.ts")));
  });

  test("systemd accepts it, with no warning", (t) => {
    if (spawnSync("systemd-analyze", ["--version"]).status !== 0) return t.skip("systemd-analyze is not installed");
    // Node where this machine has it; everything else as documented.
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), "cpm-unit-")), "cpm.service");
    writeFileSync(file, unit.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`));
    const r = spawnSync("systemd-analyze", ["verify", file], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), "", r.stderr);
  });
});
