// tenant_guard with a signed tenant token from node-postgres. The application server signs a
// short-lived HS256 token for the tenant of the verified session (node:crypto, no dependency)
// and passes it as a bind parameter to tenant_guard.set_tenant_token($1), which checks the
// signature, exp and nbf in the database and sets the claim for the transaction.
//
//   TG_TOKEN_KID=k1 TG_TOKEN_SECRET=... PGHOST=... PGUSER=app PGDATABASE=... node token.js
//
// The database knows the same key: ALTER SYSTEM SET tenant_guard.token_keys = 'k1:<secret>';
// SELECT pg_reload_conf();  (see docs/claims.md)
"use strict";

const crypto = require("node:crypto");
const { Pool } = require("pg");

const KID = process.env.TG_TOKEN_KID;
const SECRET = process.env.TG_TOKEN_SECRET;
if (!KID || !SECRET) {
  console.error("set TG_TOKEN_KID and TG_TOKEN_SECRET (the key configured in tenant_guard.token_keys)");
  process.exit(2);
}

const b64url = (data) => Buffer.from(data).toString("base64url");

// A compact JWS: base64url(header).base64url(payload).base64url(HMAC-SHA256 of the first two).
function signTenantToken(tenantId, { ttlSeconds = 60, now = Math.floor(Date.now() / 1000) } = {}) {
  const header = { alg: "HS256", typ: "JWT", kid: KID };
  const payload = { tenant_id: tenantId, iat: now, exp: now + ttlSeconds };
  const signed = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const signature = crypto.createHmac("sha256", SECRET).update(signed).digest("base64url");
  return `${signed}.${signature}`;
}

const pool = new Pool({ max: 1 });

async function withTenantToken(token, fn) {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    // Always a bind parameter, never a literal in the SQL text: PostgreSQL logs the text of
    // failing statements, and the token must not end up in the server log.
    await client.query("SELECT tenant_guard.set_tenant_token($1)", [token]);
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

const readInvoices = async (client) =>
  (await client.query("SELECT tenant_id, amount FROM invoices ORDER BY id")).rows.map((r) => [
    r.tenant_id,
    r.amount,
  ]);

async function attempt(label, token) {
  try {
    console.log(`${label} -> ${JSON.stringify(await withTenantToken(token, readInvoices))}`);
  } catch (err) {
    console.log(`${label} -> refused ${err.code}: ${err.message}`);
  }
}

async function main() {
  for (const tenant of ["acme", "globex"]) {
    await attempt(tenant, signTenantToken(tenant));
  }
  // An expired token (beyond the server's leeway).
  await attempt("expired token", signTenantToken("acme", { now: Math.floor(Date.now() / 1000) - 3600 }));
  // acme's token with its payload rewritten to globex: the signature no longer matches.
  const [h, , s] = signTenantToken("acme").split(".");
  const forged = b64url(JSON.stringify({ tenant_id: "globex", exp: Math.floor(Date.now() / 1000) + 60 }));
  await attempt("forged token", `${h}.${forged}.${s}`);
  await pool.end();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
