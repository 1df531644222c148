import "server-only";
import crypto from "node:crypto";
import { pool } from "./db";
import { isVerifiedSession } from "./session";

// The key the server signs tenant tokens with. The database knows it too:
//   ALTER SYSTEM SET tenant_guard.token_keys = '<TG_TOKEN_KID>:<TG_TOKEN_SECRET>';
const TOKEN_TTL_SECONDS = 30;

const b64url = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");

// A compact JWS (HS256) that says "tenant X, for the next 30 seconds".
function signTenantToken(tenantId) {
  const kid = process.env.TG_TOKEN_KID;
  const secret = process.env.TG_TOKEN_SECRET;
  if (!kid || !secret) throw new Error("TG_TOKEN_KID and TG_TOKEN_SECRET must be set");
  const now = Math.floor(Date.now() / 1000);
  const signed = `${b64url({ alg: "HS256", typ: "JWT", kid })}.${b64url({ tenant_id: tenantId, iat: now, exp: now + TOKEN_TTL_SECONDS })}`;
  return `${signed}.${crypto.createHmac("sha256", secret).update(signed).digest("base64url")}`;
}

/**
 * Runs fn(client) in one transaction whose tenant is the signed-in user's:
 *
 *   const invoices = await withTenant(session, async (db) =>
 *     (await db.query("SELECT * FROM invoices")).rows);
 *
 * The tenant comes from the verified session only. The database checks the token's signature
 * and expiry, and the claim ends with the transaction, so a pooled connection never carries it
 * to the next request.
 */
export async function withTenant(session, fn) {
  if (!isVerifiedSession(session)) throw new TypeError("withTenant() needs the session returned by getSession()");
  const token = signTenantToken(session.tenantId);
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query("BEGIN");
    // A bind parameter, never SQL text: the token stays out of the server log.
    await client.query("SELECT tenant_guard.set_tenant_token($1)", [token]);
    const result = await fn(client);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => (broken = true));
    throw err;
  } finally {
    client.release(broken); // a connection that could not roll back is closed, not reused
  }
}
