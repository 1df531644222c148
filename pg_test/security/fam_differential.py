"""Family "differential": random statements as tenant A, compared with a reference.

The reference database (tg_security_ref) holds the same tables, views and functions with ONLY
tenant A's rows and no row security. Each generated statement runs twice, in its own
transaction each time:

    guarded    as sec_app (sometimes sec_owner, also filtered) with A's claim, in tg_security
    reference  as the superuser in tg_security_ref

and must end in one of two ways:

    works      both succeed with the same result (rows as a multiset, or the row count), and
               afterwards A's rows in tg_security are exactly the rows of tg_security_ref, and
               every row of the other tenants is byte for byte what it was
    refused    the guarded run fails with tenant_guard's own error or PostgreSQL's row-security
               refusal (42501; 22023 for a claim that does not fit the column type), or both runs
               fail with the same SQLSTATE (an error of A's own data)

Anything else is a failure: another tenant's row returned, changed or counted (a different result
or state), an error raised by another tenant's row (a division by zero, a unique or foreign-key
violation the reference does not have), a statement refused for no tenant reason.

Both transactions commit only when both succeeded, so the two databases move in step. Every
statement comes from random.Random(f"{seed}:{index}"): `--seed S` replays a run; a failing
statement is printed with its seed and index, and is then added to REGRESSIONS below, which run
first in every run.
"""

import random
import re

import fixture as fx
from lib import check, lit, norm_rows

# Statements that failed once: (seed, index, claim group, tables group, principal, sql). They run
# first, every time, on the freshly restored fixture.
REGRESSIONS = [
    # a claim switched in the middle of a statement (an injected set_config() in a pseudo-constant
    # qual runs before the policies' init-plan reads the claim): another tenant's rows are read,
    # changed and deleted inside a transaction admitted for tenant A (found by seed 2)
    (2, 84, "uuid", "uuid", "sec_app", "SELECT a1.amount / 10 FROM t_uuid a1 WHERE set_config('tenant_guard.tenant_id', 'bbbbbbbb-0000-4000-8000-000000000002', true) IS NOT NULL"),
    (2, 473, "str", "str", "sec_app", "SELECT left(a1.name, 4) FROM t_inh a1 WHERE set_config('tenant_guard.tenant_id', 'globex', true) IS NOT NULL"),
    (2, 642, "str", "str", "sec_app", "DELETE FROM v_text_inv a1 WHERE set_config('tenant_guard.tenant_id', 'globex', true) IS NOT NULL"),
    (2, 959, "str", "str", "sec_app", "UPDATE t_text a1 SET amount = a1.amount + 4, id = a1.id + 2000 WHERE set_config('tenant_guard.tenant_id', 'globex', true) IS NOT NULL RETURNING a1.amount, a1.id, a1.tenant_id::text"),
]

RESTORE_EVERY = 250
STR, UUID, NUM = "str", "uuid", "num"


class Rel:
    def __init__(self, name, group, cols, dml=None, ids=None, tenant_type="text", weight=1):
        self.name = name
        self.group = group
        self.cols = cols                # [(column, kind)], kind in tenant/int/num/text
        self.dml = dml                  # writable: True
        self.ids = ids or (list(range(1, 9)) + list(range(500, 512)))
        self.tenant_type = tenant_type
        self.weight = weight

    def col(self, kind):
        cs = [c for c, k in self.cols if k == kind]
        return cs[0] if cs else None


BASE = [("tenant_id", "tenant"), ("id", "int"), ("name", "text"), ("amount", "num")]
LINES = [("tenant_id", "tenant"), ("id", "int"), ("order_id", "int"), ("qty", "num")]
JOINV = [("tenant_id", "tenant"), ("id", "int"), ("name", "text"), ("line_id", "int"), ("qty", "num")]
KEYS = [("tenant_id", "tenant"), ("id", "int"), ("name", "text")]

RELS = [
    Rel("t_text", STR, BASE, dml=True, weight=4),
    Rel("t_varchar", STR, BASE, dml=True, tenant_type="varchar", weight=2),
    Rel("t_part", STR, BASE, dml=True, ids=[1, 2, 3, 101, 102, 103, 250, 251, 520, 150, 60], weight=3),
    Rel("t_part_lo", STR, BASE, dml=True, ids=[1, 2, 3, 4, 50, 60, 99]),
    Rel("t_part_hi", STR, BASE, dml=True, ids=[101, 102, 103, 150, 199]),
    Rel("t_part_def", STR, BASE, dml=True, ids=[250, 251, 300, 520]),
    Rel("t_inh", STR, BASE, dml=True, ids=[1, 2, 3, 6, 11, 12, 500, 501], weight=2),
    Rel("t_inh_child", STR, BASE, dml=True, ids=[11, 12, 13, 16, 500, 502]),
    Rel("t_lines", STR, LINES, dml=True, ids=[1, 2, 3, 4, 500, 501], weight=2),
    Rel("v_text_inv", STR, BASE, dml=True, weight=2),
    Rel("v_text_def", STR, BASE, dml=True, weight=2),
    Rel("v_join", STR, JOINV),
    Rel("v_part_def", STR, BASE),
    Rel("f_text_sql()", STR, BASE),
    Rel("f_text_plpgsql()", STR, BASE),
    Rel("f_text_secdef()", STR, BASE),
    Rel("f_part_sql(100)", STR, BASE),
    Rel("u_keys", STR, KEYS),
    Rel("v_text_su", STR, BASE, weight=0.2),           # owned by the superuser: always refused
    Rel("f_text_su_secdef()", STR, BASE, weight=0.2),  # likewise
    Rel("t_uuid", UUID, BASE, dml=True, tenant_type="uuid", weight=4),
    Rel("t_bigint", NUM, BASE, dml=True, tenant_type="bigint", weight=4),
    Rel("t_int", NUM, BASE, dml=True, tenant_type="int", weight=4),
]
BY_NAME = {r.name: r for r in RELS}
PROTECTED_LEAVES = ["t_text", "t_varchar", "t_uuid", "t_bigint", "t_int", "t_part_lo", "t_part_hi", "t_part_def",
                    "t_inh", "t_inh_child", "t_lines"]


class Gen:
    """One random statement."""

    def __init__(self, rng):
        self.r = rng
        self.n = 0

    def pick(self, seq, weights=None):
        return self.r.choices(seq, weights=weights)[0] if weights else self.r.choice(seq)

    def chance(self, p):
        return self.r.random() < p

    def alias(self):
        self.n += 1
        return f"a{self.n}"

    def rel(self, group, writable=False):
        cands = [x for x in RELS if x.group == group and (x.dml or not writable)]
        return self.pick(cands, [x.weight for x in cands])

    # -- expressions ---------------------------------------------------------------------------
    def tenant_lit(self, group, who=None):
        who = who or self.pick(["A", "B", "C", "blank"], [6, 3, 1, 1])
        return lit(fx.tval(who, group))

    def pred(self, rel, a, depth=0):
        if depth < 2 and self.chance(0.3):
            op = self.pick(["AND", "OR"])
            p = f"({self.pred(rel, a, depth + 1)} {op} {self.pred(rel, a, depth + 1)})"
            return f"NOT {p}" if self.chance(0.15) else p
        c, kind = self.pick(rel.cols)
        if kind == "tenant":
            return f"{a}.{c}::text {self.pick(['=', '<>'])} {self.tenant_lit(rel.group)}"
        if kind == "int":
            k = self.pick(rel.ids + [0, 5, 100])
            return self.pick([f"{a}.{c} = {k}", f"{a}.{c} < {k}", f"{a}.{c} >= {k}", f"{a}.{c} IN ({k}, {k + 1}, 3)",
                              f"{a}.{c} BETWEEN {k} AND {k + 4}"])
        if kind == "num":
            return f"{a}.{c} {self.pick(['>', '<', '=', '<>'])} {self.pick([0, 10, 25, 50, 1000, 3000, 100000, 7777777])}"
        return self.pick([f"{a}.{c} LIKE 'acme%'", f"{a}.{c} LIKE 'globex%'", f"{a}.{c} LIKE '%-2'",
                          f"{a}.{c} = 'globex-t_text-1'", f"{a}.{c} = 'acme-t_text-1'", f"{a}.{c} > 'b'",
                          f"length({a}.{c}) > 12"])

    def item(self, rel, a):
        c, kind = self.pick(rel.cols)
        if kind == "tenant":
            return f"{a}.{c}::text"
        if kind == "int":
            return self.pick([f"{a}.{c}", f"{a}.{c} + 1", f"{a}.{c} * 2"])
        if kind == "num":
            return self.pick([f"{a}.{c}", f"{a}.{c} % 7", f"{a}.{c} / 10"])
        return self.pick([f"{a}.{c}", f"upper({a}.{c})", f"length({a}.{c})", f"left({a}.{c}, 4)"])

    def items(self, rel, a, k=None):
        k = k or self.r.randint(1, 4)
        return [self.item(rel, a) for _ in range(k)]

    def order_limit(self, nout):
        if not self.chance(0.35):
            return ""
        s = " ORDER BY " + ", ".join(str(i) for i in range(1, nout + 1))
        if self.chance(0.7):
            s += f" LIMIT {self.r.randint(0, 6)}"
            if self.chance(0.5):
                s += f" OFFSET {self.r.randint(0, 4)}"
        return s

    def where(self, rel, a, p=0.6):
        if self.chance(0.01):
            # hostile: an injected claim switch in the middle of the statement
            return f" WHERE set_config('tenant_guard.tenant_id', {self.tenant_lit(rel.group, 'B')}, true) IS NOT NULL"
        return f" WHERE {self.pred(rel, a)}" if self.chance(p) else ""

    # -- SELECT forms --------------------------------------------------------------------------
    def select(self, group):
        form = self.pick(["simple", "aggregate", "join", "sublink", "cte", "setop", "window", "subquery",
                          "left_keys", "scalar", "count"],
                         [5, 3, 4, 3, 2, 2, 2, 2, 1, 1, 2])
        return getattr(self, "s_" + form)(group)

    def s_simple(self, g):
        rel = self.rel(g)
        a = self.alias()
        it = self.items(rel, a)
        sample = ""
        if rel.name.startswith("t_") and self.chance(0.1):
            sample = " TABLESAMPLE " + self.pick(["SYSTEM (100)", "BERNOULLI (100)"])
        distinct = "DISTINCT " if self.chance(0.1) else ""
        return f"SELECT {distinct}{', '.join(it)} FROM {rel.name} {a}{sample}{self.where(rel, a)}{self.order_limit(len(it))}"

    def s_count(self, g):
        rel = self.rel(g)
        a = self.alias()
        agg = self.pick(["count(*)", f"count(DISTINCT {a}.id)", f"count({a}.tenant_id)"])
        return f"SELECT {agg} FROM {rel.name} {a}{self.where(rel, a)}"

    def s_aggregate(self, g):
        rel = self.rel(g)
        a = self.alias()
        num = rel.col("num")
        txt = rel.col("text")
        aggs = ["count(*)", f"sum({a}.{num})" if num else "count(*)", f"max({a}.id)",
                f"min({a}.{txt})" if txt else f"min({a}.id)",
                f"string_agg({a}.{txt}, ',' ORDER BY {a}.{txt})" if txt else f"array_agg({a}.id ORDER BY {a}.id)",
                f"avg({a}.{num})" if num else "count(*)"]
        chosen = self.r.sample(aggs, self.r.randint(1, 3))
        if self.chance(0.6):
            gcol = self.pick([f"{a}.tenant_id::text", f"{a}.id % 3", f"({a}.id > 3)", f"{a}.{num} > 100" if num else f"{a}.id"])
            having = f" HAVING count(*) > {self.r.randint(0, 2)}" if self.chance(0.3) else ""
            return f"SELECT {gcol}, {', '.join(chosen)} FROM {rel.name} {a}{self.where(rel, a, 0.4)} GROUP BY 1{having}"
        return f"SELECT {', '.join(chosen)} FROM {rel.name} {a}{self.where(rel, a, 0.4)}"

    def s_join(self, g):
        r1, r2 = self.rel(g), self.rel(g)
        a, b = self.alias(), self.alias()
        cond = self.pick([f"{a}.id = {b}.id", f"{a}.tenant_id::text = {b}.tenant_id::text AND {a}.id = {b}.id",
                          f"{a}.tenant_id::text = {b}.tenant_id::text", f"{a}.id < {b}.id"] +
                         ([f"{a}.id = {b}.order_id"] if r2.col("int") and "order_id" in dict(r2.cols) else []))
        kind = self.pick(["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN"], [5, 2, 1, 1])
        it = self.items(r1, a, self.r.randint(1, 2)) + self.items(r2, b, self.r.randint(1, 2))
        w = f" WHERE {self.pred(r1, a)}" if self.chance(0.4) else ""
        return f"SELECT {', '.join(it)} FROM {r1.name} {a} {kind} {r2.name} {b} ON {cond}{w}{self.order_limit(len(it))}"

    def s_sublink(self, g):
        r1, r2 = self.rel(g), self.rel(g)
        a, b = self.alias(), self.alias()
        it = self.items(r1, a)
        form = self.pick(["exists", "not_exists", "in", "not_in", "any"])
        inner_w = f" AND {self.pred(r2, b)}" if self.chance(0.4) else ""
        if form in ("exists", "not_exists"):
            sub = f"{'NOT ' if form == 'not_exists' else ''}EXISTS (SELECT 1 FROM {r2.name} {b} WHERE {b}.id = {a}.id{inner_w})"
        elif form in ("in", "not_in"):
            sub = f"{a}.id {'NOT ' if form == 'not_in' else ''}IN (SELECT {b}.id FROM {r2.name} {b} WHERE true{inner_w})"
        else:
            num1, num2 = r1.col("num"), r2.col("num")
            if not (num1 and num2):
                sub = f"{a}.id = ANY (SELECT {b}.id FROM {r2.name} {b})"
            else:
                sub = f"{a}.{num1} > ALL (SELECT {b}.{num2} FROM {r2.name} {b} WHERE {b}.id > {self.r.randint(0, 6)})"
        return f"SELECT {', '.join(it)} FROM {r1.name} {a} WHERE {sub}{self.order_limit(len(it))}"

    def s_scalar(self, g):
        r1, r2 = self.rel(g), self.rel(g)
        a, b = self.alias(), self.alias()
        num2 = r2.col("num") or "id"
        return (f"SELECT {a}.id, (SELECT count(*) FROM {r2.name} {b} WHERE {b}.id <= {a}.id), "
                f"(SELECT max({b}.{num2}) FROM {r2.name} {b}) FROM {r1.name} {a}{self.where(r1, a, 0.3)}")

    def s_cte(self, g):
        rel = self.rel(g)
        a = self.alias()
        mat = self.pick(["", "MATERIALIZED ", "NOT MATERIALIZED "])
        inner = f"SELECT * FROM {rel.name} {a}{self.where(rel, a, 0.5)}"
        c = self.alias()
        it = self.items(rel, c)
        body = f"SELECT {', '.join(it)} FROM c {c}{self.where(rel, c, 0.3)}{self.order_limit(len(it))}"
        if self.chance(0.3):
            r2 = self.rel(g)
            b = self.alias()
            body = f"SELECT {c}.id, count({b}.id) FROM c {c} LEFT JOIN {r2.name} {b} ON {b}.id = {c}.id GROUP BY 1"
        return f"WITH c AS {mat}({inner}) {body}"

    def s_setop(self, g):
        r1, r2 = self.rel(g), self.rel(g)
        a, b = self.alias(), self.alias()

        def side(r, x):
            v = r.col("num") or "id"
            return f"SELECT {x}.id, {x}.{v}::bigint FROM {r.name} {x}{self.where(r, x, 0.5)}"
        op = self.pick(["UNION", "UNION ALL", "INTERSECT", "EXCEPT", "INTERSECT ALL", "EXCEPT ALL"])
        return f"{side(r1, a)} {op} {side(r2, b)}{self.order_limit(2)}"

    def s_window(self, g):
        rel = self.rel(g)
        a = self.alias()
        num = rel.col("num") or "id"
        wins = [f"count(*) OVER ()", f"sum({a}.{num}) OVER (PARTITION BY {a}.id % 2)", f"rank() OVER (ORDER BY {a}.{num})",
                f"dense_rank() OVER (PARTITION BY {a}.tenant_id ORDER BY {a}.id)", f"max({a}.id) OVER (PARTITION BY {a}.{num} > 100)",
                f"count(*) OVER (PARTITION BY {a}.tenant_id)"]
        w = self.r.sample(wins, self.r.randint(1, 3))
        return f"SELECT {a}.id, {a}.{num}, {', '.join(w)} FROM {rel.name} {a}{self.where(rel, a, 0.4)}"

    def s_subquery(self, g):
        rel = self.rel(g)
        a, s = self.alias(), self.alias()
        inner = f"SELECT * FROM {rel.name} {a}{self.where(rel, a, 0.5)}" + (" OFFSET 0" if self.chance(0.5) else "")
        it = self.items(rel, s)
        return f"SELECT {', '.join(it)} FROM ({inner}) {s}{self.where(rel, s, 0.4)}{self.order_limit(len(it))}"

    def s_left_keys(self, g):
        if g != STR:
            return self.s_simple(g)
        rel = self.pick([x for x in RELS if x.group == STR and x.cols == BASE])
        k, a = self.alias(), self.alias()
        return (f"SELECT {k}.tenant_id, {k}.id, {a}.name, {a}.amount FROM u_keys {k} LEFT JOIN {rel.name} {a} "
                f"ON {a}.tenant_id::text = {k}.tenant_id AND {a}.id = {k}.id")

    # -- writes -------------------------------------------------------------------------------
    def write(self, group):
        form = self.pick(["insert", "insert_select", "upsert", "update", "update_move", "update_from", "delete",
                          "delete_using", "merge", "wcte", "function"], [4, 2, 3, 4, 1, 2, 3, 1, 3, 2, 1])
        if form == "function" and group != STR:
            form = "update"
        return getattr(self, "w_" + form)(group)

    def wrel(self, g):
        return self.rel(g, writable=True)

    def who(self):
        return self.pick(["A", "B", "blank"], [17, 2, 1])

    def values_row(self, rel, who):
        i = self.pick(rel.ids)
        t = lit(fx.tval(who, rel.group))
        if rel.cols == LINES:
            return f"({t}, {i}, {self.r.randint(1, 6)}, {self.r.randint(1, 90)})"
        return f"({t}, {i}, {lit(fx.NAMES[who] + '-gen-' + str(i))}, {self.r.randint(1, 90)})"

    def cols_list(self, rel):
        return ", ".join(c for c, _ in rel.cols if rel.cols != JOINV)

    def returning(self, rel, a=None):
        if not self.chance(0.7):
            return ""
        p = f"{a}." if a else ""
        k = self.r.randint(1, 3)
        cs = self.r.sample([c for c, _ in rel.cols], k)
        return " RETURNING " + ", ".join(f"{p}{c}::text" if c == "tenant_id" else f"{p}{c}" for c in cs)

    def w_insert(self, g):
        rel = self.wrel(g)
        rows = ", ".join(self.values_row(rel, self.who()) for _ in range(self.r.randint(1, 3)))
        return f"INSERT INTO {rel.name} ({self.cols_list(rel)}) VALUES {rows}{self.returning(rel)}"

    def w_upsert(self, g):
        rel = self.wrel(g)
        if rel.name.startswith("v_"):
            rel = BY_NAME["t_text"]
        num = rel.col("num")
        rows = self.values_row(rel, self.who())
        action = self.pick(["DO NOTHING", f"DO UPDATE SET {num} = t.{num} + EXCLUDED.{num}",
                            f"DO UPDATE SET {num} = EXCLUDED.{num} WHERE t.{num} < 1000"])
        return f"INSERT INTO {rel.name} AS t ({self.cols_list(rel)}) VALUES {rows} ON CONFLICT (tenant_id, id) {action}{self.returning(rel)}"

    def w_insert_select(self, g):
        rel = self.wrel(g)
        src = self.pick([x for x in RELS if x.group == g and x.cols == rel.cols] or [rel])
        a = self.alias()
        off = self.pick([600, 700, 1000]) if not rel.name.startswith("t_part_") else 0
        if rel.cols == LINES:
            sel = f"SELECT {a}.tenant_id, {a}.id + {off}, {a}.order_id, {a}.qty FROM {src.name} {a}"
        else:
            sel = f"SELECT {a}.tenant_id::{rel.tenant_type}, {a}.id + {off}, {a}.name, {a}.amount FROM {src.name} {a}"
        return f"INSERT INTO {rel.name} ({self.cols_list(rel)}) {sel}{self.where(src, a, 0.6)}{self.returning(rel)}"

    def w_update(self, g):
        rel = self.wrel(g)
        a = self.alias()
        num = rel.col("num")
        sets = [f"{num} = {a}.{num} + {self.r.randint(1, 9)}"]
        if rel.col("text") and self.chance(0.4):
            sets.append(f"name = {a}.name || '!'")
        if self.chance(0.15) and not rel.name.startswith("t_part_"):
            sets.append(f"id = {a}.id + {self.pick([1000, 2000])}")
        return f"UPDATE {rel.name} {a} SET {', '.join(sets)}{self.where(rel, a, 0.7)}{self.returning(rel, a)}"

    def w_update_move(self, g):
        rel = self.wrel(g)
        a = self.alias()
        return (f"UPDATE {rel.name} {a} SET tenant_id = {self.tenant_lit(rel.group, self.pick(['B', 'blank']))}, "
                f"id = {a}.id + 3000{self.where(rel, a, 0.8)}{self.returning(rel, a)}")

    def w_update_from(self, g):
        rel = self.wrel(g)
        src = self.rel(g)
        a, b = self.alias(), self.alias()
        num, snum = rel.col("num"), src.col("num")
        val = f"{b}.{snum} % 5" if snum else "1"
        return (f"UPDATE {rel.name} {a} SET {num} = {a}.{num} + {val} FROM {src.name} {b} "
                f"WHERE {a}.tenant_id::text = {b}.tenant_id::text AND {a}.id = {b}.id AND {self.pred(rel, a)} "
                f"RETURNING {a}.id, {a}.{num}")

    def w_delete(self, g):
        rel = self.wrel(g)
        a = self.alias()
        return f"DELETE FROM {rel.name} {a}{self.where(rel, a, 0.9)}{self.returning(rel, a)}"

    def w_delete_using(self, g):
        rel = self.wrel(g)
        src = self.rel(g)
        a, b = self.alias(), self.alias()
        return (f"DELETE FROM {rel.name} {a} USING {src.name} {b} WHERE {a}.id = {b}.id AND {self.pred(src, b)} "
                f"RETURNING {a}.id")

    def w_merge(self, g):
        rel = self.wrel(g)
        if rel.name.startswith("v_"):
            rel = BY_NAME["t_text"]
        src = self.pick([x for x in RELS if x.group == g and x.cols in (BASE, KEYS)])
        b = self.alias()
        num = rel.col("num")
        k = self.pick([0, 0, 1, 500])
        if self.chance(0.3):
            vals = ", ".join(f"({lit(fx.tval(self.who(), g))}, {self.pick(rel.ids)}, {self.r.randint(1, 90)})"
                             for _ in range(self.r.randint(1, 3)))
            source = f"(SELECT DISTINCT ON (tn, id) * FROM (VALUES {vals}) v(tn, id, amount)) s"
        else:
            amount = f"{b}.amount" if src.col("num") else "1"
            source = (f"(SELECT {b}.tenant_id::text AS tn, {b}.id, {amount} AS amount FROM {src.name} {b}"
                      f"{self.where(src, b, 0.5)}) s")
        whens = []
        cond = ""
        if self.chance(0.7):
            cond = f" AND s.amount > {self.pick([0, 20, 50, 1000])}" if self.chance(0.5) else ""
            whens.append(f"WHEN MATCHED{cond} THEN " + self.pick([f"UPDATE SET {num} = t.{num} + 1", "DELETE", "DO NOTHING"]))
        if (cond or not whens) and self.chance(0.3):
            whens.append("WHEN MATCHED THEN " + self.pick([f"UPDATE SET {num} = 0", "DELETE"]))
        if self.chance(0.6) or not whens:
            if rel.cols == LINES:
                ins = f"INSERT VALUES (s.tn, s.id + {k}, 1, 1)"
            else:
                ins = f"INSERT VALUES (s.tn::{rel.tenant_type}, s.id + {k}, 'merge', s.amount)"
            whens.append("WHEN NOT MATCHED THEN " + self.pick([ins, "DO NOTHING"], [4, 1]))
        return f"MERGE INTO {rel.name} t USING {source} ON t.tenant_id::text = s.tn AND t.id = s.id + {k} {' '.join(whens)}"

    def w_wcte(self, g):
        inner = self.pick([self.w_update, self.w_delete, self.w_insert])(g)
        inner = re.sub(r" RETURNING .*$", "", inner)
        return f"WITH d AS ({inner} RETURNING id) SELECT count(*), coalesce(sum(id), 0) FROM d"

    def w_function(self, g):
        return self.pick(["SELECT f_bump(1)", "SELECT f_bump_secdef(2)", "SELECT f_sum_plpgsql()"])

    # -- a statement -----------------------------------------------------------------------------
    def statement(self):
        """(claim group, tables group, principal, parallel, sql)"""
        group = self.pick([STR, UUID, NUM], [6, 2, 2])
        sql = self.write(group) if self.chance(0.35) else self.select(group)
        claim_group = group
        if self.chance(0.04):  # a claim of another type than the tables: refused (22023) or no rows
            claim_group = self.pick([g for g in (STR, UUID, NUM) if g != group])
        principal = fx.OWNER if self.chance(0.15) else fx.APP
        parallel = self.chance(0.1)
        return claim_group, group, principal, parallel, sql


# ---------------------------------------------------------------------------------------------
# Running and judging
# ---------------------------------------------------------------------------------------------

PARALLEL = ["SET LOCAL parallel_setup_cost = 0", "SET LOCAL parallel_tuple_cost = 0",
            "SET LOCAL min_parallel_table_scan_size = 0", "SET LOCAL force_parallel_mode = on"]


def state_sql(where):
    parts = []
    for t in PROTECTED_LEAVES:
        parts.append(f"SELECT '{t}' AS t, count(*) AS n, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h "
                     f"FROM ONLY {t} x WHERE {where(t)}")
    return " UNION ALL ".join(parts) + " ORDER BY 1"


def a_value(t):
    return fx.tval("A", fx.GROUP_OF[t])


MAIN_A = state_sql(lambda t: f"x.tenant_id::text = {lit(a_value(t))}")
MAIN_OTHERS = state_sql(lambda t: f"x.tenant_id::text <> {lit(a_value(t))}")
REF_ALL = state_sql(lambda t: "true")

ALLOWED_REFUSALS = ("42501", "22023")
FOREIGN_MARKERS = ("globex", "initech", "blank-", "bbbbbbbb", "cccccccc", "7777777")


class Runner:
    def __init__(self, suite):
        self.suite = suite
        self.conns = {}
        self.ref = suite.connect(fx.SUPERUSER, db=fx.REF_DB, keep=True)
        self.su = suite.connect(fx.SUPERUSER, keep=True)
        self.su.ok("SET tenant_guard.enforce = off")
        self.outcomes = {"works": 0, "refused": 0, "same error": 0, "failed": 0}
        self.restore()

    def conn(self, user):
        c = self.conns.get(user)
        if c is None or c.raw.closed:
            c = self.suite.connect(user, keep=True)
            self.conns[user] = c
        return c

    def restore(self):
        fx.restore(self.suite.cfg, fx.MAIN_DB)
        fx.restore(self.suite.cfg, fx.REF_DB)
        self.others = self.su.rows(MAIN_OTHERS)

    def close(self):
        for c in list(self.conns.values()) + [self.ref, self.su]:
            c.close()

    def run_one(self, label, group, tables_group, principal, parallel, sql):
        """Runs one statement both ways; returns None when it holds, else the failure text.

        A claim of another type than the statement's tables (group != tables_group) names a
        tenant that has no rows in them: its reference is the same statement over empty tables."""
        cross = group != tables_group
        c = self.conn(principal)
        c.run("ROLLBACK")
        self.ref.run("ROLLBACK")
        c.ok("BEGIN")
        c.ok(f"SELECT set_config('tenant_guard.tenant_id', {lit(fx.tval('A', group))}, true)")
        if parallel:
            for p in PARALLEL:
                c.ok(p)
        g = c.run(sql)
        self.ref.ok("BEGIN")
        if cross:
            for t in ["t_lines"] + [x for x in PROTECTED_LEAVES if x != "t_lines"]:
                self.ref.ok(f"DELETE FROM ONLY {t}")
        ref = self.ref.run(sql)
        verdict = self.judge(g, ref)
        if verdict is not None:
            self.outcomes["failed"] += 1
        elif g.ok:
            self.outcomes["works"] += 1
        elif not ref.ok and ref.sqlstate == g.sqlstate:
            self.outcomes["same error"] += 1
        else:
            self.outcomes["refused"] += 1
        if verdict is None and g.ok and ref.ok and not cross:
            c.ok("COMMIT")
            self.ref.ok("COMMIT")
            verdict = self.check_state()
        else:
            c.run("ROLLBACK")
            self.ref.run("ROLLBACK")
        if verdict is not None:
            self.restore()
            return (f"{verdict}\n      [{label}] group={group} as {principal}{' parallel' if parallel else ''}\n"
                    f"      SQL: {sql}\n      guarded: {g!r}\n      reference: {ref!r}")
        return None

    @staticmethod
    def judge(g, ref):
        if g.sqlstate == "XX000" or ref.sqlstate == "XX000":
            return "INTERNAL ERROR (XX000)"
        if g.ok:
            # values of other tenants that the reference (A's rows and the public u_keys) cannot have
            text = repr(g.rows).lower()
            ref_text = repr(ref.rows).lower() if ref.ok else ""
            leaked = [m for m in FOREIGN_MARKERS if m in text and m not in ref_text]
            if leaked:
                return f"LEAK: the guarded result holds another tenant's values {leaked}"
            if not ref.ok:
                return f"the guarded run succeeded where the reference failed ({ref.sqlstate})"
            if (g.rows is None) != (ref.rows is None):
                return "result shapes differ"
            if g.rows is not None and norm_rows(g.rows) != norm_rows(ref.rows):
                return "LEAK or wrong result: the rows differ from the reference on A's rows only"
            if g.rows is None and g.rowcount != ref.rowcount:
                return f"LEAK or wrong result: {g.rowcount} rows affected, the reference {ref.rowcount}"
            return None
        # the guarded run failed
        if g.sqlstate in ALLOWED_REFUSALS:
            if g.message.startswith("tenant_guard:") or "row-level security" in g.message:
                return None
        if not ref.ok and ref.sqlstate == g.sqlstate:
            return None  # an error of A's own rows, in both
        leaked = [m for m in FOREIGN_MARKERS if m in g.text().lower()]
        if leaked:
            return f"LEAK: the error shows another tenant's values {leaked}"
        return f"refused for no tenant reason: {g.sqlstate} {g.message}"

    def check_state(self):
        main_a = self.su.rows(MAIN_A)
        ref_all = self.ref.rows(REF_ALL)
        if main_a != ref_all:
            diff = [(m[0], m[1], r[1]) for m, r in zip(main_a, ref_all) if m != r]
            return f"STATE: A's rows differ from the reference after the statement (table, rows, reference rows): {diff}"
        others = self.su.rows(MAIN_OTHERS)
        if others != self.others:
            diff = [m[0] for m, r in zip(others, self.others) if m != r]
            return f"LEAK: another tenant's rows changed in {diff}"
        return None


def run(suite, seed, count):
    suite.family("differential")
    runner = Runner(suite)
    try:
        for s, i, group, tables_group, principal, sql in REGRESSIONS:
            suite.case(f"regression[{s}:{i}]", _case, runner, f"seed {s} #{i}", group, tables_group, principal, False, sql)
        print(f"differential: {count} statements, seed {seed}", flush=True)
        done = 0
        for i in range(count):
            rng = random.Random(f"{seed}:{i}")
            group, tables_group, principal, parallel, sql = Gen(rng).statement()
            suite.case(f"generated[{seed}:{i}]", _case, runner, f"seed {seed} #{i}", group, tables_group, principal,
                       parallel, sql)
            done += 1
            if done % RESTORE_EVERY == 0:
                runner.restore()
    finally:
        print("differential outcomes: " + ", ".join(f"{k} {v}" for k, v in runner.outcomes.items()), flush=True)
        runner.close()


def _case(runner, label, group, tables_group, principal, parallel, sql):
    failure = runner.run_one(label, group, tables_group, principal, parallel, sql)
    check(failure is None, failure or "")


def replay(seed, index):
    """The statement of one seed and index (for turning a failing one into a regression)."""
    return Gen(random.Random(f"{seed}:{index}")).statement()
