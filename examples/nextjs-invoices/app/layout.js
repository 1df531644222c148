import "./globals.css";
import Link from "next/link";
import { getSession } from "@/lib/session";
import { signOut } from "./actions";

export const metadata = { title: "Invoices · tenant_guard example" };

export default async function RootLayout({ children }) {
  const session = await getSession();
  return (
    <html lang="en">
      <body className={session ? `tenant-${session.tenantId}` : undefined}>
        <header>
          <span className="brand">Invoices</span>
          {session && (
            <>
              <span className="tenant" data-testid="tenant">{session.tenantName}</span>
              <nav>
                <Link href="/invoices">Invoices</Link>
                <Link href="/customers">Customers</Link>
                <Link href="/invoices/new">New invoice</Link>
                <a href="/export/invoices.csv">Export CSV</a>
                <Link href="/careless">Careless routes</Link>
              </nav>
              <span className="who">
                <span>{session.email}</span>
                <form action={signOut}>
                  <button type="submit">Sign out</button>
                </form>
              </span>
            </>
          )}
        </header>
        <main>{children}</main>
      </body>
    </html>
  );
}
