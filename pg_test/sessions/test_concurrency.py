"""Two tenants working at the same time through two tg_app connections, each transaction with its
own claim: every read sees exactly its own tenant's rows, writes land for the right tenant only,
and the final counts per tenant are exact.
"""

import threading

import psycopg

from harness import ACME_AMOUNTS, BLANK_AMOUNTS, GLOBEX_AMOUNTS, check, run

ITERATIONS = 200
BASE = {"acme": len(ACME_AMOUNTS), "globex": len(GLOBEX_AMOUNTS)}
OTHER = {"acme": "globex", "globex": "acme"}


def _worker(conn, tenant, iterations, start_gate, offset):
    """One client: per iteration one transaction with its own claim; returns rows inserted."""
    start_gate.wait(timeout=10)
    inserted = 0
    for i in range(iterations):
        run(conn, "BEGIN")
        if i % 2:
            run(conn, "SET LOCAL tenant_guard.tenant_id = %s" % psycopg.sql.quote(tenant))
        else:
            run(conn, "SELECT tenant_guard.set_tenant(%s)", (tenant,))
        got = run(conn, "INSERT INTO invoices (tenant_id, amount) VALUES (%s, %s) RETURNING tenant_id",
                  (tenant, offset + i))
        check(got == [(tenant,)], f"{tenant}: insert returned {got!r}")
        inserted += 1
        rows = run(conn, "SELECT tenant_id, count(*) FROM invoices GROUP BY tenant_id")
        expected = [(tenant, BASE[tenant] + inserted)]
        check(rows == expected, f"LEAK or lost row: {tenant} iteration {i} saw {rows!r}, expected {expected!r}")
        probe = run(conn, "SELECT id FROM invoices WHERE tenant_id = %s", (OTHER[tenant],))
        check(probe == [], f"LEAK: {tenant} iteration {i} probed {OTHER[tenant]} and got {probe!r}")
        if i % 50 == 7:
            # A write for the other tenant is refused by the policies (and leaves nothing behind).
            run(conn, "SAVEPOINT s")
            try:
                run(conn, "INSERT INTO invoices (tenant_id, amount) VALUES (%s, -1)", (OTHER[tenant],))
            except psycopg.Error as e:
                check(e.sqlstate == "42501", f"{tenant}: cross-tenant insert failed with {e.sqlstate}: {e}")
            else:
                raise AssertionError(f"LEAK: {tenant} inserted a row for {OTHER[tenant]}")
            run(conn, "ROLLBACK TO SAVEPOINT s")
            moved = run(conn, "UPDATE invoices SET tenant_id = %s WHERE false RETURNING id", (OTHER[tenant],))
            check(moved == [], "update returned rows")
        run(conn, "COMMIT")
    return inserted


def test_two_tenants_work_concurrently_in_threads(fx):
    acme, globex = fx.app(), fx.app()
    gate = threading.Barrier(2)
    ta = fx.thread(_worker, acme, "acme", ITERATIONS, gate, 100000)
    tg = fx.thread(_worker, globex, "globex", ITERATIONS, gate, 200000)
    na, ng = ta.get(timeout=60), tg.get(timeout=60)
    check(na == ng == ITERATIONS, f"inserted {na} and {ng}")
    # Final counts through each tenant's own eyes...
    for conn, tenant, n in ((acme, "acme", na), (globex, "globex", ng)):
        run(conn, "BEGIN")
        run(conn, "SET LOCAL tenant_guard.tenant_id = %s" % psycopg.sql.quote(tenant))
        rows = run(conn, "SELECT tenant_id, count(*) FROM invoices GROUP BY tenant_id")
        check(rows == [(tenant, BASE[tenant] + n)], f"final count of {tenant}: {rows!r}")
        run(conn, "COMMIT")
    # ...and the ground truth: exactly the rows written, each under its own tenant.
    truth = fx.all_rows()
    by_tenant = {}
    for t, a in truth:
        by_tenant.setdefault(t, []).append(a)
    check(sorted(by_tenant["acme"]) == sorted(ACME_AMOUNTS + [100000 + i for i in range(ITERATIONS)]),
          "acme rows are not exactly the fixture plus acme's inserts")
    check(sorted(by_tenant["globex"]) == sorted(GLOBEX_AMOUNTS + [200000 + i for i in range(ITERATIONS)]),
          "globex rows are not exactly the fixture plus globex's inserts")
    check(sorted(by_tenant[""]) == sorted(BLANK_AMOUNTS) and set(by_tenant) == {"acme", "globex", ""},
          f"unexpected tenants: {sorted(by_tenant)}")


def test_two_tenants_interleaved_transactions(fx):
    """The two transactions are open at the same time, statement by statement interleaved."""
    a, g = fx.app(), fx.app()
    n = 50
    for i in range(n):
        run(a, "BEGIN")
        run(g, "BEGIN")
        run(a, "SET LOCAL tenant_guard.tenant_id = 'acme'")
        run(g, "SET LOCAL tenant_guard.tenant_id = 'globex'")
        run(a, "INSERT INTO invoices (tenant_id, amount) VALUES ('acme', %s)", (300000 + i,))
        run(g, "INSERT INTO invoices (tenant_id, amount) VALUES ('globex', %s)", (400000 + i,))
        ra = run(a, "SELECT tenant_id, count(*) FROM invoices GROUP BY tenant_id")
        rg = run(g, "SELECT tenant_id, count(*) FROM invoices GROUP BY tenant_id")
        check(ra == [("acme", BASE["acme"] + i + 1)], f"acme saw {ra!r}")
        check(rg == [("globex", BASE["globex"] + i + 1)], f"globex saw {rg!r}")
        if i % 2:
            run(a, "COMMIT")
            run(g, "COMMIT")
        else:
            run(g, "COMMIT")
            run(a, "COMMIT")
    truth = fx.all_rows()
    check(sum(1 for t, _ in truth if t == "acme") == BASE["acme"] + n, "acme final count")
    check(sum(1 for t, _ in truth if t == "globex") == BASE["globex"] + n, "globex final count")
