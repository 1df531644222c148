"""Fixture and assertions shared by the multi-session tests (used by run.py and test_*.py).

Every test gets a fresh database (DROP DATABASE IF EXISTS + CREATE DATABASE tg_sessions) with
CREATE EXTENSION tenant_guard and the table `invoices`, owned by tg_owner, protected, granted to
tg_app. Application sessions connect as tg_app directly (LOGIN, NOBYPASSRLS, not owner).
"""

import os
import socket
import struct
import threading
import time

import psycopg

DBNAME = "tg_sessions"
SUPERUSER = "postgres"
OWNER = "tg_owner"
APP = "tg_app"

# Fixture rows: (tenant_id, amount). The '' row belongs to nobody and is visible to nobody.
ACME_AMOUNTS = [10, 20, 30]
GLOBEX_AMOUNTS = [1000, 2000]
BLANK_AMOUNTS = [99999]

# Every connection gets these, so that a hang becomes an error instead of a stuck suite.
TIMEOUT_OPTIONS = "-c statement_timeout=20000 -c lock_timeout=10000"
CONNECT_TIMEOUT = 10
SETTLE_SECONDS = 0.15


class Config:
    def __init__(self, host, port):
        self.host = host
        self.port = int(port)

    def conninfo(self, user, dbname):
        return dict(host=self.host, port=self.port, user=user, dbname=dbname, connect_timeout=CONNECT_TIMEOUT)


def ensure_roles(cfg):
    """Creates tg_owner and tg_app when missing (another suite may have created them already)."""
    with psycopg.connect(**cfg.conninfo(SUPERUSER, "postgres"), autocommit=True) as c:
        c.execute(
            """
            DO $$
            BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tg_owner') THEN
                    CREATE ROLE tg_owner NOLOGIN;
                END IF;
                IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tg_app') THEN
                    CREATE ROLE tg_app LOGIN NOBYPASSRLS;
                END IF;
            END
            $$
            """
        )
        # The application role must be what the tests say it is, whoever created it.
        c.execute("ALTER ROLE tg_app LOGIN NOSUPERUSER NOBYPASSRLS")
        # A claim_scope role setting left behind by an interrupted run of this suite.
        c.execute("ALTER ROLE tg_app RESET tenant_guard.claim_scope")


def drop_database(cfg):
    with psycopg.connect(**cfg.conninfo(SUPERUSER, "postgres"), autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")


class Fixture:
    """One test's world: a fresh database and the connections the test opened."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.dbname = DBNAME
        self._conns = []
        self._threads = []

    # -- set-up and tear-down ---------------------------------------------------------------
    def setup(self):
        with psycopg.connect(**self.cfg.conninfo(SUPERUSER, "postgres"), autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {DBNAME}")
        su = self.su()
        su.execute("CREATE EXTENSION tenant_guard")
        su.execute("GRANT CREATE, USAGE ON SCHEMA public TO tg_owner")
        su.execute("GRANT USAGE ON SCHEMA public TO tg_app")
        su.execute("SET ROLE tg_owner")
        su.execute(
            "CREATE TABLE invoices (id bigserial PRIMARY KEY, tenant_id text NOT NULL, amount int)"
        )
        su.execute("CREATE INDEX invoices_tenant_id_idx ON invoices (tenant_id)")
        with su.cursor() as cur:
            cur.executemany(
                "INSERT INTO invoices (tenant_id, amount) VALUES (%s, %s)",
                [("acme", a) for a in ACME_AMOUNTS]
                + [("globex", a) for a in GLOBEX_AMOUNTS]
                + [("", a) for a in BLANK_AMOUNTS],
            )
        su.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON invoices TO tg_app")
        su.execute("GRANT USAGE ON SEQUENCE invoices_id_seq TO tg_app")
        msg = su.execute("SELECT tenant_guard.protect('invoices')").fetchone()[0]
        assert msg.startswith("protected public.invoices"), msg
        su.execute("RESET ROLE")
        su.close()

    def teardown(self):
        for t in self._threads:
            t.join(timeout=5)
        for c in self._conns:
            try:
                c.close()
            except Exception:
                pass
        self._conns.clear()
        # A refusal near the end of the test starts an audit writer for this database. If the next
        # DROP DATABASE ... WITH (FORCE) runs while that writer is still starting, it is not
        # terminated and the drop waits until the writer leaves on its own (~2 s). Give it the
        # moment it needs to connect (then FORCE ends it at once).
        time.sleep(SETTLE_SECONDS)

    # -- connections ------------------------------------------------------------------------
    def connect(self, user, dbname=None, autocommit=True, options=None, **kw):
        opts = TIMEOUT_OPTIONS + (" " + options if options else "")
        c = psycopg.connect(
            **self.cfg.conninfo(user, dbname or self.dbname), autocommit=autocommit, options=opts, **kw
        )
        # No automatic server-side preparation by psycopg (it would also DEALLOCATE ALL behind the
        # test's back): statements are prepared only where a test says so (prepare=True, PREPARE).
        c.prepare_threshold = None
        self._conns.append(c)
        return c

    def app(self, **kw):
        """A new application session: tg_app, autocommit (transactions are explicit BEGIN/COMMIT)."""
        return self.connect(APP, **kw)

    def su(self, **kw):
        return self.connect(SUPERUSER, **kw)

    def owner(self, **kw):
        """A superuser connection that runs as tg_owner (tg_owner cannot log in)."""
        c = self.su(**kw)
        c.execute("SET ROLE tg_owner")
        return c

    def thread(self, target, *args):
        t = ThreadWithResult(target, *args)
        self._threads.append(t)
        t.start()
        return t

    # -- ground truth -----------------------------------------------------------------------
    def all_rows(self, table="invoices"):
        """Every row of a table, read by the superuser with the guard off (ground truth only)."""
        with psycopg.connect(**self.cfg.conninfo(SUPERUSER, self.dbname), autocommit=True) as c:
            c.execute("SET tenant_guard.enforce = off")
            return c.execute(f"SELECT tenant_id, amount FROM {table} ORDER BY id").fetchall()

    def new_owned_table(self, name, rows):
        """An unprotected table owned by tg_owner, with (tenant_id, amount) rows, granted to tg_app."""
        with psycopg.connect(**self.cfg.conninfo(SUPERUSER, self.dbname), autocommit=True) as c:
            c.execute("SET ROLE tg_owner")
            c.execute(f"CREATE TABLE {name} (id bigserial PRIMARY KEY, tenant_id text NOT NULL, amount int)")
            c.execute(f"CREATE INDEX ON {name} (tenant_id)")
            with c.cursor() as cur:
                cur.executemany(f"INSERT INTO {name} (tenant_id, amount) VALUES (%s, %s)", rows)
            c.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {name} TO tg_app")
            c.execute(f"GRANT USAGE ON SEQUENCE {name}_id_seq TO tg_app")


class ThreadWithResult(threading.Thread):
    def __init__(self, target, *args):
        super().__init__(daemon=True)
        self._target_fn = target
        self._args = args
        self.result = None
        self.error = None

    def run(self):
        try:
            self.result = self._target_fn(*self._args)
        except BaseException as e:  # reported by the test through .get()
            self.error = e

    def get(self, timeout=30):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"thread still running after {timeout}s (hang?)")
        if self.error is not None:
            raise self.error
        return self.result


# -- assertions -----------------------------------------------------------------------------

class Refused(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def run(conn, sql, params=None):
    """Executes; returns the rows if the statement returns any, else None."""
    cur = conn.execute(sql, params)
    return cur.fetchall() if cur.description is not None else None


def refused(conn, sql, params=None, sqlstate="42501", prefix="tenant_guard:", contains=None,
            detail_contains=None):
    """Asserts that the statement fails with exactly `sqlstate` (and a message starting with
    `prefix`, containing `contains`, a DETAIL containing `detail_contains`); returns the error."""
    try:
        rows = run(conn, sql, params)
    except psycopg.Error as e:
        diag = e.diag
        primary = diag.message_primary or ""
        check(
            e.sqlstate == sqlstate,
            f"{sql!r}: expected SQLSTATE {sqlstate}, got {e.sqlstate}: {primary} "
            f"(detail: {diag.message_detail})",
        )
        if prefix is not None:
            check(primary.startswith(prefix), f"{sql!r}: message does not start with {prefix!r}: {primary!r}")
        if contains is not None:
            check(contains in primary, f"{sql!r}: message lacks {contains!r}: {primary!r}")
        if detail_contains is not None:
            detail = diag.message_detail or ""
            check(detail_contains in detail, f"{sql!r}: detail lacks {detail_contains!r}: {detail!r}")
        return e
    raise AssertionError(f"{sql!r}: expected refusal {sqlstate}, but it succeeded and returned {rows!r}")


def no_claim(conn, sql="SELECT tenant_id, amount FROM invoices", stale=None, table="public.invoices"):
    """Asserts the guard's "no claim" refusal (42501, names the table); stale=True/False pins which."""
    e = refused(conn, sql, contains=table)
    primary = e.diag.message_primary
    check("no tenant claim is set" in primary, f"{sql!r}: not a no-claim refusal: {primary!r}")
    detail = e.diag.message_detail or ""
    if stale is True:
        check("earlier transaction" in detail, f"{sql!r}: expected a stale-claim refusal, detail: {detail!r}")
    elif stale is False:
        check("earlier transaction" not in detail, f"{sql!r}: expected an unset-claim refusal, detail: {detail!r}")
    check(e.diag.message_hint, f"{sql!r}: refusal without a hint")
    return e


def tenants_of(rows, col=0):
    return sorted({r[col] for r in rows})


def sees_only(conn, tenant, sql="SELECT tenant_id, amount FROM invoices ORDER BY id", amounts=None):
    """Asserts that the statement returns rows of `tenant` only (and exactly `amounts` if given)."""
    rows = run(conn, sql)
    check(rows is not None, f"{sql!r} returned no result set")
    others = [r for r in rows if r[0] != tenant]
    check(not others, f"LEAK: under tenant {tenant!r}, {sql!r} returned other tenants' rows {others!r}")
    if amounts is not None:
        got = sorted(r[1] for r in rows)
        check(got == sorted(amounts), f"under tenant {tenant!r}, {sql!r} returned amounts {got}, expected {sorted(amounts)}")
    return rows


def sees_none_of(conn, tenant, sql):
    """Asserts that the statement succeeds and returns no row (negative probe for another tenant)."""
    rows = run(conn, sql)
    check(rows == [], f"LEAK: {sql!r} returned {rows!r}, expected no row of {tenant!r}")


def expect_one(conn, sql, value, params=None):
    rows = run(conn, sql, params)
    check(rows is not None and len(rows) == 1 and len(rows[0]) == 1,
          f"{sql!r}: expected one value, got {rows!r}")
    check(rows[0][0] == value, f"{sql!r}: expected {value!r}, got {rows[0][0]!r}")


# -- raw protocol start-up, to read the SQLSTATE of a refused connection -----------------------

def startup_error(cfg, params):
    """Opens a connection with the v3 protocol by hand and returns the ErrorResponse fields as a
    dict ({'C': sqlstate, 'M': message, 'S': severity, 'H': hint, ...}), or None if the server
    accepted the connection (reached ReadyForQuery). libpq does not expose the SQLSTATE of a
    start-up failure, so this is the only way to pin it."""
    if cfg.host.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        addr = os.path.join(cfg.host, f".s.PGSQL.{cfg.port}")
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        addr = (cfg.host, cfg.port)
    s.settimeout(CONNECT_TIMEOUT)
    try:
        s.connect(addr)
        body = struct.pack("!i", 196608)
        for k, v in params.items():
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        s.sendall(struct.pack("!i", len(body) + 4) + body)
        buf = b""

        def read(n):
            nonlocal buf
            while len(buf) < n:
                chunk = s.recv(65536)
                if not chunk:
                    raise AssertionError("server closed the connection without an ErrorResponse")
                buf += chunk
            out, buf = buf[:n], buf[n:]
            return out

        while True:
            kind = read(1)
            (length,) = struct.unpack("!i", read(4))
            payload = read(length - 4)
            if kind == b"E":
                fields = {}
                for part in payload.split(b"\0"):
                    if part:
                        fields[chr(part[0])] = part[1:].decode(errors="replace")
                return fields
            if kind == b"R":
                (code,) = struct.unpack("!i", payload[:4])
                if code != 0:
                    raise AssertionError(f"server asked for authentication method {code}; trust auth expected")
            if kind == b"Z":
                s.sendall(b"X" + struct.pack("!i", 4))
                return None
    finally:
        s.close()


# -- cluster-wide settings (ALTER SYSTEM), restored afterwards -------------------------------

class system_settings:
    """Context manager: ALTER SYSTEM SET each name = value, reload, and wait until a new session
    sees the values; on exit ALTER SYSTEM RESET each name, reload, and wait until a new session
    sees the values of before. For superuser-only settings (tenant_guard.token_keys,
    bypass_roles, jwt_claims_path, ...) that a test needs in every new backend, including those a
    pooler opens. Keyword names use __ for the dot: tenant_guard__token_keys='k1:...'."""

    def __init__(self, cfg, **settings):
        self.cfg = cfg
        self.settings = {k.replace("__", "."): v for k, v in settings.items()}
        self.before = {}

    def _current(self):
        with psycopg.connect(**self.cfg.conninfo(SUPERUSER, "postgres"), autocommit=True) as c:
            return {n: c.execute("SELECT current_setting(%s, true)", (n,)).fetchone()[0] or ""
                    for n in self.settings}

    def _apply(self, want, reset):
        import psycopg.sql

        with psycopg.connect(**self.cfg.conninfo(SUPERUSER, "postgres"), autocommit=True) as c:
            for name, value in self.settings.items():
                if reset:
                    c.execute(f"ALTER SYSTEM RESET {name}")
                else:
                    c.execute(f"ALTER SYSTEM SET {name} = {psycopg.sql.quote(value)}")
            c.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10
        while True:
            seen = self._current()
            if seen == want:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"ALTER SYSTEM + pg_reload_conf(): expected {want} in a new session "
                                     f"after 10 s, got {seen}")
            time.sleep(0.05)

    def __enter__(self):
        self.before = self._current()
        self._apply(dict(self.settings), reset=False)
        return self

    def __exit__(self, *exc):
        self._apply(self.before, reset=True)
        return False


def ensure_login_role(cfg, name, attributes="NOBYPASSRLS"):
    """Creates a LOGIN role when missing and gives it exactly these attributes."""
    with psycopg.connect(**cfg.conninfo(SUPERUSER, "postgres"), autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (name,)).fetchone()
        if not exists:
            c.execute(f'CREATE ROLE "{name}" LOGIN')
        c.execute(f'ALTER ROLE "{name}" LOGIN NOSUPERUSER {attributes}')


def sign_token(payload, secret, kid=None, alg="HS256"):
    """A compact JWS (HS256/HS384/HS512) signed with `secret` (str or bytes), for the tests."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signed = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    key = secret.encode() if isinstance(secret, str) else secret
    return signed + "." + b64(hmac.new(key, signed.encode(), digest).digest())
