"""Transaction-mode pool simulation: ONE server connection (tg_app) shared by two clients one
after the other, with no reset in between (what PgBouncer in transaction mode does). Whatever
client 1 leaves on the connection (session-level claim, prepared statements, plan cache mode,
protocol-level prepared statements) must never hand acme's rows to client 2.
"""

from harness import (ACME_AMOUNTS, GLOBEX_AMOUNTS, check, expect_one, no_claim, refused, run,
                     sees_none_of, sees_only)

Q = "SELECT tenant_id, amount FROM invoices ORDER BY id"


def test_client_handoff_after_session_and_transaction_claims(fx):
    conn = fx.app()
    # client 1 (acme): a session-level claim and a transaction-level claim, then COMMIT.
    run(conn, "SET tenant_guard.tenant_id = 'acme'")
    run(conn, "BEGIN")
    run(conn, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    sees_only(conn, "acme", Q, amounts=ACME_AMOUNTS)
    run(conn, "INSERT INTO invoices (tenant_id, amount) VALUES ('acme', 40)")
    run(conn, "COMMIT")
    # client 2: no claim -> refused, in autocommit and in an explicit transaction, for every
    # kind of statement; never one of client 1's rows.
    no_claim(conn, Q, stale=True)
    no_claim(conn, "SELECT count(*) FROM invoices", stale=True)
    no_claim(conn, "SELECT * FROM invoices WHERE tenant_id = 'acme'", stale=True)
    no_claim(conn, "UPDATE invoices SET amount = 0 RETURNING *", stale=True)
    no_claim(conn, "DELETE FROM invoices RETURNING *", stale=True)
    no_claim(conn, "INSERT INTO invoices (tenant_id, amount) VALUES ('acme', 1) RETURNING *", stale=True)
    run(conn, "BEGIN")
    no_claim(conn, Q, stale=True)
    run(conn, "ROLLBACK")
    # client 2 with its own claim sees only its own rows.
    run(conn, "BEGIN")
    run(conn, "SET LOCAL tenant_guard.tenant_id = 'globex'")
    sees_only(conn, "globex", Q, amounts=GLOBEX_AMOUNTS)
    sees_none_of(conn, "acme", "SELECT * FROM invoices WHERE tenant_id = 'acme'")
    run(conn, "COMMIT")
    # The insert of client 1 landed, for acme only (ground truth).
    check(sorted(a for t, a in fx.all_rows() if t == "acme") == sorted(ACME_AMOUNTS + [40]),
          "client 1's insert did not land as acme")


def test_client_handoff_of_prepared_statements(fx):
    conn = fx.app()
    # client 1 forces generic plans (session-level, left behind) and prepares statements.
    run(conn, "SET plan_cache_mode = force_generic_plan")
    run(conn, "PREPARE all_rows AS SELECT tenant_id, amount FROM invoices ORDER BY id")
    run(conn, "PREPARE by_tenant(text) AS SELECT tenant_id, amount FROM invoices WHERE tenant_id = $1")
    run(conn, "PREPARE add(text, int) AS INSERT INTO invoices (tenant_id, amount) VALUES ($1, $2) RETURNING tenant_id")
    for _ in range(6):                 # well past the point where plans are cached
        run(conn, "BEGIN")
        run(conn, "SET LOCAL tenant_guard.tenant_id = 'acme'")
        sees_only(conn, "acme", "EXECUTE all_rows", amounts=ACME_AMOUNTS)
        sees_only(conn, "acme", "EXECUTE by_tenant('acme')", amounts=ACME_AMOUNTS)
        run(conn, "COMMIT")
    run(conn, "SET tenant_guard.tenant_id = 'acme'")   # and a session claim, left behind
    # client 2, no claim: every prepared statement of client 1 is refused.
    no_claim(conn, "EXECUTE all_rows", stale=True)
    no_claim(conn, "EXECUTE by_tenant('acme')", stale=True)
    no_claim(conn, "EXECUTE add('acme', 1)", stale=True)
    run(conn, "RESET tenant_guard.tenant_id")
    no_claim(conn, "EXECUTE all_rows", stale=False)
    # client 2 with its own claim, executing client 1's prepared statements: only globex rows.
    run(conn, "BEGIN")
    run(conn, "SET LOCAL tenant_guard.tenant_id = 'globex'")
    sees_only(conn, "globex", "EXECUTE all_rows", amounts=GLOBEX_AMOUNTS)
    sees_none_of(conn, "acme", "EXECUTE by_tenant('acme')")
    refused(conn, "EXECUTE add('acme', 1)", contains="row-level security", prefix=None)
    run(conn, "ROLLBACK")
    run(conn, "BEGIN")
    run(conn, "SET LOCAL tenant_guard.tenant_id = 'globex'")
    expect_one(conn, "EXECUTE add('globex', 3000)", "globex")
    run(conn, "COMMIT")
    check(sorted(a for t, a in fx.all_rows() if t == "globex") == sorted(GLOBEX_AMOUNTS + [3000]),
          "globex insert through client 1's prepared statement did not land")
    check(sorted(a for t, a in fx.all_rows() if t == "acme") == sorted(ACME_AMOUNTS),
          "acme rows changed")


def test_client_handoff_of_protocol_level_prepared_statements(fx):
    """psycopg's server-side prepared statements (extended protocol Parse/Bind, named), reused
    by the next client of the same connection."""
    conn = fx.app()
    conn.prepare_threshold = 5         # psycopg's default; prepare=True below forces preparation
    q = "SELECT tenant_id, amount FROM invoices WHERE amount > %s ORDER BY id"
    for _ in range(6):
        run(conn, "BEGIN")
        run(conn, "SET LOCAL tenant_guard.tenant_id = 'acme'")
        rows = conn.execute(q, (0,), prepare=True).fetchall()
        check([r[0] for r in rows] == ["acme"] * len(ACME_AMOUNTS), f"client 1 rows {rows!r}")
        run(conn, "COMMIT")
    prepared = run(conn, "SELECT count(*) FROM pg_prepared_statements")[0][0]
    check(prepared >= 1, "psycopg did not prepare the statement server-side")
    # client 2, no claim
    try:
        rows = conn.execute(q, (0,), prepare=True).fetchall()
    except Exception as e:
        check(getattr(e, "sqlstate", None) == "42501", f"expected 42501, got {e!r}")
        check(str(e.diag.message_primary).startswith("tenant_guard:"), f"message {e.diag.message_primary!r}")
    else:
        raise AssertionError(f"LEAK: client 2 without a claim got {rows!r}")
    # client 2, globex
    run(conn, "BEGIN")
    run(conn, "SET LOCAL tenant_guard.tenant_id = 'globex'")
    rows = conn.execute(q, (0,), prepare=True).fetchall()
    check(sorted(r[1] for r in rows) == sorted(GLOBEX_AMOUNTS) and {r[0] for r in rows} == {"globex"},
          f"client 2 (globex) got {rows!r}")
    run(conn, "COMMIT")


def test_client_handoff_of_cursors(fx):
    """A cursor is the other thing that can outlive a transaction: WITH HOLD is refused in
    transaction scope; a plain cursor ends with client 1's transaction."""
    conn = fx.app()
    run(conn, "BEGIN")
    run(conn, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    refused(conn, "DECLARE held CURSOR WITH HOLD FOR SELECT tenant_id, amount FROM invoices",
            contains="WITH HOLD cursor over protected table public.invoices")
    run(conn, "ROLLBACK")
    run(conn, "BEGIN")
    run(conn, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    run(conn, "DECLARE plain CURSOR FOR SELECT tenant_id, amount FROM invoices")
    sees_only(conn, "acme", "FETCH 1 FROM plain")
    run(conn, "COMMIT")
    # client 2 cannot fetch it, and cannot hold a cursor over a protected table either.
    refused(conn, "FETCH ALL FROM plain", sqlstate="34000", prefix=None)
    check(run(conn, "SELECT count(*) FROM pg_cursors")[0][0] == 0, "a cursor survived the transaction")
    refused(conn, "DECLARE held CURSOR WITH HOLD FOR SELECT tenant_id, amount FROM invoices",
            contains="WITH HOLD cursor over protected table public.invoices")


def test_client_handoff_after_an_aborted_transaction(fx):
    conn = fx.app()
    run(conn, "BEGIN")
    run(conn, "SET tenant_guard.tenant_id = 'acme'")
    sees_only(conn, "acme", Q)
    refused(conn, "SELECT 1/0", sqlstate="22012", prefix=None)
    run(conn, "ROLLBACK")
    expect_one(conn, "SHOW tenant_guard.tenant_id", "")
    no_claim(conn, Q, stale=False)


def test_pipelined_statements_share_one_implicit_transaction(fx):
    """Extended-protocol pipelining (what poolers pass through): statements before a Sync are one
    implicit transaction, so a claim set there covers them; after the Sync it is stale."""
    conn = fx.app()
    with conn.pipeline() as p:
        conn.execute("SELECT tenant_guard.set_tenant('acme')")
        cur = conn.execute("SELECT tenant_id, amount FROM invoices ORDER BY id")
        p.sync()
        rows = cur.fetchall()
    check(sorted(r[1] for r in rows) == sorted(ACME_AMOUNTS) and {r[0] for r in rows} == {"acme"},
          f"pipelined read under acme: {rows!r}")
    with conn.pipeline() as p:
        conn.execute("SELECT set_config('tenant_guard.tenant_id', 'acme', false)")
        p.sync()
    # The next client of the connection, through the pipeline or not.
    try:
        with conn.pipeline() as p:
            cur = conn.execute("SELECT tenant_id, amount FROM invoices")
            p.sync()
            leaked = cur.fetchall()
    except Exception as e:
        check(getattr(e, "sqlstate", None) == "42501", f"expected 42501, got {e!r}")
        check(str(e.diag.message_primary).startswith("tenant_guard:"), f"message {e.diag.message_primary!r}")
    else:
        raise AssertionError(f"LEAK: pipelined read after the Sync returned {leaked!r}")
    no_claim(conn, Q, stale=True)
