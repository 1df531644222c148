"""Family "matrix": principals x operations x access paths (threat model, "Families").

Every cell runs one operation through one access path as one principal, in its own connection and
transaction (rolled back), and asserts the rows (or row count), the SQLSTATE of a refusal, and the
audit events the statement left: exactly the expected ones, none for an allowed filtered statement.

Principals and the class they fall in:
    app_A        sec_app with claim A                 F  filtered: A's rows only
    owner_A      sec_owner (owns the tables), claim A F  (FORCE ROW LEVEL SECURITY)
    app_none     sec_app, no claim                    N  refused: no_claim
    app_blank    sec_app, claim ''                    N  refused: no_claim ('' is unset)
    bypassrls_A  sec_admin (BYPASSRLS), claim A       V  refused: bypassrls
    superuser_A  postgres, claim A                    V  refused: superuser
    trusted_A    sec_trusted (BYPASSRLS, in tenant_guard.trusted_roles), claim A
                                                      T  every tenant's rows; reads audited broad_read
    bypass       sec_bypasser (BYPASSRLS, member of tenant_guard.bypass_roles) after
                 begin_bypass(reason), no claim       X  every tenant's rows; audited bypass

An access path may change whose rights are checked: a view without security_invoker and a
SECURITY DEFINER function are checked as their owner (sec_owner: filtered, needs a claim) or as the
superuser that owns them (refused). The cell's class is then the class of the checked role.
"""

import re

import fixture as fx
from lib import check, expect_ok, expect_refused, expect_rows, is_guard_error, is_rls_error, lit

BYPASS_REASON = "sec matrix bypass"


class Principal:
    def __init__(self, name, user, claim, cls, voider_reason=None, bypass=False):
        self.name = name
        self.user = user
        self.claim = claim  # 'A', '' or None
        self.cls = cls
        self.voider_reason = voider_reason
        self.bypass = bypass

    def start(self, conn, group):
        conn.ok("BEGIN")
        if self.claim == "A":
            conn.ok(f"SET LOCAL tenant_guard.tenant_id = {lit(fx.tval('A', group))}")
        elif self.claim == "":
            conn.ok("SET LOCAL tenant_guard.tenant_id = ''")
        if self.bypass:
            conn.ok(f"SELECT tenant_guard.begin_bypass({lit(BYPASS_REASON)})")


PRINCIPALS = [
    Principal("app_A", fx.APP, "A", "F"),
    Principal("owner_A", fx.OWNER, "A", "F"),
    Principal("app_none", fx.APP, None, "N"),
    Principal("app_blank", fx.APP, "", "N"),
    Principal("bypassrls_A", fx.ADMIN, "A", "V", voider_reason="bypassrls"),
    Principal("superuser_A", fx.SUPERUSER, "A", "V", voider_reason="superuser"),
    Principal("trusted_A", fx.TRUSTED, "A", "T"),
    Principal("bypass", fx.BYPASSER, None, "X", bypass=True),
]


def keyrows(table, tenants, group=None):
    """(tenant_id, id, name) of the fixture rows of `table` (a parent includes its children)."""
    return [(r[0], r[1], r[2]) for r in fx.expected_rows(table, tenants)]


A = ("A",)
ALL = fx.ALL_TENANTS


class Op:
    """One operation through one access path.

    sql:       the statement (a marker is put in front); or steps: [pre..., main] where only the
               main (last) statement is judged; or fn(conn, marker) -> Result
    kind:      read | write | tamper | copy_into | hold | explain
    checker:   caller | owner | su_view | su_func  (whose rights the guard checks)
    rows_F / rows_all:  expected rows for a filtered role with claim A / a role that sees every
               tenant (None: check rowcount_F / rowcount_all instead)
    F / all:   'ok' (default), 'rls' (PostgreSQL's own row-security refusal, 42501),
               ('error', sqlstate)
    """

    def __init__(self, name, sql=None, *, steps=None, fn=None, group="str", table="t_text",
                 kind="read", checker="caller", rows_F=None, rows_all=None, rowcount_F=None,
                 rowcount_all=None, F="ok", all="ok", command=None, pre=(), tamper_reason=None,
                 copy=None, copy_in=None, x_events=1, t_events=1, t_read=None, n_guard=True):
        self.name = name
        self.sql = sql
        self.steps = steps
        self.fn = fn
        self.group = group
        self.table = table
        self.kind = kind
        self.checker = checker
        self.rows_F = rows_F
        self.rows_all = rows_all
        self.rowcount_F = rowcount_F
        self.rowcount_all = rowcount_all
        self.F = F
        self.all = all
        self.command = command
        self.pre = pre
        self.tamper_reason = tamper_reason
        self.copy = copy
        self.copy_in = copy_in
        self.x_events = x_events
        self.t_events = t_events
        # a trusted role's statement that returns rows read from protected tables is a broad read
        self.t_read = (kind == "read") if t_read is None else t_read
        # N: the guard's own no-claim refusal (False: PostgreSQL refuses first, at planning)
        self.n_guard = n_guard

    def execute(self, conn, m):
        for p in self.pre:
            conn.ok(p)
        if self.fn:
            return self.fn(conn, m)
        if self.copy:
            return conn.copy_out(f"{m} {self.copy}")
        if self.copy_in:
            sql, lines = self.copy_in
            return conn.copy_in(f"{m} {sql}", lines)
        steps = self.steps or [self.sql]
        for s in steps[:-1]:
            conn.ok(s)
        return conn.run(f"{m} {steps[-1]}")


def effective_class(p, op):
    """The class of the role whose rights the guard checks for this path."""
    if op.checker == "caller":
        return p.cls, p.voider_reason
    if op.checker == "owner":
        if p.claim == "A":
            return "F", None
        if p.bypass:
            return "XO", None  # the bypass is the caller's; the owner has no claim
        return "N", None
    if op.checker in ("su_view", "su_func"):
        if p.claim == "A":
            return "V", "superuser"
        if p.bypass:
            # a view is expanded in the caller's statement (the caller's bypass covers it); a
            # SECURITY DEFINER function runs as its owner, who is in no bypass and has no claim
            return ("X", None) if op.checker == "su_view" else ("N", None)
        return "N", None
    raise ValueError(op.checker)


def judge_cell(suite, p, op, r, m):
    cls, vreason = effective_class(p, op)
    what = f"{p.name} {op.name}"
    ev_common = {"relation": f"public.{op.table}"}
    if op.command:
        ev_common["command"] = op.command

    def refused_by_guard(event, reason):
        expect_refused(r, what, "42501", guard=True)
        suite.expect_event(m, event=event, reason=reason, **ev_common)

    def allowed(outcome, rows, rowcount):
        if outcome == "rls":
            expect_refused(r, what, "42501", guard=None)
            check(is_rls_error(r) or is_guard_error(r), f"{what}: not a row-security refusal: {r.message!r}")
            return False
        if isinstance(outcome, tuple) and outcome[0] == "error":
            expect_refused(r, what, outcome[1], guard=None)
            return False
        if rows is not None:
            expect_rows(r, rows, what)
        elif rowcount is not None:
            expect_ok(r, what)
            check(r.rowcount == rowcount, f"{what}: expected {rowcount} rows affected, got {r.rowcount} ({r.status})")
        else:
            expect_ok(r, what)
        return True

    if op.kind == "explain":  # plain EXPLAIN reads nothing: allowed for everyone, no event
        expect_ok(r, what)
        suite.expect_no_event(m)
        return
    if op.kind == "tamper":
        if cls == "X":
            expect_ok(r, what)
            suite.expect_event(m, event="bypass", reason=BYPASS_REASON, **ev_common)
        else:
            refused_by_guard("tamper", op.tamper_reason)
        return
    if op.kind == "copy_into":
        if cls == "X":
            expect_ok(r, what)
            suite.expect_event(m, count=op.x_events, event="bypass", reason=BYPASS_REASON, relation=ev_common["relation"])
        else:
            refused_by_guard("tamper", "copy_into_unprotected")
        return
    if op.kind == "explain_analyze":
        # its "Rows Removed by Filter" would count other tenants' rows: refused, except in a bypass
        if cls == "X":
            expect_ok(r, what)
            suite.expect_event(m, count=op.x_events, event="bypass", reason=BYPASS_REASON, relation=ev_common["relation"])
        else:
            refused_by_guard("denied", "explain_analyze")
        return
    if op.kind == "hold":
        # a WITH HOLD cursor's rows outlive the claim and the bypass: refused for every role
        refused_by_guard("denied", "hold_cursor")
        return
    if cls == "N":
        if op.n_guard:
            refused_by_guard("denied", "no_claim")
        else:
            expect_refused(r, what, "42501", guard=None)
        return
    if cls == "V":
        refused_by_guard("denied", vreason)
        return
    if cls == "XO":
        expect_refused(r, what, "42501", guard=True, contains="no tenant claim")
        return
    if cls == "F":
        if allowed(op.F, op.rows_F, op.rowcount_F):
            suite.expect_no_event(m)
        else:
            suite.expect_no_event(m)
        return
    if cls == "T":
        if allowed(op.all, op.rows_all, op.rowcount_all):
            if op.t_read:
                suite.expect_event(m, count=op.t_events, event="broad_read", reason="trusted_role", relation=ev_common["relation"])
            else:
                suite.expect_no_event(m)  # writes by trusted roles are not audited (README)
        return
    if cls == "X":
        if allowed(op.all, op.rows_all, op.rowcount_all):
            suite.expect_event(m, count=op.x_events, event="bypass", reason=BYPASS_REASON, relation=ev_common["relation"])
        return
    raise ValueError(cls)


# ---------------------------------------------------------------------------------------------
# The operations and access paths
# ---------------------------------------------------------------------------------------------

def trigger_seen(tenants):
    keys = sorted((r[0], r[1]) for r in fx.expected_rows("t_text", tenants))
    return [(",".join(f"{t}:{i}" for t, i in keys),)]


PARALLEL = ("SET LOCAL parallel_setup_cost = 0", "SET LOCAL parallel_tuple_cost = 0",
            "SET LOCAL min_parallel_table_scan_size = 0", "SET LOCAL max_parallel_workers_per_gather = 2",
            "SET LOCAL force_parallel_mode = on")


def parallel_read(conn, m):
    for p in PARALLEL:
        conn.ok(p)
    plan = "\n".join(r[0] for r in conn.rows("EXPLAIN (COSTS OFF) SELECT tenant_id, id, name FROM t_text"))
    check("Gather" in plan, f"no parallel plan: {plan}")
    return conn.run(f"{m} SELECT tenant_id, id, name FROM t_text")


def parallel_fn(conn, m):
    for p in PARALLEL:
        conn.ok(p)
    # the workers call the function: the leader does not run the plan itself
    conn.ok("SET LOCAL parallel_leader_participation = off")
    plan = "\n".join(r[0] for r in conn.rows("EXPLAIN (COSTS OFF) SELECT f_count_parallel() FROM u_plain"))
    check("Gather" in plan, f"no parallel plan: {plan}")
    return conn.run(f"{m} SELECT f_count_parallel() FROM u_plain")


def cursor_read_fn(conn, m):
    r = conn.run(f"{m} DECLARE c CURSOR FOR SELECT tenant_id, id, name FROM t_text")
    if not r.ok:
        return r
    return conn.run(f"{m} FETCH ALL FROM c")


def where_current_of(conn, m):
    r = conn.run(f"{m} DECLARE c CURSOR FOR SELECT * FROM t_text ORDER BY tenant_id, id FOR UPDATE")
    if not r.ok:
        return r
    r = conn.run("FETCH 1 FROM c")
    if not r.ok:
        return r
    return conn.run(f"{m} UPDATE t_text SET amount = -1 WHERE CURRENT OF c RETURNING tenant_id, id")


def prepared(mode):
    def fn(conn, m):
        conn.ok(f"SET LOCAL plan_cache_mode = {mode}")
        conn.ok(f"{m} PREPARE p (int) AS SELECT tenant_id, id, name FROM t_text WHERE id > $1")
        r = conn.run(f"{m} EXECUTE p(0)")
        if mode == "force_generic_plan" and r.ok:
            # the claim is a parameter of the generic plan (an init-plan), never a constant in it
            plan = "\n".join(x[0] for x in conn.rows("EXPLAIN (COSTS OFF) EXECUTE p(0)"))
            check("acme" not in plan, f"the generic plan holds the claim as a constant: {plan}")
        return r
    return fn


def explain_analyze(conn, m):
    r = conn.run(f"{m} EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT tenant_id, id, name FROM t_text")
    if r.ok:
        text = "\n".join(x[0] for x in r.rows)
        actual = re.search(r"actual rows=(\d+)", text)
        r.rows = [(int(actual.group(1)),)] if actual else [(None,)]
    return r


def n(tenants, table="t_text"):
    return len(fx.expected_rows(table, tenants))


def build_ops():
    ops = []
    R = lambda table, tenants: keyrows(table, tenants)  # noqa: E731
    # ---- reads, every access path ------------------------------------------------------------
    sel = "SELECT tenant_id::text, id, name FROM"
    reads = [
        ("select.direct", f"{sel} t_text", "t_text", "caller"),
        ("select.partition_parent", f"{sel} t_part", "t_part", "caller"),
        ("select.partition_child", f"{sel} t_part_hi", "t_part_hi", "caller"),
        ("select.inheritance_parent", f"{sel} t_inh", "t_inh", "caller"),
        ("select.inheritance_child", f"{sel} t_inh_child", "t_inh_child", "caller"),
        ("select.view_security_invoker", f"{sel} v_text_inv", "t_text", "caller"),
        ("select.view_owner_definer", f"{sel} v_text_def", "t_text", "owner"),
        ("select.view_superuser_definer", f"{sel} v_text_su", "t_text", "su_view"),
        ("select.sql_srf_inlined", f"{sel} f_text_sql()", "t_text", "caller"),
        ("select.plpgsql_function", f"{sel} f_text_plpgsql()", "t_text", "caller"),
        ("select.security_definer_owner", f"{sel} f_text_secdef()", "t_text", "owner"),
        ("select.security_definer_superuser", f"{sel} f_text_su_secdef()", "t_text", "su_func"),
        ("select.cte", f"WITH c AS MATERIALIZED (SELECT * FROM t_text) {sel} c", "t_text", "caller"),
        ("select.subquery", f"{sel} (SELECT * FROM t_text OFFSET 0) s", "t_text", "caller"),
        ("select.sublink_exists", "SELECT k.tenant_id, k.id, k.name FROM u_keys k WHERE EXISTS "
         "(SELECT 1 FROM t_text t WHERE t.tenant_id = k.tenant_id AND t.id = k.id)", "t_text", "caller"),
        ("select.sublink_in", "SELECT k.tenant_id, k.id, k.name FROM u_keys k WHERE (k.tenant_id, k.id) IN "
         "(SELECT tenant_id, id FROM t_text)", "t_text", "caller"),
        ("select.tablesample_system", f"{sel} t_text TABLESAMPLE SYSTEM (100)", "t_text", "caller"),
        ("select.tablesample_bernoulli", f"{sel} t_text TABLESAMPLE BERNOULLI (100) REPEATABLE (7)", "t_text", "caller"),
        ("select.whole_row", "SELECT row_to_json(t)->>'tenant_id', (row_to_json(t)->>'id')::int, "
         "row_to_json(t)->>'name' FROM t_text t", "t_text", "caller"),
        ("select.whole_row_composite", "SELECT (x).tenant_id, (x).id, (x).name FROM (SELECT t AS x FROM t_text t) s",
         "t_text", "caller"),
        ("select.union", f"{sel} t_text WHERE id <= 2 UNION ALL {sel} t_text WHERE id > 2", "t_text", "caller"),
    ]
    for name, sql, table, checker in reads:
        src = {"t_part_hi": "t_part_hi", "t_inh_child": "t_inh_child", "t_part": "t_part", "t_inh": "t_inh"}.get(table, "t_text")
        ops.append(Op(name, sql, table=table, checker=checker, command="SELECT",
                      rows_F=R(src, A), rows_all=R(src, ALL)))
    ops.append(Op("select.view_join", "SELECT tenant_id, id, name FROM v_join", table="t_text",
                  rows_F=[(r[0], r[2], f"{fx.NAMES['A']}-t_text-{r[2]}") for r in fx.lines_of("A")],
                  rows_all=[(r[0], r[2], f"{fx.NAMES[t]}-t_text-{r[2]}") for t in ALL for r in fx.lines_of(t)],
                  t_events=1))
    ops.append(Op("select.sublink_scalar", "SELECT (SELECT count(*) FROM t_text)", rows_F=[(n(A),)],
                  rows_all=[(n(ALL),)], command="SELECT"))
    ops.append(Op("select.trigger", "INSERT INTO u_trig (note) VALUES ('m') RETURNING seen",
                  rows_F=trigger_seen(A), rows_all=trigger_seen(ALL)))
    ops.append(Op("select.cursor", fn=cursor_read_fn, rows_F=R("t_text", A), rows_all=R("t_text", ALL)))
    ops.append(Op("select.cursor_with_hold", f"DECLARE c CURSOR WITH HOLD FOR {sel} t_text", kind="hold"))
    ops.append(Op("select.parallel", fn=parallel_read, rows_F=R("t_text", A), rows_all=R("t_text", ALL)))
    # the function runs once per row of u_plain, each time a query of its own: ten events
    ops.append(Op("select.parallel_function_in_workers", fn=parallel_fn, rows_F=[(n(A),)] * 10,
                  rows_all=[(n(ALL),)] * 10, t_events=10, x_events=10))
    ops.append(Op("select.prepared_generic", fn=prepared("force_generic_plan"), rows_F=R("t_text", A),
                  rows_all=R("t_text", ALL)))
    ops.append(Op("select.prepared_custom", fn=prepared("force_custom_plan"), rows_F=R("t_text", A),
                  rows_all=R("t_text", ALL)))
    ops.append(Op("copy_to.table", copy="COPY t_text (tenant_id, id, name) TO STDOUT", command="COPY",
                  rows_F=[(t, str(i), nm) for t, i, nm in R("t_text", A)],
                  rows_all=[(t, str(i), nm) for t, i, nm in R("t_text", ALL)]))
    ops.append(Op("copy_to.query", copy="COPY (SELECT tenant_id, id, name FROM t_text) TO STDOUT",
                  rows_F=[(t, str(i), nm) for t, i, nm in R("t_text", A)],
                  rows_all=[(t, str(i), nm) for t, i, nm in R("t_text", ALL)]))
    ops.append(Op("explain.plain", "EXPLAIN SELECT * FROM t_text", kind="explain"))
    ops.append(Op("explain.analyze", fn=explain_analyze, kind="explain_analyze"))
    ops.append(Op("row_security_off", steps=["SET LOCAL row_security = off", f"{sel} t_text"],
                  F=("error", "42501"), rows_all=R("t_text", ALL), n_guard=False))
    # ---- every supported tenant column type --------------------------------------------------
    for t, (typ, g) in fx.TYPED_TABLES.items():
        if t == "t_text":
            continue
        a, b = fx.tval("A", g), fx.tval("B", g)
        ops.append(Op(f"select.type_{t}", f"SELECT tenant_id::text, id, name FROM {t}", group=g, table=t,
                      rows_F=R(t, A), rows_all=R(t, ALL), command="SELECT"))
        ops.append(Op(f"insert.own.type_{t}", f"INSERT INTO {t} VALUES ({lit(a)}, 901, 'x', 1) RETURNING tenant_id::text, id",
                      group=g, table=t, kind="write", rows_F=[(a, 901)], rows_all=[(a, 901)], command="INSERT"))
        ops.append(Op(f"insert.other_tenant.type_{t}", f"INSERT INTO {t} VALUES ({lit(b)}, 901, 'x', 1) RETURNING tenant_id::text, id",
                      group=g, table=t, kind="write", F="rls", rows_all=[(b, 901)], command="INSERT"))
        ops.append(Op(f"update.all.type_{t}", f"UPDATE {t} SET amount = amount + 1 RETURNING tenant_id::text, id",
                      group=g, table=t, kind="write", rows_F=[(x[0], x[1]) for x in R(t, A)],
                      rows_all=[(x[0], x[1]) for x in R(t, ALL)], command="UPDATE"))
        ops.append(Op(f"update.move.type_{t}", f"UPDATE {t} SET tenant_id = {lit(b)}, id = 901 WHERE tenant_id = {lit(a)} AND id = 1 RETURNING id",
                      group=g, table=t, kind="write", F="rls", rows_all=[(901,)], command="UPDATE"))
        ops.append(Op(f"delete.other_tenant.type_{t}", f"DELETE FROM {t} WHERE tenant_id = {lit(b)} RETURNING tenant_id::text, id",
                      group=g, table=t, kind="write", rows_F=[], rows_all=[(x[0], x[1]) for x in R(t, ("B",))],
                      command="DELETE"))
        ops.append(Op(f"upsert.other_tenant.type_{t}",
                      f"INSERT INTO {t} VALUES ({lit(b)}, 1, 'x', 1) ON CONFLICT (tenant_id, id) DO UPDATE SET amount = 0 "
                      "RETURNING tenant_id::text, id, amount", group=g, table=t, kind="write", F="rls",
                      rows_all=[(b, 1, 0)], command="INSERT"))
    # ---- writes on t_text ----------------------------------------------------------------
    a, b = "acme", "globex"
    AK = [(x[0], x[1]) for x in R("t_text", A)]
    ALLK = [(x[0], x[1]) for x in R("t_text", ALL)]
    BK = [(x[0], x[1]) for x in R("t_text", ("B",))]
    W = lambda name, sql, **kw: ops.append(Op(name, sql, kind="write", **kw))  # noqa: E731
    W("insert.own", f"INSERT INTO t_text VALUES ('acme', 901, 'acme-new', 1) RETURNING tenant_id, id",
      rows_F=[(a, 901)], rows_all=[(a, 901)], command="INSERT")
    W("insert.other_tenant", "INSERT INTO t_text VALUES ('globex', 901, 'x', 1) RETURNING tenant_id, id",
      F="rls", rows_all=[(b, 901)], command="INSERT")
    W("insert.blank_tenant", "INSERT INTO t_text VALUES ('', 901, 'x', 1) RETURNING tenant_id, id",
      F="rls", rows_all=[("", 901)], command="INSERT")
    W("insert.select_returning", "INSERT INTO t_text SELECT tenant_id, id + 500, name, amount FROM t_text RETURNING tenant_id, id - 500",
      rows_F=AK, rows_all=ALLK, command="INSERT")
    W("update.all_returning", "UPDATE t_text SET amount = amount + 1 RETURNING tenant_id, id", rows_F=AK,
      rows_all=ALLK, command="UPDATE")
    W("update.other_tenant_by_key", "UPDATE t_text SET amount = 0 WHERE tenant_id = 'globex' RETURNING tenant_id, id",
      rows_F=[], rows_all=BK, command="UPDATE")
    W("update.move_row_to_other_tenant", "UPDATE t_text SET tenant_id = 'globex', id = 901 WHERE tenant_id = 'acme' AND id = 5 RETURNING id",
      F="rls", rows_all=[(901,)], command="UPDATE")
    W("update.from_join", "UPDATE t_text t SET amount = t.amount FROM t_lines l WHERE l.tenant_id = t.tenant_id "
      "AND l.order_id = t.id AND l.id = 1 RETURNING t.tenant_id, t.id",
      rows_F=[(a, 1)], rows_all=[(fx.tval(x, "str"), 1) for x in ALL], command="UPDATE")
    W("delete.all_returning", "DELETE FROM t_text RETURNING tenant_id, id", rows_F=AK, rows_all=ALLK, command="DELETE")
    W("delete.other_tenant_by_key", "DELETE FROM t_text WHERE tenant_id = 'globex' RETURNING tenant_id, id",
      rows_F=[], rows_all=BK, command="DELETE")
    W("delete.using", "DELETE FROM t_text t USING u_keys k WHERE k.tenant_id = t.tenant_id AND k.id = t.id AND k.id = 2 "
      "RETURNING t.tenant_id, t.id", rows_F=[(a, 2)], rows_all=[(fx.tval(x, "str"), 2) for x in ("A", "B", "C")],
      command="DELETE")
    src = "USING (VALUES ('acme', 1), ('globex', 1), ('globex', 2)) s(tn, id) ON t.tenant_id = s.tn AND t.id = s.id"
    W("merge.matched_update", f"MERGE INTO t_text t {src} WHEN MATCHED THEN UPDATE SET amount = t.amount + 1",
      rowcount_F=1, rowcount_all=3, command="MERGE")
    W("merge.matched_delete", f"MERGE INTO t_text t {src} WHEN MATCHED THEN DELETE",
      rowcount_F=1, rowcount_all=3, command="MERGE")
    W("merge.matched_do_nothing", f"MERGE INTO t_text t {src} WHEN MATCHED THEN DO NOTHING",
      rowcount_F=0, rowcount_all=0, command="MERGE")
    W("merge.matched_update_move", "MERGE INTO t_text t USING (VALUES ('acme', 5)) s(tn, id) ON t.tenant_id = s.tn "
      "AND t.id = s.id WHEN MATCHED THEN UPDATE SET tenant_id = 'globex', id = 901", F="rls", rowcount_all=1,
      command="MERGE")
    W("merge.not_matched_insert_own", "MERGE INTO t_text t USING (VALUES ('acme', 901)) s(tn, id) ON t.tenant_id = s.tn "
      "AND t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.tn, s.id, 'x', 1)", rowcount_F=1, rowcount_all=1,
      command="MERGE")
    W("merge.not_matched_insert_other", "MERGE INTO t_text t USING (VALUES ('globex', 901)) s(tn, id) ON t.tenant_id = s.tn "
      "AND t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.tn, s.id, 'x', 1)", F="rls", rowcount_all=1,
      command="MERGE")
    W("merge.invisible_row_is_not_matched", "MERGE INTO t_text t USING (VALUES ('globex', 1)) s(tn, id) ON t.id = s.id "
      "AND t.tenant_id = s.tn WHEN MATCHED THEN UPDATE SET amount = 0 WHEN NOT MATCHED THEN DO NOTHING",
      rowcount_F=0, rowcount_all=1, command="MERGE")
    W("upsert.do_update_own", "INSERT INTO t_text VALUES ('acme', 1, 'acme-up', 5) ON CONFLICT (tenant_id, id) "
      "DO UPDATE SET amount = EXCLUDED.amount RETURNING tenant_id, id, amount", rows_F=[(a, 1, 5)],
      rows_all=[(a, 1, 5)], command="INSERT")
    W("upsert.do_update_other", "INSERT INTO t_text VALUES ('globex', 1, 'x', 5) ON CONFLICT (tenant_id, id) "
      "DO UPDATE SET amount = EXCLUDED.amount RETURNING tenant_id, id, amount", F="rls",
      rows_all=[(b, 1, 5)], command="INSERT")
    W("upsert.do_nothing_existing", "INSERT INTO t_text VALUES ('acme', 1, 'x', 5) ON CONFLICT DO NOTHING RETURNING id",
      rows_F=[], rows_all=[], command="INSERT")
    W("upsert.do_nothing_new", "INSERT INTO t_text VALUES ('acme', 902, 'x', 5) ON CONFLICT DO NOTHING RETURNING id",
      rows_F=[(902,)], rows_all=[(902,)], command="INSERT")
    W("writable_cte", "WITH u AS (UPDATE t_text SET amount = amount RETURNING tenant_id, id) SELECT * FROM u",
      rows_F=AK, rows_all=ALLK, t_read=True)
    W("writable_cte_insert_select", "WITH i AS (INSERT INTO t_text SELECT tenant_id, id + 700, name, amount FROM t_text "
      "RETURNING tenant_id, id) SELECT tenant_id, id - 700 FROM i", rows_F=AK, rows_all=ALLK,
      t_read=True)
    # the cursor's SELECT ... FOR UPDATE is a read: a trusted role's read is audited (broad_read,
    # recorded when the transaction ends), and under a bypass both statements are
    ops.append(Op("where_current_of", fn=where_current_of, kind="write", rows_F=[(a, 1)],
                  rows_all=[sorted(ALLK)[0]], t_read=True, x_events=2))
    ops.append(Op("copy_from", copy_in=("COPY t_text FROM STDIN", ["acme\t903\tacme-copy\t1"]), kind="write",
                  F=("error", "0A000"), rowcount_all=1, command="COPY"))
    W("fk_check.insert_child", "INSERT INTO t_lines VALUES ('acme', 901, 1, 1) RETURNING tenant_id, id",
      table="t_lines", rows_F=[(a, 901)], rows_all=[(a, 901)], command="INSERT")
    W("fk_check.missing_parent", "INSERT INTO t_lines VALUES ('acme', 901, 99, 1) RETURNING tenant_id, id",
      table="t_lines", F=("error", "23503"), all=("error", "23503"), command="INSERT")
    W("fk_cascade.delete_parent", "DELETE FROM t_text WHERE id = 1 RETURNING tenant_id, id",
      rows_F=[(a, 1)], rows_all=[(fx.tval(x, "str"), 1) for x in ALL], command="DELETE")
    W("trigger.write_other_tenant", "INSERT INTO u_trig (note, write_tenant) VALUES ('w', 'globex') RETURNING note",
      F="rls", rows_all=[("w",)], t_read=True, x_events=2)  # the trigger reads t_text, then writes it
    W("view_invoker.update", "UPDATE v_text_inv SET amount = amount RETURNING tenant_id, id", rows_F=AK,
      rows_all=ALLK)
    ops.append(Op("view_owner_definer.update", "UPDATE v_text_def SET amount = amount RETURNING tenant_id, id",
                  kind="write", checker="owner", rows_F=AK))
    ops.append(Op("view_superuser_definer.update", "UPDATE v_text_su SET amount = amount RETURNING tenant_id, id",
                  kind="write", checker="su_view", rows_all=ALLK))
    W("function.plpgsql_update", "SELECT f_bump(0)", rows_F=[(n(A),)], rows_all=[(n(ALL),)])
    ops.append(Op("function.security_definer_update", "SELECT f_bump_secdef(0)", kind="write", checker="owner",
                  rows_F=[(n(A),)]))
    W("partition_child.update", "UPDATE t_part_hi SET amount = amount RETURNING tenant_id, id", table="t_part_hi",
      rows_F=[(x[0], x[1]) for x in R("t_part_hi", A)], rows_all=[(x[0], x[1]) for x in R("t_part_hi", ALL)],
      command="UPDATE")
    W("partition.move_between_partitions", "UPDATE t_part SET id = id + 200 WHERE id < 100 RETURNING tenant_id, id - 200",
      table="t_part", rows_F=[(x[0], x[1]) for x in R("t_part_lo", A)],
      rows_all=[(x[0], x[1]) for x in R("t_part_lo", ALL)], command="UPDATE")
    W("partition.delete_other_tenant", "DELETE FROM t_part WHERE tenant_id = 'globex' RETURNING tenant_id, id",
      table="t_part", rows_F=[], rows_all=[(x[0], x[1]) for x in R("t_part", ("B",))], command="DELETE")
    W("inheritance_parent.update", "UPDATE t_inh SET amount = amount RETURNING tenant_id, id", table="t_inh",
      rows_F=[(x[0], x[1]) for x in R("t_inh", A)], rows_all=[(x[0], x[1]) for x in R("t_inh", ALL)],
      command="UPDATE")
    # ---- whole-table and copy operations -------------------------------------------------
    ops.append(Op("truncate", "TRUNCATE t_lines", table="t_lines", kind="tamper", tamper_reason="truncate"))
    ops.append(Op("create_table_as", "CREATE TEMP TABLE sec_copy AS SELECT * FROM t_text", kind="copy_into"))
    ops.append(Op("select_into", "SELECT * INTO TEMP sec_copy FROM t_text", kind="copy_into"))
    ops.append(Op("create_materialized_view", "CREATE MATERIALIZED VIEW scratch.sec_mv AS SELECT * FROM t_text",
                  kind="copy_into"))
    return ops


OPS = build_ops()


def run(suite):
    suite.family("matrix")
    for op in OPS:
        for p in PRINCIPALS:
            suite.case(f"{op.name}[{p.name}]", cell, suite, p, op)
    suite.verify_audit()


def cell(suite, p, op):
    conn = suite.connect(p.user)
    m = suite.marker()
    p.start(conn, op.group)
    r = op.execute(conn, m)
    # the marker also tags the end of the transaction: a cursor's read ends (and is audited) there
    conn.run(f"{m} ROLLBACK")
    judge_cell(suite, p, op, r, m)
