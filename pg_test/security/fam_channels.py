"""Family "channels": side channels and claim hygiene (threat model, channels 6 and 9).

Safe means that no row or value of another tenant reaches the client by any channel: rows,
NOTICEs raised by functions the client controls, error texts, row counts in EXPLAIN ANALYZE, the
ops functions (explain, lint, status). And the claim cannot be switched or stretched in the middle
of a statement.
"""

import re

import fixture as fx
from fam_cve import SEL, claim, refused_role
from fam_matrix import keyrows
from lib import check, expect_no_foreign_text, expect_ok, expect_refused, expect_rows, lit

A = ("A",)
FOREIGN = ("globex", "initech", "blank-", "7777777")


def app_a(suite, group="str"):
    c = suite.connect(fx.APP)
    c.ok("BEGIN")
    claim(c, "A", group)
    return c


# -- the leak probe of rowsecurity.sql ----------------------------------------------------------

LEAK_QUERIES = {
    "where": "SELECT count(*) FROM t_text WHERE leak(name)",
    "where_or": "SELECT count(*) FROM t_text WHERE leak(name) OR id = 1",
    "select_list": "SELECT leak(name) FROM t_text",
    "order_by": "SELECT id FROM t_text ORDER BY leak(name), id",
    "group_by": "SELECT leak(name), count(*) FROM t_text GROUP BY 1",
    "window": "SELECT id, bool_and(leak(name)) OVER () FROM t_text",
    "join": "SELECT count(*) FROM t_text o JOIN t_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id WHERE leak(o.name || l.qty)",
    "join_on": "SELECT count(*) FROM t_text o JOIN t_lines l ON leak(o.name || ':' || l.qty)",
    "lateral": "SELECT count(*) FROM u_plain p, LATERAL (SELECT * FROM t_text t WHERE leak(t.name) AND t.id = p.n) s",
    "subquery": "SELECT count(*) FROM (SELECT * FROM t_text) s WHERE leak(name)",
    "cte": "WITH c AS (SELECT * FROM t_text) SELECT count(*) FROM c WHERE leak(name)",
    "view_invoker": "SELECT count(*) FROM v_text_inv WHERE leak(name)",
    "view_definer": "SELECT count(*) FROM v_text_def WHERE leak(name)",
    "view_definer_partitioned": "SELECT count(*) FROM v_part_def WHERE leak(name)",
    "sql_srf": "SELECT count(*) FROM f_text_sql() WHERE leak(name)",
    "partitioned": "SELECT count(*) FROM t_part WHERE leak(name)",
    "partition": "SELECT count(*) FROM t_part_lo WHERE leak(name)",
    "inheritance": "SELECT count(*) FROM t_inh WHERE leak(name)",
    "exists": "SELECT count(*) FROM u_keys k WHERE EXISTS (SELECT 1 FROM t_text t WHERE leak(t.name) AND t.id = k.id)",
    "update_where": "UPDATE t_text SET amount = amount WHERE leak(name)",
    "delete_where": "DELETE FROM t_text WHERE leak(name)",
    "update_returning": "UPDATE t_text SET amount = amount WHERE id > 0 RETURNING leak(name)",
    "merge_on": "MERGE INTO t_text t USING u_keys k ON leak(t.name) AND t.id = k.id AND t.tenant_id = k.tenant_id WHEN MATCHED THEN DO NOTHING",
    "parallel": "SELECT count(*) FROM u_plain p WHERE EXISTS (SELECT 1 FROM t_text t WHERE leak(t.name) AND t.id = p.n)",
}


def leak_probe(suite, name):
    c = app_a(suite)
    if name == "parallel":
        for p in ("SET LOCAL parallel_setup_cost = 0", "SET LOCAL parallel_tuple_cost = 0",
                  "SET LOCAL min_parallel_table_scan_size = 0", "SET LOCAL force_parallel_mode = on",
                  "SET LOCAL parallel_leader_participation = off"):
            c.ok(p)
    r = c.run(LEAK_QUERIES[name])
    expect_ok(r, name)
    check(r.notices, f"{name}: the probe never ran (no NOTICE): it proves nothing")
    for n in r.notices:
        check("acme" in n, f"LEAK: {name}: the probe saw a row that is not acme's: {n!r}")
    expect_no_foreign_text(r, name, words=FOREIGN)
    c.ok("ROLLBACK")


# -- errors raised by other tenants' rows ---------------------------------------------------------

ERROR_QUERIES = {
    # globex's amounts are 1000..5000: each of these would fail on a globex row
    "division_where": "SELECT count(*) FROM t_text WHERE 1 / (amount - 1000) IS NOT NULL",
    "division_select": "SELECT 1 / (amount - 1000) FROM t_text",
    "case_on_foreign_value": "SELECT count(*) FROM t_text WHERE CASE WHEN name = 'globex-t_text-1' THEN 1 / (amount - amount) ELSE 1 END = 1",
    "cast_on_foreign_value": "SELECT count(*) FROM t_text WHERE (CASE WHEN amount >= 1000 THEN 'x' ELSE '1' END)::int = 1",
    "join_division": "SELECT count(*) FROM t_text o JOIN t_lines l ON l.order_id = o.id WHERE 1 / (l.qty - 1001) IS NOT NULL",
    "partitioned_division": "SELECT count(*) FROM t_part WHERE 1 / (amount - 1000) IS NOT NULL",
    "update_division": "UPDATE t_text SET amount = amount WHERE 1 / (amount - 1000) IS NOT NULL",
    "delete_division": "DELETE FROM t_text WHERE 1 / (amount - 2000) IS NULL",
    "aggregate_division": "SELECT sum(1 / (amount - 3000)) FROM t_text",
    "order_by_division": "SELECT id FROM t_text ORDER BY 1 / (amount - 4000)",
    "uuid_table": "SELECT count(*) FROM t_uuid WHERE 1 / (amount - 1000) IS NOT NULL",
}


def foreign_rows_raise_no_error(suite, name):
    group = "uuid" if name == "uuid_table" else "str"
    c = app_a(suite, group)
    r = c.run(ERROR_QUERIES[name])
    check(r.ok, f"LEAK: {name}: an error raised by another tenant's row reached the client: {r.sqlstate} {r.message}")
    c.ok("ROLLBACK")


# -- EXPLAIN ANALYZE --------------------------------------------------------------------------------

def explain_analyze_counts_only_own_rows(suite, rel, planner):
    c = app_a(suite)
    if planner == "seqscan":
        c.ok("SET LOCAL enable_indexscan = off")
        c.ok("SET LOCAL enable_bitmapscan = off")
        c.ok("SET LOCAL enable_indexonlyscan = off")
    r = c.run(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM {rel}")
    c.ok("ROLLBACK")
    if not r.ok:
        expect_refused(r, f"EXPLAIN ANALYZE on {rel}", "42501", guard=True)
        return
    plan = "\n".join(x[0] for x in r.rows)
    removed = [int(x) for x in re.findall(r"Rows Removed by (?:Filter|Index Recheck|Join Filter): (\d+)", plan)]
    check(sum(removed) == 0, f"LEAK: EXPLAIN ANALYZE of {rel} as acme counts {sum(removed)} rows of other tenants "
                             f"(\"Rows Removed by Filter\"): {' | '.join(l.strip() for l in plan.splitlines())}")


def setup_amounts(suite):
    from fam_cve import owner_setup
    owner_setup(suite, [
        "CREATE TABLE c_amounts (tenant_id text NOT NULL, id int NOT NULL, amount int NOT NULL, PRIMARY KEY (tenant_id, id))",
        "CREATE INDEX c_amounts_amount_idx ON c_amounts (amount)",
        "INSERT INTO c_amounts SELECT 'acme', g, g FROM generate_series(1, 200) g",
        "INSERT INTO c_amounts SELECT 'globex', g, g * 10 FROM generate_series(1, 200) g",
        f"GRANT SELECT ON c_amounts TO {fx.APP}",
    ], protect=["c_amounts"])
    su = suite.connect(fx.SUPERUSER)
    su.ok("ANALYZE c_amounts")


def explain_analyze_counts_other_tenants_values(suite):
    """An index on a value column: the policy becomes a Filter above the index scan, and "Rows
    Removed by Filter" counts the other tenants' rows whose value matches the condition: a
    counting oracle over their data (binary search on the threshold gives their distribution)."""
    c = app_a(suite)
    c.ok("SET LOCAL enable_seqscan = off")
    c.ok("SET LOCAL enable_bitmapscan = off")
    r = c.run("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM c_amounts WHERE amount > 1500")
    c.ok("ROLLBACK")
    if not r.ok:
        expect_refused(r, "EXPLAIN ANALYZE", "42501", guard=True)
        return
    plan = "\n".join(x[0] for x in r.rows)
    removed = [int(x) for x in re.findall(r"Rows Removed by (?:Filter|Index Recheck|Join Filter): (\d+)", plan)]
    check(sum(removed) == 0, f"LEAK: acme learns that {sum(removed)} of globex's rows have amount > 1500: "
                             f"{' | '.join(l.strip() for l in plan.splitlines())}")


# -- the claim cannot change inside a statement ----------------------------------------------------

def claim_switch_inside_statement(suite, where):
    c = app_a(suite)
    sql = {
        "select_list": "SELECT set_config('tenant_guard.tenant_id', 'globex', true), tenant_id, id, name FROM t_text",
        "where": "SELECT 1, tenant_id, id, name FROM t_text WHERE set_config('tenant_guard.tenant_id', 'globex', true) IS NOT NULL",
        "cte": "WITH s AS MATERIALIZED (SELECT set_config('tenant_guard.tenant_id', 'globex', true)) "
               "SELECT 1, tenant_id, id, name FROM s, t_text",
        "lateral": "SELECT 1, t.tenant_id, t.id, t.name FROM (VALUES (1), (2)) v(n), "
                   "LATERAL (SELECT set_config('tenant_guard.tenant_id', CASE WHEN v.n = 2 THEN 'globex' ELSE 'acme' END, true)) s, t_text t",
    }[where]
    r = c.run(sql)
    if r.ok:
        bad = [row for row in r.rows if row[1] != "acme"]
        check(not bad, f"LEAK: a claim switched inside the statement ({where}) returned {bad[:3]!r}")
        text = repr([row[1:] for row in r.rows]).lower()
        check(not any(w in text for w in FOREIGN), f"LEAK: {where}: {text[:200]}")
        # and the next statement of the transaction may not go on as globex
        r2 = c.run(f"{SEL} t_text")
        check(not r2.ok or all(x[0] == "acme" for x in r2.rows), f"LEAK: the next statement returned {r2.rows!r}")
    else:
        expect_refused(r, where, "42501", guard=None)
    c.run("ROLLBACK")


def claim_restored_after_exception_block(suite):
    c = app_a(suite)
    c.ok("""DO $$ BEGIN
              BEGIN PERFORM set_config('tenant_guard.tenant_id', 'globex', true); RAISE EXCEPTION 'undo';
              EXCEPTION WHEN others THEN NULL; END;
            END $$""")
    check(c.value("SELECT tenant_guard.current_tenant()") == "acme", "the claim was not restored")
    expect_rows(c.run(f"{SEL} t_text"), keyrows("t_text", A), "after the rolled-back sub-transaction")
    c.ok("ROLLBACK")


def claim_values_that_look_clever(suite):
    """A claim is compared for equality with the tenant column: no pattern, no quoting, no case
    folding that reaches another tenant; malformed typed claims are refused (22023)."""
    c = suite.connect(fx.APP)
    for value in ["acme' OR '1'='1", "%", "acme%", "_cme", "*", "ACME", " acme", "acme ", "acme\t", "globex' --",
                  "'); SELECT * FROM t_text; --", "acme\\", "\u0430cme"]:
        c.ok("BEGIN")
        c.ok(f"SELECT set_config('tenant_guard.tenant_id', {lit(value)}, true)")
        r = c.run(f"{SEL} t_text")
        expect_ok(r, f"claim {value!r}")
        check(r.rows == [], f"LEAK: claim {value!r} sees {r.rows[:3]!r}")
        c.ok("ROLLBACK")
    for table, value in [("t_uuid", "acme"), ("t_uuid", "aaaaaaaa-0000-4000-8000-000000000001' OR true"),
                         ("t_bigint", "1 OR 1=1"), ("t_bigint", "99999999999999999999"), ("t_int", "2147483648"),
                         ("t_int", "1.5"), ("t_bigint", "0x1"), ("t_uuid", "{aaaaaaaa-0000-4000-8000-00000000000}")]:
        c.ok("BEGIN")
        c.ok(f"SELECT set_config('tenant_guard.tenant_id', {lit(value)}, true)")
        r = c.run(f"SELECT tenant_id::text FROM {table}")
        check(not r.ok and r.sqlstate == "22023" and r.message.startswith("tenant_guard:"),
              f"claim {value!r} on {table}: expected the tenant_guard 22023 refusal, got {r!r}")
        c.ok("ROLLBACK")
    # equivalent spellings of the same typed tenant are the same tenant, never another one
    for table, value, tenant in [("t_uuid", "AAAAAAAA-0000-4000-8000-000000000001", "A"),
                                 ("t_uuid", "{aaaaaaaa-0000-4000-8000-000000000001}", "A"),
                                 ("t_bigint", "01", "A"), ("t_bigint", "+2", "B"), ("t_int", " 3 ", "C")]:
        c.ok("BEGIN")
        c.ok(f"SELECT set_config('tenant_guard.tenant_id', {lit(value)}, true)")
        r = c.run(f"SELECT tenant_id::text, id, name FROM {table}")
        if r.ok:
            expect_rows(r, keyrows(table, (tenant,)), f"claim {value!r} on {table}")
        else:
            check(r.sqlstate == "22023", f"claim {value!r} on {table}: {r!r}")
        c.ok("ROLLBACK")


def claim_types_mixed_in_one_statement(suite):
    c = suite.connect(fx.APP)
    for value in ("acme", "1", "aaaaaaaa-0000-4000-8000-000000000001"):
        c.ok("BEGIN")
        c.ok(f"SELECT set_config('tenant_guard.tenant_id', {lit(value)}, true)")
        r = c.run("SELECT t.tenant_id::text, u.tenant_id::text, b.tenant_id::text FROM t_text t, t_uuid u, t_bigint b")
        if r.ok:
            check(r.rows == [], f"LEAK: a claim {value!r} that fits one type matched rows of all: {r.rows[:3]!r}")
        else:
            check(r.sqlstate == "22023", f"mixed tenant types with claim {value!r}: {r!r}")
        c.ok("ROLLBACK")


def unset_claim_reads_as_null(suite):
    c = suite.connect(fx.APP)
    check(c.value("SELECT tenant_guard.current_tenant()") is None, "current_tenant() is not NULL without a claim")
    c.ok("BEGIN")
    claim(c)
    c.ok("RESET tenant_guard.tenant_id")
    check(c.value("SELECT current_setting('tenant_guard.tenant_id', true)") == "", "RESET leaves a value")
    check(c.value("SELECT tenant_guard.current_tenant()") is None, "current_tenant() is not NULL after RESET")
    m = suite.marker()
    refused_role(suite, c.run(f"{m} {SEL} t_text"), m, "after RESET", "no_claim")
    c.ok("ROLLBACK")
    c.ok("BEGIN")
    c.ok("SET LOCAL tenant_guard.tenant_id TO DEFAULT")
    m = suite.marker()
    refused_role(suite, c.run(f"{m} {SEL} t_text"), m, "after SET ... TO DEFAULT", "no_claim")
    c.ok("ROLLBACK")


# -- audit completeness of cross-tenant reads ------------------------------------------------------

def trusted_read_that_fails_is_audited(suite):
    c = suite.connect(fx.TRUSTED)
    c.ok("BEGIN")
    claim(c)
    m = suite.marker()
    # the rows of every tenant are read; the statement fails on globex's 5000
    r = c.run(f"{m} SELECT tenant_id, 1 / (amount - 5000) FROM t_text ORDER BY tenant_id")
    expect_refused(r, "the trusted read that fails", "22012", guard=None)
    c.ok("ROLLBACK")
    suite.expect_event(m, event="broad_read", reason="trusted_role", relation="public.t_text")


def trusted_copy_is_audited(suite):
    c = suite.connect(fx.TRUSTED)
    c.ok("BEGIN")
    claim(c)
    m = suite.marker()
    r = c.copy_out(f"{m} COPY t_text TO STDOUT")
    expect_ok(r, "COPY t_text TO STDOUT by a trusted role")
    c.ok("COMMIT")
    suite.expect_event(m, event="broad_read", reason="trusted_role", relation="public.t_text")


def cursor_read_then_rollback_is_audited(suite, who):
    c = suite.connect(fx.TRUSTED if who == "trusted" else fx.BYPASSER)
    c.ok("BEGIN")
    if who == "trusted":
        claim(c)
    else:
        c.ok("SELECT tenant_guard.begin_bypass('sec cursor')")
    m = suite.marker()
    c.ok(f"{m} DECLARE c CURSOR FOR SELECT * FROM t_text")
    r = c.ok(f"{m} FETCH ALL FROM c")
    check(len(r.rows) == len(keyrows("t_text", fx.ALL_TENANTS)), f"{len(r.rows)} rows")
    c.ok(f"{m} ROLLBACK")
    if who == "trusted":
        suite.expect_event(m, event="broad_read", reason="trusted_role", relation="public.t_text")
    else:
        suite.expect_event(m, event="bypass", reason="sec cursor", relation="public.t_text")


# -- the ops functions reveal no tenant data -----------------------------------------------------

def ops_functions_reveal_nothing(suite):
    for with_claim in (True, False):
        c = suite.connect(fx.APP)
        c.ok("BEGIN")
        if with_claim:
            claim(c)
        for sql in ["SELECT * FROM tenant_guard.explain('t_text')", "SELECT * FROM tenant_guard.explain('t_part')",
                    "SELECT * FROM tenant_guard.lint()", "SELECT * FROM tenant_guard.status()",
                    "SELECT * FROM tenant_guard.protected_tables"]:
            r = c.run(sql)
            if r.ok:
                text = r.text().lower()
                for w in ("globex", "initech", "blank-t_", "1000", "7777777"):
                    check(w not in text, f"LEAK: {sql} shows {w!r} to acme's application")
            else:
                check(r.sqlstate in ("42501",), f"{sql}: {r!r}")
            c.ok("ROLLBACK")
            c.ok("BEGIN")
            if with_claim:
                claim(c)
        c.ok("ROLLBACK")


def audit_trail_closed_to_the_application(suite):
    c = app_a(suite)
    for sql in ["SELECT count(*) FROM tenant_guard.audit_log", "UPDATE tenant_guard.audit_log SET reason = 'x'",
                "DELETE FROM tenant_guard.audit_log", "INSERT INTO tenant_guard.audit_log (at, event) VALUES (now(), 'denied')",
                "SELECT tenant_guard.prune_audit(interval '1 second')", "TRUNCATE tenant_guard.audit_log"]:
        c.ok("SAVEPOINT s")
        r = c.run(sql)
        expect_refused(r, f"the application: {sql}", "42501", guard=None)
        c.ok("ROLLBACK TO s")
    c.ok("ROLLBACK")


def run(suite):
    suite.family("channels")
    for name in LEAK_QUERIES:
        suite.case(f"leak_probe_sees_only_own_rows[{name}]", leak_probe, suite, name)
    for name in ERROR_QUERIES:
        suite.case(f"other_tenants_rows_raise_no_error[{name}]", foreign_rows_raise_no_error, suite, name)
    for rel in ("t_text", "t_part", "t_inh", "v_text_inv"):
        suite.case(f"explain_analyze_counts_no_foreign_rows[{rel}]", explain_analyze_counts_only_own_rows, suite, rel, "seqscan")
    setup_amounts(suite)
    suite.case("explain_analyze_counts_other_tenants_values", explain_analyze_counts_other_tenants_values, suite)
    for where in ("select_list", "where", "cte", "lateral"):
        suite.case(f"claim_switch_inside_one_statement[{where}]", claim_switch_inside_statement, suite, where)
    suite.case("claim_restored_after_an_exception_block", claim_restored_after_exception_block, suite)
    suite.case("claim_values_that_look_clever", claim_values_that_look_clever, suite)
    suite.case("claim_types_mixed_in_one_statement", claim_types_mixed_in_one_statement, suite)
    suite.case("unset_claim_reads_as_null_and_is_refused", unset_claim_reads_as_null, suite)
    suite.case("audit.trusted_read_that_fails_is_audited", trusted_read_that_fails_is_audited, suite)
    suite.case("audit.trusted_copy_to_is_audited", trusted_copy_is_audited, suite)
    suite.case("audit.trusted_cursor_read_then_rollback_is_audited", cursor_read_then_rollback_is_audited, suite, "trusted")
    suite.case("audit.bypass_cursor_read_then_rollback_is_audited", cursor_read_then_rollback_is_audited, suite, "bypass")
    suite.case("ops_functions_reveal_no_tenant_data", ops_functions_reveal_nothing, suite)
    suite.case("audit_trail_closed_to_the_application", audit_trail_closed_to_the_application, suite)
    suite.verify_audit()
