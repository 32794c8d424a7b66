import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ConfigError, logFormat } from "./env.ts";

describe("LOG_FORMAT", () => {
  const cases: [string | undefined, boolean, "json" | "pretty"][] = [
    [undefined, true, "pretty"],
    [undefined, false, "json"],
    ["auto", true, "pretty"],
    ["auto", false, "json"],
    ["json", true, "json"],
    ["pretty", false, "pretty"],
  ];
  for (const [value, tty, want] of cases)
    it(`${value ?? "unset"} with stdout ${tty ? "a terminal" : "a pipe"}: ${want}`, () =>
      assert.equal(logFormat({ LOG_FORMAT: value }, tty), want));

  it("anything else is a configuration error naming the variable", () =>
    assert.throws(
      () => logFormat({ LOG_FORMAT: "text" }, true),
      (err: unknown) =>
        err instanceof ConfigError && /^LOG_FORMAT: "text" is not one of auto, json, pretty$/.test(err.message),
    ));
});

describe("the logger's output", () => {
  const logger = fileURLToPath(new URL("./logger.ts", import.meta.url));
  // A file, not -e: pino's transport runs in a worker thread that inherits the process's flags.
  const dir = mkdtempSync(path.join(tmpdir(), "cpm-logger-test-"));
  const script = path.join(dir, "log.mjs");
  writeFileSync(
    script,
    `import { createLogger } from ${JSON.stringify(logger)};
     createLogger("example").info({ port: 50051, token: "s3cret" }, "example ready");`,
  );
  after(() => rmSync(dir, { recursive: true, force: true }));
  const run = (format: string) =>
    spawnSync(process.execPath, ["--import", "tsx", script], {
      env: { PATH: process.env.PATH, LOG_FORMAT: format },
      encoding: "utf8",
      timeout: 20_000,
    }).stdout;

  it("json: one JSON object a line, secrets redacted", () => {
    const line = JSON.parse(run("json")) as Record<string, unknown>;
    assert.equal(line.msg, "example ready");
    assert.equal(line.name, "example");
    assert.equal(line.token, "[redacted]");
  });

  it("pretty: one readable line with the level and the service's name, secrets redacted", () => {
    const out = run("pretty");
    assert.match(
      out,
      /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(example\): example ready \{"port":50051,"token":"\[redacted\]"\}\n$/,
    );
  });
});
