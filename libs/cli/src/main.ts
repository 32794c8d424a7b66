#!/usr/bin/env node
import { runCli } from "./program.ts";

// Ctrl-C ends `sync status --watch` (and anything else) with the conventional code.
process.on("SIGINT", () => process.exit(130));

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
});
