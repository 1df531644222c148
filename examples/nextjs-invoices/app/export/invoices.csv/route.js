import { getSession } from "@/lib/session";
import { withTenant } from "@/lib/tenant";
import { responseForRefusal } from "@/lib/refusals";

export const dynamic = "force-dynamic";

// One CSV field: quoted, and a leading = + - @ neutralised so a spreadsheet does not run it.
function field(value) {
  let s = String(value ?? "");
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return `"${s.replaceAll('"', '""')}"`;
}

export async function GET() {
  const session = await getSession();
  if (!session) return new Response("sign in first\n", { status: 401 });
  let rows;
  try {
    rows = await withTenant(session, async (db) =>
      (await db.query(
        `SELECT i.number, c.name AS customer, i.description, i.amount, i.status,
                to_char(i.issued_on, 'YYYY-MM-DD') AS issued_on
           FROM invoices i JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
          ORDER BY i.number`)).rows);
  } catch (err) {
    return responseForRefusal("/export/invoices.csv", err);
  }
  const header = ["number", "customer", "description", "amount", "status", "issued_on"];
  const csv = [header.join(","), ...rows.map((r) => header.map((h) => field(r[h])).join(","))].join("\r\n") + "\r\n";
  return new Response(csv, {
    headers: {
      "content-type": "text/csv; charset=utf-8",
      "content-disposition": `attachment; filename="invoices-${session.tenantId}.csv"`,
      "cache-control": "no-store",
    },
  });
}
