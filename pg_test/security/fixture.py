"""The security suite's world: roles, two databases and the fixture tables.

    tg_security      the guarded database: tenant_guard installed, every fixture table protected
    tg_security_ref  the reference: the same tables, views and functions, no extension, no row
                     security, holding ONLY tenant A's rows (the differential test runs each
                     statement there as the superuser and compares)

Tenants. Every protected table holds rows of tenants A, B and C, one row of the "blank" tenant
(the value a careless application would write for "no tenant"), and the SAME ids for every tenant,
so that a query that confuses tenants finds a row. Every text value of a tenant's row starts with
that tenant's name (acme-, globex-, initech-, blank-), every amount has the tenant's order of
magnitude (A: tens, B: thousands, C: hundred thousands, blank: 7777777), so that a leak is
recognisable in any output: rows, sums, NOTICEs, error texts.

The claim is one text value, but tenant columns have five types. A tenant therefore has one value
per "claim group": str (text, varchar, the partitioned and the inheritance tables, the lines),
uuid, num (bigint and integer).
"""

import psycopg

MAIN_DB = "tg_security"
REF_DB = "tg_security_ref"
SUPERUSER = "postgres"

OWNER = "sec_owner"          # owns every fixture table; filtered (FORCE ROW LEVEL SECURITY)
APP = "sec_app"              # the application: not owner, NOBYPASSRLS, member of nothing
APP2 = "sec_app2"            # a second filtered application role (role changes between plans)
ADMIN = "sec_admin"          # BYPASSRLS
TRUSTED = "sec_trusted"      # BYPASSRLS, listed in tenant_guard.trusted_roles
BYPASSER = "sec_bypasser"    # BYPASSRLS, member of sec_bypass_group (tenant_guard.bypass_roles)
BYPASS_GROUP = "sec_bypass_group"
SWITCHER = "sec_switcher"    # NOBYPASSRLS login role, member of sec_app and sec_admin (SET ROLE)

LOGIN_ROLES = {
    OWNER: "NOSUPERUSER NOBYPASSRLS",
    APP: "NOSUPERUSER NOBYPASSRLS",
    APP2: "NOSUPERUSER NOBYPASSRLS",
    ADMIN: "NOSUPERUSER BYPASSRLS",
    TRUSTED: "NOSUPERUSER BYPASSRLS",
    BYPASSER: "NOSUPERUSER BYPASSRLS",
    SWITCHER: "NOSUPERUSER NOBYPASSRLS",
}

# tenant -> value per claim group
TENANTS = {
    "A": {"str": "acme", "uuid": "aaaaaaaa-0000-4000-8000-000000000001", "num": "1"},
    "B": {"str": "globex", "uuid": "bbbbbbbb-0000-4000-8000-000000000002", "num": "2"},
    "C": {"str": "initech", "uuid": "cccccccc-0000-4000-8000-000000000003", "num": "3"},
    "blank": {"str": "", "uuid": "00000000-0000-0000-0000-000000000000", "num": "0"},
}
NAMES = {"A": "acme", "B": "globex", "C": "initech", "blank": "blank"}
MAGNITUDE = {"A": 10, "B": 1000, "C": 100000}
BLANK_AMOUNT = 7777777

# protected tables: name -> (tenant column type, claim group)
TYPED_TABLES = {
    "t_text": ("text", "str"),
    "t_varchar": ("varchar(64)", "str"),
    "t_uuid": ("uuid", "uuid"),
    "t_bigint": ("bigint", "num"),
    "t_int": ("integer", "num"),
}
# every protected fixture table (roots), and where their rows physically are
PROTECTED_ROOTS = ["t_text", "t_varchar", "t_uuid", "t_bigint", "t_int", "t_part", "t_inh", "t_lines"]
LEAF_TABLES = ["t_text", "t_varchar", "t_uuid", "t_bigint", "t_int", "t_part_lo", "t_part_hi",
               "t_part_def", "t_inh", "t_inh_child", "t_lines"]
GROUP_OF = {**{t: g for t, (_, g) in TYPED_TABLES.items()},
            "t_part": "str", "t_part_lo": "str", "t_part_hi": "str", "t_part_def": "str",
            "t_inh": "str", "t_inh_child": "str", "t_lines": "str"}

IDS = {"A": [1, 2, 3, 4, 5], "B": [1, 2, 3, 4, 5], "C": [1, 2, 3], "blank": [1]}
PART_IDS = {"A": [1, 2, 101, 102, 250], "B": [1, 2, 101, 102, 250], "C": [1, 101], "blank": [103]}


def tval(tenant, group):
    return TENANTS[tenant][group]


def amount(tenant, i):
    return BLANK_AMOUNT if tenant == "blank" else MAGNITUDE[tenant] * i


def rows_of(table, tenant):
    """The fixture rows (tenant_id as text, id, name, amount) of one tenant in a leaf table."""
    g = GROUP_OF[table]
    ids = PART_IDS[tenant] if table.startswith("t_part") else IDS[tenant]
    if table == "t_part_lo":
        ids = [i for i in ids if i < 100]
    elif table == "t_part_hi":
        ids = [i for i in ids if 100 <= i < 200]
    elif table == "t_part_def":
        ids = [i for i in ids if i >= 200]
    elif table == "t_inh_child":
        ids = [i + 10 for i in ids]
    return [(tval(tenant, g), i, f"{NAMES[tenant]}-{table}-{i}", amount(tenant, i)) for i in ids]


def expected_rows(table, tenants=("A",)):
    """Fixture rows of a table as a query over it returns them (a parent includes its children)."""
    leaves = {"t_part": ["t_part_lo", "t_part_hi", "t_part_def"], "t_inh": ["t_inh", "t_inh_child"]}
    out = []
    for leaf in leaves.get(table, [table]):
        for t in tenants:
            out += rows_of(leaf, t)
    return out


ALL_TENANTS = ("A", "B", "C", "blank")


def lines_of(tenant):
    """t_lines: (tenant_id, id, order_id, qty); each tenant has lines for its orders 1..3."""
    if tenant == "blank":
        return [("", 1, 1, 7)]
    base = MAGNITUDE[tenant]
    ids = [1, 2, 3] if tenant != "C" else [1, 2]
    return [(tval(tenant, "str"), i, i if i <= 3 else 1, base * i + 1) for i in ids]


def ensure_roles(conn):
    """Cluster-wide roles, created if missing and reset to what the suite needs."""
    for role, attrs in LOGIN_ROLES.items():
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"ALTER ROLE {role} LOGIN {attrs}")
        conn.execute(f"ALTER ROLE {role} RESET ALL")
    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (BYPASS_GROUP,)).fetchone():
        conn.execute(f"CREATE ROLE {BYPASS_GROUP} NOLOGIN")
    conn.execute(f"GRANT {BYPASS_GROUP} TO {BYPASSER}")
    conn.execute(f"GRANT {APP}, {ADMIN} TO {SWITCHER}")
    # the application must be a member of nothing (a member of the owner would own the tables)
    for r in conn.execute(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s", (APP,)).fetchall():
        conn.execute(f'REVOKE "{r[0]}" FROM {APP}')


def drop_databases(conn):
    for db in (MAIN_DB, REF_DB):
        conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def _values(rows):
    return ", ".join("(" + ", ".join(psycopg.sql.Literal(v).as_string(None) for v in r) + ")" for r in rows)


def schema_sql(guarded):
    """The DDL and rows of the fixture. guarded: the main database (owned by sec_owner, protected)
    or the reference (no extension; only tenant A's rows are loaded)."""
    tenants = ALL_TENANTS if guarded else ("A",)
    s = []
    for t, (typ, _) in TYPED_TABLES.items():
        s.append(f"""CREATE TABLE {t} (
            tenant_id {typ} NOT NULL, id int NOT NULL, name text NOT NULL, amount bigint NOT NULL,
            PRIMARY KEY (tenant_id, id)) WITH (autovacuum_enabled = off)""")
        rows = [r for tn in tenants for r in rows_of(t, tn)]
        s.append(f"INSERT INTO {t} VALUES {_values(rows)}")
    s.append("""CREATE TABLE t_part (
        tenant_id text NOT NULL, id int NOT NULL, name text NOT NULL, amount bigint NOT NULL,
        PRIMARY KEY (tenant_id, id)) PARTITION BY RANGE (id)""")
    s.append("CREATE TABLE t_part_lo PARTITION OF t_part FOR VALUES FROM (MINVALUE) TO (100) WITH (autovacuum_enabled = off)")
    s.append("CREATE TABLE t_part_hi PARTITION OF t_part FOR VALUES FROM (100) TO (200) WITH (autovacuum_enabled = off)")
    s.append("CREATE TABLE t_part_def PARTITION OF t_part DEFAULT WITH (autovacuum_enabled = off)")
    rows = [r for tn in tenants for leaf in ("t_part_lo", "t_part_hi", "t_part_def") for r in rows_of(leaf, tn)]
    s.append(f"INSERT INTO t_part VALUES {_values(rows)}")
    s.append("""CREATE TABLE t_inh (
        tenant_id text NOT NULL, id int NOT NULL, name text NOT NULL, amount bigint NOT NULL,
        PRIMARY KEY (tenant_id, id)) WITH (autovacuum_enabled = off)""")
    s.append("""CREATE TABLE t_inh_child (extra text NOT NULL DEFAULT 'x', PRIMARY KEY (tenant_id, id))
        INHERITS (t_inh) WITH (autovacuum_enabled = off)""")
    s.append(f"INSERT INTO t_inh VALUES {_values([r for tn in tenants for r in rows_of('t_inh', tn)])}")
    s.append("INSERT INTO t_inh_child (tenant_id, id, name, amount) VALUES "
             + _values([r for tn in tenants for r in rows_of('t_inh_child', tn)]))
    s.append("""CREATE TABLE t_lines (
        tenant_id text NOT NULL, id int NOT NULL, order_id int NOT NULL, qty bigint NOT NULL,
        PRIMARY KEY (tenant_id, id),
        FOREIGN KEY (tenant_id, order_id) REFERENCES t_text (tenant_id, id)
            ON DELETE CASCADE ON UPDATE CASCADE) WITH (autovacuum_enabled = off)""")
    s.append(f"INSERT INTO t_lines VALUES {_values([r for tn in tenants for r in lines_of(tn)])}")
    # unprotected helpers: every (tenant, id, name) key of t_text, readable by all (a sub-link
    # target), and a table with a trigger that reads and writes protected tables as the invoker
    s.append("CREATE TABLE u_keys (tenant_id text NOT NULL, id int NOT NULL, name text NOT NULL)")
    # the same in both databases: the reference lists every tenant's keys too
    s.append("INSERT INTO u_keys VALUES " + _values(
        [(r[0], r[1], r[2]) for tn in ALL_TENANTS for r in rows_of("t_text", tn)]))
    s.append("CREATE TABLE u_plain (n int NOT NULL)")
    s.append("INSERT INTO u_plain SELECT generate_series(1, 10)")
    s.append("""CREATE TABLE u_trig (id serial PRIMARY KEY, note text NOT NULL, seen text,
        write_tenant text)""")
    # views
    s.append("CREATE VIEW v_text_inv WITH (security_invoker = true) AS SELECT tenant_id, id, name, amount FROM t_text")
    s.append("CREATE VIEW v_text_def AS SELECT tenant_id, id, name, amount FROM t_text")
    s.append("""CREATE VIEW v_join WITH (security_invoker = true) AS
        SELECT o.tenant_id, o.id, o.name, l.id AS line_id, l.qty
          FROM t_text o JOIN t_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id""")
    s.append("CREATE VIEW v_part_def AS SELECT tenant_id, id, name, amount FROM t_part")
    # functions
    s.append("""CREATE FUNCTION f_text_sql() RETURNS SETOF t_text LANGUAGE sql STABLE
        AS $$ SELECT * FROM t_text $$""")
    s.append("""CREATE FUNCTION f_text_plpgsql() RETURNS SETOF t_text LANGUAGE plpgsql STABLE
        AS $$ BEGIN RETURN QUERY SELECT * FROM t_text; END $$""")
    s.append("""CREATE FUNCTION f_text_secdef() RETURNS SETOF t_text LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = public, pg_temp AS $$ SELECT * FROM t_text $$""")
    s.append("""CREATE FUNCTION f_part_sql(lo int) RETURNS SETOF t_part LANGUAGE sql STABLE
        AS $$ SELECT * FROM t_part WHERE id >= lo $$""")
    s.append("""CREATE FUNCTION f_sum_plpgsql() RETURNS bigint LANGUAGE plpgsql STABLE
        AS $$ BEGIN RETURN (SELECT coalesce(sum(amount), 0) FROM t_text); END $$""")
    s.append("""CREATE FUNCTION f_bump(delta int) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
        DECLARE n bigint; BEGIN UPDATE t_text SET amount = amount + delta; GET DIAGNOSTICS n = ROW_COUNT; RETURN n; END $$""")
    s.append("""CREATE FUNCTION f_bump_secdef(delta int) RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
        SET search_path = public, pg_temp AS $$
        DECLARE n bigint; BEGIN UPDATE t_text SET amount = amount + delta; GET DIAGNOSTICS n = ROW_COUNT; RETURN n; END $$""")
    s.append("""CREATE FUNCTION f_count_parallel() RETURNS bigint LANGUAGE plpgsql STABLE PARALLEL SAFE
        AS $$ BEGIN RETURN (SELECT count(*) FROM t_text); END $$""")
    # the leak probe of rowsecurity.sql: cheap, not LEAKPROOF, says what it sees
    s.append("""CREATE FUNCTION leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001
        AS $$ BEGIN RAISE NOTICE 'leak: %', $1; RETURN true; END $$""")
    # trigger: BEFORE INSERT on the unprotected u_trig records what the invoker can see of t_text,
    # and (when write_tenant is given) writes a row of that tenant into t_text
    s.append("""CREATE FUNCTION u_trig_fn() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.seen := (SELECT coalesce(string_agg(tenant_id || ':' || id, ',' ORDER BY tenant_id, id), '')
                           FROM t_text);
            IF NEW.write_tenant IS NOT NULL THEN
                INSERT INTO t_text VALUES (NEW.write_tenant, 900, NEW.write_tenant || '-trigger', 1);
            END IF;
            RETURN NEW;
        END $$""")
    s.append("CREATE TRIGGER u_trig_before BEFORE INSERT ON u_trig FOR EACH ROW EXECUTE FUNCTION u_trig_fn()")
    return s


def build(cfg, log=None):
    """Creates both databases from scratch. Returns nothing; raises on any failure."""
    with psycopg.connect(**cfg.conninfo(SUPERUSER, "postgres"), autocommit=True) as c:
        ensure_roles(c)
        drop_databases(c)
        c.execute(f"CREATE DATABASE {MAIN_DB}")
        c.execute(f"CREATE DATABASE {REF_DB}")
        c.execute(f"ALTER DATABASE {MAIN_DB} SET tenant_guard.trusted_roles = '{TRUSTED}'")
        c.execute(f"ALTER DATABASE {MAIN_DB} SET tenant_guard.bypass_roles = '{BYPASS_GROUP}'")
    # main database
    with psycopg.connect(**cfg.conninfo(SUPERUSER, MAIN_DB), autocommit=True) as c:
        c.execute("CREATE EXTENSION tenant_guard")
        c.execute("CREATE SCHEMA scratch")
        roles = ", ".join(LOGIN_ROLES)
        c.execute(f"GRANT USAGE, CREATE ON SCHEMA public, scratch TO {roles}")
        c.execute(f"GRANT TEMPORARY ON DATABASE {MAIN_DB} TO {roles}")
        with c.transaction():
            c.execute(f"SET LOCAL ROLE {OWNER}")
            for stmt in schema_sql(True):
                c.execute(stmt)
            for t in PROTECTED_ROOTS:
                c.execute("SELECT tenant_guard.protect(%s)", (t,))
            grantees = ", ".join(r for r in LOGIN_ROLES if r != OWNER)
            c.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO {grantees}")
            c.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {grantees}")
        # objects owned by the superuser: they void row security for whoever uses them
        c.execute("""CREATE VIEW v_text_su AS SELECT tenant_id, id, name, amount FROM t_text""")
        c.execute("""CREATE FUNCTION f_text_su_secdef() RETURNS SETOF t_text LANGUAGE sql STABLE
            SECURITY DEFINER SET search_path = public, pg_temp AS $$ SELECT * FROM t_text $$""")
        c.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON v_text_su TO PUBLIC")
        c.execute("ANALYZE")
    # reference database: same objects, A's rows only, owned by the superuser, no row security
    with psycopg.connect(**cfg.conninfo(SUPERUSER, REF_DB), autocommit=True) as c:
        with c.transaction():
            for stmt in schema_sql(False):
                c.execute(stmt)
            c.execute("CREATE VIEW v_text_su AS SELECT tenant_id, id, name, amount FROM t_text")
            c.execute("""CREATE FUNCTION f_text_su_secdef() RETURNS SETOF t_text LANGUAGE sql STABLE
                SECURITY DEFINER SET search_path = public, pg_temp AS $$ SELECT * FROM t_text $$""")
        c.execute("ANALYZE")


def restore_sql(tenants=ALL_TENANTS):
    """Statements that put every fixture row back (run by the superuser with the guard off)."""
    s = ["DELETE FROM t_lines", "DELETE FROM t_text"]
    for t in ("t_varchar", "t_uuid", "t_bigint", "t_int", "t_part", "t_inh"):
        s.append(f"DELETE FROM {t}")
    for t in TYPED_TABLES:
        s.append(f"INSERT INTO {t} VALUES {_values([r for tn in tenants for r in rows_of(t, tn)])}")
    s.append("INSERT INTO t_part VALUES " + _values(
        [r for tn in tenants for leaf in ("t_part_lo", "t_part_hi", "t_part_def") for r in rows_of(leaf, tn)]))
    s.append(f"INSERT INTO t_inh VALUES {_values([r for tn in tenants for r in rows_of('t_inh', tn)])}")
    s.append("INSERT INTO t_inh_child (tenant_id, id, name, amount) VALUES "
             + _values([r for tn in tenants for r in rows_of('t_inh_child', tn)]))
    s.append(f"INSERT INTO t_lines VALUES {_values([r for tn in tenants for r in lines_of(tn)])}")
    return s


def restore(cfg, db=MAIN_DB):
    """Every fixture table back to its fixture rows."""
    with psycopg.connect(**cfg.conninfo(SUPERUSER, db), autocommit=True) as c:
        with c.transaction():
            if db == MAIN_DB:
                c.execute("SET LOCAL tenant_guard.enforce = off")
            for stmt in restore_sql(ALL_TENANTS if db == MAIN_DB else ("A",)):
                c.execute(stmt)
