import "server-only";
import { forbidden } from "next/navigation";

// What the database says when tenant_guard (or a row policy) refuses a statement.
//   42501 insufficient_privilege: no tenant claim, a rejected token, a tenant switch inside a
//         transaction, a role that would bypass row security, a row written for another tenant
//   54000 program_limit_exceeded: tenant_guard.max_rows (the statement returns too many rows)
export const isRefusal = (err) => err?.code === "42501";
export const isRowCap = (err) => err?.code === "54000";

/** The HTTP status for a database error: 403 for a refusal, 422 for the row cap, else 500. */
export function httpStatusFor(err) {
  if (isRefusal(err)) return 403;
  if (isRowCap(err)) return 422;
  return 500;
}

function log(where, err) {
  // The details go to the server log (and tenant_guard.audit_log), not to the browser.
  console.warn(`[tenant_guard] ${where}: refused, SQLSTATE ${err.code}: ${err.message}`);
}

/**
 * For pages and server actions: `.catch(forbidOnRefusal("/invoices"))` turns a refusal into
 * Next.js's 403 page (app/forbidden.js) and rethrows everything else.
 */
export function forbidOnRefusal(where) {
  return (err) => {
    if (isRefusal(err)) {
      log(where, err);
      forbidden();
    }
    throw err;
  };
}

/** For route handlers: a plain-text response with the status, for a refusal; else rethrows. */
export function responseForRefusal(where, err) {
  if (!isRefusal(err) && !isRowCap(err)) throw err;
  log(where, err);
  return new Response(isRefusal(err) ? "refused by the database\n" : "too many rows, narrow the request\n", {
    status: httpStatusFor(err),
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}
