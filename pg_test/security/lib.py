"""Infrastructure of the security suite: connections, statement results, cases, families, and the
audit book that checks, after each family, that every refusal left exactly the audit event it
must (and that allowed statements left none).

A case is one named assertion (or a few that belong together). It passes when its function
returns, fails on AssertionError or any unexpected exception. Audit expectations are recorded by
the case and checked after the family ran (events are written asynchronously by the audit
writer); a case whose event is missing or wrong is then turned into a failure.
"""

import os
import re
import time
import traceback

import psycopg
from psycopg import sql as _sql

import fixture as fx

STATEMENT_TIMEOUT_MS = 20000
CONNECT_TIMEOUT = 10
AUDIT_WAIT_SECONDS = 8.0


class Config:
    def __init__(self, host, port):
        self.host = host
        self.port = int(port)

    def conninfo(self, user, dbname):
        return dict(host=self.host, port=self.port, user=user, dbname=dbname,
                    connect_timeout=CONNECT_TIMEOUT)


class Result:
    """What one statement did: rows (or None), rowcount, or the error with every field."""

    def __init__(self):
        self.ok = False
        self.rows = None
        self.columns = None
        self.rowcount = None
        self.status = None
        self.sqlstate = None
        self.message = ""
        self.detail = ""
        self.hint = ""
        self.context = ""
        self.notices = []

    def text(self):
        """Everything of the outcome a client sees, as one string (to look for leaked values)."""
        parts = [self.message, self.detail, self.hint, self.context, repr(self.rows), self.status or ""]
        parts += self.notices
        return "\n".join(p for p in parts if p)

    def __repr__(self):
        if self.ok:
            return f"<ok {self.status} rows={self.rows!r}>"
        return f"<error {self.sqlstate}: {self.message} | {self.detail} | {self.hint}>"


class Conn:
    """A psycopg connection plus the NOTICEs it received."""

    def __init__(self, raw):
        self.raw = raw
        self.notices = []
        raw.add_notice_handler(self._notice)

    def _notice(self, diag):
        self.notices.append(f"{diag.severity}: {diag.message_primary}"
                            + (f" | {diag.message_detail}" if diag.message_detail else ""))

    def run(self, sql, params=None):
        """Executes and returns a Result; never raises for an SQL error."""
        r = Result()
        self.notices.clear()
        try:
            cur = self.raw.execute(sql, params)
            r.ok = True
            r.status = cur.statusmessage
            r.rowcount = cur.rowcount
            if cur.description is not None:
                r.columns = [d.name for d in cur.description]
                r.rows = cur.fetchall()
        except psycopg.Error as e:
            d = e.diag
            r.sqlstate = e.sqlstate
            r.message = d.message_primary or str(e)
            r.detail = d.message_detail or ""
            r.hint = d.message_hint or ""
            r.context = d.context or ""
            if e.sqlstate is None:  # connection-level failure
                r.sqlstate = "08000"
        r.notices = list(self.notices)
        return r

    def ok(self, sql, params=None):
        """Executes; the statement must succeed. Returns the Result."""
        r = self.run(sql, params)
        if not r.ok:
            raise AssertionError(f"{short(sql)}: unexpected error {r.sqlstate}: {r.message}"
                                 + (f" (detail: {r.detail})" if r.detail else ""))
        return r

    def rows(self, sql, params=None):
        return self.ok(sql, params).rows

    def value(self, sql, params=None):
        rows = self.rows(sql, params)
        check(rows is not None and len(rows) == 1, f"{short(sql)}: expected one row, got {rows!r}")
        return rows[0][0]

    def copy_out(self, sql):
        r = Result()
        self.notices.clear()
        try:
            data = bytearray()
            with self.raw.cursor() as cur:
                with cur.copy(sql) as cp:
                    for chunk in cp:
                        data += chunk
            r.ok = True
            r.rows = [tuple(line.split("\t")) for line in bytes(data).decode().splitlines()]
            r.status = f"COPY {len(r.rows)}"
        except psycopg.Error as e:
            r.sqlstate = e.sqlstate or "08000"
            r.message = e.diag.message_primary or str(e)
            r.detail = e.diag.message_detail or ""
            r.hint = e.diag.message_hint or ""
        r.notices = list(self.notices)
        return r

    def copy_in(self, sql, lines):
        r = Result()
        self.notices.clear()
        try:
            with self.raw.cursor() as cur:
                with cur.copy(sql) as cp:
                    for line in lines:
                        cp.write(line + "\n")
                r.status = cur.statusmessage
                r.rowcount = cur.rowcount
            r.ok = True
        except psycopg.Error as e:
            r.sqlstate = e.sqlstate or "08000"
            r.message = e.diag.message_primary or str(e)
            r.detail = e.diag.message_detail or ""
            r.hint = e.diag.message_hint or ""
        r.notices = list(self.notices)
        return r

    def alive(self):
        try:
            self.raw.execute("SELECT 1").fetchone()
            return True
        except Exception:
            return False

    def close(self):
        try:
            self.raw.close()
        except Exception:
            pass


def short(sql, n=160):
    s = " ".join(str(sql).split())
    return s if len(s) <= n else s[:n] + "..."


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def ident(name):
    return _sql.Identifier(name).as_string(None)


def lit(value):
    return _sql.Literal(value).as_string(None)


# ---------------------------------------------------------------------------------------------
# Assertions on results
# ---------------------------------------------------------------------------------------------

def is_guard_error(r):
    return r.message.startswith("tenant_guard:")


def is_rls_error(r):
    """PostgreSQL's own row-security refusals (WITH CHECK / ON CONFLICT / MERGE)."""
    return r.sqlstate == "42501" and "row-level security" in r.message


def expect_ok(r, what):
    check(r.ok, f"{what}: expected success, got {r.sqlstate}: {r.message}"
          + (f" (detail: {r.detail})" if r.detail else ""))


def expect_refused(r, what, sqlstate="42501", guard=True, contains=None):
    """The statement failed with `sqlstate`; guard=True: it is tenant_guard's refusal (prefix and
    hint), guard=False: any message, guard=None: don't care."""
    check(not r.ok, f"{what}: expected refusal {sqlstate}, but it succeeded: {r.status} {r.rows!r}")
    check(r.sqlstate == sqlstate, f"{what}: expected SQLSTATE {sqlstate}, got {r.sqlstate}: {r.message}"
          + (f" (detail: {r.detail})" if r.detail else ""))
    if guard is True:
        check(is_guard_error(r), f"{what}: expected a tenant_guard refusal, got {r.message!r}")
        check(r.hint, f"{what}: refusal without a hint: {r.message!r}")
    if contains is not None:
        check(contains in r.message, f"{what}: message lacks {contains!r}: {r.message!r}")


def norm(v):
    """A value as a comparable string (uuid, int, Decimal, str alike)."""
    if v is None:
        return "\x00NULL"
    return str(v)


def norm_rows(rows):
    return sorted(tuple(norm(v) for v in row) for row in rows)


def expect_rows(r, expected, what, leak_check_col=0, allowed_tenants=None):
    """Exactly these rows (as a multiset, values compared as strings). If allowed_tenants is given,
    a row of any other tenant is reported as a LEAK first."""
    expect_ok(r, what)
    if allowed_tenants is not None and r.rows:
        bad = [row for row in r.rows if norm(row[leak_check_col]) not in allowed_tenants]
        check(not bad, f"LEAK: {what}: rows of other tenants {bad[:5]!r}")
    got = norm_rows(r.rows or [])
    want = norm_rows(expected)
    check(got == want, f"{what}: expected rows {want[:8]!r}{'...' if len(want) > 8 else ''} "
                       f"({len(want)}), got {got[:8]!r}{'...' if len(got) > 8 else ''} ({len(got)})")


LEAK_WORDS = ("globex", "initech", "blank-")


def expect_no_foreign_text(r, what, words=LEAK_WORDS):
    """No value of another tenant anywhere in what the client got (rows, error fields, NOTICEs)."""
    text = r.text().lower()
    for w in words:
        check(w not in text, f"LEAK: {what}: output contains {w!r}: {short(r.text(), 300)}")


# ---------------------------------------------------------------------------------------------
# Cases, families, the audit book
# ---------------------------------------------------------------------------------------------

class Case:
    def __init__(self, family, name):
        self.family = family
        self.name = name
        self.failure = None

    @property
    def passed(self):
        return self.failure is None


class AuditExpectation:
    def __init__(self, case, marker, fields, count):
        self.case = case
        self.marker = marker
        self.fields = fields
        self.count = count


class Suite:
    def __init__(self, cfg, verbose=False, pattern=None):
        self.cfg = cfg
        self.verbose = verbose
        self.pattern = pattern
        self.families = {}
        self.order = []
        self._expect = []
        self._markers_of_family = {}
        self._marker_n = 0
        self._family = None
        self._conns = []
        self.internal_errors = []  # XX000 seen anywhere

    # -- connections ---------------------------------------------------------------------------
    def connect(self, user, db=fx.MAIN_DB, autocommit=True, options=None, keep=False):
        opts = f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout=10000"
        if options:
            opts += " " + options
        raw = psycopg.connect(**self.cfg.conninfo(user, db), autocommit=autocommit, options=opts)
        raw.prepare_threshold = None
        c = Conn(raw)
        if not keep:
            self._conns.append(c)
        return c

    def close_all(self):
        for c in self._conns:
            c.close()
        self._conns.clear()

    def su(self, db=fx.MAIN_DB):
        return self.connect(fx.SUPERUSER, db)

    # -- markers -------------------------------------------------------------------------------
    def marker(self):
        """A comment that tags a statement, so its audit events can be found."""
        self._marker_n += 1
        m = f"/*sec:{self._family}:{self._marker_n}*/"
        return m

    # -- running cases -------------------------------------------------------------------------
    def family(self, name):
        self._family = name
        if name not in self.families:
            self.families[name] = []
            self.order.append(name)

    def case(self, name, fn, *args, **kw):
        fam = self._family
        full = f"{fam}.{name}"
        if self.pattern and self.pattern not in full:
            return None
        c = Case(fam, name)
        self.families[fam].append(c)
        self._current = c
        try:
            fn(*args, **kw)
        except AssertionError as e:
            c.failure = one_line(e)
        except Exception as e:  # an unexpected exception is a failure of the case, not the suite
            c.failure = f"{type(e).__name__}: {one_line(e)}"
            if self.verbose:
                traceback.print_exc()
        finally:
            self.close_all()
            self._current = None
        if not c.passed:
            print(f"FAIL {full}: {c.failure}", flush=True)
        elif self.verbose:
            print(f"ok   {full}", flush=True)
        return c

    def expect_event(self, marker, count=1, **fields):
        """The statement tagged with `marker` must leave `count` audit events with these fields
        (event, reason, command, role, tenant; relation: one of the relations). count=0: none."""
        self._expect.append(AuditExpectation(self._current, marker, fields, count))

    def expect_no_event(self, marker):
        self._expect.append(AuditExpectation(self._current, marker, {}, 0))

    # -- the audit check -----------------------------------------------------------------------
    def verify_audit(self):
        """Checks the expectations recorded by the current family's cases."""
        exps = [e for e in self._expect if e.case is not None and e.case.family == self._family]
        self._expect = [e for e in self._expect if e not in exps]
        if not exps:
            return
        su = self.connect(fx.SUPERUSER, keep=True)
        try:
            # a barrier: one refusal of our own, written after every event of this family
            barrier = f"/*sec:{self._family}:barrier*/"
            b = self.connect(fx.APP, keep=True)
            b.run(f"{barrier} SELECT 1 FROM t_text LIMIT 1")
            b.close()
            prefix = f"/*sec:{self._family}:"
            deadline = time.monotonic() + AUDIT_WAIT_SECONDS
            by_marker = {}
            while True:
                rows = su.rows(
                    "SELECT event, reason, relations, command, tenant, role::text, rows, query "
                    "FROM tenant_guard.audit_log WHERE strpos(query, %s) > 0 ORDER BY id", (prefix,))
                by_marker = {}
                for ev, reason, rels, cmd, tenant, role, nrows, query in rows:
                    for m in re.findall(r"/\*sec:[^*]+\*/", query or ""):
                        by_marker.setdefault(m, []).append(dict(event=ev, reason=reason, relations=rels or [],
                                                                command=cmd, tenant=tenant, role=role, rows=nrows))
                barrier_seen = barrier in by_marker
                missing = [e for e in exps if e.count > 0 and len(self._matching(by_marker.get(e.marker, []), e)) < e.count]
                if (barrier_seen and not missing) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            if not barrier_seen:
                for e in exps:
                    if e.case.passed:
                        e.case.failure = "audit: the barrier event never arrived (audit writer down?)"
                return
            # group expectations per marker: the events of a marker must be exactly the expected ones
            per_marker = {}
            for e in exps:
                per_marker.setdefault(e.marker, []).append(e)
            for marker, es in per_marker.items():
                events = list(by_marker.get(marker, []))
                problems = []
                for e in es:
                    if e.count == 0:
                        continue
                    got = self._matching(events, e)
                    if len(got) < e.count:
                        problems.append(f"missing audit event {e.fields} x{e.count} (events of the statement: {summ(events)})")
                    for g in got[:e.count]:
                        events.remove(g)
                if events and not problems:
                    problems.append(f"unexpected audit events {summ(events)}")
                if problems:
                    case = es[0].case
                    if case.passed:
                        case.failure = "; ".join(problems)
                        print(f"FAIL {case.family}.{case.name}: {case.failure}", flush=True)
        finally:
            su.close()

    @staticmethod
    def _matching(events, e):
        out = []
        for ev in events:
            okk = True
            for k, v in e.fields.items():
                if k == "relation":
                    if v not in ev["relations"]:
                        okk = False
                elif k == "reason_prefix":
                    if not (ev["reason"] or "").startswith(v):
                        okk = False
                elif ev.get(k) != v:
                    okk = False
            if okk:
                out.append(ev)
        return out

    # -- summary -------------------------------------------------------------------------------
    def totals(self):
        p = sum(1 for f in self.order for c in self.families[f] if c.passed)
        n = sum(len(self.families[f]) for f in self.order)
        return p, n - p


def summ(events):
    return "[" + ", ".join(f"{e['event']}/{e['reason']}/{e['command']}/{e['role']}" for e in events) + "]"


def one_line(text):
    return " | ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())


CRASH_PATTERNS = ("terminated by signal", "was terminated by exception", "PANIC:", "TRAP:",
                  "server process (PID", "all server processes terminated", "terminating any other active server processes")


def server_log(su):
    """(path, size) of the cluster's server log (cluster.sh puts it next to the data directory)."""
    try:
        path = su.value("SELECT current_setting('data_directory') || '/../server.log'")
        size = su.value("SELECT (pg_stat_file(%s, true)).size", (path,))
        return (path, size) if size is not None else (None, None)
    except AssertionError:
        return None, None


def crash_lines(su, path, start):
    """Lines of the server log written since `start` that tell of a crashed backend."""
    if path is None:
        return None
    if os.path.exists(path):  # the runner and the server share the machine: read it directly
        out = []
        with open(path, "rb") as f:
            f.seek(start or 0)
            for raw in f:
                line = raw[:2000].decode(errors="replace")
                if any(p in line for p in CRASH_PATTERNS):
                    out.append(line.strip())
        return out
    size = su.value("SELECT (pg_stat_file(%s, true)).size", (path,)) or 0
    out, off, chunk = [], start or 0, 8 * 1024 * 1024
    while off < size:
        text = su.value("SELECT pg_read_file(%s, %s, %s)", (path, off, min(chunk, size - off)))
        out += [l.strip()[:2000] for l in text.splitlines() if any(p in l for p in CRASH_PATTERNS)]
        off += chunk
    return out
