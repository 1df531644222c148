// The demo's users and tenants. A real app keeps them in its identity provider or a users table;
// what matters here is that the tenant is looked up on the server from the signed-in user.
import crypto from "node:crypto";

export const TENANTS = {
  acme: { name: "Acme Corp", invoicePrefix: "ACME" },
  globex: { name: "Globex Corporation", invoicePrefix: "GLX" },
};

export const USERS = [
  { id: "u-alice", email: "alice@acme.example", name: "Alice Anders", tenantId: "acme", password: "acme-demo-password" },
  { id: "u-bob", email: "bob@globex.example", name: "Bob Baxter", tenantId: "globex", password: "globex-demo-password" },
];

export function findUser(id) {
  return USERS.find((u) => u.id === id) ?? null;
}

const digest = (s) => crypto.createHash("sha256").update(String(s)).digest();

/** The user with this e-mail and password, or null (compared in constant time). */
export function checkPassword(email, password) {
  const user = USERS.find((u) => u.email === String(email).trim().toLowerCase());
  const ok = crypto.timingSafeEqual(digest(password), digest(user ? user.password : crypto.randomUUID()));
  return user && ok ? user : null;
}
