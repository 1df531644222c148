"""Family "oracles": existence oracles (threat model, channel 4).

A constraint checked across tenants can answer "does a row with this key exist?" for a tenant that
cannot read the row. tenant_guard's policy, one line per oracle (SECURITY.md, "Existence oracles"):

    unique / primary key without the tenant column
        ACCEPTED, MITIGATED: the violation tells that the key exists (one bit), never the row or its
        values (PostgreSQL drops the key from the DETAIL under row security: tested here);
        lint() reports it (unique_without_tenant); keys that lead with the tenant column close it.
    foreign key without the tenant column, child -> parent and parent -> child
        MITIGATED: lint() reports it (foreign_key_without_tenant); a composite foreign key
        (tenant_id, parent_id) closes it: another tenant's parent is exactly as absent as a missing
        one, and no other tenant can reference yours.
    a probe table (unprotected) that REFERENCES a protected table
        REFUSED for the application (no REFERENCES privilege: 42501); lint() reports such keys
        (foreign_key_from_unprotected).
    INSERT ... ON CONFLICT DO NOTHING
        ACCEPTED, MITIGATED like unique keys (INSERT 0 0 is the same bit); DO UPDATE on another
        tenant's row is REFUSED (42501, row security).
"""

import fixture as fx
from fam_cve import claim, owner_setup, truth
from lib import check, expect_no_foreign_text, expect_refused, is_rls_error


def setup(suite):
    owner_setup(suite, [
        """CREATE TABLE o_parent (tenant_id text NOT NULL, id int NOT NULL, name text NOT NULL,
            PRIMARY KEY (tenant_id, id), UNIQUE (id))""",
        # 77 exists for globex only; acme's 5 is referenced by globex through the global key
        """INSERT INTO o_parent VALUES ('acme', 1, 'acme-p1'), ('acme', 5, 'acme-p5'), ('acme', 6, 'acme-p6'),
            ('globex', 77, 'globex-p77')""",
        """CREATE TABLE o_child_global (tenant_id text NOT NULL, id int NOT NULL,
            parent_id int NOT NULL REFERENCES o_parent (id), PRIMARY KEY (tenant_id, id))""",
        "INSERT INTO o_child_global VALUES ('globex', 1, 5)",
        """CREATE TABLE o_child_scoped (tenant_id text NOT NULL, id int NOT NULL, parent_id int NOT NULL,
            PRIMARY KEY (tenant_id, id), FOREIGN KEY (tenant_id, parent_id) REFERENCES o_parent (tenant_id, id))""",
        "INSERT INTO o_child_scoped VALUES ('globex', 1, 77)",
        """CREATE TABLE o_global (tenant_id text NOT NULL, id int NOT NULL, sku text NOT NULL UNIQUE,
            PRIMARY KEY (tenant_id, id))""",
        "INSERT INTO o_global VALUES ('acme', 1, 'A-1'), ('globex', 1, 'G-SECRET')",
        """CREATE TABLE o_scoped (tenant_id text NOT NULL, id int NOT NULL, sku text NOT NULL,
            PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, sku))""",
        "INSERT INTO o_scoped VALUES ('acme', 1, 'A-1'), ('globex', 1, 'G-SECRET')",
        # an unprotected probe made by a migration: lint must report it
        "CREATE TABLE o_probe (parent_id int REFERENCES o_parent (id))",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON o_parent, o_child_global, o_child_scoped, o_global, o_scoped TO {fx.APP}",
    ], protect=["o_parent", "o_child_global", "o_child_scoped", "o_global", "o_scoped"])


def app_a(suite):
    c = suite.connect(fx.APP)
    c.ok("BEGIN")
    claim(c)
    return c


def no_values(r, what, secrets=("globex", "G-SECRET", "77", "p77")):
    expect_no_foreign_text(r, what, words=tuple(s.lower() for s in secrets))


# -- unique keys --------------------------------------------------------------------------------

def unique_global_key_reveals_no_value(suite):
    c = app_a(suite)
    r = c.run("INSERT INTO o_global VALUES ('acme', 2, 'G-SECRET')")
    expect_refused(r, "acme inserts globex's sku into a globally unique column", "23505", guard=None)
    check("o_global_sku_key" in r.message, f"the constraint is not named: {r.message!r}")
    no_values(r, "unique violation on another tenant's key")
    c.ok("ROLLBACK")
    c.ok("BEGIN")
    claim(c)
    r = c.run("UPDATE o_global SET sku = 'G-SECRET' WHERE id = 1")
    expect_refused(r, "acme updates its sku to globex's", "23505", guard=None)
    no_values(r, "unique violation by UPDATE")
    c.ok("ROLLBACK")


def unique_scoped_key_is_no_oracle(suite):
    c = app_a(suite)
    r = c.ok("INSERT INTO o_scoped VALUES ('acme', 2, 'G-SECRET') RETURNING sku")
    check(r.rows == [("G-SECRET",)], f"{r.rows!r}")
    r = c.ok("UPDATE o_scoped SET sku = 'G-SECRET2' WHERE id = 1 RETURNING sku")
    check(r.rows == [("G-SECRET2",)], f"{r.rows!r}")
    c.ok("ROLLBACK")


def composite_primary_key_is_no_oracle(suite):
    c = app_a(suite)
    # globex has o_parent (globex, 77); acme's (acme, 77) is simply a new row
    r = c.ok("INSERT INTO o_scoped VALUES ('acme', 77, 'A-77') RETURNING id")
    check(r.rowcount == 1, f"{r.status}")
    c.ok("ROLLBACK")


def lint_reports(suite, code, must, must_not=()):
    c = suite.connect(fx.SUPERUSER)
    rows = c.rows("SELECT severity, code, object, message, fix FROM tenant_guard.lint()")
    found = [r for r in rows if r[1] == code]
    for name in must:
        check(any(name in (r[2] or "") or name in (r[3] or "") for r in found),
              f"lint() does not report {code} for {name} (findings with that code: "
              f"{[r[2] for r in found]!r}; all codes: {sorted({r[1] for r in rows})!r})")
    for name in must_not:
        bad = [r for r in found if name in (r[2] or "")]
        check(not bad, f"lint() reports {code} for {name}, which is keyed per tenant: {bad!r}")


# -- ON CONFLICT --------------------------------------------------------------------------------

def on_conflict_do_nothing_global(suite):
    c = app_a(suite)
    r = c.ok("INSERT INTO o_global VALUES ('acme', 2, 'G-SECRET') ON CONFLICT DO NOTHING RETURNING *")
    check(r.rowcount == 0 and r.rows == [], f"expected INSERT 0 0 (the accepted existence bit), got {r.status} {r.rows!r}")
    r = c.ok("INSERT INTO o_global VALUES ('acme', 3, 'A-fresh') ON CONFLICT DO NOTHING RETURNING sku")
    check(r.rows == [("A-fresh",)], f"{r.rows!r}")
    c.ok("ROLLBACK")
    rows = truth(suite, "SELECT tenant_id, id FROM o_global WHERE sku = 'G-SECRET'")
    check(rows == [("globex", 1)], f"globex's row changed: {rows!r}")


def on_conflict_do_nothing_scoped(suite):
    c = app_a(suite)
    r = c.ok("INSERT INTO o_scoped VALUES ('acme', 2, 'G-SECRET') ON CONFLICT DO NOTHING RETURNING sku")
    check(r.rows == [("G-SECRET",)], f"keyed per tenant, the insert must happen: {r.status} {r.rows!r}")
    c.ok("ROLLBACK")


def on_conflict_do_update_other_is_refused(suite):
    c = app_a(suite)
    r = c.run("INSERT INTO o_global VALUES ('acme', 2, 'G-SECRET') ON CONFLICT (sku) DO UPDATE SET id = 9 RETURNING *")
    expect_refused(r, "ON CONFLICT (sku) DO UPDATE on globex's row", "42501", guard=None)
    check(is_rls_error(r), f"not a row-security refusal: {r.message!r}")
    no_values(r, "ON CONFLICT DO UPDATE")
    c.ok("ROLLBACK")
    rows = truth(suite, "SELECT tenant_id, id FROM o_global WHERE sku = 'G-SECRET'")
    check(rows == [("globex", 1)], f"globex's row changed: {rows!r}")


# -- foreign keys -------------------------------------------------------------------------------

def fk_composite_child_to_parent(suite):
    c = app_a(suite)
    # acme's own parent: the check works with a claim
    r = c.ok("INSERT INTO o_child_scoped VALUES ('acme', 2, 1) RETURNING parent_id")
    check(r.rows == [(1,)], f"{r.rows!r}")
    c.ok("ROLLBACK")
    # globex's parent 77 and a parent nobody has (78): the same refusal, the same words
    errs = []
    for pid in (77, 78):
        c.ok("BEGIN")
        claim(c)
        r = c.run(f"INSERT INTO o_child_scoped VALUES ('acme', 3, {pid})")
        expect_refused(r, f"a composite foreign key to parent {pid}", "23503", guard=None)
        no_values(r, f"composite foreign key to {pid}", secrets=("globex", "p77"))
        errs.append((r.sqlstate, r.message, r.detail.replace(str(pid), "N")))
        c.ok("ROLLBACK")
    check(errs[0] == errs[1], f"ORACLE: another tenant's parent and a missing parent are told apart: {errs!r}")


def fk_composite_parent_to_child(suite):
    c = app_a(suite)
    # no other tenant can reference acme's parent through a composite key: deleting it just works
    r = c.ok("DELETE FROM o_parent WHERE id = 6 RETURNING id")
    check(r.rows == [(6,)], f"{r.rows!r}")
    c.ok("ROLLBACK")
    c.ok("BEGIN")
    c.ok("SET LOCAL tenant_guard.tenant_id = 'globex'")
    r = c.run("INSERT INTO o_child_scoped VALUES ('globex', 2, 6)")
    expect_refused(r, "globex references acme's parent through the composite key", "23503", guard=None)
    c.ok("ROLLBACK")
    c.ok("BEGIN")
    c.ok("SET LOCAL tenant_guard.tenant_id = 'globex'")
    r = c.run("INSERT INTO o_child_scoped VALUES ('acme', 2, 6)")
    expect_refused(r, "globex writes a child row for acme", "42501", guard=None)
    c.ok("ROLLBACK")


def fk_global_errors_reveal_no_values(suite):
    c = app_a(suite)
    r = c.run("INSERT INTO o_child_global VALUES ('acme', 2, 78)")
    expect_refused(r, "a global foreign key to a missing parent", "23503", guard=None)
    no_values(r, "global foreign key, missing parent")
    c.ok("ROLLBACK")
    # reverse: acme's parent 5 is referenced by globex's child through the global key
    c.ok("BEGIN")
    claim(c)
    r = c.run("DELETE FROM o_parent WHERE id = 5")
    expect_refused(r, "deleting acme's parent that globex references (global key)", "23503", guard=None)
    no_values(r, "global foreign key, reverse", secrets=("globex", "o_child_global\" (", "(globex"))
    check("Key (" not in r.detail or "globex" not in r.detail, f"DETAIL shows the referencing key: {r.detail!r}")
    c.ok("ROLLBACK")


def fk_probe_table_refused(suite):
    c = suite.connect(fx.APP)
    for sql in ["CREATE TABLE scratch.sec_probe (parent_id int REFERENCES public.o_parent (id))",
                "CREATE TABLE scratch.sec_probe (tenant_id text, parent_id int, "
                "FOREIGN KEY (tenant_id, parent_id) REFERENCES public.o_parent (tenant_id, id))"]:
        c.ok("BEGIN")
        r = c.run(sql)
        expect_refused(r, f"the application creates a probe table: {sql}", "42501", guard=None)
        c.ok("ROLLBACK")
    # a temporary probe: PostgreSQL itself refuses a permanent table as the target
    r = c.run("CREATE TEMP TABLE sec_probe (parent_id int REFERENCES public.o_parent (id))")
    check(not r.ok and r.sqlstate in ("42501", "42P16"), f"a temporary probe table: {r!r}")


def fk_no_claim_is_refused_before_the_check(suite):
    c = suite.connect(fx.APP)
    for sql in ["INSERT INTO o_child_global VALUES ('acme', 2, 77)", "INSERT INTO o_child_scoped VALUES ('acme', 2, 77)",
                "DELETE FROM o_parent WHERE id = 5"]:
        m = suite.marker()
        r = c.run(f"{m} {sql}")
        expect_refused(r, f"no claim: {sql}", "42501", guard=True)
        suite.expect_event(m, event="denied", reason="no_claim")


def run(suite):
    suite.family("oracles")
    setup(suite)
    suite.case("unique.global_key_reveals_existence_never_values", unique_global_key_reveals_no_value, suite)
    suite.case("unique.tenant_scoped_key_is_no_oracle", unique_scoped_key_is_no_oracle, suite)
    suite.case("unique.composite_primary_key_is_no_oracle", composite_primary_key_is_no_oracle, suite)
    suite.case("unique.lint_reports_keys_without_tenant", lint_reports, suite, "unique_without_tenant",
               ["o_global"], ["o_scoped"])
    suite.case("on_conflict.do_nothing_global_key_is_the_accepted_bit", on_conflict_do_nothing_global, suite)
    suite.case("on_conflict.do_nothing_tenant_scoped_key_is_no_oracle", on_conflict_do_nothing_scoped, suite)
    suite.case("on_conflict.do_update_of_other_tenants_row_is_refused", on_conflict_do_update_other_is_refused, suite)
    suite.case("foreign_key.composite_child_to_parent_is_no_oracle", fk_composite_child_to_parent, suite)
    suite.case("foreign_key.composite_parent_to_child_is_no_oracle", fk_composite_parent_to_child, suite)
    suite.case("foreign_key.global_key_errors_reveal_no_values", fk_global_errors_reveal_no_values, suite)
    suite.case("foreign_key.lint_reports_keys_without_tenant", lint_reports, suite, "foreign_key_without_tenant",
               ["o_child_global"], ["o_child_scoped"])
    suite.case("foreign_key.lint_reports_unprotected_probe_tables", lint_reports, suite,
               "foreign_key_from_unprotected", ["o_probe"])
    suite.case("foreign_key.application_cannot_create_a_probe_table", fk_probe_table_refused, suite)
    suite.case("foreign_key.no_claim_is_refused_before_any_check", fk_no_claim_is_refused_before_the_check, suite)
    suite.verify_audit()
