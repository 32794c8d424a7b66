import { defineConfig } from "prisma/config";
import { PrismaPg } from "@prisma/adapter-pg";

// PostgreSQL variant: used for `generate` and `migrate diff`; the service applies the
// migrations itself at start (see src/migrate.ts).
export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: "prisma/postgresql/schema.prisma",
  migrations: { path: "prisma/postgresql/migrations" },
  adapter: () =>
    Promise.resolve(new PrismaPg({ connectionString: process.env.DATABASE_URL ?? "postgresql://localhost/cpm" })),
});
