"use server";

import { redirect } from "next/navigation";
import { endSession, requireSession, startSession } from "@/lib/session";
import { checkPassword, TENANTS } from "@/lib/users";
import { withTenant } from "@/lib/tenant";
import { forbidOnRefusal } from "@/lib/refusals";

export async function signIn(formData) {
  const user = checkPassword(formData.get("email") ?? "", formData.get("password") ?? "");
  if (!user) redirect("/sign-in?error=1");
  await startSession(user.id);
  redirect("/invoices");
}

export async function signOut() {
  await endSession();
  redirect("/sign-in");
}

/**
 * Creates an invoice for the signed-in user's tenant. The tenant comes from the session: a
 * tenant_id or tenantId field that a client adds to the form is never read.
 */
export async function createInvoice(formData) {
  const session = await requireSession();
  const customerId = String(formData.get("customerId") ?? "");
  const description = String(formData.get("description") ?? "").trim();
  const amount = String(formData.get("amount") ?? "").trim();
  if (!/^[0-9]{1,18}$/.test(customerId) || !description || description.length > 200
      || !/^[0-9]{1,9}(\.[0-9]{1,2})?$/.test(amount) || Number(amount) <= 0) {
    redirect("/invoices/new?error=invalid");
  }
  const prefix = TENANTS[session.tenantId].invoicePrefix;
  const created = await withTenant(session, async (db) => {
    // Row security shows only this tenant's customers: another tenant's id finds nothing here
    // (and the composite foreign key would refuse it anyway).
    const customer = await db.query("SELECT id FROM customers WHERE id = $1", [customerId]);
    if (customer.rowCount === 0) return null;
    const { rows: [{ next }] } = await db.query(
      "SELECT coalesce(max(substring(number FROM '[0-9]+$')::int), 1000) + 1 AS next FROM invoices");
    // tenant_id is left out: its default is tenant_guard.current_tenant(), the token's tenant.
    const { rows: [row] } = await db.query(
      `INSERT INTO invoices (number, customer_id, description, amount)
       VALUES ($1, $2, $3, $4) RETURNING id`,
      [`${prefix}-${next}`, customerId, description, amount]);
    return row;
  }).catch(forbidOnRefusal("createInvoice"));
  if (!created) redirect("/invoices/new?error=customer");
  redirect(`/invoices/${created.id}`);
}
