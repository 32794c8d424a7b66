import { defineConfig } from "prisma/config";
import { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";

// Prisma 6.19 with the JavaScript schema engine: works offline, no native engine download.
export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  adapter: () => Promise.resolve(new PrismaBetterSQLite3({ url: process.env.DATABASE_URL ?? "file:./data/cpm.db" })),
});
