// Derives prisma/postgresql/schema.prisma from prisma/schema.prisma: same model, other
// provider and client output. Run by `npm run prisma:generate`; never edit the copy.
import { readFileSync, writeFileSync } from "node:fs";
const src = readFileSync("prisma/schema.prisma", "utf8");
const out = src
  .replace('provider = "sqlite"', 'provider = "postgresql"')
  .replace('output     = "../src/generated/prisma"', 'output     = "../../src/generated/prisma-pg"')
  .replace(
    /^\/\/ The config-service database\..*\n(\/\/.*\n)*/m,
    "// Generated from ../schema.prisma by scripts/pg-schema.mjs: do not edit.\n",
  );
if (out === src) throw new Error("pg-schema: nothing replaced");
writeFileSync("prisma/postgresql/schema.prisma", out);
