"""A real PgBouncer (Debian package pgbouncer, /usr/sbin/pgbouncer) in pool_mode = transaction with
ONE server connection per pool, started by each test on a free local port with its own ini and
userlist in a temporary directory. PgBouncer runs no reset query between clients in transaction
mode, so whatever client 1 leaves on the server connection (a session-level claim, a bypass, a
PREPAREd statement, a cursor, PostgREST's request.jwt.claims) reaches client 2. None of it may
hand client 1's rows to client 2.

Every test checks that client 2 really got client 1's server connection (same backend pid), so a
pass cannot come from two server connections. If PgBouncer is missing or does not start, the
tests fail (scripts/setup.sh installs it).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import psycopg

from harness import (ACME_AMOUNTS, DBNAME, GLOBEX_AMOUNTS, SUPERUSER, check, ensure_login_role,
                     expect_one, no_claim, refused, run, sees_none_of, sees_only, sign_token,
                     system_settings)

PGBOUNCER = "/usr/sbin/pgbouncer"
Q = "SELECT tenant_id, amount FROM invoices ORDER BY id"
ADMIN = "tg_admin"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgBouncer:
    """One PgBouncer process in front of the fixture's database (context manager: stopped on exit,
    whether the test passed or failed)."""

    def __init__(self, fx, pool_size=1):
        self.fx = fx
        self.pool_size = pool_size
        self.proc = None
        self.dir = None
        self.port = None

    def __enter__(self):
        check(os.path.exists(PGBOUNCER),
              f"PgBouncer is not installed ({PGBOUNCER} missing): run scripts/setup.sh, which installs "
              f"the Debian package pgbouncer")
        self.dir = tempfile.mkdtemp(prefix="tg_pgbouncer_")
        self.port = free_port()
        cfg = self.fx.cfg
        ini = os.path.join(self.dir, "pgbouncer.ini")
        users = os.path.join(self.dir, "userlist.txt")
        self.log = os.path.join(self.dir, "pgbouncer.log")
        with open(ini, "w") as f:
            f.write(
                "[databases]\n"
                f"{DBNAME} = host={cfg.host} port={cfg.port} dbname={DBNAME}\n"
                "[pgbouncer]\n"
                "listen_addr = 127.0.0.1\n"
                f"listen_port = {self.port}\n"
                f"unix_socket_dir = {self.dir}\n"
                f"logfile = {self.log}\n"
                f"pidfile = {os.path.join(self.dir, 'pgbouncer.pid')}\n"
                "auth_type = trust\n"
                f"auth_file = {users}\n"
                "pool_mode = transaction\n"
                f"default_pool_size = {self.pool_size}\n"
                "min_pool_size = 0\n"
                "reserve_pool_size = 0\n"
                "max_client_conn = 50\n"
                # the defaults, spelled out: no reset between clients in transaction mode
                "server_reset_query = DISCARD ALL\n"
                "server_reset_query_always = 0\n"
                "query_timeout = 30\n"
                "query_wait_timeout = 30\n"
                "log_connections = 1\n"
                "log_disconnections = 1\n"
            )
        with open(users, "w") as f:
            for user in ("tg_app", ADMIN, SUPERUSER):
                f.write(f'"{user}" ""\n')
        kw = {}
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root.
            shutil.chown(self.dir, "postgres", "postgres")
            for p in (ini, users):
                shutil.chown(p, "postgres", "postgres")
            kw = dict(user="postgres", group="postgres", extra_groups=[])
        self.proc = subprocess.Popen([PGBOUNCER, ini], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, **kw)
        deadline = time.monotonic() + 10
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode(errors="replace")
                self._cleanup_dir()
                raise AssertionError(f"PgBouncer exited with code {self.proc.returncode} at start-up: "
                                     f"{out.strip()} {self._log_tail()}")
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, user="tg_app", dbname=DBNAME,
                                     connect_timeout=2, autocommit=True) as c:
                    c.execute("SELECT 1")
                return self
            except psycopg.Error as e:
                last = e
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise AssertionError(f"PgBouncer did not accept connections on 127.0.0.1:{self.port} within 10 s: "
                             f"{last} {self._log_tail()}")

    def _log_tail(self):
        try:
            with open(self.log) as f:
                return "| log: " + " | ".join(f.read().strip().splitlines()[-8:])
        except OSError:
            return ""

    def _cleanup_dir(self):
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        self._cleanup_dir()
        return False

    def client(self, user="tg_app"):
        """A new client connection through PgBouncer (autocommit; transactions are explicit)."""
        c = psycopg.connect(host="127.0.0.1", port=self.port, user=user, dbname=DBNAME,
                            connect_timeout=10, autocommit=True)
        # PgBouncer in transaction mode (1.18) does not carry protocol-level prepared statements
        # between server connections: no automatic preparation by psycopg.
        c.prepare_threshold = None
        self.fx._conns.append(c)
        return c


def backend_pid(conn):
    return run(conn, "SELECT pg_backend_pid()")[0][0]


def same_server_connection(c1_pid, c2):
    pid = backend_pid(c2)
    check(pid == c1_pid, f"client 2 got server connection {pid}, client 1 had {c1_pid}: the test needs "
                         f"one shared server connection (default_pool_size = 1)")


# -----------------------------------------------------------------------------------------------

def test_pgbouncer_handoff_after_session_and_transaction_claims(fx):
    with PgBouncer(fx) as pb:
        c1 = pb.client()
        pid = backend_pid(c1)
        # client 1 (acme): a session-level claim, a transaction-level one, and set_config(.., false)
        run(c1, "SET tenant_guard.tenant_id = 'acme'")
        run(c1, "BEGIN")
        run(c1, "SET LOCAL tenant_guard.tenant_id = 'acme'")
        sees_only(c1, "acme", Q, amounts=ACME_AMOUNTS)
        run(c1, "COMMIT")
        run(c1, "BEGIN")
        run(c1, "SELECT tenant_guard.set_tenant('acme')")
        sees_only(c1, "acme", Q, amounts=ACME_AMOUNTS)
        run(c1, "COMMIT")
        run(c1, "SELECT set_config('tenant_guard.tenant_id', 'acme', false)")
        # client 2, while client 1 is still connected (idle), and after it left
        for round_ in ("client 1 idle", "client 1 gone"):
            if round_ == "client 1 gone":
                c1.close()
            c2 = pb.client()
            same_server_connection(pid, c2)
            # the left-over value is really there on the server connection ...
            expect_one(c2, "SHOW tenant_guard.tenant_id", "acme")
            # ... and counts for nothing
            expect_one(c2, "SELECT tenant_guard.current_tenant()", None)
            no_claim(c2, Q, stale=True)
            no_claim(c2, "SELECT count(*) FROM invoices", stale=True)
            no_claim(c2, "SELECT * FROM invoices WHERE tenant_id = 'acme'", stale=True)
            no_claim(c2, "UPDATE invoices SET amount = 0 RETURNING *", stale=True)
            no_claim(c2, "DELETE FROM invoices RETURNING *", stale=True)
            run(c2, "BEGIN")
            no_claim(c2, Q, stale=True)
            run(c2, "ROLLBACK")
            # client 2 with its own claim sees only its own rows
            run(c2, "BEGIN")
            run(c2, "SET LOCAL tenant_guard.tenant_id = 'globex'")
            sees_only(c2, "globex", Q, amounts=GLOBEX_AMOUNTS)
            sees_none_of(c2, "acme", "SELECT * FROM invoices WHERE tenant_id = 'acme'")
            run(c2, "COMMIT")
            no_claim(c2, Q, stale=True)
            c2.close()
    check(sorted(a for t, a in fx.all_rows() if t == "acme") == sorted(ACME_AMOUNTS), "acme rows changed")


def test_pgbouncer_handoff_after_a_bypass(fx):
    ensure_login_role(fx.cfg, ADMIN, "BYPASSRLS")
    su = fx.su()
    run(su, f"GRANT SELECT, UPDATE ON invoices TO {ADMIN}")
    with system_settings(fx.cfg, tenant_guard__bypass_roles=ADMIN), PgBouncer(fx) as pb:
        a1 = pb.client(ADMIN)
        pid = backend_pid(a1)
        # client 1 (an admin) reads across tenants under an audited bypass, and commits
        run(a1, "BEGIN")
        run(a1, "SELECT tenant_guard.begin_bypass('pgbouncer test: support ticket 1')")
        rows = run(a1, Q)
        check({t for t, _ in rows} >= {"acme", "globex"}, f"the bypass did not read across tenants: {rows!r}")
        run(a1, "COMMIT")
        # ... and once more in autocommit: the bypass ends with its own statement
        run(a1, "SELECT tenant_guard.begin_bypass('pgbouncer test: support ticket 2')")
        # client 2 (same role, same server connection): no bypass
        a2 = pb.client(ADMIN)
        same_server_connection(pid, a2)
        no_claim(a2, Q, stale=False)
        no_claim(a2, "UPDATE invoices SET amount = 0 RETURNING *", stale=False)
        run(a2, "BEGIN")
        no_claim(a2, Q, stale=False)
        run(a2, "ROLLBACK")
        # even with a claim, a BYPASSRLS role without a bypass is refused (never filtered rows of
        # someone else)
        run(a2, "BEGIN")
        run(a2, "SET LOCAL tenant_guard.tenant_id = 'globex'")
        refused(a2, Q, contains="public.invoices")
        run(a2, "ROLLBACK")
        # an application client on the same pool is not touched either
        c = pb.client()
        no_claim(c, Q, stale=False)
    check(sorted(a for t, a in fx.all_rows() if t == "acme") == sorted(ACME_AMOUNTS), "acme rows changed")


def test_pgbouncer_handoff_of_a_prepared_statement(fx):
    with PgBouncer(fx) as pb:
        c1 = pb.client()
        pid = backend_pid(c1)
        # client 1 forces generic plans (session-level, left behind) and prepares statements
        run(c1, "SET plan_cache_mode = force_generic_plan")
        run(c1, "PREPARE all_rows AS SELECT tenant_id, amount FROM invoices ORDER BY id")
        run(c1, "PREPARE by_tenant(text) AS SELECT tenant_id, amount FROM invoices WHERE tenant_id = $1")
        for _ in range(6):     # well past the point where plans are cached
            run(c1, "BEGIN")
            run(c1, "SET LOCAL tenant_guard.tenant_id = 'acme'")
            sees_only(c1, "acme", "EXECUTE all_rows", amounts=ACME_AMOUNTS)
            sees_only(c1, "acme", "EXECUTE by_tenant('acme')", amounts=ACME_AMOUNTS)
            run(c1, "COMMIT")
        c1.close()
        c2 = pb.client()
        same_server_connection(pid, c2)
        names = {r[0] for r in run(c2, "SELECT name FROM pg_prepared_statements")}
        check({"all_rows", "by_tenant"} <= names, f"client 1's prepared statements did not reach client 2: {names}")
        no_claim(c2, "EXECUTE all_rows", stale=False)
        no_claim(c2, "EXECUTE by_tenant('acme')", stale=False)
        run(c2, "BEGIN")
        no_claim(c2, "EXECUTE all_rows", stale=False)
        run(c2, "ROLLBACK")
        # client 2 with its own claim, through client 1's statements: globex only
        run(c2, "BEGIN")
        run(c2, "SET LOCAL tenant_guard.tenant_id = 'globex'")
        sees_only(c2, "globex", "EXECUTE all_rows", amounts=GLOBEX_AMOUNTS)
        sees_none_of(c2, "acme", "EXECUTE by_tenant('acme')")
        run(c2, "COMMIT")


def test_pgbouncer_with_hold_cursor_is_refused(fx):
    with PgBouncer(fx) as pb:
        c1 = pb.client()
        pid = backend_pid(c1)
        run(c1, "BEGIN")
        run(c1, "SET LOCAL tenant_guard.tenant_id = 'acme'")
        refused(c1, "DECLARE held CURSOR WITH HOLD FOR SELECT tenant_id, amount FROM invoices",
                contains="WITH HOLD cursor over protected table public.invoices")
        run(c1, "ROLLBACK")
        # in autocommit (PgBouncer's favourite) too
        refused(c1, "DECLARE held CURSOR WITH HOLD FOR SELECT tenant_id, amount FROM invoices",
                contains="WITH HOLD cursor over protected table public.invoices")
        # a plain cursor ends with client 1's transaction
        run(c1, "BEGIN")
        run(c1, "SET LOCAL tenant_guard.tenant_id = 'acme'")
        run(c1, "DECLARE plain CURSOR FOR SELECT tenant_id, amount FROM invoices")
        sees_only(c1, "acme", "FETCH 1 FROM plain")
        run(c1, "COMMIT")
        c2 = pb.client()
        same_server_connection(pid, c2)
        check(run(c2, "SELECT count(*) FROM pg_cursors")[0][0] == 0, "a cursor of client 1 reached client 2")
        refused(c2, "FETCH ALL FROM held", sqlstate="34000", prefix=None)
        refused(c2, "FETCH ALL FROM plain", sqlstate="34000", prefix=None)


def test_pgbouncer_handoff_of_postgrest_claims(fx):
    """PostgREST-style claims (tenant_guard.jwt_claims_path): request.jwt.claims left on the
    connection by client 1 is stale for client 2."""
    claims = '{"role":"authenticated","app_metadata":{"tenant_id":"acme"}}'
    with system_settings(fx.cfg, tenant_guard__jwt_claims_path="app_metadata.tenant_id"), PgBouncer(fx) as pb:
        c1 = pb.client()
        pid = backend_pid(c1)
        run(c1, "BEGIN")
        run(c1, "SELECT set_config('request.jwt.claims', %s, true)", (claims,))
        sees_only(c1, "acme", Q, amounts=ACME_AMOUNTS)
        run(c1, "COMMIT")
        run(c1, "SELECT set_config('request.jwt.claims', %s, false)", (claims,))   # left behind
        c1.close()
        c2 = pb.client()
        same_server_connection(pid, c2)
        expect_one(c2, "SELECT current_setting('request.jwt.claims', true)", claims)
        expect_one(c2, "SELECT tenant_guard.current_tenant()", None)
        no_claim(c2, Q)
        run(c2, "BEGIN")
        no_claim(c2, Q)
        run(c2, "ROLLBACK")
        run(c2, "BEGIN")
        run(c2, "SELECT set_config('request.jwt.claims', %s, true)",
            ('{"role":"authenticated","app_metadata":{"tenant_id":"globex"}}',))
        sees_only(c2, "globex", Q, amounts=GLOBEX_AMOUNTS)
        run(c2, "COMMIT")


def test_pgbouncer_handoff_after_a_signed_token(fx):
    secret = "pgbouncer-test-secret-0123456789"
    with system_settings(fx.cfg, tenant_guard__token_keys=f"k1:{secret}"), PgBouncer(fx) as pb:
        c1 = pb.client()
        pid = backend_pid(c1)
        token = sign_token({"tenant_id": "acme", "exp": int(time.time()) + 300}, secret, kid="k1")
        run(c1, "BEGIN")
        expect_one(c1, "SELECT tenant_guard.set_tenant_token(%s)", "acme", (token,))
        sees_only(c1, "acme", Q, amounts=ACME_AMOUNTS)
        run(c1, "COMMIT")
        c1.close()
        c2 = pb.client()
        same_server_connection(pid, c2)
        expect_one(c2, "SELECT tenant_guard.current_tenant()", None)
        no_claim(c2, Q, stale=False)
