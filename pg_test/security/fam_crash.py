"""Family "crash": malformed input to every SQL function and every setting of tenant_guard.

Property: whatever the input (NULLs, empty and huge strings, control characters, quotes, unicode,
numbers at and beyond their limits, oids of every kind of object, wrong types, malformed and
correctly signed but absurd tokens, absurd request.jwt.claims), tenant_guard answers with an
ordinary error or a result: never SQLSTATE XX000 (an internal error, e.g. a Rust panic turned into
an ERROR), never a message that speaks of a panic, never a crashed backend (the connection must
still answer; run.py also watches a sentinel connection and the server log).

It runs in its own database (tg_security_fuzz), because some calls legitimately change things
(protect, unprotect, prune_audit). Inputs come from the run's seed.
"""

import base64
import hashlib
import hmac
import json
import random

import psycopg

import fixture as fx
from lib import lit, short

FUZZ_DB = "tg_security_fuzz"
CALLS_PER_FUNCTION = 40
HUGE = 1024 * 1024


def strings(r):
    pool = [
        "", " ", "x", "tenant_id", "acme", "ctid", "xmin", "oid", "TENANT_ID", '"tenant_id"', "a" * 63, "a" * 64, "a" * 256,
        "a" * 257, "é" * 200, "🙂" * 100, "'", "''", '"', "\\", "\\x00", "%s%n%x", "'); DROP TABLE f_t; --",
        "$$", "$q$", "\t\n\r", "\x01\x02\x1f", "\x1f", "1\x1fforged", "public.f_t", "pg_catalog.pg_class",
        "tenant_guard.audit_log", "k1:c2VjcmV0", "null", "true", "{}", "[]", '{"tenant_id": "acme"}',
        "a.b.c", "....", ",,,", "a,b,,c", ' , ', "*", "-1", "9" * 400, "NaN", "infinity",
    ]
    s = r.choice(pool)
    if r.random() < 0.3:
        s = "".join(chr(r.choice([r.randint(1, 127), r.randint(128, 0x2FF), r.randint(0x4E00, 0x4E50)]))
                    for _ in range(r.randint(1, 40)))
    if r.random() < 0.03:
        s = r.choice(["x", "é", "a,"]) * (HUGE // 2)
    return s


def ints(r):
    return r.choice([0, 1, -1, 2, 1000, 2147483647, -2147483648, r.randint(-10**6, 10**6)])


def intervals(r):
    return r.choice(["0", "-1 day", "1 second", "1000000 years", "-178000000 years", "1 microsecond", "00:00:00.000001",
                     "99999 days", "-0"])


def timestamps(r):
    return r.choice(["infinity", "-infinity", "4713-01-01 00:00 BC", "294276-12-31", "2000-01-01", "epoch", "now"])


def value(r, typ, objects):
    if r.random() < 0.12:
        return "NULL"
    if typ in ("text", "name", "character varying"):
        return f"{lit(strings(r))}::{typ}"
    if typ in ("integer", "bigint"):
        return f"({ints(r)})::{typ}"
    if typ == "interval":
        return f"{lit(intervals(r))}::interval"
    if typ == "timestamp with time zone":
        return f"{lit(timestamps(r))}::timestamptz"
    if typ == "oid":
        return r.choice([f"{r.choice(objects)}::oid", "0::oid", "1::oid", "4294967295::oid", f"{r.randint(1, 10**6)}::oid"])
    if typ == "regclass":
        return r.choice([f"{r.choice(objects)}::oid::regclass", f"{lit(r.choice(['f_t', 'f_parted', 'f_view', 'f_seq', 'f_t_pkey', 'f_mv', 'pg_class', 'tenant_guard.audit_log', 'tenant_guard.protected_tables', 'pg_toast.pg_toast_2619', 'f_plain', 'f_temp']))}::regclass",
                         "0::oid::regclass", f"{r.randint(1, 10**6)}::oid::regclass"])
    if typ == "boolean":
        return r.choice(["true", "false"])
    return "NULL"


def wrong_type(r):
    return r.choice(["1", "1.5", "'x'::bytea", "ARRAY[1]", "'{}'::jsonb", "now()", "point(1,1)", "'a'::\"char\""])


def setup(suite):
    with psycopg.connect(**suite.cfg.conninfo(fx.SUPERUSER, "postgres"), autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {FUZZ_DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {FUZZ_DB}")
    su = suite.connect(fx.SUPERUSER, db=FUZZ_DB)  # closed after the case that runs setup()
    for s in [
        "CREATE EXTENSION tenant_guard",
        f"GRANT USAGE, CREATE ON SCHEMA public TO {fx.APP}",
        "CREATE TABLE f_t (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id))",
        "INSERT INTO f_t VALUES ('acme', 1), ('globex', 2)",
        "CREATE TABLE f_parted (tenant_id uuid NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (id)",
        "CREATE TABLE f_parted_0 PARTITION OF f_parted FOR VALUES WITH (MODULUS 2, REMAINDER 0)",
        "CREATE TABLE f_parted_1 PARTITION OF f_parted FOR VALUES WITH (MODULUS 2, REMAINDER 1)",
        "CREATE TABLE f_plain (n int)",
        "CREATE VIEW f_view AS SELECT * FROM f_t",
        "CREATE SEQUENCE f_seq",
        "CREATE MATERIALIZED VIEW f_mv AS SELECT 1 AS n",
        "SELECT tenant_guard.protect('f_t')",
        "SELECT tenant_guard.protect('f_parted')",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON f_t, f_parted, f_plain TO {fx.APP}",
    ]:
        su.ok(s)
    objects = [str(x[0]) for x in su.rows(
        "SELECT oid FROM pg_class WHERE relname IN ('f_t', 'f_parted', 'f_parted_0', 'f_view', 'f_seq', 'f_t_pkey', "
        "'f_mv', 'pg_class', 'audit_log', 'protected_tables', 'f_plain', 'pg_toast_2619') "
        "UNION ALL SELECT oid FROM pg_proc WHERE proname = 'protect' "
        "UNION ALL SELECT oid FROM pg_type WHERE typname = 'int4' "
        "UNION ALL SELECT oid FROM pg_namespace WHERE nspname = 'tenant_guard'")]
    funcs = su.rows("""SELECT p.proname, coalesce(array_agg(format_type(t.typ, NULL) ORDER BY t.ord)
                              FILTER (WHERE t.typ IS NOT NULL), '{}'), p.prorettype::regtype::text
                         FROM pg_proc p LEFT JOIN LATERAL unnest(p.proargtypes) WITH ORDINALITY t(typ, ord) ON true
                        WHERE p.pronamespace = 'tenant_guard'::regnamespace
                        GROUP BY p.oid, p.proname, p.prorettype ORDER BY p.proname""")
    su.close()
    return objects, funcs


def bad(r):
    """Why a result is a crash-safety failure, or None."""
    if r.sqlstate == "XX000":
        return f"internal error XX000: {r.message}"
    if r.sqlstate == "08000" or (r.sqlstate or "").startswith("08"):
        return f"the connection broke: {r.message}"
    if r.sqlstate in ("57P01", "57P02", "57P03"):
        return f"the backend was terminated: {r.message}"
    text = (r.message + " " + r.detail + " " + r.context).lower()
    for w in ("panicked", "panic", "rust", "unwrap", "called `option", "called `result", "internal error"):
        if w in text:
            return f"a panic reached the client: {r.message} | {r.detail}"
    return None


class Fuzzer:
    def __init__(self, suite, user):
        self.suite = suite
        self.user = user
        self.c = None
        self.reconnect()

    def reconnect(self):
        if self.c:
            self.c.close()
        self.c = self.suite.connect(self.user, db=FUZZ_DB, keep=True)
        if self.user == fx.SUPERUSER:
            # the failing statements carry megabytes of input: keep them out of the server log
            self.c.ok("SET log_min_error_statement = panic")

    def call(self, sql, txn=True):
        c = self.c
        if txn:
            c.run("BEGIN")
        res = c.run(sql)
        if txn:
            c.run("ROLLBACK")
        why = bad(res)
        if why is None and not c.alive():
            why = "the backend did not survive the call"
        if why is not None:
            self.reconnect()
            raise AssertionError(f"{why} -- input: {short(sql, 300)}")
        return res


def fuzz_function(suite, name, argtypes, rettype, objects, seed):
    r = random.Random(f"{seed}:{name}")
    for user in (fx.SUPERUSER, fx.APP):
        f = Fuzzer(suite, user)
        try:
            n = CALLS_PER_FUNCTION if user == fx.SUPERUSER else CALLS_PER_FUNCTION // 2
            for i in range(n):
                if argtypes and r.random() < 0.1:
                    args = [wrong_type(r) for _ in argtypes]
                elif r.random() < 0.05:
                    args = [value(r, t, objects) for t in argtypes] + ["1"]  # too many arguments
                else:
                    args = [value(r, t, objects) for t in argtypes]
                claim = ""
                if r.random() < 0.3:
                    claim = f"SET LOCAL tenant_guard.tenant_id = {lit(r.choice(['acme', 'globex', '00000000-0000-0000-0000-000000000000', '1']))}; "
                from_clause = f"tenant_guard.{name}({', '.join(args)})"
                sql = f"SELECT * FROM {from_clause}" if rettype in ("record",) else f"SELECT {from_clause}"
                if claim:
                    f.c.run("BEGIN")
                    f.c.run(claim.strip().rstrip(";"))
                    res = f.c.run(sql)
                    f.c.run("ROLLBACK")
                    why = bad(res) or (None if f.c.alive() else "the backend did not survive the call")
                    if why:
                        f.reconnect()
                        raise AssertionError(f"{why} -- input: {short(sql, 300)}")
                else:
                    f.call(sql)
        finally:
            f.c.close()


SETTINGS_EXTRA = ["tenant_guard.token_keys", "tenant_guard.bypass", "tenant_guard.tenant_id"]


def setting_values(r, vartype, enumvals):
    vals = [strings(r) for _ in range(8)]
    vals += ["on", "off", "0", "-1", "2147483648", "1e10", "true", "", "shadow", "session", "protect"]
    if vartype == "string":
        vals += ["a," * 2000, '"' * 10, '"a,b"', '""', "sec_app,,", " , ", "public,pg_catalog,\"x y\"",
                 "k:" + "A" * 40, "k:base64:!!!notbase64", "kid:base64:" + "QUFB" * 30, ":", "k:", ":secret" * 3,
                 "a." * 500, "app_metadata..tenant", ".", "x." + "y" * 5000]
    return vals


def probes():
    return [
        "SELECT count(*) FROM f_t",
        "SELECT count(*) FROM f_parted",
        "SELECT * FROM tenant_guard.status()",
        "SELECT tenant_guard.set_tenant_token('a.b.c')",
        "SELECT tenant_guard.current_tenant()",
        "CREATE TEMP TABLE f_new (tenant_id text NOT NULL)",
    ]


def fuzz_setting(suite, name, vartype, enumvals, seed):
    r = random.Random(f"{seed}:{name}")
    f = Fuzzer(suite, fx.SUPERUSER)
    try:
        for v in setting_values(r, vartype, enumvals):
            for scope in ("SET LOCAL", "set_config"):
                f.c.run("BEGIN")
                stmt = (f"SET LOCAL {name} = {lit(v)}" if scope == "SET LOCAL"
                        else f"SELECT set_config({lit(name)}, {lit(v)}, true)")
                res = f.c.run(stmt)
                why = bad(res)
                if why is None and res.ok:
                    f.c.run("SET LOCAL tenant_guard.tenant_id = 'acme'") if name != "tenant_guard.tenant_id" else None
                    for p in probes():
                        f.c.run("SAVEPOINT p")
                        pr = f.c.run(p)
                        why = bad(pr)
                        if why:
                            why += f" (probe {p!r} after {stmt[:200]!r})"
                            break
                        f.c.run("ROLLBACK TO p")
                f.c.run("ROLLBACK")
                if why is None and not f.c.alive():
                    why = "the backend did not survive"
                if why:
                    f.reconnect()
                    raise AssertionError(f"{why} -- input: {short(stmt, 300)}")
    finally:
        f.c.close()


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(r, key=b"a-secret-that-is-long-enough-for-hs256!!"):
    header = r.choice([{"alg": "HS256", "typ": "JWT"}, {"alg": "HS256", "kid": "k1"}, {"alg": "none"},
                       {"alg": "HS512", "kid": "k1"}, {"alg": "HS256", "crit": ["x"]}, {"alg": ["HS256"]}, [], "x",
                       {"alg": "HS256", "kid": "🙂" * 50}, {"alg": "HS256", "kid": None}, {}])
    payload_tenant = r.choice(["acme", 1, 1.5, None, True, [], {"a": 1}, "", "x" * 10000, "é", "\u0000", -1,
                               10**40, "globex"])
    payload = r.choice([
        {"tenant_id": payload_tenant, "exp": r.choice([2**31, 2**63, -1, "soon", 1.5, None, 10**30, 4102444800])},
        {"tenant_id": payload_tenant, "nbf": r.choice([0, -10**20, "x", 10**20]), "exp": 4102444800},
        {"tenant_id": payload_tenant},
        {"app_metadata": {"tenant_id": payload_tenant}, "exp": 4102444800},
        {"iss": r.choice(["x", 1, None]), "aud": r.choice(["x", ["a", "b"], 5]), "tenant_id": "acme", "exp": 4102444800},
        [1, 2, 3], "string", 12, None,
        {"tenant_id": {"tenant_id": {"tenant_id": "acme"}}},
        {"a" * 1000: "b" * 100000},
    ])
    h = b64(json.dumps(header).encode())
    try:
        p = b64(json.dumps(payload).encode())
    except ValueError:
        p = b64(b"{")
    if r.random() < 0.2:
        p = r.choice(["", "!!!", "=", "a" * 3, b64(b"\xff\xfe"), b64(b"{\"tenant_id\": \"a\"")])
    alg = header.get("alg") if isinstance(header, dict) else None
    digest = hashlib.sha512 if alg == "HS512" else hashlib.sha256
    sig = b64(hmac.new(key, f"{h}.{p}".encode(), digest).digest())
    if r.random() < 0.2:
        sig = r.choice(["", "x", sig[:-2], sig + "A", "=" * 10])
    t = f"{h}.{p}.{sig}"
    if r.random() < 0.1:
        t = r.choice([t + ".", "." + t, t.replace(".", ".."), "...", t * 3, "a.b", "a.b.c.d"])
    return t


def fuzz_tokens(suite, seed):
    r = random.Random(f"{seed}:tokens")
    f = Fuzzer(suite, fx.SUPERUSER)
    key = "a-secret-that-is-long-enough-for-hs256!!"
    try:
        for keys in [f"k1:{key}", key, f"k1:{key},k2:base64:" + base64.b64encode(b"x" * 40).decode()]:
            for _ in range(60):
                f.c.run("BEGIN")
                f.c.ok(f"SET LOCAL tenant_guard.token_keys = {lit(keys)}")
                for name, choices, p in (("token_tenant_claim", ["tenant_id", "app_metadata.tenant_id", "", ".", "a..b"], 0.3),
                                         ("token_audience", ["x", "", "a,b"], 0.2),
                                         ("token_issuer", ["x", "", "🙂"], 0.1),
                                         ("token_leeway", ["0", "3600"], 0.1)):
                    if r.random() < p:
                        f.c.run("SAVEPOINT s")
                        if not f.c.run(f"SET LOCAL tenant_guard.{name} = {lit(r.choice(choices))}").ok:
                            f.c.run("ROLLBACK TO s")
                tok = token(r)
                sql = f"SELECT tenant_guard.set_tenant_token({lit(tok)})"
                res = f.c.run(sql)
                why = bad(res)
                if why is None and res.ok:
                    why = bad(f.c.run("SELECT count(*) FROM f_t"))
                f.c.run("ROLLBACK")
                if why is None and not f.c.alive():
                    why = "the backend did not survive"
                if why:
                    f.reconnect()
                    raise AssertionError(f"{why} -- token: {short(tok, 300)} keys: {keys[:20]}")
    finally:
        f.c.close()


def fuzz_jwt_claims(suite, seed):
    """request.jwt.claims is set by whoever runs SQL (PostgREST sets it per request); with
    jwt_claims_path configured the guard parses it: absurd JSON must be an ordinary refusal."""
    r = random.Random(f"{seed}:jwt")
    f = Fuzzer(suite, fx.SUPERUSER)
    try:
        for path in ("tenant_id", "app_metadata.tenant_id", "a.b.c.d.e.f"):
            for _ in range(40):
                f.c.run("BEGIN")
                f.c.run(f"SET LOCAL tenant_guard.jwt_claims_path = {lit(path)}")
                f.c.run(f"SET LOCAL ROLE {fx.APP}")
                doc = r.choice([
                    json.dumps({"tenant_id": r.choice(["acme", 1, None, [], {}, "x" * 5000, True])}),
                    json.dumps({"app_metadata": r.choice([{"tenant_id": "acme"}, [], "x", None, {"tenant_id": {"x": 1}}])}),
                    "{", "", "null", "[]", "1", '"x"', "{\"a\":" * 200 + "1" + "}" * 200, strings(r),
                    json.dumps({"a": {"b": {"c": {"d": {"e": {"f": "acme"}}}}}}),
                ])
                res = f.c.run(f"SELECT set_config('request.jwt.claims', {lit(doc)}, true)")
                why = bad(res)
                if why is None:
                    why = bad(f.c.run("SELECT count(*) FROM f_t"))
                f.c.run("ROLLBACK")
                if why is None and not f.c.alive():
                    why = "the backend did not survive"
                if why:
                    f.reconnect()
                    raise AssertionError(f"{why} -- request.jwt.claims: {short(doc, 200)} path {path}")
    finally:
        f.c.close()


def run(suite, seed):
    suite.family("crash")
    state = {}
    suite.case("fixture", lambda: state.update(zip(("objects", "funcs"), setup(suite))))
    if "funcs" not in state:
        return
    objects, funcs = state["objects"], state["funcs"]
    for name, argtypes, rettype in funcs:
        suite.case(f"function[{name}({', '.join(argtypes)})]", fuzz_function, suite, name, argtypes, rettype, objects, seed)
    su = suite.connect(fx.SUPERUSER, db=FUZZ_DB, keep=True)
    settings = su.rows("SELECT name, vartype, enumvals FROM pg_settings WHERE name LIKE 'tenant_guard.%' "
                       "AND context <> 'postmaster' ORDER BY 1")
    su.close()
    names = {s[0] for s in settings}
    settings += [(n, "string", None) for n in SETTINGS_EXTRA if n not in names]
    for name, vartype, enumvals in settings:
        suite.case(f"setting[{name}]", fuzz_setting, suite, name, vartype, enumvals, seed)
    suite.case("signed_tokens", fuzz_tokens, suite, seed)
    suite.case("request_jwt_claims", fuzz_jwt_claims, suite, seed)
    with psycopg.connect(**suite.cfg.conninfo(fx.SUPERUSER, "postgres"), autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {FUZZ_DB} WITH (FORCE)")
