import { redirect } from "next/navigation";
import { getSession } from "@/lib/session";
import { TENANTS, USERS } from "@/lib/users";
import { signIn } from "../actions";

export default async function SignInPage({ searchParams }) {
  if (await getSession()) redirect("/invoices");
  const { error } = await searchParams;
  return (
    <section className="card narrow">
      <h1>Sign in</h1>
      {error && <p className="error" role="alert">Wrong e-mail or password.</p>}
      <form action={signIn} className="stack">
        <label>
          E-mail
          <input name="email" type="email" autoComplete="username" required />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" required />
        </label>
        <button type="submit" className="primary">Sign in</button>
      </form>
      <p className="hint">Demo users, one per tenant:</p>
      <ul className="hint">
        {USERS.map((u) => (
          <li key={u.id}>
            <code>{u.email}</code> / <code>{u.password}</code> ({TENANTS[u.tenantId].name})
          </li>
        ))}
      </ul>
    </section>
  );
}
