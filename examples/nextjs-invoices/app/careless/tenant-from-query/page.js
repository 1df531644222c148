// CARELESS ON PURPOSE. This page takes the tenant from the URL (?tenantId=globex) instead of the
// session, and hands it to the database as the tenant, inside the transaction withTenant() opened
// for the session's tenant. Without tenant_guard (filtering by `WHERE tenant_id = $1` alone) it
// would show any tenant's invoices to whoever edits the URL. With it:
//   - this database accepts a tenant only as a token signed with the server's key
//     (tenant_guard.require_token = on), so the URL's value is refused: SQLSTATE 42501 "tenant
//     token rejected", audited as event 'token_rejected' (a forged token: reason bad_signature);
//   - had the page called set_tenant($1) or set_config(...) instead, that would be refused too;
//   - and the WHERE clause alone could only ever see the session's tenant's rows.
import { requireSession } from "@/lib/session";
import { withTenant } from "@/lib/tenant";
import { forbidOnRefusal } from "@/lib/refusals";

export default async function TenantFromQueryPage({ searchParams }) {
  const session = await requireSession();
  const { tenantId = session.tenantId } = await searchParams; // <- the careless part
  const rows = await withTenant(session, async (db) => {
    await db.query("SELECT tenant_guard.set_tenant_token($1)", [String(tenantId)]);
    return (await db.query("SELECT number, description, amount FROM invoices WHERE tenant_id = $1", [String(tenantId)])).rows;
  }).catch(forbidOnRefusal("/careless/tenant-from-query"));
  return (
    <ul>
      {rows.map((r) => (
        <li key={r.number}>{r.number} {r.description} {r.amount}</li>
      ))}
    </ul>
  );
}
