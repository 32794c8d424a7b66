#!/usr/bin/env node
// The `cpm` command: runs the compiled CLI (`npm run build` makes libs/cli/dist).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const main = new URL("../dist/main.js", import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write("cpm: the CLI is not built yet: run `npm run build` in the repository first\n");
  process.exit(5);
}
await import(main.href);
