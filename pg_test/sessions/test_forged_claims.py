"""A claim cannot come from outside the application's own transaction: connection options,
start-up parameters, ALTER ROLE/DATABASE ... SET, stored function SET clauses, ALTER SYSTEM.
"""

import psycopg

from harness import (APP, DBNAME, check, expect_one, no_claim, refused, run,
                     sees_only, startup_error)

CLIENT_REFUSAL = "tenant_guard: the tenant claim cannot come from connection options"
STORED_REFUSAL = "tenant_guard: the tenant claim cannot come from a stored setting"


def test_connection_options_claim_is_refused(fx):
    # Through libpq (PGOPTIONS / options=): the connection fails, naming tenant_guard.
    try:
        c = psycopg.connect(**fx.cfg.conninfo(APP, DBNAME), options="-c tenant_guard.tenant_id=acme")
    except psycopg.OperationalError as e:
        text = str(e)
        check(CLIENT_REFUSAL in text, f"connection refused for another reason: {text!r}")
        check("FATAL" in text, f"expected a FATAL start-up error: {text!r}")
    else:
        shown = c.execute("SHOW tenant_guard.tenant_id").fetchone()[0]
        c.close()
        raise AssertionError(f"connection with a claim in its options was accepted (claim {shown!r})")
    # The same through the raw protocol, to pin the SQLSTATE libpq does not expose.
    for params in (
        {"user": APP, "database": DBNAME, "options": "-c tenant_guard.tenant_id=acme"},
        {"user": APP, "database": DBNAME, "options": "--tenant_guard.tenant_id=acme"},
        # a GUC given as a start-up packet parameter of its own (also PGC_S_CLIENT)
        {"user": APP, "database": DBNAME, "tenant_guard.tenant_id": "acme"},
        # the superuser is no different
        {"user": "postgres", "database": DBNAME, "options": "-c tenant_guard.tenant_id=acme"},
    ):
        err = startup_error(fx.cfg, params)
        check(err is not None, f"start-up with {params!r} was accepted")
        check(err.get("C") == "42501", f"{params!r}: SQLSTATE {err.get('C')!r}, message {err.get('M')!r}")
        check(err.get("S") == "FATAL", f"{params!r}: severity {err.get('S')!r}")
        check(err.get("M", "").startswith(CLIENT_REFUSAL), f"{params!r}: message {err.get('M')!r}")
        check("SET LOCAL tenant_guard.tenant_id" in err.get("H", ""), f"{params!r}: hint {err.get('H')!r}")


def test_connection_options_empty_claim_is_accepted_and_unset(fx):
    c = fx.connect(APP, options="-c tenant_guard.tenant_id=")
    expect_one(c, "SHOW tenant_guard.tenant_id", "")
    no_claim(c, stale=False)


def test_app_cannot_widen_claim_scope_or_turn_the_guard_off(fx):
    """claim_scope and enforce are superuser settings: not from the application's SET, nor from
    its connection options."""
    app = fx.app()
    for name, value in (("claim_scope", "session"), ("enforce", "off"), ("enforce", "shadow")):
        refused(app, f"SET tenant_guard.{name} = {value}", sqlstate="42501", prefix=None,
                contains=f"tenant_guard.{name}")
        err = startup_error(fx.cfg, {"user": APP, "database": DBNAME,
                                     "options": f"-c tenant_guard.{name}={value}"})
        check(err is not None and err.get("C") == "42501",
              f"options -c tenant_guard.{name}={value}: {err!r}")
    # Nor as a default of its own role.
    su = fx.su()
    try:
        refused(app, "ALTER ROLE tg_app SET tenant_guard.claim_scope = 'session'", sqlstate="42501",
                prefix=None, contains="tenant_guard.claim_scope")
    finally:
        run(su, "ALTER ROLE tg_app RESET tenant_guard.claim_scope")
    # So a session-level claim stays stale, in this session and in a new one.
    run(app, "SET tenant_guard.tenant_id = 'acme'")
    no_claim(app, stale=True)
    fresh = fx.app()
    expect_one(fresh, "SHOW tenant_guard.claim_scope", "transaction")


def test_alter_role_and_database_set_claim_are_refused(fx):
    su = fx.su()
    app = fx.app()
    statements = [
        (su, "ALTER ROLE tg_app SET tenant_guard.tenant_id = 'acme'"),
        (su, f"ALTER ROLE tg_app IN DATABASE {DBNAME} SET tenant_guard.tenant_id = 'acme'"),
        (su, "ALTER ROLE ALL SET tenant_guard.tenant_id = 'acme'"),
        (su, f"ALTER DATABASE {DBNAME} SET tenant_guard.tenant_id = 'acme'"),
        # the application role on itself (allowed by PostgreSQL for USERSET settings)
        (app, "ALTER ROLE tg_app SET tenant_guard.tenant_id = 'acme'"),
        (app, "ALTER ROLE CURRENT_USER SET tenant_guard.tenant_id = 'globex'"),
    ]
    try:
        for conn, sql in statements:
            refused(conn, sql, contains=STORED_REFUSAL)
    finally:
        # Nothing may be stored; clean up in case something was (other suites share the roles).
        stored = run(su, """SELECT coalesce(r.rolname, '*'), coalesce(d.datname, '*'), s.setconfig::text
                              FROM pg_db_role_setting s
                              LEFT JOIN pg_roles r ON r.oid = s.setrole
                              LEFT JOIN pg_database d ON d.oid = s.setdatabase
                             WHERE s.setconfig::text LIKE '%tenant_guard.tenant_id%'""")
        if stored:
            run(su, "ALTER ROLE tg_app RESET tenant_guard.tenant_id")
            run(su, "ALTER ROLE ALL RESET tenant_guard.tenant_id")
            run(su, f"ALTER DATABASE {DBNAME} RESET tenant_guard.tenant_id")
            run(su, f"ALTER ROLE tg_app IN DATABASE {DBNAME} RESET tenant_guard.tenant_id")
    check(stored == [], f"a claim was stored as a role/database default: {stored!r}")
    # A new session of the role starts without a claim.
    fresh = fx.app()
    expect_one(fresh, "SHOW tenant_guard.tenant_id", "")
    no_claim(fresh, stale=False)


def test_function_set_clause_claim_is_refused(fx):
    app = fx.app()
    refused(app, """CREATE FUNCTION pg_temp.as_acme() RETURNS bigint LANGUAGE sql
                    SET tenant_guard.tenant_id = 'acme' AS $$ SELECT count(*) FROM invoices $$""",
            contains=STORED_REFUSAL)
    run(app, """CREATE FUNCTION pg_temp.plain() RETURNS bigint LANGUAGE sql
                AS $$ SELECT count(*) FROM invoices $$""")
    refused(app, "ALTER FUNCTION pg_temp.plain() SET tenant_guard.tenant_id = 'acme'", contains=STORED_REFUSAL)
    # SET ... FROM CURRENT would capture a claim in force now.
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    refused(app, "ALTER FUNCTION pg_temp.plain() SET tenant_guard.tenant_id FROM CURRENT", contains=STORED_REFUSAL)
    run(app, "ROLLBACK")
    # The same for the superuser, whose functions others may call.
    su = fx.su()
    refused(su, """CREATE FUNCTION public.as_globex() RETURNS bigint LANGUAGE sql SECURITY DEFINER
                   SET tenant_guard.tenant_id = 'globex' AS $$ SELECT 1::bigint $$""",
            contains=STORED_REFUSAL)
    # With check_function_bodies off (as in a pg_dump restore) too.
    run(su, "SET check_function_bodies = off")
    refused(su, """CREATE FUNCTION public.as_globex() RETURNS bigint LANGUAGE sql
                   SET tenant_guard.tenant_id = 'globex' AS $$ SELECT 1::bigint $$""",
            contains=STORED_REFUSAL)
    no_claim(app, "SELECT pg_temp.plain()", stale=False)


def test_alter_system_claim_is_refused(fx):
    su = fx.su()
    e = refused(su, "ALTER SYSTEM SET tenant_guard.tenant_id = 'acme'", sqlstate="55P02", prefix=None,
                contains="tenant_guard.tenant_id")
    check("cannot be changed" in e.diag.message_primary, e.diag.message_primary)
    rows = run(su, "SELECT name FROM pg_file_settings WHERE name = 'tenant_guard.tenant_id'")
    check(rows == [], f"a claim reached the configuration files: {rows!r}")


def test_superuser_set_role_app_is_filtered_like_the_app(fx):
    """An ops session that drops to tg_app (SET ROLE) is the application: claim needed, filtered."""
    su = fx.su()
    run(su, "SET ROLE tg_app")
    no_claim(su, stale=False)
    run(su, "BEGIN")
    run(su, "SET LOCAL tenant_guard.tenant_id = 'globex'")
    sees_only(su, "globex", "SELECT tenant_id, amount FROM invoices")
    run(su, "COMMIT")
    run(su, "RESET ROLE")
    run(su, "BEGIN")
    run(su, "SET LOCAL tenant_guard.tenant_id = 'globex'")
    refused(su, "SELECT tenant_id FROM invoices", contains="bypasses row level security")
    run(su, "ROLLBACK")
