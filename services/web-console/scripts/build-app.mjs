// Bundles the console's browser app (app/) into dist/app at build time: one script, one
// stylesheet, the page. Fails when the script is over 250 KB gzipped.
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = path.join(here, "dist", "app");
const LIMIT = 250 * 1024;

mkdirSync(out, { recursive: true });
await build({
  entryPoints: [path.join(here, "app", "main.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  minify: true,
  legalComments: "none",
  outfile: path.join(out, "app.js"),
  logLevel: "warning",
});
copyFileSync(path.join(here, "app", "index.html"), path.join(out, "index.html"));
copyFileSync(path.join(here, "app", "app.css"), path.join(out, "app.css"));
const js = readFileSync(path.join(out, "app.js"));
const gz = gzipSync(js, { level: 9 }).length;
console.log(`web-console app.js: ${js.length} bytes, ${gz} gzipped (limit ${LIMIT})`);
if (gz > LIMIT) {
  console.error(`app.js is ${gz} bytes gzipped, over the ${LIMIT} limit`);
  process.exit(1);
}
