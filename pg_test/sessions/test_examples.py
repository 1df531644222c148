"""Runs every client example in examples/ against the fixture's database and checks what it
prints: each tenant sees exactly its own rows, a write for another tenant and the careless
"forgot the claim" call are refused with 42501, bad tokens are refused without being echoed.

    examples/psycopg/example.py          psycopg 3, set_config(..., true) per transaction
    examples/node-postgres/index.js      node-postgres, the same
    examples/node-postgres/token.js      node-postgres with a signed token (node:crypto)
    examples/token/token_example.py      psycopg with a signed token (hmac), require_token = on
    examples/prisma/index.ts             Prisma ORM 7 + @prisma/adapter-pg: $transaction forms

The Node.js examples need their packages: scripts/setup.sh runs `npm ci` in examples/node-postgres
and examples/prisma. Each example prints lines `label -> result`; a result is the JSON list of
[tenant_id, amount] rows or `refused SQLSTATE: message`.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import psycopg

from harness import (ACME_AMOUNTS, APP, DBNAME, GLOBEX_AMOUNTS, SUPERUSER, check, system_settings)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples")
NO_CLAIM = "refused 42501: tenant_guard: no tenant claim is set for protected table public.invoices"
STALE_CLAIM = "refused 42501: tenant_guard: no tenant claim is set in this transaction for protected table public.invoices"
POLICY = 'refused 42501: new row violates row-level security policy for table "invoices"'
TOKEN_KID = "k1"
TOKEN_SECRET = "examples-secret-0123456789abcdef"


def example_env(fx, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGHOST=fx.cfg.host, PGPORT=str(fx.cfg.port), PGUSER=APP, PGDATABASE=DBNAME,
               PGCONNECT_TIMEOUT="10", PGOPTIONS="-c statement_timeout=20000")
    host = fx.cfg.host
    if host.startswith("/"):
        url = f"postgresql://{APP}@localhost:{fx.cfg.port}/{DBNAME}?host={host}"
    else:
        url = f"postgresql://{APP}@{host}:{fx.cfg.port}/{DBNAME}"
    env["DATABASE_URL"] = url
    env.update(extra)
    return env


def run_example(cmd, cwd, env, timeout=120):
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except FileNotFoundError as e:
        raise AssertionError(f"cannot run {cmd[0]}: {e}")
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{' '.join(cmd)} did not finish within {timeout} s")
    check(p.returncode == 0, f"{' '.join(cmd)} exited with {p.returncode}: "
                             f"{p.stderr.strip()[-1500:]} | stdout: {p.stdout.strip()[-500:]}")
    return p.stdout


def results(out):
    """{label: result} from the example's `label -> result` lines."""
    found = {}
    for line in out.splitlines():
        if " -> " in line:
            label, result = line.split(" -> ", 1)
            found[label.strip()] = result.strip()
    return found


def rows_of(found, label):
    check(label in found, f"the example printed no line {label!r}: {found!r}")
    text = found[label]
    check(not text.startswith("refused"), f"{label}: refused, expected rows: {text}")
    return [tuple(r) for r in json.loads(text)]


def sees_exactly(found, label, tenant, amounts):
    rows = rows_of(found, label)
    others = [r for r in rows if r[0] != tenant]
    check(not others, f"LEAK: {label}: rows of other tenants {others!r}")
    check(sorted(r[1] for r in rows) == sorted(amounts), f"{label}: amounts {rows!r}, expected {amounts}")


def is_refused(found, label, expected):
    check(label in found, f"the example printed no line {label!r}: {found!r}")
    check(found[label] == expected, f"{label}: {found[label]!r}, expected {expected!r}")


def need_node_modules(example):
    check(shutil.which("node"), "node is not installed (the Node.js examples need Node.js 20.19 or later)")
    modules = os.path.join(EXAMPLES, example, "node_modules")
    check(os.path.isdir(modules), f"{modules} is missing: run scripts/setup.sh (npm ci in examples/{example})")


def server_log_from_now():
    """Returns a function that gives the server log written since this call ('' when the
    cluster directory is not known: TG_CLUSTER_DIR)."""
    d = os.environ.get("TG_CLUSTER_DIR")
    check(d, "TG_CLUSTER_DIR is not set: the token examples check that no token reaches the server "
             "log; run the suite as scripts/test does, or with TG_CLUSTER_DIR=<cluster dir>")
    path = os.path.join(d, "server.log")
    check(os.path.exists(path), f"{path} does not exist (TG_CLUSTER_DIR={d})")
    start = os.path.getsize(path)

    def since():
        with open(path, "rb") as f:
            f.seek(start)
            return f.read().decode(errors="replace")

    return since


def token_events(fx, expected, timeout=5):
    """The token_rejected events of the fixture's database, once `expected` of them are written."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(**fx.cfg.conninfo(SUPERUSER, DBNAME), autocommit=True) as c:
        while True:
            rows = c.execute("SELECT reason, query, a::text FROM tenant_guard.audit_log a "
                             "WHERE event = 'token_rejected' ORDER BY id").fetchall()
            if len(rows) >= expected or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)


def check_token_example_output(found, require_token):
    sees_exactly(found, "acme", "acme", ACME_AMOUNTS)
    sees_exactly(found, "globex", "globex", GLOBEX_AMOUNTS)
    is_refused(found, "expired token", "refused 42501: tenant_guard: tenant token rejected: it has expired")
    is_refused(found, "forged token",
               "refused 42501: tenant_guard: tenant token rejected: its signature does not match any configured key")
    for label, text in found.items():
        check("eyJ" not in text, f"{label}: the output echoes a token: {text!r}")
    if require_token:
        is_refused(found, "direct set_config",
                   "refused 42501: tenant_guard: the tenant claim can only be set with "
                   "tenant_guard.set_tenant_token() (tenant_guard.require_token = on)")


def check_no_token_kept(fx, log_since, rejections):
    events = token_events(fx, rejections)
    check(len(events) >= rejections, f"expected {rejections} token_rejected events, found {len(events)}")
    for reason, query, text in events:
        check(query is None, f"a token_rejected event kept query text: {query!r}")
        check("eyJ" not in text, f"a token_rejected event holds a token: {text}")
    log = log_since()
    check("tenant token rejected" in log, "the server log has no line about the rejected tokens")
    check("eyJ" not in log, "the server log holds a token: " + " | ".join(
        line for line in log.splitlines() if "eyJ" in line)[:500])


# -----------------------------------------------------------------------------------------------

def test_example_psycopg(fx):
    out = run_example([sys.executable, "example.py"], os.path.join(EXAMPLES, "psycopg"), example_env(fx))
    found = results(out)
    sees_exactly(found, "acme", "acme", ACME_AMOUNTS)
    sees_exactly(found, "globex", "globex", GLOBEX_AMOUNTS)
    is_refused(found, "acme writes a globex row", POLICY)
    is_refused(found, "forgot the claim", NO_CLAIM)
    is_refused(found, "stale session claim", STALE_CLAIM)
    check(fx.all_rows() == [("acme", 10), ("acme", 20), ("acme", 30), ("globex", 1000), ("globex", 2000),
                            ("", 99999)], f"the example changed the table: {fx.all_rows()!r}")


def test_example_node_postgres(fx):
    need_node_modules("node-postgres")
    out = run_example(["node", "index.js"], os.path.join(EXAMPLES, "node-postgres"), example_env(fx))
    found = results(out)
    sees_exactly(found, "acme", "acme", ACME_AMOUNTS)
    sees_exactly(found, "globex", "globex", GLOBEX_AMOUNTS)
    is_refused(found, "acme writes a globex row", POLICY)
    is_refused(found, "forgot the claim", NO_CLAIM)
    is_refused(found, "stale session claim", STALE_CLAIM)
    check(len(fx.all_rows()) == 6, "the example changed the table")


def test_example_token_python_with_require_token(fx):
    since = server_log_from_now()
    with system_settings(fx.cfg, tenant_guard__token_keys=f"{TOKEN_KID}:{TOKEN_SECRET}",
                         tenant_guard__require_token="on"):
        out = run_example([sys.executable, "token_example.py"], os.path.join(EXAMPLES, "token"),
                          example_env(fx, TG_TOKEN_KID=TOKEN_KID, TG_TOKEN_SECRET=TOKEN_SECRET))
    found = results(out)
    check_token_example_output(found, require_token=True)
    is_refused(found, "token signed with another key",
               "refused 42501: tenant_guard: tenant token rejected: its signature does not match any configured key")
    check_no_token_kept(fx, since, rejections=3)


def test_example_token_node(fx):
    need_node_modules("node-postgres")
    since = server_log_from_now()
    with system_settings(fx.cfg, tenant_guard__token_keys=f"{TOKEN_KID}:{TOKEN_SECRET}"):
        out = run_example(["node", "token.js"], os.path.join(EXAMPLES, "node-postgres"),
                          example_env(fx, TG_TOKEN_KID=TOKEN_KID, TG_TOKEN_SECRET=TOKEN_SECRET))
    found = results(out)
    check_token_example_output(found, require_token=False)
    check_no_token_kept(fx, since, rejections=2)


def test_example_prisma(fx):
    need_node_modules("prisma")
    cwd = os.path.join(EXAMPLES, "prisma")
    tmp = tempfile.mkdtemp(prefix="tg_prisma_")
    try:
        # `prisma generate` needs no schema engine, but Prisma's CLI downloads one first unless
        # PRISMA_SCHEMA_ENGINE_BINARY names one; only the package registries are reachable here,
        # so it names a stub that fails loudly if anything ever runs it.
        stub = os.path.join(tmp, "schema-engine-unavailable")
        with open(stub, "w") as f:
            f.write("#!/bin/sh\necho 'schema engine not available (tenant_guard examples only generate)' >&2\nexit 1\n")
        os.chmod(stub, 0o755)
        env = example_env(fx, CHECKPOINT_DISABLE="1", PRISMA_HIDE_UPDATE_MESSAGE="1")
        env.setdefault("PRISMA_SCHEMA_ENGINE_BINARY", stub)
        run_example(["npx", "--no-install", "prisma", "generate"], cwd, env)
        out = run_example(["npx", "--no-install", "tsx", "index.ts"], cwd, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    found = results(out)
    for form in ("interactive", "batch", "extension"):
        sees_exactly(found, f"acme ({form})", "acme", ACME_AMOUNTS)
        sees_exactly(found, f"globex ({form})", "globex", GLOBEX_AMOUNTS)
    is_refused(found, "acme writes a globex row", POLICY)
    is_refused(found, "forgot the claim", NO_CLAIM)
    check(len(fx.all_rows()) == 6, "the example changed the table")


def test_token_keys_configured_as_documented_never_reach_the_server_log(fx):
    """docs/claims.md configures the keys with ALTER SYSTEM SET tenant_guard.token_keys and
    pg_reload_conf(). Whoever reads the server log (log shipping, support bundles) must not get
    the key: not from the reload, not from a rejection, not when the keys are removed again."""
    since = server_log_from_now()
    secret = "log-probe-secret-0123456789abcdef"
    with system_settings(fx.cfg, tenant_guard__token_keys=f"k7:{secret}"):
        with psycopg.connect(**fx.cfg.conninfo(APP, DBNAME), autocommit=True) as c:
            try:
                c.execute("SELECT tenant_guard.set_tenant_token(%s)", ("not-a-token",))
            except psycopg.Error as e:
                check(e.sqlstate == "42501", f"expected 42501, got {e.sqlstate}")
    time.sleep(0.3)   # the postmaster logs the reload asynchronously
    log = since()
    leaked = [line for line in log.splitlines() if secret in line]
    check(not leaked, "the server log holds the token key: " + " | ".join(leaked)[:600])
