/** npm run docs:env: writes docs/configuration.md's tables from libs/core/src/env.ts. */
import { readFileSync, writeFileSync } from "node:fs";
import { CONFIGURATION_DOC, withEnvTables } from "./env-doc.ts";

const before = readFileSync(CONFIGURATION_DOC, "utf8");
const after = withEnvTables(before);
writeFileSync(CONFIGURATION_DOC, after);
console.log(`${CONFIGURATION_DOC}: ${before === after ? "already up to date" : "tables rewritten"}`);
