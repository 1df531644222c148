import "server-only";
import crypto from "node:crypto";
import { cookies } from "next/headers";
import { redirect } from "next/navigation";
import { TENANTS, findUser } from "./users";

// A server-side session in one cookie: base64url({uid, exp}) "." HMAC-SHA256 of it, keyed with
// SESSION_SECRET. The browser can read it but not change it: every request verifies the MAC.
const COOKIE = "session";
const MAX_AGE_SECONDS = 8 * 60 * 60;

function mac(data) {
  const secret = process.env.SESSION_SECRET;
  if (!secret || secret.length < 32) throw new Error("SESSION_SECRET must be set (at least 32 characters)");
  return crypto.createHmac("sha256", secret).update(data).digest("base64url");
}

function seal(userId) {
  const exp = Math.floor(Date.now() / 1000) + MAX_AGE_SECONDS;
  const body = Buffer.from(JSON.stringify({ uid: userId, exp })).toString("base64url");
  return `${body}.${mac(body)}`;
}

function unseal(value) {
  if (typeof value !== "string") return null;
  const parts = value.split(".");
  if (parts.length !== 2) return null;
  const [body, sig] = parts;
  const expected = Buffer.from(mac(body));
  const given = Buffer.from(sig);
  if (expected.length !== given.length || !crypto.timingSafeEqual(expected, given)) return null;
  try {
    const data = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
    return typeof data.uid === "string" && data.exp > Date.now() / 1000 ? data : null;
  } catch {
    return null;
  }
}

// Sessions that getSession() verified. withTenant() accepts only these, so no code can hand it a
// hand-made { tenantId } object.
const verified = new WeakSet();

/** The verified session of this request, or null. */
export async function getSession() {
  const data = unseal((await cookies()).get(COOKIE)?.value);
  const user = data && findUser(data.uid);
  if (!user) return null;
  // The tenant is the user's, looked up on the server: never a value the request carries.
  const session = Object.freeze({
    userId: user.id,
    email: user.email,
    name: user.name,
    tenantId: user.tenantId,
    tenantName: TENANTS[user.tenantId].name,
  });
  verified.add(session);
  return session;
}

export function isVerifiedSession(session) {
  return verified.has(session);
}

/** The verified session, or a redirect to the sign-in page. */
export async function requireSession() {
  const session = await getSession();
  if (!session) redirect("/sign-in");
  return session;
}

export async function startSession(userId) {
  (await cookies()).set(COOKIE, seal(userId), {
    httpOnly: true,
    sameSite: "lax",
    path: "/",
    maxAge: MAX_AGE_SECONDS,
    secure: process.env.COOKIE_SECURE === "1", // set it behind HTTPS
  });
}

export async function endSession() {
  (await cookies()).delete(COOKIE);
}
