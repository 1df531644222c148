"""protect()/unprotect() in one session take effect in sessions that are already open.

The guard keeps a per-backend cache of protected tables; these tests pin that the cache of
*another* backend follows the registry on its very next statement, without reconnecting, for
the application role and for a superuser, and whatever that backend's transaction did before.
"""

from harness import (ACME_AMOUNTS, GLOBEX_AMOUNTS, check, expect_one, no_claim, refused, run,
                     sees_none_of, sees_only)

ORDERS = [("acme", 1), ("acme", 2), ("globex", 3), ("globex", 4), ("globex", 5)]


def _all_tenants(rows):
    return sorted(r[0] for r in rows)


def test_protect_in_one_session_is_enforced_in_another_open_session(fx):
    fx.new_owned_table("orders", ORDERS)
    app = fx.app()                     # session 2, opened before protect()
    q = "SELECT tenant_id, amount FROM orders ORDER BY id"
    # Unprotected: tg_app reads every tenant without a claim (the table is not tenant-scoped yet).
    check(_all_tenants(run(app, q)) == ["acme", "acme", "globex", "globex", "globex"],
          "unprotected table not readable as expected")
    owner = fx.owner()                 # session 1
    expect_one(owner, "SELECT tenant_guard.protect('orders')", "protected public.orders on \"tenant_id\" (text)")
    # Session 2's very next statement, the same statement, no reconnect: refused.
    no_claim(app, q, stale=False, table="public.orders")
    # And with a claim it sees only its tenant.
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    sees_only(app, "acme", q, amounts=[1, 2])
    sees_none_of(app, "globex", "SELECT tenant_id FROM orders WHERE tenant_id = 'globex'")
    run(app, "COMMIT")


def test_unprotect_in_one_session_is_seen_by_another_open_session(fx):
    app = fx.app()
    q = "SELECT tenant_id, amount FROM invoices ORDER BY id"
    no_claim(app, q, stale=False)
    owner = fx.owner()
    expect_one(owner, "SELECT tenant_guard.unprotect('invoices', 'sessions test: shared table now')",
               "unprotected public.invoices")
    # Session 2's next statement works without a claim (unprotect restores RLS as it was: off).
    rows = run(app, q)
    check(len(rows) == len(ACME_AMOUNTS) + len(GLOBEX_AMOUNTS) + 1,
          f"after unprotect, tg_app should read every row without a claim, got {rows!r}")
    # Protect again in session 1: session 2 is refused again on its next statement.
    owner.execute("SELECT tenant_guard.protect('invoices')")
    no_claim(app, q, stale=False)


def test_protect_is_enforced_in_an_open_read_committed_transaction(fx):
    """Session 2 is inside a READ COMMITTED transaction (it already ran statements, on another
    table: reading the table itself would hold a lock protect() waits for) when session 1
    protects a table: its next statement in that same transaction is guarded."""
    fx.new_owned_table("orders", ORDERS)
    app = fx.app()
    run(app, "BEGIN")
    run(app, "SELECT count(*) FROM pg_catalog.pg_class")
    owner = fx.owner()
    owner.execute("SELECT tenant_guard.protect('orders')")
    no_claim(app, "SELECT tenant_id FROM orders", stale=False, table="public.orders")
    run(app, "ROLLBACK")


def test_superuser_with_claim_is_refused(fx):
    su = fx.su()
    no_claim(su, stale=False)
    run(su, "BEGIN")
    run(su, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    refused(su, "SELECT tenant_id, amount FROM invoices", contains='role "postgres" bypasses row level security')
    run(su, "ROLLBACK")
    # Every route of the superuser is refused, with set_tenant() too.
    run(su, "BEGIN")
    expect_one(su, "SELECT tenant_guard.set_tenant('globex')", "globex")
    refused(su, "SELECT count(*) FROM invoices", contains="bypasses row level security")
    run(su, "ROLLBACK")


def test_table_protected_later_is_refused_for_an_open_superuser_session(fx):
    fx.new_owned_table("orders", ORDERS)
    su = fx.su()                       # session 2, superuser, open before protect()
    q = "SELECT tenant_id, amount FROM orders ORDER BY id"
    check(len(run(su, q)) == len(ORDERS), "superuser reads the unprotected table")
    owner = fx.owner()                 # session 1
    owner.execute("SELECT tenant_guard.protect('orders')")
    no_claim(su, q, stale=False, table="public.orders")
    run(su, "BEGIN")
    run(su, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    refused(su, q, contains="bypasses row level security and may not touch protected table public.orders")
    run(su, "ROLLBACK")


def test_protect_is_enforced_in_a_repeatable_read_transaction_opened_before(fx):
    """A superuser's REPEATABLE READ transaction took its snapshot before session 1 protected the
    table. The table is protected from the moment protect() commits (its policies and FORCE RLS
    are already visible to that transaction through the catalogs); the superuser, who is not
    filtered by those policies, must be refused, not handed every tenant's rows."""
    fx.new_owned_table("orders", ORDERS)
    su = fx.su()
    run(su, "BEGIN ISOLATION LEVEL REPEATABLE READ")
    run(su, "SELECT 1")                # the transaction snapshot is taken here
    owner = fx.owner()
    owner.execute("SELECT tenant_guard.protect('orders')")
    try:
        no_claim(su, "SELECT tenant_id, amount FROM orders", stale=False, table="public.orders")
    finally:
        run(su, "ROLLBACK")


def test_protect_is_enforced_after_a_repeatable_read_transaction_ends(fx):
    """Same start as above; whatever the REPEATABLE READ transaction saw, once it ends the
    session must see the table as protected (the per-backend registry cache must not stay
    stale for the rest of the session)."""
    fx.new_owned_table("orders", ORDERS)
    su = fx.su()
    run(su, "BEGIN ISOLATION LEVEL REPEATABLE READ")
    run(su, "SELECT 1")
    owner = fx.owner()
    owner.execute("SELECT tenant_guard.protect('orders')")
    try:
        run(su, "SELECT tenant_id FROM orders")   # whatever happens inside the old snapshot
    except Exception:
        pass
    run(su, "ROLLBACK")
    # New transaction, new snapshot: the superuser must be refused.
    no_claim(su, "SELECT tenant_id, amount FROM orders", stale=False, table="public.orders")


def test_app_hold_cursor_refused_after_a_repeatable_read_transaction_ends(fx):
    """The application-role face of the stale cache: after a REPEATABLE READ transaction that
    overlapped protect(), a WITH HOLD cursor (refused by the guard in transaction scope, because
    its rows outlive the claim on a pooled connection) must still be refused."""
    fx.new_owned_table("orders", ORDERS)
    app = fx.app()
    run(app, "BEGIN ISOLATION LEVEL REPEATABLE READ")
    run(app, "SELECT 1")
    owner = fx.owner()
    owner.execute("SELECT tenant_guard.protect('orders')")
    try:
        run(app, "SELECT count(*) FROM pg_class")
    finally:
        run(app, "ROLLBACK")
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    try:
        refused(app, "DECLARE c CURSOR WITH HOLD FOR SELECT tenant_id, amount FROM orders",
                contains="WITH HOLD cursor over protected table public.orders")
    finally:
        run(app, "ROLLBACK")


def test_new_partition_created_in_one_session_is_guarded_in_another(fx):
    """A partition created later by session 1 is protected (event trigger) and session 2, open
    before, needs a claim to read it directly and sees only its tenant through the parent."""
    owner = fx.owner()
    owner.execute("CREATE TABLE events (tenant_id text NOT NULL, n int) PARTITION BY LIST (tenant_id)")
    owner.execute("CREATE TABLE events_acme PARTITION OF events FOR VALUES IN ('acme')")
    owner.execute("CREATE INDEX ON events (tenant_id)")
    owner.execute("SELECT tenant_guard.protect('events')")
    owner.execute("GRANT SELECT, INSERT ON events TO tg_app")
    app = fx.app()
    no_claim(app, "SELECT * FROM events", stale=False, table="public.events")
    # Session 1 adds a partition for globex and fills both (as tg_owner with claims).
    owner.execute("CREATE TABLE events_globex PARTITION OF events FOR VALUES IN ('globex')")
    owner.execute("GRANT SELECT ON events_globex, events_acme TO tg_app")
    for tenant, n in (("acme", 1), ("globex", 2)):
        owner.execute("BEGIN")
        owner.execute("SELECT tenant_guard.set_tenant(%s)", (tenant,))
        owner.execute("INSERT INTO events VALUES (%s, %s)", (tenant, n))
        owner.execute("COMMIT")
    no_claim(app, "SELECT * FROM events_globex", stale=False, table="public.events_globex")
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    sees_only(app, "acme", "SELECT tenant_id, n FROM events")
    sees_none_of(app, "globex", "SELECT tenant_id, n FROM events_globex")
    run(app, "COMMIT")


def test_enforce_off_is_superuser_only_and_per_session(fx):
    """tenant_guard.enforce is SUSET: the application cannot turn the guard off, and a
    superuser turning it off in one session does not turn it off in another."""
    app = fx.app()
    refused(app, "SET tenant_guard.enforce = off", sqlstate="42501", prefix=None,
            contains="tenant_guard.enforce")
    refused(app, "SELECT set_config('tenant_guard.enforce', 'off', false)", sqlstate="42501", prefix=None)
    su = fx.su()
    run(su, "SET tenant_guard.enforce = off")
    no_claim(app, stale=False)
    su2 = fx.su()
    no_claim(su2, stale=False)


def test_unprotect_is_seen_after_a_repeatable_read_transaction_ends(fx):
    """The mirror image of the stale-cache case: a REPEATABLE READ transaction overlapping
    unprotect() must not leave the session refusing a table that is no longer protected."""
    app = fx.app()
    run(app, "BEGIN ISOLATION LEVEL REPEATABLE READ")
    run(app, "SELECT 1")
    owner = fx.owner()
    owner.execute("SELECT tenant_guard.unprotect('invoices', 'sessions test')")
    try:
        run(app, "SELECT count(*) FROM pg_class")
    finally:
        run(app, "ROLLBACK")
    rows = run(app, "SELECT tenant_id FROM invoices")
    check(len(rows) == len(ACME_AMOUNTS) + len(GLOBEX_AMOUNTS) + 1, f"after unprotect: {rows!r}")


def test_rolled_back_unprotect_leaves_the_table_guarded_everywhere(fx):
    app = fx.app()
    owner = fx.owner()
    run(owner, "BEGIN")
    run(owner, "SELECT tenant_guard.unprotect('invoices', 'sessions test: will roll back')")
    # Inside that transaction the owner's table is plain again (its own cache follows)...
    check(len(run(owner, "SELECT tenant_id FROM invoices")) == 6, "unprotected inside the transaction")
    run(owner, "ROLLBACK")
    # ...and after the rollback it is protected again, in this session and in the other one.
    no_claim(owner, stale=False)
    no_claim(app, stale=False)
    run(owner, "BEGIN")
    run(owner, "SET LOCAL tenant_guard.tenant_id = 'globex'")
    sees_only(owner, "globex", "SELECT tenant_id, amount FROM invoices", amounts=GLOBEX_AMOUNTS)
    run(owner, "COMMIT")


def test_statement_prepared_before_protect_is_guarded_after(fx):
    """Plans cached by session 2 while the table was unprotected must not outlive protect() in
    session 1 (SQL-level PREPARE with generic plans, and psycopg protocol-level statements)."""
    fx.new_owned_table("orders", ORDERS)
    app = fx.app()
    app.prepare_threshold = 5
    su = fx.su()
    run(app, "SET plan_cache_mode = force_generic_plan")
    run(su, "SET plan_cache_mode = force_generic_plan")
    for c in (app, su):
        run(c, "PREPARE all_orders AS SELECT tenant_id, amount FROM orders ORDER BY id")
        run(c, "PREPARE some_orders(text) AS SELECT tenant_id, amount FROM orders WHERE tenant_id = $1")
        for _ in range(6):
            check(len(run(c, "EXECUTE all_orders")) == len(ORDERS), "unprotected read")
            check(len(run(c, "EXECUTE some_orders('globex')")) == 3, "unprotected read")
            check(len(c.execute("SELECT tenant_id FROM orders WHERE amount > %s", (0,), prepare=True).fetchall())
                  == len(ORDERS), "unprotected read")
    owner = fx.owner()
    owner.execute("SELECT tenant_guard.protect('orders')")
    for c in (app, su):
        no_claim(c, "EXECUTE all_orders", stale=False, table="public.orders")
        no_claim(c, "EXECUTE some_orders('globex')", stale=False, table="public.orders")
        try:
            rows = c.execute("SELECT tenant_id FROM orders WHERE amount > %s", (0,), prepare=True).fetchall()
        except Exception as e:
            check(getattr(e, "sqlstate", None) == "42501", f"expected 42501, got {e!r}")
        else:
            raise AssertionError(f"LEAK: protocol-level statement prepared before protect() returned {rows!r}")
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    sees_only(app, "acme", "EXECUTE all_orders", amounts=[1, 2])
    sees_none_of(app, "globex", "EXECUTE some_orders('globex')")
    rows = app.execute("SELECT tenant_id FROM orders WHERE amount > %s", (0,), prepare=True).fetchall()
    check(rows == [("acme",), ("acme",)], f"protocol-level statement under acme returned {rows!r}")
    run(app, "COMMIT")
    run(su, "BEGIN")
    run(su, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    refused(su, "EXECUTE all_orders", contains="bypasses row level security")
    run(su, "ROLLBACK")


def test_concurrent_protect_from_two_migrations(fx):
    """Two migrations protect the same table at once: the second waits for the first, neither
    fails (protect() is idempotent), and the table ends up with one set of tenant policies."""
    fx.new_owned_table("orders", ORDERS)
    m1, m2 = fx.owner(), fx.owner()
    run(m1, "BEGIN")
    run(m1, "SELECT tenant_guard.protect('orders')")
    run(m2, "BEGIN")
    second = fx.thread(run, m2, "SELECT tenant_guard.protect('orders')")
    second.join(0.5)
    check(second.is_alive(), "the second protect() did not wait for the first")
    run(m1, "COMMIT")
    result = second.get(timeout=15)
    check(result is not None and result[0][0].startswith(("protected public.orders", "public.orders is already protected")),
          f"second protect(): {result!r}")
    run(m2, "COMMIT")
    policies = run(m1, "SELECT polname::text FROM pg_policy WHERE polrelid = 'orders'::regclass ORDER BY 1")
    check(policies == [("tenant_guard_delete",), ("tenant_guard_insert",), ("tenant_guard_select",),
                       ("tenant_guard_update",)], f"policies: {policies!r}")
    registered = run(m1, "SELECT count(*) FROM tenant_guard.protected_tables WHERE relid = 'orders'::regclass")
    check(registered == [(1,)], f"registry rows: {registered!r}")
    app = fx.app()
    no_claim(app, "SELECT * FROM orders", stale=False, table="public.orders")
