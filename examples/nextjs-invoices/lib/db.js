import "server-only";
import pg from "pg";

// One pool for the whole server. The connection comes from the libpq environment variables
// (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD). PGUSER must be an application role: not the
// tables' owner, not a superuser, NOBYPASSRLS (the example's is invoices_app).
const globalForPool = globalThis;
export const pool = (globalForPool.__invoicesPool ??= new pg.Pool({
  max: 10,
  application_name: "nextjs-invoices",
}));
// An idle connection that the server closed (restart, pg_terminate_backend) must not crash the app.
if (!pool.listenerCount("error")) pool.on("error", (err) => console.error(`[pg] idle connection lost: ${err.message}`));
