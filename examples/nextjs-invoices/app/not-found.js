import Link from "next/link";

export default function NotFound() {
  return (
    <section className="card" data-testid="not-found">
      <h1>404: not found</h1>
      <p>There is no such page or invoice for your tenant.</p>
      <p><Link href="/invoices">Back to your invoices</Link></p>
    </section>
  );
}
