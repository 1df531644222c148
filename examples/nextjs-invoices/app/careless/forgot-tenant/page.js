// CARELESS ON PURPOSE. This page reads invoices straight from the pool, without withTenant():
// the statement runs with no tenant claim. Without tenant_guard it would list every tenant's
// invoices. With it, the database refuses the statement (SQLSTATE 42501, "no tenant claim is set
// for protected table public.invoices"), the page ends on the 403 page, and the refusal is in
// tenant_guard.audit_log as event 'denied', reason 'no_claim', with this query's text.
import { pool } from "@/lib/db";
import { requireSession } from "@/lib/session";
import { forbidOnRefusal } from "@/lib/refusals";

export default async function ForgotTenantPage() {
  await requireSession(); // signed in, but the tenant never reaches the database
  const { rows } = await pool
    .query("/* careless: forgot the tenant */ SELECT number, description, amount FROM invoices ORDER BY id")
    .catch(forbidOnRefusal("/careless/forgot-tenant"));
  return (
    <ul>
      {rows.map((r) => (
        <li key={r.number}>{r.number} {r.description} {r.amount}</li>
      ))}
    </ul>
  );
}
