"""claim_scope = 'session', for applications that hold one connection per tenant: set by a
superuser as a role default (the application cannot set it), it lets a session-level claim last
across transactions; RESET ALL / DISCARD ALL still clear the claim, and only new sessions of the
role get the setting.

The role setting is cluster-wide, so every test resets it in a finally block.
"""

from contextlib import contextmanager

from harness import (ACME_AMOUNTS, GLOBEX_AMOUNTS, expect_one, no_claim, refused, run,
                     sees_only)

Q = "SELECT tenant_id, amount FROM invoices ORDER BY id"


@contextmanager
def session_scope_for_app(fx):
    su = fx.su()
    run(su, "ALTER ROLE tg_app SET tenant_guard.claim_scope = 'session'")
    try:
        yield
    finally:
        run(su, "ALTER ROLE tg_app RESET tenant_guard.claim_scope")


def test_role_session_scope_lets_a_session_claim_last(fx):
    before = fx.app()                  # opened before the role setting: transaction scope
    with session_scope_for_app(fx):
        app = fx.app()
        expect_one(app, "SHOW tenant_guard.claim_scope", "session")
        run(app, "SET tenant_guard.tenant_id = 'acme'")
        for _ in range(3):             # several transactions, autocommit and explicit
            sees_only(app, "acme", Q, amounts=ACME_AMOUNTS)
            expect_one(app, "SELECT tenant_guard.current_tenant()", "acme")
        run(app, "BEGIN")
        sees_only(app, "acme", Q, amounts=ACME_AMOUNTS)
        run(app, "COMMIT")
        # The connection's tenant may change between transactions...
        run(app, "SET tenant_guard.tenant_id = 'globex'")
        sees_only(app, "globex", Q, amounts=GLOBEX_AMOUNTS)
        # ...but not inside one that already touched a protected table.
        run(app, "BEGIN")
        sees_only(app, "globex", Q)
        run(app, "SET LOCAL tenant_guard.tenant_id = 'acme'")
        refused(app, Q, contains="the tenant claim changed inside a transaction")
        run(app, "ROLLBACK")
        # The session opened before the role setting keeps transaction scope.
        expect_one(before, "SHOW tenant_guard.claim_scope", "transaction")
        run(before, "SET tenant_guard.tenant_id = 'acme'")
        no_claim(before, Q, stale=True)
        # The application still cannot change its scope.
        refused(app, "SET tenant_guard.claim_scope = 'transaction'", sqlstate="42501", prefix=None)
    # After the reset, new sessions are back in transaction scope.
    after = fx.app()
    expect_one(after, "SHOW tenant_guard.claim_scope", "transaction")
    run(after, "SET tenant_guard.tenant_id = 'acme'")
    no_claim(after, Q, stale=True)


def test_session_scope_reset_all_and_discard_all_clear_the_claim(fx):
    with session_scope_for_app(fx):
        app = fx.app()
        for reset in ("RESET ALL", "DISCARD ALL", "RESET tenant_guard.tenant_id",
                      "SELECT tenant_guard.clear_tenant()"):
            run(app, "SET tenant_guard.tenant_id = 'acme'")
            sees_only(app, "acme", Q, amounts=ACME_AMOUNTS)
            run(app, reset)
            expect_one(app, "SHOW tenant_guard.tenant_id", "")
            expect_one(app, "SHOW tenant_guard.claim_scope", "session")   # the role default stays
            no_claim(app, Q, stale=False)


def test_session_scope_set_tenant_stays_transaction_local(fx):
    """set_tenant() is transaction-local whatever the scope: it ends at COMMIT."""
    with session_scope_for_app(fx):
        app = fx.app()
        run(app, "BEGIN")
        run(app, "SELECT tenant_guard.set_tenant('acme')")
        sees_only(app, "acme", Q, amounts=ACME_AMOUNTS)
        run(app, "COMMIT")
        no_claim(app, Q, stale=False)


def test_session_scope_claims_of_two_connections_stay_apart(fx):
    with session_scope_for_app(fx):
        a, g = fx.app(), fx.app()
        run(a, "SET tenant_guard.tenant_id = 'acme'")
        run(g, "SET tenant_guard.tenant_id = 'globex'")
        for _ in range(20):
            sees_only(a, "acme", Q, amounts=ACME_AMOUNTS)
            sees_only(g, "globex", Q, amounts=GLOBEX_AMOUNTS)
