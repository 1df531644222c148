import Link from "next/link";
import { requireSession } from "@/lib/session";
import { TENANTS } from "@/lib/users";

export default async function CarelessPage() {
  const session = await requireSession();
  const other = Object.keys(TENANTS).find((t) => t !== session.tenantId);
  return (
    <>
      <h1>Careless routes</h1>
      <p className="hint">
        Two pages with the mistakes that leak tenants in real apps, kept on purpose. Here the
        database refuses them: each one ends on a 403 page, and each refusal is recorded in{" "}
        <code>tenant_guard.audit_log</code>.
      </p>
      <section className="card careless">
        <h2><Link href="/careless/forgot-tenant">Forgot to set the tenant</Link></h2>
        <p>
          Queries the pool directly instead of going through <code>withTenant()</code>. The
          statement has no tenant claim: <code>42501 no tenant claim is set for protected table
          public.invoices</code>, audited as <code>denied / no_claim</code>.
        </p>
      </section>
      <section className="card careless">
        <h2>
          <Link href={`/careless/tenant-from-query?tenantId=${other}`}>
            Takes tenantId from the query string
          </Link>
        </h2>
        <p>
          Hands <code>?tenantId={other}</code> from the URL to the database as the tenant. Only a
          token signed with the server&apos;s key can set the tenant in this database: <code>42501
          tenant token rejected</code>, audited as <code>token_rejected</code>.
        </p>
      </section>
    </>
  );
}
