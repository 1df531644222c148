import { requireSession } from "@/lib/session";
import { withTenant } from "@/lib/tenant";
import { forbidOnRefusal } from "@/lib/refusals";
import { createInvoice } from "../../actions";

const ERRORS = {
  invalid: "Choose a customer, write a description (at most 200 characters) and an amount such as 120.50.",
  customer: "No such customer.",
};

export default async function NewInvoicePage({ searchParams }) {
  const session = await requireSession();
  const { error } = await searchParams;
  const customers = await withTenant(session, async (db) =>
    (await db.query("SELECT id, name FROM customers ORDER BY name")).rows,
  ).catch(forbidOnRefusal("/invoices/new"));

  return (
    <section className="card">
      <h1>New invoice</h1>
      {error && <p className="error" role="alert">{ERRORS[error] ?? "Something was wrong."}</p>}
      {/* A server action: the tenant is taken from the session on the server, not from this form. */}
      <form action={createInvoice} className="stack">
        <label>
          Customer
          <select name="customerId" required defaultValue="">
            <option value="" disabled>Choose…</option>
            {customers.map((c) => (
              <option key={c.id} value={c.id}>{c.name}</option>
            ))}
          </select>
        </label>
        <label>
          Description
          <input name="description" maxLength={200} required />
        </label>
        <label>
          Amount
          <input name="amount" inputMode="decimal" pattern="[0-9]{1,9}([.][0-9]{1,2})?" required />
        </label>
        <button type="submit" className="primary">Create invoice</button>
      </form>
    </section>
  );
}
