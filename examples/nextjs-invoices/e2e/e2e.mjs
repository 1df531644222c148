// End-to-end test of the example, in a real browser: Debian's chromium driven by playwright-core
// (no browser download). Two browser contexts are signed in as the two tenants' users; each walks
// every page, the CSV export and the server action, and the test checks that no object of the
// other tenant appears anywhere: in the page text, the HTML, any response the app sent (server
// action and RSC payloads included) or the CSV. Then the careless routes are refused (403) and
// found in tenant_guard.audit_log, and the two sessions are screenshotted side by side.
//
// Started by ../test, which sets up the cluster and the app. Environment:
//   BASE_URL                   the running app (http://127.0.0.1:3540)
//   PGHOST, PGPORT             the cluster (superuser postgres, app role invoices_app, db invoices)
//   TG_TOKEN_KID, TG_TOKEN_SECRET   the key the app signs with (to read the truth per tenant)
//   CHROMIUM                   the browser (/usr/bin/chromium)
//   E2E_OUT                    where screenshots go (e2e/out)
//   E2E_DOCS_SCREENSHOT        if set (docs/nextjs-side-by-side.png), the side-by-side pictures are
//                              also written there, and the careless routes' beside it (nextjs-careless-refused.png)
// Prints one line per check and, last, "N passed, M failed"; exits 1 if anything failed.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { chromium } from "playwright-core";

const BASE = (process.env.BASE_URL ?? "http://127.0.0.1:3540").replace(/\/$/, "");
const OUT = process.env.E2E_OUT ?? path.join(path.dirname(fileURLToPath(import.meta.url)), "out");
const DOCS_PNG = process.env.E2E_DOCS_SCREENSHOT;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const APP_ROLE = "invoices_app";
const VIEWPORT = { width: 1080, height: 400 };

const USERS = [
  { email: "alice@acme.example", password: "acme-demo-password", tenant: "acme", tenantName: "Acme Corp" },
  { email: "bob@globex.example", password: "globex-demo-password", tenant: "globex", tenantName: "Globex Corporation" },
];

// ---------------------------------------------------------------- a tiny harness
let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok    ${name}`);
  } catch (err) {
    failed++;
    const lines = String(err?.stack ?? err).split("\n").slice(0, 4);
    console.log(`FAIL  ${name}\n      ${lines.join("\n      ")}`);
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}
function noForeign(where, text, markers) {
  const found = markers.filter((m) => text.includes(m));
  assert(found.length === 0, `${where} shows the other tenant's ${JSON.stringify(found)}`);
}
function hasAll(where, text, wanted) {
  const missing = wanted.filter((m) => !text.includes(m));
  assert(missing.length === 0, `${where} lacks its own ${JSON.stringify(missing)}`);
}

// ---------------------------------------------------------------- the database, for the truth
const b64url = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
function tenantToken(tenant, secret = process.env.TG_TOKEN_SECRET) {
  const now = Math.floor(Date.now() / 1000);
  const signed = `${b64url({ alg: "HS256", typ: "JWT", kid: process.env.TG_TOKEN_KID })}.${b64url({ tenant_id: tenant, iat: now, exp: now + 30 })}`;
  return `${signed}.${crypto.createHmac("sha256", secret).update(signed).digest("base64url")}`;
}
const appPool = new pg.Pool({ user: APP_ROLE, database: "invoices", max: 1, application_name: "nextjs-e2e" });
const superuser = new pg.Pool({ user: "postgres", database: "invoices", max: 1, application_name: "nextjs-e2e" });

async function asTenant(tenant, sql, params = []) {
  const client = await appPool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT tenant_guard.set_tenant_token($1)", [tenantToken(tenant)]);
    const { rows } = await client.query(sql, params);
    await client.query("COMMIT");
    return rows;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** Everything a tenant owns, as the database shows it to that tenant. */
async function truth(tenant) {
  const customers = await asTenant(tenant, "SELECT id::text, name, email, city FROM customers ORDER BY id");
  const invoices = await asTenant(tenant, "SELECT id::text, number, description FROM invoices ORDER BY id");
  const markers = [
    ...customers.flatMap((c) => [c.name, c.email, c.city]),
    ...invoices.flatMap((i) => [i.number, i.description]),
  ];
  return { customers, invoices, markers, ids: new Set(invoices.map((i) => i.id)) };
}

// ---------------------------------------------------------------- the browser
async function signIn(page, user) {
  await page.goto(`${BASE}/sign-in`);
  await page.fill('input[name="email"]', user.email);
  await page.fill('input[name="password"]', user.password);
  await Promise.all([page.waitForURL(/\/invoices$/), page.click('main button[type="submit"]')]);
}

/** Every response the app sends to a context (not the static bundles), to scan for leaks. */
function recordResponses(context) {
  const seen = [];
  context.on("response", (res) => {
    const url = res.url();
    if (!url.startsWith(BASE) || url.includes("/_next/static/") || (res.status() >= 300 && res.status() < 400)) return;
    seen.push(res.text().then((body) => ({ url, status: res.status(), body }), () => null));
  });
  return seen;
}

/** Waits for app/forbidden.js's content (the 403 page). */
async function refusalPage(page) {
  const shown = await page.waitForSelector('[data-testid="refused"]', { timeout: 5000 }).then(() => true, () => false);
  assert(shown, `not the refusal page: ${JSON.stringify((await page.innerText("body")).slice(0, 300))}`);
  assert((await page.innerText('[data-testid="refused"]')).includes("403: refused by the database"), "the refusal page has no 403 title");
}

async function pageText(page) {
  return { text: await page.innerText("body"), html: await page.content() };
}

/** Screenshots each session at url(session) and puts them side by side in one PNG. */
async function sideBySide(browser, sessions, name, url) {
  const shots = [];
  for (const s of sessions) {
    await s.page.goto(`${BASE}${url(s)}`);
    const file = path.join(OUT, `${name}-${s.user.tenant}.png`);
    await s.page.screenshot({ path: file });
    shots.push({ s, path: url(s), png: fs.readFileSync(file).toString("base64") });
  }
  const context = await browser.newContext({ viewport: { width: VIEWPORT.width * 2 + 48, height: VIEWPORT.height + 52 } });
  const page = await context.newPage();
  const esc = (t) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const figure = ({ s, path: p, png }) =>
    `<figure><figcaption>${esc(s.user.email)} &middot; tenant <b>${esc(s.user.tenant)}</b> &middot; <code>${esc(p)}</code></figcaption>` +
    `<img src="data:image/png;base64,${png}"></figure>`;
  await page.setContent(`<!doctype html><html><head><style>
    body { margin: 0; padding: 12px 16px; background: #cbd5e1; display: flex; gap: 16px; font: 15px "DejaVu Sans", sans-serif; }
    figure { margin: 0; } figcaption { padding: 0 0 8px; color: #0f172a; } code { font-size: 13px; }
    img { display: block; width: ${VIEWPORT.width}px; height: ${VIEWPORT.height}px; box-shadow: 0 1px 4px rgba(0,0,0,.35); }
    </style></head><body>${shots.map(figure).join("")}</body></html>`);
  const out = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: out });
  await context.close();
  return out;
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const { rows: [{ now: startedAt }] } = await superuser.query("SELECT now()");

  await check("the app connects as an application role: not superuser, not BYPASSRLS, owns no table", async () => {
    const { rows: [r] } = await superuser.query(
      `SELECT rolsuper, rolbypassrls,
              (SELECT count(*) FROM pg_tables WHERE tableowner = $1)::int AS owned
         FROM pg_roles WHERE rolname = $1`, [APP_ROLE]);
    assert(r && !r.rolsuper && !r.rolbypassrls && r.owned === 0, `posture of ${APP_ROLE}: ${JSON.stringify(r)}`);
    const { rows } = await superuser.query("SELECT preloaded, guard_active FROM tenant_guard.status()");
    assert(rows[0].preloaded && rows[0].guard_active, "tenant_guard is not preloaded and active");
  });

  // A fresh profile: Playwright creates its own temporary user-data-dir for every launch, under
  // os.tmpdir(); pointing that at a folder of ours means we also remove it afterwards.
  const profileRoot = fs.mkdtempSync(path.join(os.tmpdir(), "tenant-guard-e2e-"));
  process.env.TMPDIR = profileRoot;
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ],
    });
    await run(browser, startedAt);
  } finally {
    await browser?.close().catch(() => {});
    fs.rmSync(profileRoot, { recursive: true, force: true });
  }
}

async function run(browser, startedAt) {
  await check("signed out: pages redirect to /sign-in, the CSV export answers 401", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    for (const url of ["/", "/invoices", "/customers", "/careless/forgot-tenant"]) {
      await page.goto(`${BASE}${url}`);
      assert(page.url() === `${BASE}/sign-in`, `${url} ended on ${page.url()}`);
    }
    const csv = await context.request.get(`${BASE}/export/invoices.csv`);
    assert(csv.status() === 401, `CSV status ${csv.status()}`);
    await page.fill('input[name="email"]', USERS[0].email);
    await page.fill('input[name="password"]', "wrong password");
    await Promise.all([page.waitForURL(/error=1/), page.click('main button[type="submit"]')]);
    assert((await page.innerText('main [role="alert"]')).includes("Wrong e-mail or password"), "no error shown for a wrong password");
    await context.close();
  });

  // Two browser contexts (separate cookie jars), one per tenant.
  const sessions = [];
  for (const user of USERS) {
    const context = await browser.newContext({ viewport: VIEWPORT });
    const responses = recordResponses(context);
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    sessions.push({ user, context, page, responses, other: null });
  }
  sessions[0].other = sessions[1];
  sessions[1].other = sessions[0];

  for (const s of sessions) {
    await check(`${s.user.tenant}: signs in as ${s.user.email}`, async () => {
      await signIn(s.page, s.user);
      assert((await s.page.innerText('[data-testid="tenant"]')) === s.user.tenantName, "wrong tenant in the header");
      await s.page.goto(`${BASE}/`);
      assert(s.page.url() === `${BASE}/invoices`, `/ ended on ${s.page.url()}`);
    });
  }

  // The server action, with a tenant of the other tenant slipped into the form.
  for (const s of sessions) {
    s.created = `E2E ${s.user.tenant} order ${crypto.randomBytes(3).toString("hex")}`;
    await check(`${s.user.tenant}: the server action creates an invoice (a tenantId field added to the form is ignored)`, async () => {
      const { page } = s;
      await page.goto(`${BASE}/invoices/new`);
      const options = await page.$$eval('select[name="customerId"] option', (os) => os.filter((o) => o.value).map((o) => o.value));
      assert(options.length > 0, "no customers to choose from");
      await page.selectOption('select[name="customerId"]', options[options.length - 1]);
      await page.fill('input[name="description"]', s.created);
      await page.fill('input[name="amount"]', "123.45");
      await page.$eval("form.stack", (form, other) => {
        for (const name of ["tenantId", "tenant_id"]) {
          const input = document.createElement("input");
          Object.assign(input, { type: "hidden", name, value: other });
          form.appendChild(input);
        }
      }, s.other.user.tenant);
      await Promise.all([page.waitForURL(/\/invoices\/[0-9]+$/), page.click('main button[type="submit"]')]);
      assert((await page.innerText('[data-testid="invoice"]')).includes(s.created), "the new invoice's page does not show it");
      const mine = await asTenant(s.user.tenant, "SELECT tenant_id FROM invoices WHERE description = $1", [s.created]);
      const theirs = await asTenant(s.other.user.tenant, "SELECT tenant_id FROM invoices WHERE description = $1", [s.created]);
      assert(mine.length === 1 && mine[0].tenant_id === s.user.tenant, `stored as ${JSON.stringify(mine)}`);
      assert(theirs.length === 0, "the other tenant sees the new invoice");
    });
  }

  const truths = {};
  for (const u of USERS) truths[u.tenant] = await truth(u.tenant);
  for (const s of sessions) {
    s.mine = truths[s.user.tenant];
    s.foreign = truths[s.other.user.tenant];
  }
  await check("the truth: each tenant has invoices and customers, and none in common", async () => {
    for (const u of USERS) assert(truths[u.tenant].invoices.length >= 4 && truths[u.tenant].customers.length >= 3, `${u.tenant} has too little data`);
    const [a, b] = USERS.map((u) => truths[u.tenant]);
    assert(a.markers.every((m) => !b.markers.some((n) => n.includes(m) || m.includes(n))), "markers overlap");
  });

  for (const s of sessions) {
    const t = s.user.tenant;
    const { page } = s;
    const foreign = s.foreign.markers;

    await check(`${t}: /invoices lists its own invoices and nothing of the other tenant`, async () => {
      const res = await page.goto(`${BASE}/invoices`);
      assert(res.status() === 200, `status ${res.status()}`);
      const { text, html } = await pageText(page);
      hasAll("/invoices", text, s.mine.invoices.map((i) => i.number));
      hasAll("/invoices", text, [s.created]);
      noForeign("/invoices text", text, foreign);
      noForeign("/invoices HTML", html, foreign);
      const ids = await page.$$eval('a[href^="/invoices/"]', (as) => as.map((a) => a.getAttribute("href").split("/")[2]).filter((x) => /^[0-9]+$/.test(x)));
      assert(ids.length === s.mine.invoices.length, `${ids.length} links for ${s.mine.invoices.length} invoices`);
      assert(ids.every((id) => s.mine.ids.has(id)), `links to invoices not its own: ${ids}`);
      s.detailIds = ids;
    });

    await check(`${t}: every invoice's detail page shows that invoice and nothing of the other tenant`, async () => {
      for (const id of s.detailIds ?? []) {
        const res = await page.goto(`${BASE}/invoices/${id}`);
        assert(res.status() === 200, `/invoices/${id}: status ${res.status()}`);
        const { text, html } = await pageText(page);
        hasAll(`/invoices/${id}`, text, [s.mine.invoices.find((i) => i.id === id).number]);
        noForeign(`/invoices/${id}`, text + html, foreign);
      }
      assert((s.detailIds ?? []).length > 0, "no detail page walked");
    });

    await check(`${t}: /customers lists its own customers and nothing of the other tenant`, async () => {
      const res = await page.goto(`${BASE}/customers`);
      assert(res.status() === 200, `status ${res.status()}`);
      const { text, html } = await pageText(page);
      hasAll("/customers", text, s.mine.customers.flatMap((c) => [c.name, c.email]));
      noForeign("/customers", text + html, foreign);
    });

    await check(`${t}: /invoices/new offers exactly its own customers`, async () => {
      const res = await page.goto(`${BASE}/invoices/new`);
      assert(res.status() === 200, `status ${res.status()}`);
      const names = await page.$$eval('select[name="customerId"] option', (os) => os.filter((o) => o.value).map((o) => o.textContent));
      const expected = s.mine.customers.map((c) => c.name).sort();
      assert(JSON.stringify(names.sort()) === JSON.stringify(expected), `options ${JSON.stringify(names)}`);
      const { text, html } = await pageText(page);
      noForeign("/invoices/new", text + html, foreign);
    });

    await check(`${t}: the CSV export holds exactly its own invoices`, async () => {
      const res = await s.context.request.get(`${BASE}/export/invoices.csv`);
      assert(res.status() === 200, `status ${res.status()}`);
      assert(res.headers()["content-type"].startsWith("text/csv"), `content-type ${res.headers()["content-type"]}`);
      const csv = await res.text();
      fs.writeFileSync(path.join(OUT, `invoices-${t}.csv`), csv);
      const lines = csv.trim().split(/\r?\n/);
      assert(lines[0] === "number,customer,description,amount,status,issued_on", `header ${lines[0]}`);
      assert(lines.length - 1 === s.mine.invoices.length, `${lines.length - 1} rows for ${s.mine.invoices.length} invoices`);
      hasAll("the CSV", csv, [...s.mine.invoices.map((i) => i.number), s.created]);
      noForeign("the CSV", csv, foreign);
    });

    await check(`${t}: the other tenant's invoice ids are 404 (row security hides them)`, async () => {
      for (const id of [...s.foreign.ids].slice(0, 3)) {
        const res = await page.goto(`${BASE}/invoices/${id}`);
        assert(res.status() === 404, `/invoices/${id}: status ${res.status()}`);
        const { text, html } = await pageText(page);
        noForeign(`/invoices/${id}`, text + html, foreign);
      }
    });

    await check(`${t}: /careless explains the two careless routes`, async () => {
      const res = await page.goto(`${BASE}/careless`);
      assert(res.status() === 200, `status ${res.status()}`);
      noForeign("/careless", await page.content(), foreign);
    });

    await check(`${t}: careless "forgot to set the tenant" is refused by the database: 403`, async () => {
      const res = await page.goto(`${BASE}/careless/forgot-tenant`);
      assert(res.status() === 403, `status ${res.status()}`);
      await refusalPage(page);
      const { text, html } = await pageText(page);
      noForeign("/careless/forgot-tenant", text + html, foreign);
      noForeign("/careless/forgot-tenant (own rows)", text, s.mine.invoices.map((i) => i.number));
    });

    await check(`${t}: careless "tenantId from the query string" (?tenantId=${s.other.user.tenant}) is refused: 403`, async () => {
      const res = await page.goto(`${BASE}/careless/tenant-from-query?tenantId=${s.other.user.tenant}`);
      assert(res.status() === 403, `status ${res.status()}`);
      await refusalPage(page);
      const { text, html } = await pageText(page);
      noForeign("/careless/tenant-from-query", text + html, foreign);
    });
  }

  const [alice] = sessions;
  await check(`acme: a forged token for globex in the query string (signed with a wrong key) is refused: 403`, async () => {
    const forged = tenantToken("globex", "not-the-server-key-not-the-server-key");
    const res = await alice.page.goto(`${BASE}/careless/tenant-from-query?tenantId=${encodeURIComponent(forged)}`);
    assert(res.status() === 403, `status ${res.status()}`);
    await refusalPage(alice.page);
    noForeign("forged token", await alice.page.content(), alice.foreign.markers);
  });

  for (const s of sessions) {
    await check(`${s.user.tenant}: no response the app sent this browser (pages, RSC and server action payloads, CSV) carries the other tenant's objects`, async () => {
      const all = (await Promise.all(s.responses)).filter(Boolean);
      assert(all.length >= 15, `only ${all.length} responses recorded`);
      for (const r of all) noForeign(`${r.url} (${r.status})`, r.body, s.foreign.markers);
    });
  }

  await check("a session cookie edited in the browser is not accepted (HMAC verified on the server)", async () => {
    const [cookie] = (await alice.context.cookies(BASE)).filter((c) => c.name === "session");
    assert(cookie, "no session cookie");
    const [body, sig] = cookie.value.split(".");
    const data = JSON.parse(Buffer.from(body, "base64url").toString());
    const forgedBody = Buffer.from(JSON.stringify({ ...data, uid: "u-bob" })).toString("base64url");
    const context = await browser.newContext();
    await context.addCookies([{ ...cookie, value: `${forgedBody}.${sig}` }]);
    const page = await context.newPage();
    await page.goto(`${BASE}/invoices`);
    assert(page.url() === `${BASE}/sign-in`, `the edited cookie reached ${page.url()}`);
    await context.close();
  });

  await check("tenant_guard.audit_log has both careless routes, and no other refusal of the app", async () => {
    const expect = (rows) => ({
      forgot: rows.filter((r) => r.event === "denied" && r.reason === "no_claim" && r.query.includes("careless: forgot the tenant")).length,
      malformed: rows.filter((r) => r.event === "token_rejected" && r.reason === "malformed").length,
      forged: rows.filter((r) => r.event === "token_rejected" && r.reason === "bad_signature").length,
    });
    let rows = [];
    let got = {};
    for (let i = 0; i < 50; i++) { // the audit writer stores events within about 100 ms
      ({ rows } = await superuser.query(
        `SELECT id, event, reason, relations::text, command, role, application_name, coalesce(query, '') AS query
           FROM tenant_guard.audit_log WHERE at >= $1 AND role = $2 ORDER BY id`, [startedAt, APP_ROLE]));
      got = expect(rows);
      if (got.forgot >= 2 && got.malformed >= 2 && got.forged >= 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const r of rows) console.log(`      audit: ${r.event} ${r.reason} ${r.relations} ${r.command} role=${r.role} app=${r.application_name} ${r.query.slice(0, 60)}`);
    assert(got.forgot === 2, `expected 2 denied/no_claim events of /careless/forgot-tenant, got ${got.forgot}`);
    assert(got.malformed === 2, `expected 2 token_rejected/malformed events of /careless/tenant-from-query, got ${got.malformed}`);
    assert(got.forged === 1, `expected 1 token_rejected/bad_signature event, got ${got.forged}`);
    assert(rows.length === 5, `${rows.length - 5} other events of ${APP_ROLE}: the careful pages were refused somewhere`);
  });

  await check("screenshots: both sessions side by side, on their invoices and on a careless route", async () => {
    const written = [];
    for (const [name, url] of [
      ["side-by-side", () => "/invoices"],
      ["careless-refused", (s) => `/careless/tenant-from-query?tenantId=${s.other.user.tenant}`],
    ]) {
      const file = await sideBySide(browser, sessions, name, url);
      written.push(file);
      if (DOCS_PNG) {
        const docs = name === "side-by-side" ? DOCS_PNG : DOCS_PNG.replace(/side-by-side/, name);
        fs.copyFileSync(file, docs);
        written.push(docs);
      }
    }
    console.log(`      wrote ${written.join(", ")}`);
  });

  await check("signing out ends the session", async () => {
    await alice.page.goto(`${BASE}/invoices`);
    await Promise.all([alice.page.waitForURL(/\/sign-in$/), alice.page.click("header form button")]);
    await alice.page.goto(`${BASE}/invoices`);
    assert(alice.page.url() === `${BASE}/sign-in`, `still signed in: ${alice.page.url()}`);
  });
}

try {
  await main();
} catch (err) {
  failed++;
  console.log(`FAIL  the e2e test stopped: ${String(err?.stack ?? err)}`);
} finally {
  await appPool.end().catch(() => {});
  await superuser.end().catch(() => {});
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
