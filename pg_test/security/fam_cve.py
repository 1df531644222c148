"""Family "cve": permanent regression cases in the shape of the known row-security CVEs.

Each case reproduces the shape of a published bug against tenant_guard and asserts what must
hold. PostgreSQL's own fix is in the server; these cases make sure that tenant_guard's guard,
policies and claim do not reopen the hole, and that the same shape aimed at the claim or the
bypass (set_user's CVEs) is closed too.

    CVE-2016-2193   a plan cached under one role is reused under another
    CVE-2017-15099  INSERT ... ON CONFLICT DO UPDATE and SELECT privilege / row security
    CVE-2019-10130  leaky operators run on planner statistics of a row-security table
    CVE-2023-2455   row security and role changes with cached plans; CREATE POLICY ... TO role
    CVE-2023-39418  MERGE ignored the WITH CHECK of row-security policies
    CVE-2024-10976  row security below sub-queries and SQL functions ignored role changes
    CVE-2024-10978  SET ROLE / SET SESSION AUTHORIZATION reset to the wrong user in parallel workers
    CVE-2025-8713   planner statistics leak through partitions, inheritance children and views
    set_user CVE-2021-41558  a guard on the SET statement only, bypassed by set_config() or a call
    set_user CVE-2021-38140  an escalation that is not ended properly (RESET ALL, DISCARD ALL, ...)
"""

import fixture as fx
from fam_matrix import PARALLEL, keyrows
from lib import (check, expect_no_foreign_text, expect_ok, expect_refused, expect_rows, is_rls_error, lit,
                 short)

A = ("A",)
B = ("B",)
ALL = fx.ALL_TENANTS
SEL = "SELECT tenant_id, id, name FROM"


def owner_setup(suite, statements, protect=()):
    su = suite.connect(fx.SUPERUSER, keep=True)
    su.ok("BEGIN")
    su.ok(f"SET LOCAL ROLE {fx.OWNER}")
    for s in statements:
        su.ok(s)
    for t in protect:
        su.ok("SELECT tenant_guard.protect(%s)", (t,))
    su.ok("COMMIT")
    su.close()


def truth(suite, sql, db=fx.MAIN_DB):
    """Ground truth, read by the superuser with the guard off for this one transaction."""
    su = suite.connect(fx.SUPERUSER, db=db)
    su.ok("BEGIN")
    su.ok("SET LOCAL tenant_guard.enforce = off")
    rows = su.rows(sql)
    su.ok("ROLLBACK")
    return rows


def claim(conn, tenant="A", group="str"):
    conn.ok(f"SET LOCAL tenant_guard.tenant_id = {lit(fx.tval(tenant, group))}")


def refused_role(suite, r, m, what, reason, table="public.t_text"):
    expect_refused(r, what, "42501", guard=True)
    suite.expect_event(m, event="denied", reason=reason, relation=table)


# ---------------------------------------------------------------------------------------------
# CVE-2016-2193: a plan cached under one role reused under another
# ---------------------------------------------------------------------------------------------

def cve_2016_2193_prepared_by_app_executed_by_others(suite, mode):
    c = suite.connect(fx.SUPERUSER)
    c.ok(f"SET plan_cache_mode = {mode}")
    c.ok("BEGIN")
    claim(c)
    c.ok(f"SET LOCAL ROLE {fx.APP}")
    c.ok(f"PREPARE p AS {SEL} t_text")
    expect_rows(c.run("EXECUTE p"), keyrows("t_text", A), "EXECUTE as sec_app")
    c.ok(f"SET LOCAL ROLE {fx.APP2}")
    expect_rows(c.run("EXECUTE p"), keyrows("t_text", A), "EXECUTE as sec_app2 (another filtered role)")
    c.ok("SAVEPOINT s")
    c.ok("RESET ROLE")
    m = suite.marker()
    refused_role(suite, c.run(f"{m} EXECUTE p"), m, "EXECUTE as the superuser", "superuser")
    c.ok("ROLLBACK TO s")
    c.ok(f"SET LOCAL ROLE {fx.ADMIN}")
    m = suite.marker()
    refused_role(suite, c.run(f"{m} EXECUTE p"), m, "EXECUTE as a BYPASSRLS role", "bypassrls")
    c.ok("ROLLBACK")


def cve_2016_2193_prepared_by_superuser_executed_by_app(suite, mode):
    c = suite.connect(fx.SUPERUSER)
    c.ok(f"SET plan_cache_mode = {mode}")
    c.ok(f"PREPARE p AS {SEL} t_text")  # planned by the superuser (no policies apply to it)
    c.ok("BEGIN")
    claim(c)
    c.ok(f"SET LOCAL ROLE {fx.APP}")
    expect_rows(c.run("EXECUTE p"), keyrows("t_text", A), "a superuser's plan executed by sec_app")
    c.ok("ROLLBACK")
    c.ok("BEGIN")
    claim(c, "B")
    c.ok(f"SET LOCAL ROLE {fx.APP2}")
    expect_rows(c.run("EXECUTE p"), keyrows("t_text", B), "the same plan, sec_app2 with tenant B")
    c.ok("ROLLBACK")


def cve_2016_2193_generic_plan_across_claims(suite):
    c = suite.connect(fx.APP)
    c.ok("SET plan_cache_mode = force_generic_plan")
    c.ok(f"PREPARE p (int) AS {SEL} t_text WHERE id >= $1")
    for tenant in ("A", "B", "C", "A"):
        c.ok("BEGIN")
        claim(c, tenant)
        expect_rows(c.run("EXECUTE p(0)"), keyrows("t_text", (tenant,)), f"generic plan under tenant {tenant}")
        c.ok("COMMIT")
    m = suite.marker()
    r = c.run(f"{m} EXECUTE p(0)")
    refused_role(suite, r, m, "generic plan without a claim", "no_claim")


def cve_2016_2193_plpgsql_plan_across_roles(suite):
    c = suite.connect(fx.SUPERUSER)
    c.ok("BEGIN")
    claim(c)
    c.ok(f"SET LOCAL ROLE {fx.APP}")
    expect_rows(c.run(f"{SEL} f_text_plpgsql()"), keyrows("t_text", A), "plpgsql function as sec_app")
    c.ok("SAVEPOINT s")
    c.ok("RESET ROLE")
    m = suite.marker()
    refused_role(suite, c.run(f"{m} {SEL} f_text_plpgsql()"), m, "its cached plan as the superuser", "superuser")
    c.ok("ROLLBACK TO s")
    c.ok(f"SET LOCAL ROLE {fx.ADMIN}")
    m = suite.marker()
    refused_role(suite, c.run(f"{m} {SEL} f_text_plpgsql()"), m, "its cached plan as BYPASSRLS", "bypassrls")
    c.ok("ROLLBACK")
    c.ok("BEGIN")
    claim(c, "B")
    c.ok(f"SET LOCAL ROLE {fx.APP2}")
    expect_rows(c.run(f"{SEL} f_text_plpgsql()"), keyrows("t_text", B), "its cached plan as sec_app2, tenant B")
    c.ok("ROLLBACK")


def cve_2016_2193_row_security_toggled(suite):
    c = suite.connect(fx.APP)
    c.ok("BEGIN")
    claim(c)
    c.ok(f"PREPARE p AS {SEL} t_text")
    expect_rows(c.run("EXECUTE p"), keyrows("t_text", A), "row_security = on")
    c.ok("SET LOCAL row_security = off")
    r = c.run("EXECUTE p")
    expect_refused(r, "the same plan with row_security = off", "42501", guard=None)
    expect_no_foreign_text(r, "row_security = off")
    c.ok("ROLLBACK")


# ---------------------------------------------------------------------------------------------
# CVE-2017-15099: INSERT ... ON CONFLICT DO UPDATE
# ---------------------------------------------------------------------------------------------

def setup_upsert(suite):
    owner_setup(suite, [
        """CREATE TABLE cve_upsert (tenant_id text NOT NULL, id int NOT NULL, sku text NOT NULL UNIQUE,
            secret text NOT NULL, amount int NOT NULL, PRIMARY KEY (tenant_id, id))""",
        """INSERT INTO cve_upsert VALUES ('acme', 1, 'A-1', 'acme-secret', 1),
            ('globex', 1, 'G-1', 'globex-secret', 1000)""",
        f"GRANT SELECT (tenant_id, id, sku, amount), INSERT, UPDATE (amount) ON cve_upsert TO {fx.APP}",
    ], protect=["cve_upsert"])


def cve_2017_15099_do_update_on_other_tenants_row(suite):
    c = suite.connect(fx.APP)
    c.ok("BEGIN")
    claim(c)
    r = c.run("INSERT INTO cve_upsert (tenant_id, id, sku, secret, amount) VALUES ('acme', 2, 'G-1', 'x', 5) "
              "ON CONFLICT (sku) DO UPDATE SET amount = 5 RETURNING tenant_id, id, sku, amount")
    expect_refused(r, "ON CONFLICT (sku) DO UPDATE hitting globex's row", "42501", guard=None)
    check(is_rls_error(r), f"not a row-security refusal: {r.message!r}")
    expect_no_foreign_text(r, "ON CONFLICT DO UPDATE", words=("globex", "1000"))
    c.ok("ROLLBACK")
    rows = truth(suite, "SELECT tenant_id, amount FROM cve_upsert WHERE sku = 'G-1'")
    check(rows == [("globex", 1000)], f"globex's row changed: {rows!r}")


def cve_2017_15099_do_update_where_reads_other_row(suite):
    c = suite.connect(fx.APP)
    c.ok("BEGIN")
    claim(c)
    r = c.run("INSERT INTO cve_upsert AS u (tenant_id, id, sku, secret, amount) VALUES ('acme', 2, 'G-1', 'x', 5) "
              "ON CONFLICT (sku) DO UPDATE SET amount = 5 WHERE u.amount > 999 RETURNING amount")
    expect_refused(r, "ON CONFLICT DO UPDATE ... WHERE on globex's row", "42501", guard=None)
    c.ok("ROLLBACK")


def cve_2017_15099_column_privilege(suite):
    c = suite.connect(fx.APP)
    c.ok("BEGIN")
    claim(c)
    for sql in [
        "INSERT INTO cve_upsert VALUES ('acme', 1, 'A-1', 'x', 2) ON CONFLICT (tenant_id, id) DO UPDATE SET amount = 2 RETURNING secret",
        "INSERT INTO cve_upsert VALUES ('acme', 1, 'A-1', 'x', 2) ON CONFLICT (tenant_id, id) DO UPDATE SET amount = length(cve_upsert.secret)",
        "INSERT INTO cve_upsert VALUES ('acme', 1, 'A-1', 'x', 2) ON CONFLICT (tenant_id, id) DO UPDATE SET amount = 2 WHERE cve_upsert.secret LIKE 'a%'",
    ]:
        c.ok("SAVEPOINT s")
        r = c.run(sql)
        expect_refused(r, short(sql), "42501", guard=None)
        expect_no_foreign_text(r, short(sql), words=("acme-secret", "globex"))
        c.ok("ROLLBACK TO s")
    c.ok("ROLLBACK")


def cve_2017_15099_do_nothing_and_own_row(suite):
    c = suite.connect(fx.APP)
    c.ok("BEGIN")
    claim(c)
    r = c.ok("INSERT INTO cve_upsert (tenant_id, id, sku, secret, amount) VALUES ('acme', 1, 'A-1', 'x', 7) "
             "ON CONFLICT (tenant_id, id) DO UPDATE SET amount = EXCLUDED.amount RETURNING tenant_id, id, amount")
    expect_rows(r, [("acme", 1, 7)], "DO UPDATE of acme's own row")
    c.ok("ROLLBACK")


# ---------------------------------------------------------------------------------------------
# CVE-2019-10130 and CVE-2025-8713: leaky operators and planner statistics
# ---------------------------------------------------------------------------------------------

def setup_leaky(suite):
    owner_setup(suite, [
        "CREATE STATISTICS t_text_stx (ndistinct, dependencies, mcv) ON tenant_id, amount FROM t_text",
        "CREATE STATISTICS t_part_stx (mcv) ON tenant_id, name FROM t_part",
    ])
    su = suite.connect(fx.SUPERUSER, keep=True)
    su.ok("ANALYZE")
    # the leaky operators: plpgsql, not LEAKPROOF, say what they see; with the estimators that
    # would run them on the statistics (histogram bounds, most common values)
    su.ok("""CREATE FUNCTION scratch.leak_lt(text, text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001
        AS $$ BEGIN RAISE NOTICE 'leak_lt: % %', $1, $2; RETURN $1 < $2; END $$""")
    su.ok("""CREATE FUNCTION scratch.leak_eq(text, text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001
        AS $$ BEGIN RAISE NOTICE 'leak_eq: % %', $1, $2; RETURN $1 = $2; END $$""")
    su.ok("""CREATE FUNCTION scratch.leak_lt8(bigint, bigint) RETURNS boolean LANGUAGE plpgsql COST 0.0000001
        AS $$ BEGIN RAISE NOTICE 'leak_lt8: % %', $1, $2; RETURN $1 < $2; END $$""")
    su.ok("CREATE OPERATOR scratch.<<< (procedure = scratch.leak_lt, leftarg = text, rightarg = text, restrict = scalarltsel)")
    su.ok("CREATE OPERATOR scratch.=== (procedure = scratch.leak_eq, leftarg = text, rightarg = text, restrict = eqsel)")
    su.ok("CREATE OPERATOR scratch.<<< (procedure = scratch.leak_lt8, leftarg = bigint, rightarg = bigint, restrict = scalarltsel)")
    su.ok("""CREATE FUNCTION scratch.sec_whoami() RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE
        AS $$ BEGIN RETURN current_user || '/' || session_user; END $$""")
    su.ok("GRANT USAGE ON SCHEMA scratch TO PUBLIC")
    su.close()


def leaky_probe(suite, relation, col, with_claim, explain_only):
    c = suite.connect(fx.APP)
    c.ok("SET search_path = public, scratch")
    c.ok("BEGIN")
    if with_claim:
        claim(c)
    ops = ["OPERATOR(scratch.<<<)", "OPERATOR(scratch.===)"] if col != "amount" else ["OPERATOR(scratch.<<<)"]
    rhs = "'zzz'" if col != "amount" else "99999999"
    for op in ops:
        sql = f"SELECT count(*) FROM {relation} WHERE {col} {op} {rhs}"
        r = c.run(("EXPLAIN " if explain_only else "") + sql)
        expect_ok(r, sql)
        if not explain_only:  # the probe is live: the executor ran it on acme's rows
            check(r.notices, f"{sql}: the leaky operator never ran: the probe proves nothing")
        # the planner ran no leaky operator on the statistics; the executor ran it on A's rows only
        for notice in r.notices:
            seen = notice.split(": ", 2)[-1]
            check(seen.startswith("acme") or (col == "amount" and int(seen.split()[0]) < 100),
                  f"LEAK: {sql}: a leaky operator saw another tenant's value: {notice!r}")
        expect_no_foreign_text(r, sql, words=("globex", "initech", "blank-", "7777777", "1000 ", "100000 "))
    c.ok("ROLLBACK")


def stats_views_hidden(suite):
    c = suite.connect(fx.APP)
    protected = ("t_text", "t_varchar", "t_uuid", "t_bigint", "t_int", "t_part", "t_part_lo", "t_part_hi",
                 "t_part_def", "t_inh", "t_inh_child", "t_lines")
    for view, col in (("pg_stats", "tablename"), ("pg_stats_ext", "tablename"), ("pg_stats_ext_exprs", "tablename")):
        rows = c.rows(f"SELECT {col}, * FROM pg_catalog.{view} WHERE schemaname = 'public' AND {col} = ANY(%s)",
                      (list(protected),))
        check(rows == [], f"LEAK: the application reads {view} of protected tables: {[r[0] for r in rows]}")
    # the statistics exist (the superuser sees them): the check above is not vacuous
    su = suite.connect(fx.SUPERUSER)
    n = su.value("SELECT count(*) FROM pg_stats WHERE schemaname = 'public' AND tablename = 't_part' AND inherited")
    check(n > 0, "no statistics on t_part at all: the check is vacuous")


# ---------------------------------------------------------------------------------------------
# CVE-2023-2455: CREATE POLICY ... TO role, role changes and inlining
# ---------------------------------------------------------------------------------------------

def cve_2023_2455_policy_to_role_is_tamper(suite):
    c = suite.connect(fx.OWNER)
    for sql in [
        f"CREATE POLICY p_open ON t_text FOR SELECT TO {fx.APP} USING (true)",
        f"CREATE POLICY p_narrow ON t_text AS RESTRICTIVE FOR SELECT TO {fx.APP} USING (true)",
        f"ALTER POLICY tenant_guard_select ON t_text TO {fx.APP}",
        "ALTER POLICY tenant_guard_select ON t_text USING (true)",
    ]:
        m = suite.marker()
        r = c.run(f"{m} {sql}")
        expect_refused(r, sql, "42501", guard=True)
        suite.expect_event(m, event="tamper", relation="public.t_text")
    pols = truth(suite, "SELECT policyname, roles::text, qual FROM pg_policies WHERE tablename = 't_text' ORDER BY 1")
    check([p[0] for p in pols] == ["tenant_guard_delete", "tenant_guard_insert", "tenant_guard_select",
                                   "tenant_guard_update"], f"policies changed: {pols!r}")
    check(all(p[1] == "{public}" for p in pols), f"a policy is not TO PUBLIC: {pols!r}")


def cve_2023_2455_claim_functions_not_inlinable(suite):
    c = suite.connect(fx.APP)
    rows = c.rows("""SELECT p.proname, p.provolatile, l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                     WHERE p.pronamespace = 'tenant_guard'::regnamespace AND p.proname LIKE 'require_tenant%'""")
    check(len(rows) == 4, f"expected four require_tenant functions, got {rows!r}")
    for name, vol, lang in rows:
        check(vol == "s", f"{name} is not STABLE (provolatile {vol}): the claim would be read at the wrong time")
        check(lang != "sql", f"{name} is a SQL function: it could be inlined as the planning role's view")
    quals = truth(suite, "SELECT coalesce(qual, '') || coalesce(with_check, '') FROM pg_policies WHERE tablename = 't_uuid'")
    for (q,) in quals:
        check("SELECT tenant_guard.require_tenant_uuid()" in q.replace("( SELECT", "(SELECT").replace("(SELECT", "SELECT"),
              f"policy does not read the claim through an init-plan: {q}")


def cve_2023_2455_inlined_function_role_change(suite):
    c = suite.connect(fx.SUPERUSER)
    c.ok("SET plan_cache_mode = force_generic_plan")
    c.ok("BEGIN")
    claim(c, "B")
    c.ok(f"SET LOCAL ROLE {fx.APP2}")
    c.ok(f"PREPARE p AS {SEL} f_text_sql() WHERE id > 0")
    expect_rows(c.run("EXECUTE p"), keyrows("t_text", B), "inlined SQL function as sec_app2, tenant B")
    c.ok("COMMIT")
    c.ok("BEGIN")
    claim(c, "A")
    c.ok(f"SET LOCAL ROLE {fx.APP}")
    expect_rows(c.run("EXECUTE p"), keyrows("t_text", A), "its plan as sec_app, tenant A")
    c.ok("RESET ROLE")
    m = suite.marker()
    refused_role(suite, c.run(f"{m} EXECUTE p"), m, "its plan as the superuser", "superuser")
    c.ok("ROLLBACK")


# ---------------------------------------------------------------------------------------------
# CVE-2023-39418: MERGE and the WITH CHECK of the policies
# ---------------------------------------------------------------------------------------------

def cve_2023_39418_merge_insert_other(suite, table):
    g = fx.GROUP_OF[table]
    b = fx.tval("B", g)
    c = suite.connect(fx.APP)
    c.ok("BEGIN")
    claim(c, "A", g)
    r = c.run(f"MERGE INTO {table} t USING (VALUES ({lit(b)}, 990)) s(tn, id) ON t.tenant_id::text = s.tn AND t.id = s.id "
              f"WHEN NOT MATCHED THEN INSERT VALUES (s.tn::{type_of(table)}, s.id, 'x', 1)")
    expect_refused(r, f"MERGE ... NOT MATCHED INSERT of tenant B into {table}", "42501", guard=None)
    check(is_rls_error(r), f"not a row-security refusal: {r.message}")
    c.ok("ROLLBACK")


def cve_2023_39418_merge_update_move(suite, table):
    g = fx.GROUP_OF[table]
    a, b = fx.tval("A", g), fx.tval("B", g)
    c = suite.connect(fx.APP)
    c.ok("BEGIN")
    claim(c, "A", g)
    tid = 5 if table != "t_part" else 250
    r = c.run(f"MERGE INTO {table} t USING (VALUES ({lit(a)}, {tid})) s(tn, id) ON t.tenant_id::text = s.tn AND t.id = s.id "
              f"WHEN MATCHED THEN UPDATE SET tenant_id = {lit(b)}, id = 991")
    expect_refused(r, f"MERGE ... MATCHED UPDATE moving a row of {table} to tenant B", "42501", guard=None)
    check(is_rls_error(r), f"not a row-security refusal: {r.message}")
    c.ok("ROLLBACK")


def cve_2023_39418_merge_matched_delete_invisible(suite):
    c = suite.connect(fx.APP)
    c.ok("BEGIN")
    claim(c)
    r = c.ok("MERGE INTO t_text t USING (SELECT tenant_id, id FROM u_keys) s ON t.tenant_id = s.tenant_id AND t.id = s.id "
             "WHEN MATCHED THEN DELETE")
    check(r.rowcount == len(keyrows("t_text", A)), f"MERGE deleted {r.rowcount} rows, acme has {len(keyrows('t_text', A))}")
    c.ok("ROLLBACK")


def type_of(table):
    return {"t_text": "text", "t_varchar": "varchar", "t_uuid": "uuid", "t_bigint": "bigint", "t_int": "int",
            "t_part": "text", "t_inh": "text"}[table]


# ---------------------------------------------------------------------------------------------
# CVE-2024-10976: row security below sub-queries, CTEs, invoker views, SQL functions and role
# changes between planning and execution
# ---------------------------------------------------------------------------------------------

SHAPES_10976 = {
    "subquery": f"{SEL} (SELECT * FROM t_text OFFSET 0) s",
    "cte": f"WITH c AS MATERIALIZED (SELECT * FROM t_text) {SEL} c",
    "invoker_view": f"{SEL} v_text_inv",
    "sql_function": f"{SEL} f_text_sql()",
    "sublink": "SELECT tenant_id, id, name FROM u_keys k WHERE EXISTS (SELECT 1 FROM t_text t WHERE t.tenant_id = k.tenant_id AND t.id = k.id)",
    "scalar_sublink": "SELECT tenant_id, id, name FROM u_keys k WHERE k.id <= (SELECT max(id) FROM t_text) AND k.tenant_id = (SELECT min(tenant_id) FROM t_text)",
}


def cve_2024_10976(suite, shape, planner):
    sql = SHAPES_10976[shape]
    c = suite.connect(fx.SUPERUSER)
    c.ok("SET plan_cache_mode = force_generic_plan")
    if planner == "superuser":
        c.ok(f"PREPARE p AS {sql}")  # planned by the superuser: no policies in its plan
    c.ok("BEGIN")
    claim(c)
    c.ok(f"SET LOCAL ROLE {fx.APP}")
    if planner == "app":
        c.ok(f"PREPARE p AS {sql}")
    want = keyrows("t_text", A)  # every shape returns exactly acme's keys
    expect_rows(c.run("EXECUTE p"), want, f"{shape} planned by {planner}, executed by sec_app")
    c.ok(f"SET LOCAL ROLE {fx.APP2}")
    expect_rows(c.run("EXECUTE p"), want, f"{shape}: executed by sec_app2")
    for role, reason in ((None, "superuser"), (fx.ADMIN, "bypassrls")):
        c.ok("SAVEPOINT s")
        c.ok("RESET ROLE" if role is None else f"SET LOCAL ROLE {role}")
        m = suite.marker()
        r = c.run(f"{m} EXECUTE p")
        refused_role(suite, r, m, f"{shape}: executed by {role or 'the superuser'}", reason)
        c.ok("ROLLBACK TO s")
    c.ok("ROLLBACK")


def cve_2024_10976_security_definer_switch(suite):
    """A SECURITY DEFINER function switches the user in the middle of the statement."""
    c = suite.connect(fx.SUPERUSER)
    c.ok("BEGIN")
    claim(c)
    c.ok(f"SET LOCAL ROLE {fx.APP}")
    # the owner's function: the owner is filtered (FORCE), so acme's rows
    expect_rows(c.run(f"{SEL} f_text_secdef() WHERE id IN (SELECT id FROM t_text)"), keyrows("t_text", A),
                "owner's SECURITY DEFINER with a sub-query, called by sec_app")
    m = suite.marker()
    r = c.run(f"{m} {SEL} f_text_su_secdef()")
    refused_role(suite, r, m, "the superuser's SECURITY DEFINER function, called by sec_app", "superuser")
    c.ok("ROLLBACK")


# ---------------------------------------------------------------------------------------------
# CVE-2024-10978: the user of parallel workers after SET ROLE / SET SESSION AUTHORIZATION
# ---------------------------------------------------------------------------------------------

def parallel_session(c, workers_only=False):
    for p in PARALLEL:
        c.ok(p)
    if workers_only:  # the workers run the plan (a function called per row runs in them)
        c.ok("SET LOCAL parallel_leader_participation = off")


def cve_2024_10978(suite, how, expect):
    c = suite.connect(fx.SUPERUSER)
    for stmt in how:
        c.ok(stmt)
    c.ok("BEGIN")
    claim(c)
    parallel_session(c, workers_only=True)
    plan = "\n".join(r[0] for r in c.rows("EXPLAIN (COSTS OFF) SELECT f_count_parallel(), current_user FROM u_plain"))
    check("Gather" in plan, f"no parallel plan: {plan}")
    # who the workers are: the same user as the leader
    leader = c.value("SELECT current_user || '/' || session_user")
    workers = c.rows("SELECT DISTINCT scratch.sec_whoami() FROM u_plain")
    check(workers == [(leader,)], f"parallel workers run as {workers!r}, the leader as {leader!r}")
    m = suite.marker()
    r = c.run(f"{m} SELECT f_count_parallel() FROM u_plain")
    if expect == "filtered":
        expect_rows(r, [(len(keyrows("t_text", A)),)] * 10, f"{how}: the function in the workers")
        suite.expect_no_event(m)
    else:
        refused_role(suite, r, m, f"{how}: the function in the workers", expect)
    c.ok("ROLLBACK")
    # the direct parallel scan as well
    c.ok("BEGIN")
    claim(c)
    parallel_session(c)
    m = suite.marker()
    r = c.run(f"{m} {SEL} t_text")
    if expect == "filtered":
        expect_rows(r, keyrows("t_text", A), f"{how}: parallel scan")
        suite.expect_no_event(m)
    else:
        refused_role(suite, r, m, f"{how}: parallel scan", expect)
    c.ok("ROLLBACK")


# ---------------------------------------------------------------------------------------------
# set_user CVE-2021-41558: a guard on the SET statement only
# ---------------------------------------------------------------------------------------------

GUARDED_SETTINGS = {
    "tenant_guard.enforce": "off",
    "tenant_guard.claim_scope": "session",
    "tenant_guard.trusted_roles": fx.APP,
    "tenant_guard.bypass_roles": fx.APP,
    "tenant_guard.require_token": "off",
    "tenant_guard.max_rows": "0",
    "tenant_guard.broad_read_rows": "0",
    "tenant_guard.audit_query_max": "0",
    "tenant_guard.token_keys": "k=c2VjcmV0",
    "tenant_guard.jwt_claims_path": "tenant",
    "tenant_guard.watched_schemas": "",
    "tenant_guard.new_table_action": "warn",
}


def setting_routes(name, value):
    return [
        f"SET {name} = {lit(value)}",
        f"SET LOCAL {name} = {lit(value)}",
        f"SELECT set_config({lit(name)}, {lit(value)}, false)",
        f"SELECT set_config({lit(name)}, {lit(value)}, true)",
        f"DO $$ BEGIN PERFORM set_config({lit(name)}, {lit(value)}, false); END $$",
        f"DO $$ BEGIN EXECUTE 'SET {name} = ' || quote_literal({lit(value)}); END $$",
        f"SELECT set_config(x, y, false) FROM (VALUES ({lit(name)}, {lit(value)})) v(x, y)",
        f"ALTER ROLE {fx.APP} SET {name} = {lit(value)}",
        f"RESET {name}",
    ]


def cve_2021_41558_settings(suite, name, value):
    c = suite.connect(fx.APP)
    r = c.run(f"SELECT current_setting({lit(name)})")
    before = r.rows[0][0] if r.ok else None  # None: a secret the application cannot even read
    for sql in setting_routes(name, value):
        c.ok("BEGIN")
        r = c.run(sql)
        if sql.startswith("RESET"):
            # RESET of a superuser setting by the application: refused, or a no-op
            check(r.ok or r.sqlstate == "42501", f"{sql}: {r.sqlstate} {r.message}")
        else:
            expect_refused(r, f"sec_app: {sql}", "42501", guard=None)
        c.ok("ROLLBACK")
        if before is not None:
            now = c.value(f"SELECT current_setting({lit(name)})")
            check(now == before, f"{sql}: the application changed {name} from {before!r} to {now!r}")
    # a function's SET clause: created by the application, refused when it runs
    c.ok("BEGIN")
    r = c.run(f"CREATE FUNCTION scratch.sec_set_{name.split('.')[1]}() RETURNS text LANGUAGE sql "
              f"SET {name} = {lit(value)} AS $$ SELECT current_setting({lit(name)}) $$")
    if r.ok:
        r = c.run(f"SELECT scratch.sec_set_{name.split('.')[1]}()")
        expect_refused(r, f"a function SET clause for {name}", "42501", guard=None)
    c.ok("ROLLBACK")
    # a connection option
    try:
        c2 = suite.connect(fx.APP, options=f"-c {name}={value or 'x'}")
        if before is not None:
            now = c2.value(f"SELECT current_setting({lit(name)})")
            check(now == before, f"a connection option changed {name} to {now!r}")
    except Exception as e:  # refused at connection: fine
        check("permission denied" in str(e) or "tenant_guard" in str(e) or "invalid value" in str(e),
              f"connection option {name}: unexpected failure {e}")


def cve_2021_41558_internal_bypass_setting(suite):
    """tenant_guard.bypass holds an active bypass; nobody can set it, not even a superuser, by any route."""
    oid = suite.connect(fx.SUPERUSER).value(f"SELECT oid::text FROM pg_roles WHERE rolname = '{fx.BYPASSER}'")
    value = oid + "\x1f" + "forged"
    for user in (fx.BYPASSER, fx.SUPERUSER, fx.APP):
        c = suite.connect(user)
        for sql in [
            f"SET tenant_guard.bypass = {lit(value)}",
            f"SELECT set_config('tenant_guard.bypass', {lit(value)}, true)",
            f"DO $$ BEGIN PERFORM set_config('tenant_guard.bypass', {lit(value)}, false); END $$",
        ]:
            c.ok("BEGIN")
            r = c.run(sql)
            check(not r.ok, f"{user}: {sql}: the internal bypass setting was set")
            c.ok("ROLLBACK")
    c = suite.connect(fx.BYPASSER)
    c.ok("BEGIN")
    c.run(f"SELECT set_config('tenant_guard.bypass', {lit(value)}, true)")
    c.ok("ROLLBACK")
    m = suite.marker()
    r = c.run(f"{m} {SEL} t_text")
    refused_role(suite, r, m, "sec_bypasser after trying to forge a bypass", "no_claim")


def cve_2021_41558_require_token_claim(suite):
    """With require_token = on, the claim can only come from a verified token: SET, set_config(),
    set_tenant(), a function's SET clause and dynamic SQL are all refused."""
    su = suite.connect(fx.SUPERUSER)
    su.ok(f"ALTER ROLE {fx.APP2} SET tenant_guard.require_token = on")
    try:
        c = suite.connect(fx.APP2)
        check(c.value("SHOW tenant_guard.require_token") == "on", "require_token is not on for sec_app2")
        for sql in [
            "SET tenant_guard.tenant_id = 'acme'",
            "SET LOCAL tenant_guard.tenant_id = 'acme'",
            "SELECT set_config('tenant_guard.tenant_id', 'acme', true)",
            "SELECT set_config('tenant_guard.tenant_id', 'acme', false)",
            "SELECT tenant_guard.set_tenant('acme')",
            "DO $$ BEGIN PERFORM set_config('tenant_guard.tenant_id', 'acme', true); END $$",
            "DO $$ BEGIN EXECUTE 'SET LOCAL tenant_guard.tenant_id = ''acme'''; END $$",
            "SELECT set_config(k, v, true) FROM (VALUES ('tenant_guard.tenant_id', 'acme')) s(k, v)",
        ]:
            c.ok("BEGIN")
            r = c.run(sql)
            expect_refused(r, f"require_token: {sql}", "42501", guard=None)
            c.ok("ROLLBACK")
            c.ok("BEGIN")
            r = c.run(f"{SEL} t_text")
            expect_refused(r, f"after {sql}", "42501", guard=True)
            c.ok("ROLLBACK")
        c.ok("BEGIN")
        r = c.run("CREATE FUNCTION scratch.sec_claim_fn() RETURNS bigint LANGUAGE sql "
                  "SET tenant_guard.tenant_id = 'acme' AS $$ SELECT count(*) FROM public.t_text $$")
        expect_refused(r, "require_token: a function SET clause", "42501", guard=None)
        c.ok("ROLLBACK")
    finally:
        su.ok(f"ALTER ROLE {fx.APP2} RESET tenant_guard.require_token")


def cve_2021_41558_begin_bypass_routes(suite):
    """begin_bypass() is refused to non-members by every route: a plain call, a DO block, a
    function, a SECURITY DEFINER function of the member (the bypass stays the member's)."""
    c = suite.connect(fx.APP)
    for sql in ["SELECT tenant_guard.begin_bypass('forged')",
                "DO $$ BEGIN PERFORM tenant_guard.begin_bypass('forged'); END $$",
                "SELECT * FROM (SELECT tenant_guard.begin_bypass('forged')) s"]:
        m = suite.marker()
        r = c.run(f"{m} {sql}")
        expect_refused(r, f"sec_app: {sql}", "42501", guard=True)
        suite.expect_event(m, event="denied", reason_prefix="bypass")
    # a member's SECURITY DEFINER function that begins a bypass: it is the member's bypass, the
    # application caller does not get one
    b = suite.connect(fx.BYPASSER)
    b.ok("""CREATE FUNCTION scratch.sec_bypass_for_caller() RETURNS text LANGUAGE sql SECURITY DEFINER
            SET search_path = pg_catalog AS $$ SELECT tenant_guard.begin_bypass('delegated') $$""")
    b.ok(f"GRANT EXECUTE ON FUNCTION scratch.sec_bypass_for_caller() TO {fx.APP}")
    c.ok("BEGIN")
    r = c.run("SELECT scratch.sec_bypass_for_caller()")
    if r.ok:
        m = suite.marker()
        r = c.run(f"{m} {SEL} t_text")
        refused_role(suite, r, m, "sec_app after a member's SECURITY DEFINER function began a bypass", "no_claim")
    c.ok("ROLLBACK")
    b.ok("DROP FUNCTION scratch.sec_bypass_for_caller()")


# ---------------------------------------------------------------------------------------------
# set_user CVE-2021-38140: the bypass must end, and nothing may restart or outlive it
# ---------------------------------------------------------------------------------------------

def bypass_begin(c, reason="sec cve bypass"):
    c.ok(f"SELECT tenant_guard.begin_bypass({lit(reason)})")


def must_be_refused_after(suite, c, what, reason="no_claim"):
    m = suite.marker()
    r = c.run(f"{m} {SEL} t_text")
    refused_role(suite, r, m, what, reason)
    c.run("ROLLBACK")


def cve_2021_38140_ends(suite, how):
    c = suite.connect(fx.BYPASSER)
    c.ok("BEGIN")
    bypass_begin(c)
    expect_rows(c.run(f"{SEL} t_text"), keyrows("t_text", ALL), "inside the bypass")
    if how == "commit":
        c.ok("COMMIT")
    elif how == "rollback":
        c.ok("ROLLBACK")
    elif how == "end_bypass":
        c.ok("SELECT tenant_guard.end_bypass()")
    elif how == "savepoint":
        c.ok("ROLLBACK")
        c.ok("BEGIN")
        c.ok("SAVEPOINT s")
        bypass_begin(c)
        c.ok("ROLLBACK TO s")
    elif how == "commit_and_chain":
        c.ok("COMMIT AND CHAIN")
    elif how == "reset_all":
        c.ok("COMMIT")
        c.ok("RESET ALL")
    elif how == "discard_all":
        c.ok("COMMIT")
        c.ok("DISCARD ALL")
    elif how == "reset_all_inside":
        c.ok("RESET ALL")
        c.ok("COMMIT")
        c.ok("RESET ALL")
    must_be_refused_after(suite, c, f"after the bypass ended by {how}")
    # with a claim the role is what it is: BYPASSRLS, refused
    c.ok("BEGIN")
    claim(c)
    must_be_refused_after(suite, c, f"after {how}, with a claim", "bypassrls")


def cve_2021_38140_hold_cursor(suite):
    """A WITH HOLD cursor opened in a bypass: its rows would be fetched after the bypass ended
    (by the next client of a pooled connection). Refused at DECLARE or at COMMIT; never fetched."""
    c = suite.connect(fx.BYPASSER)
    c.ok("BEGIN")
    bypass_begin(c)
    m = suite.marker()
    r1 = c.run(f"{m} DECLARE hc CURSOR WITH HOLD FOR {SEL} t_text")
    r2 = c.run(f"{m} COMMIT")
    c.run("ROLLBACK")
    r3 = c.run(f"{m} FETCH ALL FROM hc")
    check(not r3.ok or not r3.rows, f"LEAK: after the bypass ended, FETCH from its WITH HOLD cursor returned "
                                    f"{len(r3.rows or [])} rows of every tenant: {r3.rows[:3] if r3.rows else []!r}")
    check(not (r1.ok and r2.ok), "a WITH HOLD cursor over a protected table survived the end of the bypass")


def cve_2021_38140_prepared_after(suite):
    c = suite.connect(fx.BYPASSER)
    c.ok("SET plan_cache_mode = force_generic_plan")
    c.ok("BEGIN")
    bypass_begin(c)
    c.ok(f"PREPARE p AS {SEL} t_text")
    expect_rows(c.run("EXECUTE p"), keyrows("t_text", ALL), "inside the bypass")
    c.ok("COMMIT")
    m = suite.marker()
    r = c.run(f"{m} EXECUTE p")
    refused_role(suite, r, m, "a plan prepared in the bypass, executed after it", "no_claim")
    c.ok("BEGIN")
    claim(c)
    m = suite.marker()
    r = c.run(f"{m} EXECUTE p")
    refused_role(suite, r, m, "the same with a claim", "bypassrls")
    c.ok("ROLLBACK")


def cve_2021_38140_plpgsql_after(suite):
    c = suite.connect(fx.BYPASSER)
    c.ok("BEGIN")
    bypass_begin(c)
    expect_rows(c.run(f"{SEL} f_text_plpgsql()"), keyrows("t_text", ALL), "inside the bypass")
    c.ok("COMMIT")
    m = suite.marker()
    r = c.run(f"{m} {SEL} f_text_plpgsql()")
    refused_role(suite, r, m, "plpgsql's cached plan after the bypass", "no_claim")


def cve_2021_38140_procedure_commit(suite):
    b = suite.connect(fx.BYPASSER)
    b.ok("""CREATE PROCEDURE scratch.sec_bypass_then_commit(INOUT seen bigint DEFAULT NULL) LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM tenant_guard.begin_bypass('procedure');
            COMMIT;
            SELECT count(*) INTO seen FROM public.t_text;
        END $$""")
    m = suite.marker()
    r = b.run(f"{m} CALL scratch.sec_bypass_then_commit()")
    refused_role(suite, r, m, "a read after the procedure's COMMIT ended its bypass", "no_claim")
    suite.expect_event(m, event="bypass", reason="procedure", command="begin_bypass")
    b.ok("DROP PROCEDURE scratch.sec_bypass_then_commit")


def cve_2021_38140_role_change(suite):
    """The bypass is the role's that began it: SET ROLE or SET SESSION AUTHORIZATION to another
    policy-voiding role does not carry it, and coming back after the transaction finds none."""
    c = suite.connect(fx.SUPERUSER)
    c.ok(f"SET SESSION AUTHORIZATION {fx.BYPASSER}")
    c.ok("BEGIN")
    bypass_begin(c)
    claim(c)
    c.ok("RESET SESSION AUTHORIZATION")
    m = suite.marker()
    refused_role(suite, c.run(f"{m} {SEL} t_text"), m, "the superuser inside sec_bypasser's bypass", "superuser")
    c.ok("ROLLBACK")
    c.ok("RESET SESSION AUTHORIZATION")
    c.ok("BEGIN")
    claim(c)
    c.ok(f"SET LOCAL ROLE {fx.BYPASSER}")
    bypass_begin(c)
    c.ok(f"SET LOCAL ROLE {fx.ADMIN}")
    m = suite.marker()
    refused_role(suite, c.run(f"{m} {SEL} t_text"), m, "SET ROLE to another BYPASSRLS role inside the bypass", "bypassrls")
    c.ok("ROLLBACK")
    c.ok(f"SET SESSION AUTHORIZATION {fx.BYPASSER}")
    c.ok("BEGIN")
    claim(c)
    m = suite.marker()
    refused_role(suite, c.run(f"{m} {SEL} t_text"), m, "sec_bypasser again, in a new transaction", "bypassrls")
    c.ok("ROLLBACK")


def cve_2021_38140_parallel_after(suite):
    c = suite.connect(fx.BYPASSER)
    c.ok("BEGIN")
    bypass_begin(c)
    parallel_session(c, workers_only=True)
    expect_rows(c.run("SELECT f_count_parallel() FROM u_plain"), [(len(keyrows("t_text", ALL)),)] * 10,
                "parallel workers inside the bypass")
    c.ok("COMMIT")
    c.ok("BEGIN")
    claim(c)
    parallel_session(c, workers_only=True)
    m = suite.marker()
    r = c.run(f"{m} SELECT f_count_parallel() FROM u_plain")
    refused_role(suite, r, m, "parallel workers after the bypass", "bypassrls")
    c.ok("ROLLBACK")


# ---------------------------------------------------------------------------------------------

def run(suite):
    suite.family("cve")
    setup_upsert(suite)
    setup_leaky(suite)
    for mode in ("force_generic_plan", "force_custom_plan"):
        suite.case(f"CVE-2016-2193.prepared_by_app_executed_by_others[{mode}]",
                   cve_2016_2193_prepared_by_app_executed_by_others, suite, mode)
        suite.case(f"CVE-2016-2193.prepared_by_superuser_executed_by_app[{mode}]",
                   cve_2016_2193_prepared_by_superuser_executed_by_app, suite, mode)
    suite.case("CVE-2016-2193.generic_plan_across_claims", cve_2016_2193_generic_plan_across_claims, suite)
    suite.case("CVE-2016-2193.plpgsql_plan_across_roles", cve_2016_2193_plpgsql_plan_across_roles, suite)
    suite.case("CVE-2016-2193.row_security_toggled", cve_2016_2193_row_security_toggled, suite)
    suite.case("CVE-2017-15099.do_update_on_other_tenants_row", cve_2017_15099_do_update_on_other_tenants_row, suite)
    suite.case("CVE-2017-15099.do_update_where_reads_other_row", cve_2017_15099_do_update_where_reads_other_row, suite)
    suite.case("CVE-2017-15099.column_privilege", cve_2017_15099_column_privilege, suite)
    suite.case("CVE-2017-15099.do_update_own_row", cve_2017_15099_do_nothing_and_own_row, suite)
    for rel, col in (("t_text", "tenant_id"), ("t_text", "name"), ("t_text", "amount")):
        for with_claim in (True, False):
            suite.case(f"CVE-2019-10130.leaky_operator_statistics[{rel}.{col},{'claim' if with_claim else 'no claim, EXPLAIN'}]",
                       leaky_probe, suite, rel, col, with_claim, not with_claim)
    suite.case("CVE-2019-10130.stats_views_hidden_from_the_application", stats_views_hidden, suite)
    for rel in ("t_part", "t_part_hi", "t_inh", "t_inh_child", "v_text_def", "v_text_inv", "v_part_def", "f_part_sql(0)"):
        for col in ("tenant_id", "name"):
            for with_claim in (True, False):
                suite.case(f"CVE-2025-8713.leaky_operator_statistics[{rel}.{col},{'claim' if with_claim else 'no claim, EXPLAIN'}]",
                           leaky_probe, suite, rel, col, with_claim, not with_claim)
    suite.case("CVE-2023-2455.create_or_alter_policy_to_role_is_tamper", cve_2023_2455_policy_to_role_is_tamper, suite)
    suite.case("CVE-2023-2455.claim_functions_stable_and_not_inlinable", cve_2023_2455_claim_functions_not_inlinable, suite)
    suite.case("CVE-2023-2455.inlined_function_plan_across_roles", cve_2023_2455_inlined_function_role_change, suite)
    for t in ("t_text", "t_varchar", "t_uuid", "t_bigint", "t_int", "t_part", "t_inh"):
        suite.case(f"CVE-2023-39418.merge_not_matched_insert_other_tenant[{t}]", cve_2023_39418_merge_insert_other, suite, t)
        suite.case(f"CVE-2023-39418.merge_matched_update_moves_row[{t}]", cve_2023_39418_merge_update_move, suite, t)
    suite.case("CVE-2023-39418.merge_matched_delete_only_visible_rows", cve_2023_39418_merge_matched_delete_invisible, suite)
    for shape in SHAPES_10976:
        for planner in ("app", "superuser"):
            suite.case(f"CVE-2024-10976.role_change_between_plan_and_execution[{shape},planned_by_{planner}]",
                       cve_2024_10976, suite, shape, planner)
    suite.case("CVE-2024-10976.security_definer_switch", cve_2024_10976_security_definer_switch, suite)
    for label, how, expect in [
        ("set_role_app", [f"SET ROLE {fx.APP}"], "filtered"),
        ("set_session_authorization_app", [f"SET SESSION AUTHORIZATION {fx.APP}"], "filtered"),
        ("session_authorization_switcher_set_role_app", [f"SET SESSION AUTHORIZATION {fx.SWITCHER}", f"SET ROLE {fx.APP}"], "filtered"),
        ("session_authorization_switcher_set_role_admin", [f"SET SESSION AUTHORIZATION {fx.SWITCHER}", f"SET ROLE {fx.ADMIN}"], "bypassrls"),
        ("set_role_admin", [f"SET ROLE {fx.ADMIN}"], "bypassrls"),
        ("superuser_itself", [], "superuser"),
        ("session_authorization_admin_then_reset", [f"SET SESSION AUTHORIZATION {fx.ADMIN}", "RESET SESSION AUTHORIZATION", f"SET ROLE {fx.APP}"], "filtered"),
    ]:
        suite.case(f"CVE-2024-10978.parallel_workers_run_as_the_current_user[{label}]", cve_2024_10978, suite, how, expect)
    for name, value in GUARDED_SETTINGS.items():
        suite.case(f"set_user-CVE-2021-41558.application_cannot_change[{name}]", cve_2021_41558_settings, suite, name, value)
    suite.case("set_user-CVE-2021-41558.internal_bypass_setting", cve_2021_41558_internal_bypass_setting, suite)
    suite.case("set_user-CVE-2021-41558.require_token_claim_by_every_route", cve_2021_41558_require_token_claim, suite)
    suite.case("set_user-CVE-2021-41558.begin_bypass_by_every_route", cve_2021_41558_begin_bypass_routes, suite)
    for how in ("commit", "rollback", "end_bypass", "savepoint", "commit_and_chain", "reset_all", "discard_all",
                "reset_all_inside"):
        suite.case(f"set_user-CVE-2021-38140.bypass_ends[{how}]", cve_2021_38140_ends, suite, how)
    suite.case("set_user-CVE-2021-38140.with_hold_cursor_does_not_outlive_the_bypass", cve_2021_38140_hold_cursor, suite)
    suite.case("set_user-CVE-2021-38140.prepared_plan_after_the_bypass", cve_2021_38140_prepared_after, suite)
    suite.case("set_user-CVE-2021-38140.plpgsql_plan_after_the_bypass", cve_2021_38140_plpgsql_after, suite)
    suite.case("set_user-CVE-2021-38140.procedure_commit_ends_the_bypass", cve_2021_38140_procedure_commit, suite)
    suite.case("set_user-CVE-2021-38140.role_change_does_not_carry_the_bypass", cve_2021_38140_role_change, suite)
    suite.case("set_user-CVE-2021-38140.parallel_workers_after_the_bypass", cve_2021_38140_parallel_after, suite)
    suite.verify_audit()
