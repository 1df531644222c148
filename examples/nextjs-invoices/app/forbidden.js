import Link from "next/link";

// Rendered, with HTTP status 403, when a page or server action calls forbidden():
// lib/refusals.js does so when the database refuses a statement (SQLSTATE 42501).
export default function Forbidden() {
  return (
    <section className="card refused" data-testid="refused">
      <h1>403: refused by the database</h1>
      <p>
        tenant_guard refused a statement of this request (SQLSTATE 42501), so nothing was read or
        written. The details are in the server log, and the refusal is recorded in{" "}
        <code>tenant_guard.audit_log</code>.
      </p>
      <p><Link href="/invoices">Back to your invoices</Link></p>
    </section>
  );
}
