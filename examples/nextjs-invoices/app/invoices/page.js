import Link from "next/link";
import { requireSession } from "@/lib/session";
import { withTenant } from "@/lib/tenant";
import { forbidOnRefusal } from "@/lib/refusals";

export default async function InvoicesPage() {
  const session = await requireSession();
  const invoices = await withTenant(session, async (db) => {
    const { rows } = await db.query(
      `SELECT i.id, i.number, c.name AS customer, i.description, i.amount, i.status,
              to_char(i.issued_on, 'YYYY-MM-DD') AS issued_on
         FROM invoices i JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
        ORDER BY i.issued_on DESC, i.id DESC`);
    return rows;
  }).catch(forbidOnRefusal("/invoices"));
  const open = invoices.filter((i) => i.status === "open").reduce((sum, i) => sum + Number(i.amount), 0);

  return (
    <>
      <div className="toolbar">
        <h1>Invoices</h1>
        <Link href="/invoices/new">New invoice</Link>
        <a href="/export/invoices.csv">Export CSV</a>
      </div>
      <table data-testid="invoices">
        <thead>
          <tr><th>Number</th><th>Customer</th><th>Description</th><th className="num">Amount</th><th>Status</th><th>Issued</th></tr>
        </thead>
        <tbody>
          {invoices.map((i) => (
            <tr key={i.id}>
              <td className="nowrap"><Link href={`/invoices/${i.id}`}>{i.number}</Link></td>
              <td>{i.customer}</td>
              <td>{i.description}</td>
              <td className="num">{i.amount}</td>
              <td><span className={`status ${i.status}`}>{i.status}</span></td>
              <td className="nowrap">{i.issued_on}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="hint">{invoices.length} invoices, {open.toFixed(2)} open.</p>
    </>
  );
}
