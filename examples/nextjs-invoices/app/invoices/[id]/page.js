import Link from "next/link";
import { notFound } from "next/navigation";
import { requireSession } from "@/lib/session";
import { withTenant } from "@/lib/tenant";
import { forbidOnRefusal } from "@/lib/refusals";

export default async function InvoicePage({ params }) {
  const session = await requireSession();
  const { id } = await params;
  if (!/^[0-9]{1,18}$/.test(id)) notFound();
  // Another tenant's invoice id finds no row: row security filters it out, so it is a 404,
  // exactly like an id that does not exist.
  const invoice = await withTenant(session, async (db) => {
    const { rows } = await db.query(
      `SELECT i.number, i.description, i.amount, i.status, to_char(i.issued_on, 'YYYY-MM-DD') AS issued_on,
              c.name AS customer, c.email, c.city
         FROM invoices i JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
        WHERE i.id = $1`,
      [id]);
    return rows[0];
  }).catch(forbidOnRefusal("/invoices/[id]"));
  if (!invoice) notFound();

  return (
    <section className="card" data-testid="invoice">
      <h1>Invoice {invoice.number}</h1>
      <dl>
        <dt>Customer</dt><dd>{invoice.customer} ({invoice.email}, {invoice.city})</dd>
        <dt>Description</dt><dd>{invoice.description}</dd>
        <dt>Amount</dt><dd>{invoice.amount}</dd>
        <dt>Status</dt><dd><span className={`status ${invoice.status}`}>{invoice.status}</span></dd>
        <dt>Issued</dt><dd>{invoice.issued_on}</dd>
      </dl>
      <p><Link href="/invoices">All invoices</Link></p>
    </section>
  );
}
