"""Parallel workers are other backends: they run the leader's admitted statement with the
leader's claim, and a leader without a claim starts none of them."""

from harness import ACME_AMOUNTS, check, expect_one, no_claim, run


def _force_parallel(conn):
    for s in ("SET max_parallel_workers_per_gather = 2", "SET parallel_setup_cost = 0",
              "SET parallel_tuple_cost = 0", "SET min_parallel_table_scan_size = 0",
              "SET force_parallel_mode = on", "SET parallel_leader_participation = off",
              "SET enable_indexscan = off", "SET enable_bitmapscan = off"):
        run(conn, s)


def test_parallel_workers_see_the_leaders_claim(fx):
    app = fx.app()
    _force_parallel(app)
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    # EXPLAIN ANALYZE of a protected table is refused (its row counts count other tenants' rows),
    # so show on an unprotected table that workers run and see the leader's claim:
    su = fx.su()
    run(su, "CREATE TABLE par_plain AS SELECT g FROM generate_series(1, 1000) g")
    run(su, "GRANT SELECT ON par_plain TO tg_app")
    plan = "\n".join(r[0] for r in run(
        app, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
             "SELECT g FROM par_plain WHERE tenant_guard.current_tenant() = 'acme'"))
    check("Workers Launched: " in plan and "Workers Launched: 0" not in plan,
          f"no parallel worker ran the statement:\n{plan}")
    check("rows=1000" in plan, f"the workers did not see the claim 'acme':\n{plan}")
    plan = "\n".join(r[0] for r in run(
        app, "EXPLAIN (COSTS OFF) SELECT tenant_guard.current_tenant(), tenant_id FROM invoices"))
    check("Gather" in plan, f"no parallel plan for the protected table:\n{plan}")
    # current_tenant() is evaluated in the workers (leader participation is off).
    rows = run(app, "SELECT tenant_guard.current_tenant(), tenant_id FROM invoices")
    check(rows == [("acme", "acme")] * len(ACME_AMOUNTS), f"workers saw {rows!r}")
    expect_one(app, "SELECT count(*) FROM invoices", len(ACME_AMOUNTS))
    run(app, "COMMIT")
    no_claim(app, "SELECT tenant_id FROM invoices", stale=False)
    run(app, "SET tenant_guard.tenant_id = 'acme'")
    no_claim(app, "SELECT count(*) FROM invoices", stale=True)
