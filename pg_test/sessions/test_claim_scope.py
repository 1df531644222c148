"""Claim scope on one connection (claim_scope = transaction, the default): the pooled-connection
hazard. A claim counts only in the transaction that set it; nothing that survives the transaction
(session-level SET, set_config(..., false), a value restored by a function exit or a savepoint
rollback) can bring it back.

All connections are tg_app in autocommit mode: each statement outside BEGIN/COMMIT is its own
transaction, exactly what a pooler in transaction mode hands from one client to the next.
"""

from harness import (ACME_AMOUNTS, GLOBEX_AMOUNTS, expect_one, no_claim, refused, run,
                     sees_none_of, sees_only)

Q = "SELECT tenant_id, amount FROM invoices ORDER BY id"


def test_session_level_set_is_stale_in_the_next_transaction(fx):
    app = fx.app()
    run(app, "SET tenant_guard.tenant_id = 'acme'")          # its own (implicit) transaction
    expect_one(app, "SHOW tenant_guard.tenant_id", "acme")    # the value is there...
    expect_one(app, "SELECT tenant_guard.current_tenant()", None)   # ...but is not a claim
    no_claim(app, Q, stale=True)
    # In an explicit transaction too: a session value from an earlier transaction is stale.
    run(app, "BEGIN")
    no_claim(app, Q, stale=True)
    run(app, "ROLLBACK")
    # The same value set again inside the transaction is in force for that transaction only.
    run(app, "BEGIN")
    run(app, "SET tenant_guard.tenant_id = 'acme'")
    sees_only(app, "acme", Q, amounts=ACME_AMOUNTS)
    run(app, "COMMIT")
    no_claim(app, Q, stale=True)


def test_set_local_claim_is_honoured_and_ends_at_commit(fx):
    app = fx.app()
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    expect_one(app, "SELECT tenant_guard.current_tenant()", "acme")
    sees_only(app, "acme", Q, amounts=ACME_AMOUNTS)
    sees_none_of(app, "globex", "SELECT * FROM invoices WHERE tenant_id = 'globex'")
    sees_none_of(app, "''", "SELECT * FROM invoices WHERE tenant_id = ''")
    expect_one(app, "SELECT count(*) FROM invoices", len(ACME_AMOUNTS))
    run(app, "COMMIT")
    no_claim(app, Q, stale=False)
    expect_one(app, "SELECT tenant_guard.current_tenant()", None)
    # ROLLBACK ends it as well.
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'globex'")
    sees_only(app, "globex", Q, amounts=GLOBEX_AMOUNTS)
    run(app, "ROLLBACK")
    no_claim(app, Q, stale=False)


def test_set_local_over_a_stale_session_value_ends_at_commit(fx):
    """A stale session-level value underneath a SET LOCAL comes back at COMMIT, stale."""
    app = fx.app()
    run(app, "SET tenant_guard.tenant_id = 'globex'")
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    sees_only(app, "acme", Q, amounts=ACME_AMOUNTS)
    run(app, "COMMIT")
    expect_one(app, "SHOW tenant_guard.tenant_id", "globex")
    no_claim(app, Q, stale=True)


def test_set_tenant_is_transaction_local(fx):
    app = fx.app()
    run(app, "BEGIN")
    expect_one(app, "SELECT tenant_guard.set_tenant('globex')", "globex")
    sees_only(app, "globex", Q, amounts=GLOBEX_AMOUNTS)
    run(app, "COMMIT")
    no_claim(app, Q, stale=False)
    # set_tenant() in its own statement (autocommit): gone by the next statement.
    expect_one(app, "SELECT tenant_guard.set_tenant('acme')", "acme")
    no_claim(app, Q, stale=False)
    expect_one(app, "SELECT tenant_guard.current_tenant()", None)
    # clear_tenant() drops a claim inside the transaction.
    run(app, "BEGIN")
    run(app, "SELECT tenant_guard.set_tenant('acme')")
    run(app, "SELECT tenant_guard.clear_tenant()")
    no_claim(app, Q, stale=False)
    run(app, "ROLLBACK")


def test_set_config_session_level_is_stale_in_the_next_transaction(fx):
    app = fx.app()
    expect_one(app, "SELECT set_config('tenant_guard.tenant_id', 'acme', false)", "acme")
    no_claim(app, Q, stale=True)
    run(app, "BEGIN")
    run(app, "SELECT set_config('tenant_guard.tenant_id', 'globex', true)")
    sees_only(app, "globex", Q, amounts=GLOBEX_AMOUNTS)
    run(app, "COMMIT")
    expect_one(app, "SHOW tenant_guard.tenant_id", "acme")
    no_claim(app, Q, stale=True)


def test_function_set_clause_cannot_resurrect_a_stale_claim(fx):
    """A function's SET clause saves the value in force and restores it at exit, with the stamp
    it had: a stale session value restored in a later transaction stays stale."""
    app = fx.app()
    # Allowed: a SET clause that clears the claim (only '' passes the check of stored settings).
    run(app, """CREATE FUNCTION pg_temp.no_claim_here() RETURNS text LANGUAGE sql
                SET tenant_guard.tenant_id = '' AS $$ SELECT 'inside' $$""")
    # Its body sets the claim transaction-locally; the SET clause confines that to the call.
    run(app, """CREATE FUNCTION pg_temp.claim_inside(t text, is_local boolean) RETURNS text
                LANGUAGE plpgsql SET tenant_guard.tenant_id = ''
                AS $$ BEGIN PERFORM set_config('tenant_guard.tenant_id', t, is_local);
                             RETURN tenant_guard.current_tenant(); END $$""")
    run(app, "SET tenant_guard.tenant_id = 'acme'")          # transaction 1: will be stale
    # Transaction 2: call the function; its exit restores 'acme' with transaction 1's stamp.
    run(app, "BEGIN")
    expect_one(app, "SELECT pg_temp.no_claim_here()", "inside")
    expect_one(app, "SHOW tenant_guard.tenant_id", "acme")
    no_claim(app, Q, stale=True)
    run(app, "ROLLBACK")
    run(app, "BEGIN")
    expect_one(app, "SELECT pg_temp.claim_inside('globex', true)", "globex")  # valid in the call
    expect_one(app, "SHOW tenant_guard.tenant_id", "acme")                    # restored at exit
    expect_one(app, "SELECT tenant_guard.current_tenant()", None)
    no_claim(app, Q, stale=True)
    run(app, "ROLLBACK")
    # A plain (session) SET inside overrides the SET clause and persists (PostgreSQL's rule):
    # a claim of this transaction, stale in the next one.
    run(app, "BEGIN")
    expect_one(app, "SELECT pg_temp.claim_inside('globex', false)", "globex")
    expect_one(app, "SHOW tenant_guard.tenant_id", "globex")
    sees_only(app, "globex", Q, amounts=GLOBEX_AMOUNTS)
    run(app, "COMMIT")
    no_claim(app, Q, stale=True)
    run(app, "SET tenant_guard.tenant_id = 'acme'")
    # Inside one statement: the restored value is stale for the rest of that statement too.
    run(app, "BEGIN")
    no_claim(app, "SELECT pg_temp.no_claim_here(), tenant_id FROM invoices", stale=True)
    run(app, "ROLLBACK")
    # A valid claim of the current transaction is restored valid (nothing is lost either).
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'globex'")
    run(app, "SELECT pg_temp.no_claim_here()")
    sees_only(app, "globex", Q, amounts=GLOBEX_AMOUNTS)
    run(app, "COMMIT")


def test_savepoint_rollback_cannot_resurrect_a_stale_claim(fx):
    app = fx.app()
    run(app, "SET tenant_guard.tenant_id = 'acme'")          # stale from now on
    run(app, "BEGIN")
    run(app, "SAVEPOINT s")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'globex'")
    sees_only(app, "globex", Q, amounts=GLOBEX_AMOUNTS)
    run(app, "ROLLBACK TO SAVEPOINT s")
    expect_one(app, "SHOW tenant_guard.tenant_id", "acme")
    # The restored value is the stale one: refused, never acme's rows.
    no_claim(app, Q, stale=True)
    run(app, "ROLLBACK")


def test_reset_and_commit_and_chain_do_not_carry_a_claim(fx):
    app = fx.app()
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    sees_only(app, "acme", Q)
    run(app, "COMMIT AND CHAIN")
    no_claim(app, Q, stale=False)
    run(app, "ROLLBACK")
    run(app, "BEGIN")
    run(app, "SET tenant_guard.tenant_id = 'acme'")
    sees_only(app, "acme", Q)
    run(app, "COMMIT AND CHAIN")                             # the session value survives, stale
    no_claim(app, Q, stale=True)
    run(app, "ROLLBACK")
    run(app, "BEGIN")
    run(app, "RESET tenant_guard.tenant_id")
    no_claim(app, Q, stale=False)
    run(app, "ROLLBACK")
    # The empty string is unset.
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = ''")
    no_claim(app, Q, stale=False)
    run(app, "ROLLBACK")


def test_tenant_switch_inside_a_transaction_is_refused(fx):
    app = fx.app()
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    sees_only(app, "acme", Q, amounts=ACME_AMOUNTS)
    run(app, "SET LOCAL tenant_guard.tenant_id = 'globex'")
    refused(app, Q, contains="the tenant claim changed inside a transaction", detail_contains='"acme"')
    run(app, "ROLLBACK")
    # The next transaction may use the other tenant.
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'globex'")
    sees_only(app, "globex", Q, amounts=GLOBEX_AMOUNTS)
    run(app, "COMMIT")


def test_claim_is_per_backend(fx):
    """A claim set in one tg_app session is not a claim in another session of the same role."""
    a = fx.app()
    b = fx.app()
    run(a, "BEGIN")
    run(a, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    sees_only(a, "acme", Q)
    no_claim(b, Q, stale=False)
    expect_one(b, "SHOW tenant_guard.tenant_id", "")
    run(b, "BEGIN")
    run(b, "SET LOCAL tenant_guard.tenant_id = 'globex'")
    sees_only(b, "globex", Q, amounts=GLOBEX_AMOUNTS)
    sees_only(a, "acme", Q, amounts=ACME_AMOUNTS)
    run(a, "COMMIT")
    run(b, "COMMIT")
