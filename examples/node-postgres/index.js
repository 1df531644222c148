// tenant_guard from node-postgres: the tenant claim is set once per transaction, as a bind
// parameter, with set_config(..., true) (the SET LOCAL of a function call).
//
//   PGHOST=... PGPORT=... PGUSER=app PGDATABASE=... node index.js
//
// The connection settings come from the usual PG* environment variables. The pool has ONE
// connection on purpose: every tenant below runs on the same server connection, one after the
// other, as they would behind PgBouncer in transaction mode.
"use strict";

const { Pool } = require("pg");

const pool = new Pool({ max: 1 });

// Runs fn(client) in a transaction whose tenant claim is tenantId. The claim ends with the
// transaction (COMMIT or ROLLBACK), so the next user of this connection starts with none.
async function withTenant(tenantId, fn) {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT set_config('tenant_guard.tenant_id', $1, true)", [tenantId]);
    const result = await fn(client);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

function refusal(err) {
  return `refused ${err.code}: ${err.message}`;
}

async function main() {
  // Each tenant sees only its own rows (no WHERE tenant_id = ... needed, none trusted).
  for (const tenant of ["acme", "globex"]) {
    const rows = await withTenant(tenant, async (client) => {
      const { rows } = await client.query("SELECT tenant_id, amount FROM invoices ORDER BY id");
      return rows.map((r) => [r.tenant_id, r.amount]);
    });
    console.log(`${tenant} -> ${JSON.stringify(rows)}`);
  }

  // A write for another tenant is refused by the row policies, and rolls back.
  try {
    await withTenant("acme", (client) =>
      client.query("INSERT INTO invoices (tenant_id, amount) VALUES ($1, $2)", ["globex", 1]),
    );
    console.log("acme writes a globex row -> allowed");
  } catch (err) {
    console.log(`acme writes a globex row -> ${refusal(err)}`);
  }

  // The careless call: no transaction, no claim. Refused, never "all rows".
  try {
    const { rows } = await pool.query("SELECT tenant_id, amount FROM invoices");
    console.log(`forgot the claim -> ${JSON.stringify(rows.map((r) => [r.tenant_id, r.amount]))}`);
  } catch (err) {
    console.log(`forgot the claim -> ${refusal(err)}`);
  }

  // A session-level SET left on the connection does not count in later transactions either.
  await pool.query("SET tenant_guard.tenant_id = 'acme'");
  try {
    await pool.query("SELECT tenant_id, amount FROM invoices");
    console.log("stale session claim -> allowed");
  } catch (err) {
    console.log(`stale session claim -> ${refusal(err)}`);
  }
  await pool.query("RESET tenant_guard.tenant_id");

  await pool.end();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
