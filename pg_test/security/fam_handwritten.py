"""Family "handwritten": the acceptance bar of multi-tenant users, at least 20 cases per protected
table of the fixture, with two tenants working at the same time in two connections.

Every case opens two application connections (sec_app) at once: one with tenant A's claim, one
with tenant B's (the values of the table's claim group: text, varchar, uuid, bigint or integer).
A case that commits puts the fixture rows back afterwards.
"""

import fixture as fx
from fam_cve import claim
from lib import check, expect_ok, expect_refused, expect_rows, is_guard_error, is_rls_error, lit


class Spec:
    def __init__(self, table):
        self.table = table
        self.group = fx.GROUP_OF[table]
        self.lines = table == "t_lines"
        self.sumcol = "qty" if self.lines else "amount"
        self.tcast = {"t_uuid": "uuid", "t_bigint": "bigint", "t_int": "int", "t_varchar": "varchar"}.get(table, "text")

    def v(self, tenant):
        return fx.tval(tenant, self.group)

    def rows(self, tenant):
        """(tenant_id, id, amount) of a tenant, as the table returns them (children included)."""
        if self.lines:
            return [(r[0], r[1], r[3]) for r in fx.lines_of(tenant)]
        return [(r[0], r[1], r[3]) for r in fx.expected_rows(self.table, (tenant,))]

    def ids(self, tenant):
        return sorted(r[1] for r in self.rows(tenant))

    def insert(self, tenant, i, extra=""):
        if self.lines:
            return f"INSERT INTO t_lines VALUES ({lit(self.v(tenant))}, {i}, 1, 5){extra}"
        return f"INSERT INTO {self.table} (tenant_id, id, name, amount) VALUES ({lit(self.v(tenant))}, {i}, 'new', 5){extra}"

    def select(self, where=""):
        return f"SELECT tenant_id::text, id, {self.sumcol} FROM {self.table}{where}"


SPECS = [Spec(t) for t in ("t_text", "t_varchar", "t_uuid", "t_bigint", "t_int", "t_part", "t_inh", "t_lines")]


def pair(suite, s):
    ca = suite.connect(fx.APP)
    cb = suite.connect(fx.APP)
    for c, t in ((ca, "A"), (cb, "B")):
        c.ok("BEGIN")
        claim(c, t, s.group)
    return ca, cb


def restore(suite):
    fx.restore(suite.cfg)


def sees(c, s, tenant, what):
    expect_rows(c.run(s.select()), s.rows(tenant), what, allowed_tenants={s.v(tenant)})


# -- the cases ------------------------------------------------------------------------------------

def c01_each_sees_exactly_its_rows(suite, s):
    ca, cb = pair(suite, s)
    sees(ca, s, "A", "A")
    sees(cb, s, "B", "B")
    sees(ca, s, "A", "A again, while B's transaction is open")


def c02_count_and_sum_are_own(suite, s):
    ca, cb = pair(suite, s)
    for c, t in ((ca, "A"), (cb, "B")):
        got = c.rows(f"SELECT count(*), coalesce(sum({s.sumcol}), 0) FROM {s.table}")[0]
        want = (len(s.rows(t)), sum(r[2] for r in s.rows(t)))
        check(tuple(int(x) for x in got) == want, f"{t}: count/sum {got!r}, expected {want!r}")


def c03_other_tenants_key_finds_nothing(suite, s):
    ca, cb = pair(suite, s)
    expect_rows(ca.run(s.select(f" WHERE tenant_id = {lit(s.v('B'))}")), [], "A asks for B's tenant")
    expect_rows(cb.run(s.select(f" WHERE tenant_id = {lit(s.v('A'))}")), [], "B asks for A's tenant")
    i = s.ids("B")[0]
    expect_rows(ca.run(s.select(f" WHERE id = {i}")), [r for r in s.rows("A") if r[1] == i], f"A asks for id {i} (B has it too)")


def c04_blank_tenant_rows_are_nobodys(suite, s):
    ca, cb = pair(suite, s)
    for c in (ca, cb):
        expect_rows(c.run(s.select(f" WHERE tenant_id = {lit(s.v('blank'))}")), [], "the blank tenant's row")


def c05_insert_is_invisible_to_the_other_tenant(suite, s):
    ca, cb = pair(suite, s)
    expect_ok(ca.run(s.insert("A", 950)), "A inserts")
    sees(cb, s, "B", "B before A commits")
    ca.ok("COMMIT")
    try:
        sees(cb, s, "B", "B after A committed (read committed)")
        cb.ok("COMMIT")
        cb.ok("BEGIN")
        claim(cb, "B", s.group)
        sees(cb, s, "B", "B in a new transaction")
        ca.ok("BEGIN")
        claim(ca, "A", s.group)
        got = ca.rows(s.select(" WHERE id = 950"))
        check([(r[0], r[1]) for r in got] == [(s.v("A"), 950)], f"A does not see its new row: {got!r}")
    finally:
        restore(suite)


def c06_insert_for_the_other_tenant_is_refused(suite, s):
    ca, cb = pair(suite, s)
    r = ca.run(s.insert("B", 951))
    expect_refused(r, "A inserts a row of B", "42501", guard=None)
    check(is_rls_error(r), f"not a row-security refusal: {r.message}")
    sees(cb, s, "B", "B")


def c07_update_all_touches_only_own_rows(suite, s):
    ca, cb = pair(suite, s)
    r = ca.ok(f"UPDATE {s.table} SET {s.sumcol} = {s.sumcol} + 1")
    check(r.rowcount == len(s.rows("A")), f"A's UPDATE affected {r.rowcount}, A has {len(s.rows('A'))}")
    ca.ok("COMMIT")
    try:
        sees(cb, s, "B", "B after A's committed update")
    finally:
        restore(suite)


def c08_moving_a_row_to_the_other_tenant_is_refused(suite, s):
    ca, cb = pair(suite, s)
    i = max(s.ids("A"))
    r = ca.run(f"UPDATE {s.table} SET tenant_id = {lit(s.v('B'))}, id = 952 WHERE id = {i}")
    expect_refused(r, "A moves its row to B", "42501", guard=None)
    sees(cb, s, "B", "B")


def c09_deleting_the_other_tenants_rows_deletes_nothing(suite, s):
    ca, cb = pair(suite, s)
    r = ca.ok(f"DELETE FROM {s.table} WHERE tenant_id = {lit(s.v('B'))}")
    check(r.rowcount == 0, f"A deleted {r.rowcount} rows of B")
    r = ca.ok(f"DELETE FROM {s.table} WHERE id = {s.ids('B')[-1]} AND tenant_id <> {lit(s.v('A'))}")
    check(r.rowcount == 0, f"A deleted {r.rowcount} rows by B's id")
    ca.ok("COMMIT")
    sees(cb, s, "B", "B after A's delete")


def c10_upsert_on_the_other_tenants_key_is_refused(suite, s):
    ca, cb = pair(suite, s)
    i = s.ids("B")[0]
    r = ca.run(s.insert("B", i, f" ON CONFLICT (tenant_id, id) DO UPDATE SET {s.sumcol} = 0"))
    expect_refused(r, "A upserts B's key", "42501", guard=None)
    sees(cb, s, "B", "B")


def c11_on_conflict_do_nothing_on_own_keys(suite, s):
    ca, cb = pair(suite, s)
    r = ca.ok(s.insert("A", s.ids("A")[0], " ON CONFLICT DO NOTHING"))
    check(r.rowcount == 0, f"existing own key: {r.status}")
    r = ca.ok(s.insert("A", 953, " ON CONFLICT DO NOTHING"))
    check(r.rowcount == 1, f"new own key: {r.status}")
    # B's key: refused by the WITH CHECK, never a silent INSERT 0 0 that would reveal the row
    r = ca.run(s.insert("B", s.ids("B")[0], " ON CONFLICT DO NOTHING"))
    expect_refused(r, "A's DO NOTHING with B's tenant", "42501", guard=None)


def c12_merge_matches_only_own_rows(suite, s):
    ca, cb = pair(suite, s)
    src = ", ".join(f"({lit(s.v(t))}, {i})" for t in ("A", "B") for i in s.ids(t))
    r = ca.ok(f"MERGE INTO {s.table} t USING (VALUES {src}) v(tn, id) ON t.tenant_id::text = v.tn AND t.id = v.id "
              f"WHEN MATCHED THEN UPDATE SET {s.sumcol} = t.{s.sumcol}")
    check(r.rowcount == len(s.ids("A")), f"MERGE matched {r.rowcount}, A has {len(s.ids('A'))}")


def c13_self_join_stays_inside_the_tenant(suite, s):
    ca, cb = pair(suite, s)
    for c, t in ((ca, "A"), (cb, "B")):
        r = c.rows(f"SELECT x.tenant_id::text, y.tenant_id::text FROM {s.table} x JOIN {s.table} y ON x.id = y.id")
        check(all(a == b == s.v(t) for a, b in r), f"LEAK: {t}'s self-join paired tenants: {r[:3]!r}")
        check(len(r) == len(s.rows(t)), f"{t}: {len(r)} pairs, expected {len(s.rows(t))}")


def c14_concurrent_updates_of_the_same_id_do_not_block(suite, s):
    ca, cb = pair(suite, s)
    i = sorted(set(s.ids("A")) & set(s.ids("B")))[0]
    for c in (ca, cb):
        c.ok("SET LOCAL lock_timeout = 2000")
    r1 = ca.ok(f"UPDATE {s.table} SET {s.sumcol} = {s.sumcol} WHERE id = {i}")
    r2 = cb.ok(f"UPDATE {s.table} SET {s.sumcol} = {s.sumcol} WHERE id = {i}")
    check(r1.rowcount == 1 and r2.rowcount == 1, f"each tenant updates its own row {i}: {r1.status}, {r2.status}")


def c15_for_update_locks_only_own_rows(suite, s):
    ca, cb = pair(suite, s)
    ca.ok(f"SELECT 1 FROM {s.table} FOR UPDATE")
    r = cb.run(f"SELECT tenant_id::text, id, {s.sumcol} FROM {s.table} FOR UPDATE NOWAIT")
    expect_rows(r, s.rows("B"), "B locks its rows while A holds locks on its own")


def c16_one_prepared_statement_per_tenant(suite, s):
    ca, cb = pair(suite, s)
    for c in (ca, cb):
        c.ok("SET LOCAL plan_cache_mode = force_generic_plan")
        c.ok(f"PREPARE p (int) AS {s.select(' WHERE id > $1')}")
    expect_rows(ca.run("EXECUTE p(0)"), s.rows("A"), "A's EXECUTE")
    expect_rows(cb.run("EXECUTE p(0)"), s.rows("B"), "B's EXECUTE")


def c17_switching_to_the_other_tenant_is_refused(suite, s):
    ca, cb = pair(suite, s)
    sees(ca, s, "A", "A")
    ca.ok(f"SET LOCAL tenant_guard.tenant_id = {lit(s.v('B'))}")
    r = ca.run(s.select())
    expect_refused(r, "A's transaction switches to B", "42501", guard=None)
    check(is_guard_error(r), f"not the guard's refusal: {r.message}")
    sees(cb, s, "B", "B")


def c18_no_claim_is_refused_next_to_a_claimed_connection(suite, s):
    ca, cb = pair(suite, s)
    cn = suite.connect(fx.APP)
    r = cn.run(s.select())
    expect_refused(r, "a third connection without a claim", "42501", guard=True)
    sees(ca, s, "A", "A")
    sees(cb, s, "B", "B")


def c19_delete_returning_returns_only_own_rows(suite, s):
    ca, cb = pair(suite, s)
    r = ca.run(f"DELETE FROM {s.table} RETURNING tenant_id::text, id, {s.sumcol}")
    expect_rows(r, s.rows("A"), "A's DELETE ... RETURNING", allowed_tenants={s.v("A")})
    sees(cb, s, "B", "B while A's delete is uncommitted")


def c20_window_functions_count_only_own_rows(suite, s):
    ca, cb = pair(suite, s)
    for c, t in ((ca, "A"), (cb, "B")):
        r = c.rows(f"SELECT count(*) OVER (), row_number() OVER (ORDER BY id), rank() OVER (ORDER BY {s.sumcol}) FROM {s.table}")
        n = len(s.rows(t))
        check(all(x[0] == n for x in r) and sorted(x[1] for x in r) == list(range(1, n + 1)),
              f"{t}: window functions saw {r!r}, expected {n} rows")


def c21_copy_query_to_returns_only_own_rows(suite, s):
    ca, cb = pair(suite, s)
    for c, t in ((ca, "A"), (cb, "B")):
        r = c.copy_out(f"COPY ({s.select()}) TO STDOUT")
        expect_ok(r, "COPY (query) TO")
        want = sorted((r0, str(r1), str(r2)) for r0, r1, r2 in s.rows(t))
        check(sorted(r.rows) == want, f"{t}: COPY returned {r.rows[:4]!r}")


def c22_exists_probe_for_the_other_tenants_key_is_false(suite, s):
    ca, cb = pair(suite, s)
    for c, other in ((ca, "B"), (cb, "A")):
        for i in s.ids(other):
            v = c.value(f"SELECT EXISTS (SELECT 1 FROM {s.table} WHERE tenant_id = {lit(s.v(other))} AND id = {i})")
            check(v is False, f"LEAK: EXISTS probe sees {other}'s row {i}")


def c23_insert_select_copies_only_own_rows(suite, s):
    ca, cb = pair(suite, s)
    if s.lines:
        sql = "INSERT INTO t_lines SELECT tenant_id, id + 1000, order_id, qty FROM t_lines RETURNING tenant_id::text, id - 1000, qty"
    else:
        sql = (f"INSERT INTO {s.table} (tenant_id, id, name, amount) SELECT tenant_id, id + 1000, name, amount FROM {s.table} "
               f"RETURNING tenant_id::text, id - 1000, amount")
    expect_rows(ca.run(sql), s.rows("A"), "A's INSERT ... SELECT ... RETURNING", allowed_tenants={s.v("A")})


def c24_truncate_is_refused(suite, s):
    ca, cb = pair(suite, s)
    r = ca.run(f"TRUNCATE {s.table} CASCADE")
    expect_refused(r, "A truncates the table", "42501", guard=True)
    sees(cb, s, "B", "B")


CASES = [v for k, v in sorted(globals().items()) if k.startswith("c") and k[1:3].isdigit()]


def run(suite):
    suite.family("handwritten")
    restore(suite)
    for s in SPECS:
        for fn in CASES:
            suite.case(f"{s.table}.{fn.__name__[4:]}", fn, suite, s)
