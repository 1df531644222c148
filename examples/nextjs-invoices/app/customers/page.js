import { requireSession } from "@/lib/session";
import { withTenant } from "@/lib/tenant";
import { forbidOnRefusal } from "@/lib/refusals";

export default async function CustomersPage() {
  const session = await requireSession();
  const customers = await withTenant(session, async (db) => {
    const { rows } = await db.query(
      `SELECT c.id, c.name, c.email, c.city, count(i.id)::int AS invoices,
              coalesce(sum(i.amount), 0)::numeric(12,2) AS billed
         FROM customers c LEFT JOIN invoices i ON i.tenant_id = c.tenant_id AND i.customer_id = c.id
        GROUP BY c.id ORDER BY c.name`);
    return rows;
  }).catch(forbidOnRefusal("/customers"));

  return (
    <>
      <h1>Customers</h1>
      <table data-testid="customers">
        <thead>
          <tr><th>Name</th><th>E-mail</th><th>City</th><th className="num">Invoices</th><th className="num">Billed</th></tr>
        </thead>
        <tbody>
          {customers.map((c) => (
            <tr key={c.id}>
              <td>{c.name}</td><td>{c.email}</td><td>{c.city}</td>
              <td className="num">{c.invoices}</td><td className="num">{c.billed}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
