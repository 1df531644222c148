import { defineConfig } from "prisma/config";

// The URL is only used by Prisma's CLI for migrations and introspection; `prisma generate`
// does not connect. The application connects through the driver adapter (index.ts).
export default defineConfig({
  schema: "prisma/schema.prisma",
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://localhost/postgres" },
});
