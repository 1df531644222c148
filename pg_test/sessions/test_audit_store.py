"""How the audit writer stores events in tenant_guard.audit_log: the COPY-like fast path
(src/audit_store.c) and the SQL fallback (INSERT ... SELECT FROM unnest(...)) it hands over to when
the table is not the plain table the extension created.

Every refused statement carries a marker `/* tgstore-<kind>-<hex> ... */` in its text, so that each
test finds exactly its own events (column `query`). Events are awaited by polling with a deadline.

Which path stored an event is read from the server log (StorePaths, needs TG_CLUSTER_DIR): with
log_planner_stats on for the writer's role in the test database, every SQL fallback INSERT is
planned and logged; the fast path plans nothing. Tests that expect the fast path check that no
such line appeared; fallback tests check that one did.

What is pinned:
- every column of an event stored by the fast path (event, reason, relations, command, rows,
  tenant, role, session_role, application_name, client_addr, backend_pid, query, at, id), and the
  column types of sql/audit.sql (role and session_role text, client_addr inet, relations text[]);
- client_addr: 127.0.0.1 for a TCP session, NULL for a Unix-socket session;
- a refusal over two protected tables records both (text[] of 2 elements);
- a broad read records rows, tenant, reason; over two tables, both names, on both paths;
- the fast path maintains every index: the primary key and the partial B-tree (amcheck with
  heapallindexed), the BRIN index on `at` (a summarized range still finds a later row);
- the fallback: a user's BEFORE ROW trigger, AFTER STATEMENT trigger, ON INSERT rule, row security,
  a partitioned audit_log, an added column with a default, a dropped column, retyped columns:
  events land with the right values, the trigger/rule/default applies, and the writer planned an
  INSERT; once the trigger/rule/row security is gone the fast path is back;
- a burst of 3,000 refusals from 4 connections: every one lands within a few seconds, once, in
  the order each connection sent them, through the fast path;
- status().events_dropped never increases.
"""

import os
import re
import threading
import time
import uuid

import psycopg

from harness import APP, CONNECT_TIMEOUT, TIMEOUT_OPTIONS, check, no_claim, refused, run

LAND_DEADLINE = 5.0          # "within about 100 ms" once a writer runs, plus slack (writer start-up)
BURST_CONNECTIONS = 4
BURST_PER_CONNECTION = 750   # 3,000 in all, under the default queue size of 4096
BURST_DEADLINE = 5.0

COLUMNS = ("id, at, event, reason, relations, command, rows, tenant, role, session_role, application_name, "
           "host(client_addr) AS client_host, masklen(client_addr) AS client_masklen, backend_pid, query")


# -- helpers -------------------------------------------------------------------------------------

def _marker(kind):
    return f"tgstore-{kind}-{uuid.uuid4().hex[:12]}"


def _events(su, marker):
    """The audit_log rows whose query contains the marker, as dicts, in id order."""
    cur = su.execute(f"SELECT {COLUMNS} FROM tenant_guard.audit_log WHERE strpos(query, %s) > 0 ORDER BY id",
                     (marker,))
    names = [d.name for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _wait_events(su, marker, want, deadline=LAND_DEADLINE):
    """Polls until at least `want` events carry the marker; returns (events, seconds)."""
    start = time.monotonic()
    while True:
        evs = _events(su, marker)
        took = time.monotonic() - start
        if len(evs) >= want or took > deadline:
            return evs, took
        time.sleep(0.03)


def _landed(su, marker, want, what, deadline=LAND_DEADLINE):
    """Waits for exactly `want` events with the marker (and no late extra one); returns them."""
    evs, took = _wait_events(su, marker, want, deadline)
    check(len(evs) >= want, f"{what}: {len(evs)} of {want} event(s) in tenant_guard.audit_log "
                            f"{took:.1f}s after the refusal(s) ({_status(su)})")
    time.sleep(0.25)        # longer than the writer's 100 ms poll: a duplicate would show up
    evs = _events(su, marker)
    check(len(evs) == want, f"{what}: expected {want} event(s), found {len(evs)}: {evs!r}")
    return evs


def _status(su):
    cur = su.execute("SELECT audit_writer_pid, audit_queue_depth, events_enqueued, events_written, "
                     "events_dropped FROM tenant_guard.status()")
    return dict(zip([d.name for d in cur.description], cur.fetchone()))


def _dropped_baseline(su):
    """events_dropped once the queue is empty (events of an earlier test may still be in flight)."""
    end = time.monotonic() + LAND_DEADLINE
    while True:
        st = _status(su)
        if st["audit_queue_depth"] == 0 or time.monotonic() > end:
            return st["events_dropped"]
        time.sleep(0.05)


def _check_not_dropped(su, before, what):
    after = _status(su)
    check(after["events_dropped"] == before,
          f"{what}: status().events_dropped went from {before} to {after['events_dropped']} ({after})")


def _now(conn):
    return run(conn, "SELECT clock_timestamp()")[0][0]


def _pid(conn):
    return run(conn, "SELECT pg_backend_pid()")[0][0]


def _refuse(conn, sql):
    """The guard's no-claim refusal (42501, `tenant_guard:` prefix)."""
    return refused(conn, sql, contains="no tenant claim is set")


def _socket_dir(fx):
    if fx.cfg.host.startswith("/"):
        return fx.cfg.host
    d = os.environ.get("TG_CLUSTER_DIR")
    check(d, "this test needs a Unix-socket connection: run with --host <socket dir> or TG_CLUSTER_DIR set")
    return d


def _connect_via(fx, host, user=APP, **kw):
    """A connection like fx.connect() but to an explicit host (TCP address or socket directory)."""
    c = psycopg.connect(host=host, port=fx.cfg.port, user=user, dbname=fx.dbname,
                        connect_timeout=CONNECT_TIMEOUT, autocommit=True, options=TIMEOUT_OPTIONS, **kw)
    c.prepare_threshold = None
    fx._conns.append(c)
    return c


class StorePaths:
    """Tells the writer's fast path from its SQL fallback. `ALTER ROLE postgres IN DATABASE ... SET
    log_planner_stats = on` reaches the audit writer (it connects as the bootstrap superuser, and a
    writer started afterwards reads the setting): every fallback INSERT is planned, which logs
    `PLANNER STATISTICS` with `CONTEXT:  SQL statement "INSERT INTO tenant_guard.audit_log ...`;
    the fast path plans nothing. Lines of the test's own sessions are left out (by pid)."""

    LINE = re.compile(r"\[(\d+)\] CONTEXT:  SQL statement \"INSERT INTO tenant_guard\.audit_log\b")

    def __init__(self, fx, su):
        self.fx = fx
        d = os.environ.get("TG_CLUSTER_DIR")
        check(d, "TG_CLUSTER_DIR is not set: this test reads the server log ($TG_CLUSTER_DIR/server.log) to "
                 "tell the audit writer's fast path from its SQL fallback")
        self.path = os.path.join(d, "server.log")
        check(os.path.exists(self.path), f"no server log at {self.path}")
        # A writer that is already running would not have the setting: wait for it to leave.
        end = time.monotonic() + 4
        while _status(su)["audit_writer_pid"] is not None:
            check(time.monotonic() < end, "an audit writer for the fresh test database is already running")
            time.sleep(0.1)
        run(su, f"ALTER ROLE postgres IN DATABASE {fx.dbname} SET log_planner_stats = on")
        self.offset = os.path.getsize(self.path)

    def fallback_inserts(self):
        """How many SQL INSERTs into audit_log the writer(s) planned since the probe was set up."""
        own = set()
        for c in self.fx._conns:
            try:
                own.add(c.info.backend_pid)
            except Exception:
                pass
        n = 0
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            for raw in f:
                m = self.LINE.search(raw.decode("utf-8", "replace"))
                if m and int(m.group(1)) not in own:
                    n += 1
        return n

    def expect_fast(self, what, since=0):
        n = self.fallback_inserts()
        check(n == since, f"{what}: the writer stored events through the SQL fallback ({n - since} planned "
                          f"INSERT INTO tenant_guard.audit_log in {self.path}); expected the fast path")
        return n

    def expect_fallback(self, what, since=0, at_least=1):
        n = self.fallback_inserts()
        check(n - since >= at_least, f"{what}: {n - since} SQL INSERT(s) into tenant_guard.audit_log planned by the "
                                     f"writer, expected at least {at_least}: the fallback did not run")
        return n


def _check_event(ev, what, *, pid, sql, t0, t1, appname=None, event="denied", reason="no_claim",
                 relations=("public.invoices",), command="SELECT", rows=None, tenant=None,
                 role=APP, session_role=APP, client_host=None):
    """Every column of one stored event against what the refused session did."""
    def eq(col, want):
        check(ev[col] == want, f"{what}: {col} = {ev[col]!r}, expected {want!r} (event {ev!r})")

    eq("event", event)
    eq("reason", reason)
    check(ev["relations"] is not None and sorted(ev["relations"]) == sorted(relations),
          f"{what}: relations = {ev['relations']!r}, expected {list(relations)!r}")
    eq("command", command)
    eq("rows", rows)
    eq("tenant", tenant)
    eq("role", role)
    eq("session_role", session_role)
    eq("application_name", appname)
    eq("client_host", client_host)
    if client_host is not None:
        check(ev["client_masklen"] in (32, 128), f"{what}: client_addr mask length {ev['client_masklen']!r}")
    eq("backend_pid", pid)
    eq("query", sql)
    check(ev["at"] is not None and t0 <= ev["at"] <= t1,
          f"{what}: at = {ev['at']!r}, not between {t0!r} (before the statement) and {t1!r} (after it)")
    check(isinstance(ev["id"], int) and ev["id"] > 0, f"{what}: id = {ev['id']!r}")


# -- 1. every column, fast path --------------------------------------------------------------------

def test_audit_store_fast_path_stores_every_column(fx):
    su = fx.su()
    dropped = _dropped_baseline(su)
    types = run(su, "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                    "WHERE a.attrelid = 'tenant_guard.audit_log'::regclass AND a.attnum > 0 "
                    "AND NOT a.attisdropped ORDER BY a.attnum")
    want_types = [("id", "bigint"), ("at", "timestamp with time zone"), ("event", "text"), ("reason", "text"),
                  ("relations", "text[]"), ("command", "text"), ("rows", "bigint"), ("tenant", "text"),
                  ("role", "text"), ("session_role", "text"), ("application_name", "text"),
                  ("client_addr", "inet"), ("backend_pid", "integer"), ("query", "text")]
    check(types == want_types, f"audit_log columns {types!r}, expected {want_types!r}")
    paths = StorePaths(fx, su)
    before_id = run(su, "SELECT coalesce(max(id), 0) FROM tenant_guard.audit_log")[0][0]

    app = fx.app(application_name="tg-store-columns")
    pid = _pid(app)
    on_socket = fx.cfg.host.startswith("/")
    m = _marker("columns")
    sql = f"/* {m} */ SELECT amount FROM invoices WHERE amount > 15"
    t0 = _now(su)
    no_claim(app, sql, stale=False)
    t1 = _now(su)
    (ev,) = _landed(su, m, 1, "refusal without a claim")
    _check_event(ev, "fast path", pid=pid, sql=sql, t0=t0, t1=t1, appname="tg-store-columns",
                 client_host=None if on_socket else ev["client_host"])
    check(ev["id"] > before_id, f"id {ev['id']} not above the largest id before ({before_id})")
    check(abs((run(su, "SELECT now()")[0][0] - ev["at"]).total_seconds()) < 5,
          f"at {ev['at']!r} is not within 5 s of now()")
    typed = run(su, "SELECT pg_typeof(role)::text, pg_typeof(session_role)::text, pg_typeof(relations)::text, "
                    "array_length(relations, 1), pg_typeof(rows)::text, pg_typeof(backend_pid)::text "
                    "FROM tenant_guard.audit_log WHERE id = %s", (ev["id"],))
    check(typed == [("text", "text", "text[]", 1, "bigint", "integer")], f"stored types {typed!r}")

    # Later events get larger ids, in the order the statements were refused (two sessions).
    m2 = _marker("later")
    other = fx.app(application_name="tg-store-later")
    sqls = [f"/* {m2} s0 */ SELECT 1 FROM invoices", f"/* {m2} s1 */ SELECT 2 FROM invoices"]
    _refuse(app, sqls[0])
    _refuse(other, sqls[1])
    later = _landed(su, m2, 2, "two later refusals")
    check([e["query"] for e in later] == sqls,
          f"later events in id order {[(e['id'], e['query']) for e in later]!r}, expected the order {sqls!r}")
    check(ev["id"] < later[0]["id"] < later[1]["id"],
          f"ids not increasing: first {ev['id']}, then {[e['id'] for e in later]}")
    check(later[0]["backend_pid"] == pid and later[1]["backend_pid"] == _pid(other),
          f"backend_pid of the later events {[e['backend_pid'] for e in later]}")
    check(ev["at"] <= later[0]["at"] <= later[1]["at"], f"at not increasing: {[ev['at']] + [e['at'] for e in later]}")
    paths.expect_fast("plain audit_log")
    _check_not_dropped(su, dropped, "fast path")


# -- 2. client_addr ----------------------------------------------------------------------------

def test_audit_store_client_addr_tcp_and_unix_socket(fx):
    su = fx.su()
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    try:
        tcp = _connect_via(fx, "127.0.0.1", application_name="tg-store-tcp")
    except psycopg.OperationalError as e:
        raise AssertionError(f"cannot connect over TCP to 127.0.0.1:{fx.cfg.port} (cluster.sh listens there): {e}")
    unix = _connect_via(fx, _socket_dir(fx), application_name="tg-store-unix")
    check(run(tcp, "SELECT host(inet_client_addr())")[0][0] == "127.0.0.1", "the TCP session is not from 127.0.0.1")
    check(run(unix, "SELECT inet_client_addr() IS NULL")[0][0] is True, "the socket session has a client address")
    m = _marker("addr")
    sql_tcp = f"/* {m} tcp */ SELECT 1 FROM invoices"
    sql_unix = f"/* {m} unix */ SELECT 1 FROM invoices"
    t0 = _now(su)
    _refuse(tcp, sql_tcp)
    _refuse(unix, sql_unix)
    t1 = _now(su)
    evs = {e["query"]: e for e in _landed(su, m, 2, "TCP and socket refusals")}
    _check_event(evs[sql_tcp], "TCP session", pid=_pid(tcp), sql=sql_tcp, t0=t0, t1=t1,
                 appname="tg-store-tcp", client_host="127.0.0.1")
    _check_event(evs[sql_unix], "socket session", pid=_pid(unix), sql=sql_unix, t0=t0, t1=t1,
                 appname="tg-store-unix", client_host=None)
    got = run(su, "SELECT client_addr = '127.0.0.1'::inet, pg_typeof(client_addr)::text, client_addr IS NULL "
                  "FROM tenant_guard.audit_log WHERE id = ANY(%s) ORDER BY id = %s",
              ([evs[sql_tcp]["id"], evs[sql_unix]["id"]], evs[sql_tcp]["id"]))
    # ORDER BY (id = tcp id): the socket row (false) first, then the TCP row.
    check(got == [(None, "inet", True), (True, "inet", False)],
          f"(client_addr = '127.0.0.1'::inet, type, IS NULL) for socket then TCP: {got!r}")
    paths.expect_fast("client_addr")
    _check_not_dropped(su, dropped, "client_addr")


# -- 3. two protected tables -------------------------------------------------------------------

def test_audit_store_two_protected_tables_in_relations(fx):
    fx.new_owned_table("credit_notes", [("acme", 5), ("globex", 7)])
    owner = fx.owner()
    msg = run(owner, "SELECT tenant_guard.protect('credit_notes')")[0][0]
    check(msg.startswith("protected public.credit_notes"), f"protect(): {msg!r}")
    su = fx.su()
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    app = fx.app(application_name="tg-store-two")
    m = _marker("two")
    sql = f"/* {m} */ SELECT i.amount, c.amount FROM invoices i JOIN credit_notes c USING (tenant_id)"
    t0 = _now(su)
    _refuse(app, sql)
    t1 = _now(su)
    (ev,) = _landed(su, m, 1, "refusal over two tables")
    _check_event(ev, "two tables", pid=_pid(app), sql=sql, t0=t0, t1=t1, appname="tg-store-two",
                 relations=("public.credit_notes", "public.invoices"),
                 client_host=None if fx.cfg.host.startswith("/") else ev["client_host"])
    got = run(su, "SELECT array_length(relations, 1), cardinality(relations), pg_typeof(relations)::text, "
                  "'public.invoices' = ANY(relations), 'public.credit_notes' = ANY(relations) "
                  "FROM tenant_guard.audit_log WHERE id = %s", (ev["id"],))
    check(got == [(2, 2, "text[]", True, True)], f"relations of the two-table event: {got!r} ({ev['relations']!r})")
    paths.expect_fast("two tables")
    _check_not_dropped(su, dropped, "two tables")


# -- 4. broad read -------------------------------------------------------------------------------

def test_audit_store_broad_read_rows_and_tenant(fx):
    owner = fx.owner()
    run(owner, "SELECT tenant_guard.set_limits('invoices', 1, NULL)")
    su = fx.su()
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    app = fx.app(application_name="tg-store-broad")
    m = _marker("broad")
    sql = f"/* {m} */ SELECT tenant_id, amount FROM invoices ORDER BY id"
    run(app, "BEGIN")
    run(app, "SET LOCAL tenant_guard.tenant_id = 'acme'")
    t0 = _now(su)
    got = run(app, sql)
    t1 = _now(su)
    run(app, "COMMIT")
    check(got == [("acme", 10), ("acme", 20), ("acme", 30)], f"acme's read returned {got!r}")
    (ev,) = _landed(su, m, 1, "broad read")
    _check_event(ev, "broad read", pid=_pid(app), sql=sql, t0=t0, t1=t1, appname="tg-store-broad",
                 event="broad_read", reason="rows>=1", rows=3, tenant="acme",
                 client_host=None if fx.cfg.host.startswith("/") else ev["client_host"])
    paths.expect_fast("broad read")
    _check_not_dropped(su, dropped, "broad read")


# -- the fast path keeps every index right ------------------------------------------------------

def _amcheck(su, what):
    run(su, "CREATE EXTENSION IF NOT EXISTS amcheck")
    for idx in ("tenant_guard.audit_log_pkey", "tenant_guard.audit_log_event_at_idx"):
        try:
            run(su, "SELECT bt_index_check(%s::regclass, true)", (idx,))
        except psycopg.Error as e:
            raise AssertionError(f"{what}: amcheck bt_index_check({idx}, heapallindexed) failed: "
                                 f"{e.sqlstate} {e.diag.message_primary} ({e.diag.message_detail})")


def _plan(su, sql, params):
    return "\n".join(r[0] for r in run(su, "EXPLAIN (COSTS OFF) " + sql, params))


def test_audit_store_fast_path_maintains_every_index(fx):
    su = fx.su()
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    app = fx.app()
    m1 = _marker("idx-first")
    _refuse(app, f"/* {m1} */ SELECT 1 FROM invoices")
    (first,) = _landed(su, m1, 1, "first refusal")
    # Every BRIN range is summarized now (CREATE INDEX already summarized the first, empty one):
    # from here on only brininsert can widen a summary to cover a new row.
    run(su, "SELECT brin_summarize_new_values('tenant_guard.audit_log_at_idx')")
    time.sleep(0.01)
    m2 = _marker("idx-second")
    _refuse(app, f"/* {m2} */ SELECT 1 FROM invoices")
    (second,) = _landed(su, m2, 1, "second refusal")
    check(second["at"] > first["at"], f"at of the second event {second['at']!r} <= first {first['at']!r}")

    run(su, "BEGIN")
    try:
        run(su, "SET LOCAL enable_seqscan = off")
        run(su, "SET LOCAL enable_indexscan = off")
        run(su, "SET LOCAL enable_indexonlyscan = off")
        q = "SELECT id FROM tenant_guard.audit_log WHERE at > %s ORDER BY id"
        plan = _plan(su, q, (first["at"],))
        check("audit_log_at_idx" in plan, f"the BRIN index is not used for a range of at:\n{plan}")
        ids = [r[0] for r in run(su, q, (first["at"],))]
        check(ids == [second["id"]],
              f"through the BRIN index (range summarized before the insert), at > first: ids {ids}, "
              f"expected [{second['id']}]: the fast path did not update the BRIN summary")
        # The premise: the second event's range was summarized when it was stored (else a bitmap
        # scan returns the whole unsummarized range and proves nothing).
        pending = run(su, "SELECT brin_summarize_new_values('tenant_guard.audit_log_at_idx')")[0][0]
        check(pending == 0, f"{pending} BRIN range(s) were still unsummarized: the BRIN check proved nothing")
        run(su, "SET LOCAL enable_bitmapscan = off")
        run(su, "SET LOCAL enable_indexscan = on")
        q = "SELECT id FROM tenant_guard.audit_log WHERE event = 'denied' AND at >= %s ORDER BY id"
        plan = _plan(su, q, (first["at"],))
        check("audit_log_event_at_idx" in plan, f"the partial (event, at) index is not used:\n{plan}")
        ids = [r[0] for r in run(su, q, (first["at"],))]
        check(ids == [first["id"], second["id"]],
              f"through the partial index: ids {ids}, expected {[first['id'], second['id']]}")
        q = "SELECT id FROM tenant_guard.audit_log WHERE id = %s"
        check("audit_log_pkey" in _plan(su, q, (second["id"],)), "the primary key is not used")
        check(run(su, q, (second["id"],)) == [(second["id"],)], "the primary key does not find the second event")
    finally:
        run(su, "ROLLBACK")
    _amcheck(su, "after two fast-path inserts")
    paths.expect_fast("indexes")
    _check_not_dropped(su, dropped, "indexes")


# -- 5. fallback: a user's INSERT trigger -----------------------------------------------------

def test_audit_store_fallback_on_row_trigger(fx):
    su = fx.su()
    run(su, "CREATE TABLE public.audit_seen (id bigint, query text)")
    run(su, "CREATE FUNCTION public.audit_seen_fn() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO public.audit_seen VALUES (NEW.id, NEW.query); RETURN NEW; END $$")
    run(su, "CREATE TRIGGER audit_seen_trg BEFORE INSERT ON tenant_guard.audit_log "
            "FOR EACH ROW EXECUTE FUNCTION public.audit_seen_fn()")
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    app = fx.app(application_name="tg-store-trigger")
    pid = _pid(app)
    host = None if fx.cfg.host.startswith("/") else run(app, "SELECT host(inet_client_addr())")[0][0]

    m = _marker("trig")
    sqls = [f"/* {m} s{i} */ SELECT amount FROM invoices WHERE amount > {i}" for i in range(3)]
    t0 = _now(su)
    for s in sqls:
        _refuse(app, s)
    t1 = _now(su)
    evs = _landed(su, m, 3, "refusals with a BEFORE ROW trigger on audit_log")
    check([e["query"] for e in evs] == sqls, f"events in id order: {[e['query'] for e in evs]!r}")
    for i, e in enumerate(evs):
        _check_event(e, f"fallback (row trigger) s{i}", pid=pid, sql=sqls[i], t0=t0, t1=t1,
                     appname="tg-store-trigger", client_host=host)
    seen = run(su, "SELECT id, query FROM public.audit_seen WHERE strpos(query, %s) > 0 ORDER BY id", (m,))
    check(seen == [(e["id"], e["query"]) for e in evs],
          f"the trigger saw {seen!r}, expected the stored events {[(e['id'], e['query']) for e in evs]!r}: "
          "the writer did not go through SQL (a trigger on audit_log must fire)")
    n = paths.expect_fallback("BEFORE ROW trigger")
    _check_not_dropped(su, dropped, "fallback with a row trigger")

    run(su, "DROP TRIGGER audit_seen_trg ON tenant_guard.audit_log")
    seen_before = run(su, "SELECT count(*) FROM public.audit_seen")[0][0]
    m2 = _marker("trig-dropped")
    sqls2 = [f"/* {m2} s{i} */ SELECT 1 FROM invoices" for i in range(3)]
    t0 = _now(su)
    for s in sqls2:
        _refuse(app, s)
    t1 = _now(su)
    evs2 = _landed(su, m2, 3, "refusals after DROP TRIGGER")
    for i, e in enumerate(evs2):
        _check_event(e, f"fast path again s{i}", pid=pid, sql=sqls2[i], t0=t0, t1=t1,
                     appname="tg-store-trigger", client_host=host)
    check(min(e["id"] for e in evs2) > max(e["id"] for e in evs), "ids after the drop are not larger")
    seen_after = run(su, "SELECT count(*) FROM public.audit_seen")[0][0]
    check(seen_after == seen_before, f"public.audit_seen grew from {seen_before} to {seen_after} after the trigger was dropped")
    paths.expect_fast("after DROP TRIGGER", since=n)
    _check_not_dropped(su, dropped, "fast path after DROP TRIGGER")


def test_audit_store_fallback_on_statement_trigger(fx):
    su = fx.su()
    run(su, "CREATE TABLE public.audit_stmts (n int)")
    run(su, "CREATE FUNCTION public.audit_stmts_fn() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO public.audit_stmts VALUES (1); RETURN NULL; END $$")
    run(su, "CREATE TRIGGER audit_stmts_trg AFTER INSERT ON tenant_guard.audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION public.audit_stmts_fn()")
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    app = fx.app()
    m = _marker("stmt")
    for i in range(3):
        _refuse(app, f"/* {m} s{i} */ SELECT 1 FROM invoices")
    _landed(su, m, 3, "refusals with an AFTER STATEMENT trigger")
    n = run(su, "SELECT count(*) FROM public.audit_stmts")[0][0]
    check(1 <= n <= 3, f"the statement trigger fired {n} time(s) for 3 events (expected 1 to 3 INSERTs): "
                       "the writer did not go through SQL")
    fb = paths.expect_fallback("AFTER STATEMENT trigger")
    _check_not_dropped(su, dropped, "fallback with a statement trigger")
    run(su, "DROP TRIGGER audit_stmts_trg ON tenant_guard.audit_log")
    m2 = _marker("stmt-dropped")
    for i in range(3):
        _refuse(app, f"/* {m2} s{i} */ SELECT 1 FROM invoices")
    _landed(su, m2, 3, "refusals after DROP TRIGGER")
    n2 = run(su, "SELECT count(*) FROM public.audit_stmts")[0][0]
    check(n2 == n, f"public.audit_stmts grew from {n} to {n2} after the trigger was dropped")
    paths.expect_fast("after DROP TRIGGER (statement)", since=fb)
    _check_not_dropped(su, dropped, "fast path after DROP TRIGGER (statement)")


def test_audit_store_fallback_on_rule(fx):
    su = fx.su()
    run(su, "CREATE TABLE public.audit_ruled (query text)")
    run(su, "CREATE RULE audit_ruled AS ON INSERT TO tenant_guard.audit_log "
            "DO ALSO INSERT INTO public.audit_ruled VALUES (NEW.query)")
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    app = fx.app(application_name="tg-store-rule")
    pid = _pid(app)
    host = None if fx.cfg.host.startswith("/") else run(app, "SELECT host(inet_client_addr())")[0][0]
    m = _marker("rule")
    sql = f"/* {m} */ SELECT 1 FROM invoices"
    t0 = _now(su)
    _refuse(app, sql)
    t1 = _now(su)
    (ev,) = _landed(su, m, 1, "refusal with an ON INSERT rule")
    _check_event(ev, "fallback (rule)", pid=pid, sql=sql, t0=t0, t1=t1, appname="tg-store-rule", client_host=host)
    ruled = run(su, "SELECT query FROM public.audit_ruled WHERE strpos(query, %s) > 0", (m,))
    check(ruled == [(sql,)], f"the rule recorded {ruled!r}: the writer did not go through SQL")
    fb = paths.expect_fallback("ON INSERT rule")
    run(su, "DROP RULE audit_ruled ON tenant_guard.audit_log")
    m2 = _marker("rule-dropped")
    _refuse(app, f"/* {m2} */ SELECT 1 FROM invoices")
    _landed(su, m2, 1, "refusal after DROP RULE")
    ruled = run(su, "SELECT count(*) FROM public.audit_ruled WHERE strpos(query, %s) > 0", (m2,))[0][0]
    check(ruled == 0, "the dropped rule still fired")
    paths.expect_fast("after DROP RULE", since=fb)
    _check_not_dropped(su, dropped, "fallback with a rule")


def test_audit_store_fallback_trigger_with_many_batches(fx):
    """The SQL path with more events than one batch (512): all land, each through the trigger."""
    su = fx.su()
    run(su, "CREATE TABLE public.audit_seen (id bigint)")
    run(su, "CREATE FUNCTION public.audit_seen_fn() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO public.audit_seen VALUES (NEW.id); RETURN NEW; END $$")
    run(su, "CREATE TRIGGER audit_seen_trg BEFORE INSERT ON tenant_guard.audit_log "
            "FOR EACH ROW EXECUTE FUNCTION public.audit_seen_fn()")
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    m = _marker("trigbulk")
    conns = [fx.app() for _ in range(2)]
    per = 400
    gate = threading.Barrier(len(conns))

    def refuser(conn, k):
        gate.wait(timeout=20)
        for s in range(per):
            _refuse(conn, f"/* {m} c{k} s{s} */ SELECT 1 FROM invoices")

    threads = [fx.thread(refuser, c, k) for k, c in enumerate(conns)]
    for t in threads:
        t.get(timeout=60)
    evs = _landed(su, m, 2 * per, "800 refusals with a row trigger", deadline=BURST_DEADLINE)
    ids = [e["id"] for e in evs]
    seen = [r[0] for r in run(su, "SELECT id FROM public.audit_seen WHERE id = ANY(%s) ORDER BY id", (ids,))]
    check(seen == ids, f"the trigger saw {len(seen)} of the {len(ids)} stored events")
    paths.expect_fallback("800 events with a row trigger (batches of at most 512)", at_least=2)
    _check_not_dropped(su, dropped, "fallback, 800 events")


# -- 6. fallback: a changed column list ---------------------------------------------------------

def test_audit_store_fallback_on_added_column(fx):
    su = fx.su()
    run(su, "ALTER TABLE tenant_guard.audit_log ADD COLUMN note text DEFAULT 'x'")
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    app = fx.app(application_name="tg-store-addcol")
    host = None if fx.cfg.host.startswith("/") else run(app, "SELECT host(inet_client_addr())")[0][0]
    m = _marker("addcol")
    sql = f"/* {m} */ SELECT 1 FROM invoices"
    t0 = _now(su)
    _refuse(app, sql)
    t1 = _now(su)
    (ev,) = _landed(su, m, 1, "refusal after ADD COLUMN note")
    _check_event(ev, "fallback (added column)", pid=_pid(app), sql=sql, t0=t0, t1=t1,
                 appname="tg-store-addcol", client_host=host)
    note = run(su, "SELECT note FROM tenant_guard.audit_log WHERE id = %s", (ev["id"],))
    check(note == [("x",)], f"note of the stored event: {note!r}, expected 'x' (the column's default)")
    paths.expect_fallback("added column")
    _check_not_dropped(su, dropped, "fallback with an added column")


def test_audit_store_fallback_on_dropped_and_retyped_columns(fx):
    su = fx.su()
    app = fx.app(application_name="tg-store-cols2")
    pid = _pid(app)
    host = None if fx.cfg.host.startswith("/") else run(app, "SELECT host(inet_client_addr())")[0][0]
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    # A column added and dropped again: 14 live columns, one dropped attribute.
    run(su, "ALTER TABLE tenant_guard.audit_log ADD COLUMN scratch int")
    run(su, "ALTER TABLE tenant_guard.audit_log DROP COLUMN scratch")
    m = _marker("dropcol")
    sql = f"/* {m} */ SELECT 1 FROM invoices"
    t0 = _now(su)
    _refuse(app, sql)
    t1 = _now(su)
    (ev,) = _landed(su, m, 1, "refusal after ADD + DROP COLUMN")
    _check_event(ev, "fallback (dropped column)", pid=pid, sql=sql, t0=t0, t1=t1,
                 appname="tg-store-cols2", client_host=host)
    fb = paths.expect_fallback("dropped column")
    _check_not_dropped(su, dropped, "fallback with a dropped column")
    # role and session_role retyped to name (the type of earlier versions).
    run(su, "ALTER TABLE tenant_guard.audit_log ALTER COLUMN role TYPE name, ALTER COLUMN session_role TYPE name")
    m2 = _marker("retype")
    sql2 = f"/* {m2} */ SELECT 2 FROM invoices"
    t0 = _now(su)
    _refuse(app, sql2)
    t1 = _now(su)
    (ev2,) = _landed(su, m2, 1, "refusal after ALTER COLUMN role TYPE name")
    _check_event(ev2, "fallback (retyped columns)", pid=pid, sql=sql2, t0=t0, t1=t1,
                 appname="tg-store-cols2", client_host=host)
    typed = run(su, "SELECT pg_typeof(role)::text, role::text, pg_typeof(session_role)::text, session_role::text "
                    "FROM tenant_guard.audit_log WHERE id = %s", (ev2["id"],))
    check(typed == [("name", APP, "name", APP)], f"retyped role columns of the stored event: {typed!r}")
    paths.expect_fallback("retyped columns", since=fb)
    _check_not_dropped(su, dropped, "fallback with retyped columns")


def test_audit_store_fallback_on_row_security(fx):
    """Row security enabled on audit_log: the writer goes through SQL (the writer is a superuser, so
    its rows are not filtered); disabled again: the fast path is back."""
    su = fx.su()
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    app = fx.app(application_name="tg-store-rls")
    pid = _pid(app)
    host = None if fx.cfg.host.startswith("/") else run(app, "SELECT host(inet_client_addr())")[0][0]
    run(su, "ALTER TABLE tenant_guard.audit_log ENABLE ROW LEVEL SECURITY")
    m = _marker("rls")
    sql = f"/* {m} */ SELECT 1 FROM invoices"
    t0 = _now(su)
    _refuse(app, sql)
    t1 = _now(su)
    (ev,) = _landed(su, m, 1, "refusal with row security on audit_log")
    _check_event(ev, "fallback (row security)", pid=pid, sql=sql, t0=t0, t1=t1, appname="tg-store-rls",
                 client_host=host)
    fb = paths.expect_fallback("row security enabled")
    run(su, "ALTER TABLE tenant_guard.audit_log DISABLE ROW LEVEL SECURITY")
    m2 = _marker("rls-off")
    _refuse(app, f"/* {m2} */ SELECT 1 FROM invoices")
    _landed(su, m2, 1, "refusal after DISABLE ROW LEVEL SECURITY")
    paths.expect_fast("row security disabled again", since=fb)
    _check_not_dropped(su, dropped, "row security")


def test_audit_store_fallback_on_partitioned_table(fx):
    """audit_log replaced by a partitioned table of the same columns: the SQL INSERT routes the row."""
    su = fx.su()
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    run(su, "ALTER TABLE tenant_guard.audit_log RENAME TO audit_log_plain")
    run(su, "CREATE TABLE tenant_guard.audit_log (LIKE tenant_guard.audit_log_plain INCLUDING DEFAULTS "
            "INCLUDING IDENTITY INCLUDING CONSTRAINTS) PARTITION BY RANGE (at)")
    run(su, "CREATE TABLE tenant_guard.audit_log_rest PARTITION OF tenant_guard.audit_log DEFAULT")
    app = fx.app(application_name="tg-store-part")
    host = None if fx.cfg.host.startswith("/") else run(app, "SELECT host(inet_client_addr())")[0][0]
    m = _marker("part")
    sql = f"/* {m} */ SELECT 1 FROM invoices"
    t0 = _now(su)
    _refuse(app, sql)
    t1 = _now(su)
    (ev,) = _landed(su, m, 1, "refusal with a partitioned audit_log")
    _check_event(ev, "fallback (partitioned)", pid=_pid(app), sql=sql, t0=t0, t1=t1, appname="tg-store-part",
                 client_host=host)
    where = run(su, "SELECT tableoid::regclass::text FROM tenant_guard.audit_log WHERE id = %s", (ev["id"],))
    check(where == [("tenant_guard.audit_log_rest",)], f"the event is stored in {where!r}")
    paths.expect_fallback("partitioned audit_log")
    _check_not_dropped(su, dropped, "partitioned audit_log")


def test_audit_store_fallback_on_audit_log_as_partition(fx):
    """audit_log attached as a bounded partition of another table: the fast path would skip the
    partition constraint, so the writer must use the SQL INSERT (which checks it)."""
    su = fx.su()
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    run(su, "CREATE TABLE tenant_guard.audit_log_all (LIKE tenant_guard.audit_log INCLUDING DEFAULTS) "
            "PARTITION BY RANGE (at)")
    run(su, "ALTER TABLE tenant_guard.audit_log_all ATTACH PARTITION tenant_guard.audit_log "
            "FOR VALUES FROM ('2000-01-01') TO ('2200-01-01')")
    app = fx.app(application_name="tg-store-as-part")
    m = _marker("as-part")
    sql = f"/* {m} */ SELECT 1 FROM invoices"
    t0 = _now(su)
    _refuse(app, sql)
    t1 = _now(su)
    (ev,) = _landed(su, m, 1, "refusal with audit_log as a partition")
    _check_event(ev, "fallback (audit_log is a partition)", pid=_pid(app), sql=sql, t0=t0, t1=t1,
                 appname="tg-store-as-part", client_host=None if fx.cfg.host.startswith("/") else ev["client_host"])
    paths.expect_fallback("audit_log as a partition")
    _check_not_dropped(su, dropped, "audit_log as a partition")


def test_audit_store_refusal_names_registered_tables_not_partitions(fx):
    """A refused join of a protected partitioned table and another protected table: the event
    names both registered tables, the refused one first, and none of the partitions."""
    owner = fx.owner()
    run(owner, "CREATE TABLE parts (id bigserial, tenant_id text NOT NULL, amount int) "
               "PARTITION BY LIST (tenant_id)")
    run(owner, "CREATE TABLE parts_acme PARTITION OF parts FOR VALUES IN ('acme')")
    run(owner, "CREATE TABLE parts_rest PARTITION OF parts DEFAULT")
    run(owner, "INSERT INTO parts (tenant_id, amount) VALUES ('acme', 1), ('globex', 2)")
    run(owner, "GRANT SELECT ON parts TO tg_app")
    msg = run(owner, "SELECT tenant_guard.protect('parts')")[0][0]
    check(msg.startswith("protected public.parts"), f"protect(): {msg!r}")
    su = fx.su()
    dropped = _dropped_baseline(su)
    app = fx.app(application_name="tg-store-parts")
    m = _marker("parts")
    sql = f"/* {m} */ SELECT p.amount, i.amount FROM parts p JOIN invoices i USING (tenant_id)"
    t0 = _now(su)
    err = _refuse(app, sql)
    t1 = _now(su)
    (ev,) = _landed(su, m, 1, "refusal over a partitioned table and another table")
    _check_event(ev, "partitioned join", pid=_pid(app), sql=sql, t0=t0, t1=t1, appname="tg-store-parts",
                 relations=("public.parts", "public.invoices"),
                 client_host=None if fx.cfg.host.startswith("/") else ev["client_host"])
    first = run(su, "SELECT relations[1] FROM tenant_guard.audit_log WHERE id = %s", (ev["id"],))[0][0]
    primary = err.diag.message_primary or ""
    check(first in ("public.parts", "public.invoices") and primary.endswith(first),
          f"relations[1] = {first!r} is not the table the error names: {primary!r}")
    msg = run(su, "SELECT count(*) FROM tenant_guard.audit_log WHERE id = %s "
                  "AND relations && ARRAY['public.parts_acme', 'public.parts_rest']", (ev["id"],))[0][0]
    check(msg == 0, f"the event names a partition: {ev['relations']!r}")
    _check_not_dropped(su, dropped, "partitioned join")


def test_audit_store_broad_read_over_two_tables_both_paths(fx):
    """A broad read over two protected tables carries both names (the only kind of event whose
    relations has several elements here): stored right by the fast path (0x1f-separated names
    split into a text[]) and by the SQL fallback (a BEFORE ROW trigger present)."""
    fx.new_owned_table("credit_notes", [("acme", 5), ("globex", 7)])
    owner = fx.owner()
    run(owner, "SELECT tenant_guard.protect('credit_notes')")
    run(owner, "SELECT tenant_guard.set_limits('invoices', 1, NULL)")
    run(owner, "SELECT tenant_guard.set_limits('credit_notes', 1, NULL)")
    su = fx.su()
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    app = fx.app(application_name="tg-store-broad2")
    pid = _pid(app)
    host = None if fx.cfg.host.startswith("/") else run(app, "SELECT host(inet_client_addr())")[0][0]
    both = ("public.credit_notes", "public.invoices")

    def broad_read(m):
        sql = f"/* {m} */ SELECT i.amount, c.amount FROM invoices i JOIN credit_notes c USING (tenant_id) ORDER BY 1"
        run(app, "BEGIN")
        run(app, "SET LOCAL tenant_guard.tenant_id = 'acme'")
        t0 = _now(su)
        got = run(app, sql)
        t1 = _now(su)
        run(app, "COMMIT")
        check(got == [(10, 5), (20, 5), (30, 5)], f"acme's join returned {got!r}")
        return sql, t0, t1

    m = _marker("broad2-fast")
    sql, t0, t1 = broad_read(m)
    (ev,) = _landed(su, m, 1, "broad read over two tables")
    _check_event(ev, "broad read, two tables, fast path", pid=pid, sql=sql, t0=t0, t1=t1, appname="tg-store-broad2",
                 event="broad_read", reason="rows>=1", rows=3, tenant="acme", relations=both, client_host=host)
    check(run(su, "SELECT cardinality(relations) FROM tenant_guard.audit_log WHERE id = %s", (ev["id"],)) == [(2,)],
          f"relations of the fast-path event: {ev['relations']!r}")
    paths.expect_fast("broad read over two tables")

    run(su, "CREATE TABLE public.audit_seen (id bigint)")
    run(su, "CREATE FUNCTION public.audit_seen_fn() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO public.audit_seen VALUES (NEW.id); RETURN NEW; END $$")
    run(su, "CREATE TRIGGER audit_seen_trg BEFORE INSERT ON tenant_guard.audit_log "
            "FOR EACH ROW EXECUTE FUNCTION public.audit_seen_fn()")
    m2 = _marker("broad2-sql")
    sql, t0, t1 = broad_read(m2)
    (ev2,) = _landed(su, m2, 1, "broad read over two tables, trigger present")
    _check_event(ev2, "broad read, two tables, fallback", pid=pid, sql=sql, t0=t0, t1=t1, appname="tg-store-broad2",
                 event="broad_read", reason="rows>=1", rows=3, tenant="acme", relations=both, client_host=host)
    check(ev2["relations"] == ev["relations"],
          f"relations differ between the paths: fast {ev['relations']!r}, SQL {ev2['relations']!r}")
    check(run(su, "SELECT id FROM public.audit_seen") == [(ev2["id"],)], "the trigger did not see the event")
    paths.expect_fallback("broad read with a trigger")
    _check_not_dropped(su, dropped, "broad read over two tables")


# -- 7. a burst ------------------------------------------------------------------------------

def test_audit_store_burst_of_3000_refusals(fx):
    su = fx.su()
    dropped = _dropped_baseline(su)
    paths = StorePaths(fx, su)
    written_before = _status(su)["events_written"]
    m = _marker("burst")
    conns = [fx.app(application_name=f"tg-store-burst-{k}") for k in range(BURST_CONNECTIONS)]
    pids = [_pid(c) for c in conns]
    gate = threading.Barrier(len(conns))

    def refuser(conn, k):
        gate.wait(timeout=20)
        for s in range(BURST_PER_CONNECTION):
            try:
                conn.execute(f"/* {m} c{k} s{s} */ SELECT 1 FROM invoices")
            except psycopg.Error as e:
                if e.sqlstate != "42501" or not (e.diag.message_primary or "").startswith("tenant_guard:"):
                    raise AssertionError(f"c{k} s{s}: expected the guard's refusal, got {e.sqlstate}: {e}")
                continue
            raise AssertionError(f"c{k} s{s}: the statement was not refused")

    started = time.monotonic()
    threads = [fx.thread(refuser, c, k) for k, c in enumerate(conns)]
    for t in threads:
        t.get(timeout=120)
    sent_in = time.monotonic() - started
    total = BURST_CONNECTIONS * BURST_PER_CONNECTION

    # Every one of them, counted by backend_pid, within BURST_DEADLINE of the last refusal.
    q = ("SELECT backend_pid, count(*) FROM tenant_guard.audit_log WHERE backend_pid = ANY(%s) "
         "GROUP BY 1 ORDER BY 1")
    want = sorted((p, BURST_PER_CONNECTION) for p in pids)
    end = time.monotonic() + BURST_DEADLINE
    while True:
        counts = run(su, q, (pids,))
        if counts == want or time.monotonic() > end:
            break
        time.sleep(0.05)
    waited = BURST_DEADLINE - (end - time.monotonic())
    check(counts == want, f"{total} refusals sent in {sent_in:.1f}s; {waited:.1f}s later audit_log has "
                          f"(backend_pid, count) {counts}, expected {want} ({_status(su)})")
    time.sleep(0.25)
    check(run(su, q, (pids,)) == want, "more events arrived later (duplicates?)")

    # Each statement exactly once, and per connection in the order it sent them.
    rows = run(su, "SELECT id, backend_pid, query, event, reason, role, application_name "
                   "FROM tenant_guard.audit_log WHERE backend_pid = ANY(%s) ORDER BY id", (pids,))
    rx = re.compile(r"/\* " + re.escape(m) + r" c(\d+) s(\d+) \*/")
    per_conn = {}
    for id_, pid, query, event, reason, role, appname in rows:
        mm = rx.search(query or "")
        check(mm is not None, f"event {id_} of a burst connection without the marker: {query!r}")
        k, s = int(mm.group(1)), int(mm.group(2))
        check(pids[k] == pid, f"c{k} s{s} stored with backend_pid {pid}, connection {k} is {pids[k]}")
        check((event, reason, role, appname) == ("denied", "no_claim", APP, f"tg-store-burst-{k}"),
              f"c{k} s{s}: {(event, reason, role, appname)!r}")
        per_conn.setdefault(k, []).append(s)
    for k in range(BURST_CONNECTIONS):
        seqs = per_conn.get(k, [])
        check(seqs == list(range(BURST_PER_CONNECTION)),
              f"connection {k}: sequence numbers in id order are not 0..{BURST_PER_CONNECTION - 1} "
              f"(first differences: {[(i, s) for i, s in enumerate(seqs) if s != i][:5]}, {len(seqs)} events)")
    st = _status(su)
    check(st["events_written"] - written_before >= total,
          f"events_written grew by {st['events_written'] - written_before}, fewer than {total}")
    _check_not_dropped(su, dropped, f"burst of {total}")
    paths.expect_fast(f"burst of {total}")
    _amcheck(su, f"after a burst of {total}")
