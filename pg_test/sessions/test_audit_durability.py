"""Durability of the audit trail across connections, floods, server restarts and databases.

Every refused statement carries a distinctive marker `/* <tag>-c<conn>-s<seq> */` at the start of
its text, so that each test counts exactly its own events: in `tenant_guard.audit_log` (read by the
superuser), in `tenant_guard.status()`, and in the server log (one
`LOG:  tenant_guard: event=denied ... query="/* <tag>-c<conn>-s<seq> */ ..."` line per refusal).
Events are awaited by polling with a deadline, never by one fixed sleep.

What is pinned:
- one event per refused-then-rolled-back statement, from several connections at once, each with
  its connection's role and backend_pid;
- a flood of 10,000 refusals from 4 connections: (events in audit_log) + (events_dropped during the
  flood) == 10,000 exactly, the status() counters agree, and the server log has every refusal once;
- a full queue (writer held by a lock): refusals are not blocked, the overflow is counted dropped,
  written + dropped == sent exactly;
- a clean shutdown (fast, smart, and fast with a writer that is blocked at that moment) writes every
  queued event before the server stops;
- a crash (immediate shutdown) keeps what was written, loses at most the queued events from the
  table (never from the server log: log == sent, table subset of sent), and the writer comes back;
- a terminated writer is replaced: later refusals land within a few seconds;
- events land in the database where they happened; a database without the extension gets no
  writer, no writes and no errors;
- (run last) events a writer took but could not insert are counted dropped, not silently lost; events
  of a database that found no free worker slot are written once the other writers leave.

The restart tests need the cluster directory in TG_CLUSTER_DIR (scripts/test sets it) to run
`scripts/cluster.sh restart`; without it they FAIL (they do not pass silently). The server-log checks
read "$TG_CLUSTER_DIR/server.log".
"""

import os
import re
import subprocess
import threading
import time
import uuid

import psycopg

from harness import APP, SUPERUSER, check, run

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER_SH = os.path.normpath(os.path.join(HERE, "..", "..", "scripts", "cluster.sh"))
WRITER_TYPE = "tenant_guard audit writer"

LAND_DEADLINE = 5.0        # "within one second by default", plus generous slack on a loaded box
DRAIN_DEADLINE = 30.0      # a queue of up to 4096 events, written in batches of 256 every 100 ms
RESTART_TIMEOUT = 90       # pg_ctl -w waits up to 60 s itself
FLOOD_TOTAL = 10_000
FLOOD_CONNECTIONS = 4


# -- markers and refusals ------------------------------------------------------------------------

def _tag(kind):
    """A marker prefix unique to this run and test (the server log outlives the test database)."""
    return f"tgdur-{kind}-{uuid.uuid4().hex[:12]}"


def _sql(tag, conn_no, seq, table="invoices"):
    # The marker goes first, so that query truncation (audit_query_max) can never cut it off.
    return f"/* {tag}-c{conn_no}-s{seq} */ SELECT 1 FROM {table}"


def _id_re(tag):
    return re.compile(r"/\* " + re.escape(tag) + r"-c(\d+)-s(\d+) \*/")


def _expect_refusal(conn, sql):
    """Runs a statement that the guard must refuse (42501, `tenant_guard:` prefix)."""
    try:
        cur = conn.execute(sql)
    except psycopg.Error as e:
        primary = e.diag.message_primary or ""
        if e.sqlstate != "42501" or not primary.startswith("tenant_guard:"):
            raise AssertionError(f"{sql!r}: expected the guard's 42501 refusal, got {e.sqlstate}: {primary}")
        return
    rows = cur.fetchall() if cur.description is not None else None
    raise AssertionError(f"{sql!r}: expected a refusal, but it succeeded and returned {rows!r}")


def _refuser(conn, tag, conn_no, count, gate=None, in_transaction=False, table="invoices"):
    """One client: `count` refused statements (each alone in BEGIN ... ROLLBACK if in_transaction).
    Returns the ids (conn_no, seq) it was refused for, in order."""
    if gate is not None:
        gate.wait(timeout=20)
    sent = []
    for seq in range(count):
        sql = _sql(tag, conn_no, seq, table)
        if in_transaction:
            conn.execute("BEGIN")
            _expect_refusal(conn, sql)
            conn.execute("ROLLBACK")
        else:
            _expect_refusal(conn, sql)
        sent.append((conn_no, seq))
    return sent


def _refuse_concurrently(fx, tag, connections, per_connection, in_transaction=False):
    """`connections` tg_app connections refusing at once (threads). Returns (sent ids, pid per
    connection number, seconds)."""
    conns = [fx.app(application_name=f"{tag}-c{k}") for k in range(connections)]
    pids = {k: run(c, "SELECT pg_backend_pid()")[0][0] for k, c in enumerate(conns)}
    gate = threading.Barrier(connections)
    started = time.monotonic()
    threads = [fx.thread(_refuser, c, tag, k, per_connection, gate, in_transaction) for k, c in enumerate(conns)]
    sent = []
    for t in threads:
        sent += t.get(timeout=120)
    return sent, pids, time.monotonic() - started


# -- reading the trail ---------------------------------------------------------------------------

def _events(su, tag):
    """(conn_no, seq, event, reason, role, session_role, backend_pid, query) of every audit_log row
    whose query carries the tag."""
    rows = run(su, "SELECT event, reason, role, session_role, backend_pid, query FROM tenant_guard.audit_log "
                   "WHERE query LIKE %s ORDER BY id", (f"%/* {tag}-%",))
    rx = _id_re(tag)
    out = []
    for event, reason, role, session_role, pid, query in rows:
        m = rx.search(query or "")
        check(m is not None, f"audit row with the tag but an unparsable query: {query!r}")
        out.append((int(m.group(1)), int(m.group(2)), event, reason, role, session_role, pid, query))
    return out


def _count(su, tag):
    return run(su, "SELECT count(*) FROM tenant_guard.audit_log WHERE query LIKE %s", (f"%/* {tag}-%",))[0][0]


def _status(su):
    cur = su.execute("SELECT audit_writer_pid, audit_queue_size, audit_queue_depth, events_enqueued, "
                     "events_written, events_dropped FROM tenant_guard.status()")
    names = [d.name for d in cur.description]
    return dict(zip(names, cur.fetchone()))


def _wait_count(su, tag, want, deadline=LAND_DEADLINE):
    """Polls until at least `want` tagged events are in audit_log; returns (count, seconds)."""
    start = time.monotonic()
    while True:
        n = _count(su, tag)
        took = time.monotonic() - start
        if n >= want or took > deadline:
            return n, took
        time.sleep(0.05)


def _wait_settled(su, tag, deadline=DRAIN_DEADLINE):
    """Polls until the queue is empty and neither events_written nor the tagged count moves between
    two polls 0.3 s apart (longer than the writer's 100 ms cycle). Returns (status, count, seconds)."""
    start = time.monotonic()
    prev = None
    while True:
        st, n = _status(su), _count(su, tag)
        took = time.monotonic() - start
        if (prev is not None and st["audit_queue_depth"] == 0 and prev[0]["audit_queue_depth"] == 0
                and st["events_written"] == prev[0]["events_written"] and n == prev[1]):
            return st, n, took
        if took > deadline:
            raise AssertionError(f"the audit queue did not settle within {deadline}s: status {st}, "
                                 f"{n} tagged events in audit_log (before: {prev})")
        prev = (st, n)
        time.sleep(0.3)


def _check_exactly_once(events, sent, what):
    """Every sent id is in `events` exactly once, and nothing else is."""
    seen = {}
    for ev in events:
        seen[(ev[0], ev[1])] = seen.get((ev[0], ev[1]), 0) + 1
    dups = sorted(k for k, v in seen.items() if v > 1)
    missing = sorted(set(sent) - set(seen))
    extra = sorted(set(seen) - set(sent))
    check(not dups, f"{what}: DUPLICATE events for {len(dups)} statement(s), e.g. {dups[:5]}")
    check(not extra, f"{what}: events for statements never sent: {extra[:5]}")
    check(not missing, f"{what}: {len(missing)} of {len(sent)} refused statements have no event, e.g. {missing[:5]}")
    check(len(events) == len(sent), f"{what}: {len(events)} events for {len(sent)} refused statements")


# -- the server and its log ----------------------------------------------------------------------

def _cluster_dir(fx):
    """TG_CLUSTER_DIR, checked to be the directory of the server under test."""
    d = os.environ.get("TG_CLUSTER_DIR")
    check(d, "TG_CLUSTER_DIR is not set: this test needs the cluster directory (the one given to "
             "scripts/cluster.sh start) to restart the server and read server.log; run it through "
             "scripts/test or with TG_CLUSTER_DIR=<dir>")
    with psycopg.connect(**fx.cfg.conninfo(SUPERUSER, "postgres"), autocommit=True) as c:
        data = c.execute("SHOW data_directory").fetchone()[0]
    check(os.path.realpath(data) == os.path.realpath(os.path.join(d, "data")),
          f"TG_CLUSTER_DIR={d} is not the cluster under test (its data_directory is {data})")
    check(os.path.exists(os.path.join(d, "server.log")), f"no server log at {d}/server.log")
    return d


class ServerLog:
    """The part of $TG_CLUSTER_DIR/server.log written from now on (the file is only appended to,
    also across restarts: pg_ctl -l appends)."""

    def __init__(self, fx):
        self.path = os.path.join(_cluster_dir(fx), "server.log")
        self.offset = os.path.getsize(self.path)

    def denied_lines(self, tag):
        """{(conn_no, seq): [backend_pid of each `tenant_guard: event=denied` line]} for the tag."""
        rx = _id_re(tag)
        pid_rx = re.compile(r" backend_pid=(\d+) ")
        out = {}
        with open(self.path, "rb") as f:
            if os.path.getsize(self.path) >= self.offset:
                f.seek(self.offset)
            for raw in f:
                line = raw.decode("utf-8", "replace")
                if "tenant_guard: event=denied " not in line or tag not in line:
                    continue
                m = rx.search(line)
                check(m is not None, f"server log line with the tag but no parsable marker: {line.strip()!r}")
                p = pid_rx.search(line)
                out.setdefault((int(m.group(1)), int(m.group(2))), []).append(int(p.group(1)) if p else None)
        return out

    def check_one_line_each(self, tag, sent, what):
        lines = self.denied_lines(tag)
        dups = sorted(k for k, v in lines.items() if len(v) > 1)
        missing = sorted(set(sent) - set(lines))
        extra = sorted(set(lines) - set(sent))
        check(not missing, f"{what}: {len(missing)} of {len(sent)} refused statements have no "
                           f"`tenant_guard: event=denied` LOG line in {self.path}, e.g. {missing[:5]}")
        check(not dups, f"{what}: several LOG lines for {len(dups)} statement(s), e.g. {dups[:5]}")
        check(not extra, f"{what}: LOG lines for statements never sent: {extra[:5]}")
        return lines


def _close_all(fx):
    for c in fx._conns:
        try:
            c.close()
        except Exception:
            pass


def _restart(fx, mode):
    """scripts/cluster.sh restart <dir> <mode>, then waits until the server accepts connections
    to the test database. Returns the seconds the restart took."""
    d = _cluster_dir(fx)
    started = time.monotonic()
    try:
        p = subprocess.run(["bash", CLUSTER_SH, "restart", d, mode], capture_output=True, text=True,
                           timeout=RESTART_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"cluster.sh restart {mode} did not finish within {RESTART_TIMEOUT}s (a child "
                             f"process that does not exit on shutdown?); see {d}/server.log")
    check(p.returncode == 0, f"cluster.sh restart {d} {mode} failed ({p.returncode}): {p.stdout} {p.stderr}")
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(**fx.cfg.conninfo(SUPERUSER, fx.dbname), autocommit=True) as c:
                c.execute("SELECT 1")
            break
        except psycopg.OperationalError as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"the server does not accept connections 30 s after restart {mode}: {e}")
            time.sleep(0.1)
    return time.monotonic() - started


def _writers(su):
    """[(pid, datname)] of the running audit writers."""
    return run(su, "SELECT pid, datname FROM pg_stat_activity WHERE backend_type = %s ORDER BY pid",
               (WRITER_TYPE,))


def _wait_writer(su, deadline=LAND_DEADLINE):
    """Polls status() until this database's writer pid is reported; returns it (or None)."""
    end = time.monotonic() + deadline
    while True:
        pid = _status(su)["audit_writer_pid"]
        if pid is not None or time.monotonic() > end:
            return pid
        time.sleep(0.05)


# -- 1. one event per refused statement, several connections at once -----------------------------

def test_one_event_per_rolled_back_refusal_across_connections(fx):
    """4 connections x 50 x `BEGIN; <refused>; ROLLBACK;` at once: exactly 200 'denied' events, each
    statement once, each with its connection's role and backend_pid."""
    tag = _tag("tx")
    su = fx.su()
    sent, pids, took = _refuse_concurrently(fx, tag, 4, 50, in_transaction=True)
    check(len(sent) == 200, f"sent {len(sent)}")
    n, waited = _wait_count(su, tag, 200)
    check(n >= 200, f"only {n} of 200 events in audit_log {waited:.1f}s after the last refusal")
    _st, n, _ = _wait_settled(su, tag)      # and no late duplicate arrives
    events = _events(su, tag)
    _check_exactly_once(events, sent, "BEGIN/refused/ROLLBACK x 4 connections")
    for conn_no, seq, event, reason, role, session_role, pid, _q in events:
        check(event == "denied" and reason == "no_claim", f"c{conn_no}-s{seq}: event {event!r} reason {reason!r}")
        check(role == APP and session_role == APP, f"c{conn_no}-s{seq}: role {role!r}, session_role {session_role!r}")
        check(pid == pids[conn_no], f"c{conn_no}-s{seq}: backend_pid {pid}, but connection {conn_no} is {pids[conn_no]}")


# -- 2. flood --------------------------------------------------------------------------------------

def test_flood_every_refusal_is_written_or_counted_dropped(fx):
    """10,000 refusals from 4 connections: written + dropped == sent exactly; the status() counters
    agree; the server log has one event=denied line per refusal."""
    tag = _tag("flood")
    log = ServerLog(fx) if os.environ.get("TG_CLUSTER_DIR") else None
    su = fx.su()
    before, _, _ = _wait_settled(su, tag)          # nothing of earlier tests still in flight
    per = FLOOD_TOTAL // FLOOD_CONNECTIONS
    max_depth = [0]
    stop = threading.Event()

    def watch():                                    # the queue depth seen during the flood
        w = fx.su()
        while not stop.is_set():
            max_depth[0] = max(max_depth[0], _status(w)["audit_queue_depth"])
            time.sleep(0.05)

    watcher = fx.thread(watch)
    try:
        sent, _pids, took = _refuse_concurrently(fx, tag, FLOOD_CONNECTIONS, per)
    finally:
        stop.set()
        watcher.get(timeout=10)
    check(len(sent) == FLOOD_TOTAL, f"sent {len(sent)}")
    after, written, settle = _wait_settled(su, tag)
    dropped = after["events_dropped"] - before["events_dropped"]
    enqueued = after["events_enqueued"] - before["events_enqueued"]
    written_ctr = after["events_written"] - before["events_written"]
    print(f"     flood: sent={len(sent)} written={written} dropped={dropped} in {took:.1f}s "
          f"({len(sent) / took:.0f}/s), max queue depth {max_depth[0]} of {after['audit_queue_size']}, "
          f"drained {settle:.1f}s after the last refusal", flush=True)
    check(took < 60, f"the flood took {took:.1f}s")
    check(written + dropped == len(sent),
          f"LOST EVENTS: {written} in audit_log + {dropped} dropped = {written + dropped} != {len(sent)} sent")
    if dropped == 0:
        check(written == len(sent), f"no drop but {written} of {len(sent)} written")
    events = _events(su, tag)
    seen = {(e[0], e[1]) for e in events}
    check(len(seen) == len(events), f"DUPLICATE events: {len(events)} rows for {len(seen)} statements")
    check(seen <= set(sent), "events for statements never sent")
    check(enqueued + dropped == len(sent),
          f"status(): events_enqueued grew by {enqueued} and events_dropped by {dropped}, for {len(sent)} refusals")
    check(written_ctr == written,
          f"status(): events_written grew by {written_ctr}, but {written} events are in audit_log")
    check(log is not None, "TG_CLUSTER_DIR is not set: cannot check the server log (one LOG line per refusal)")
    log.check_one_line_each(tag, sent, "flood")


def test_full_queue_counts_every_drop_exactly(fx):
    """The writer is held (its INSERT waits for a lock) while more refusals arrive than the queue
    holds: the statements are not blocked, the overflow is counted in events_dropped, and after the
    lock goes written + dropped == sent exactly; every refusal is in the server log all the same."""
    tag = _tag("full")
    log = ServerLog(fx) if os.environ.get("TG_CLUSTER_DIR") else None
    su = fx.su()
    before, _, _ = _wait_settled(su, tag)
    size = before["audit_queue_size"]
    per = (size + 256 + 1000 + FLOOD_CONNECTIONS - 1) // FLOOD_CONNECTIONS    # beyond queue + one batch
    check(per * FLOOD_CONNECTIONS <= 40_000, f"audit_queue_size {size} is too large for this test")
    holder = fx.su()
    run(holder, "BEGIN")
    run(holder, "LOCK TABLE tenant_guard.audit_log IN SHARE MODE")
    try:
        sent, _pids, took = _refuse_concurrently(fx, tag, FLOOD_CONNECTIONS, per)
        held = _status(su)
    finally:
        run(holder, "COMMIT")
    after, written, settle = _wait_settled(su, tag)
    dropped = after["events_dropped"] - before["events_dropped"]
    print(f"     full queue: sent={len(sent)} written={written} dropped={dropped} in {took:.1f}s "
          f"(queue size {size}, depth {held['audit_queue_depth']} while the writer was held)", flush=True)
    check(held["audit_queue_depth"] == size, f"the queue was not full while the writer was held: {held}")
    check(dropped >= len(sent) - size - 256, f"only {dropped} dropped of {len(sent)} sent to a queue of {size}")
    check(written + dropped == len(sent),
          f"LOST EVENTS: {written} in audit_log + {dropped} dropped = {written + dropped} != {len(sent)} sent")
    events = _events(su, tag)
    check(len({(e[0], e[1]) for e in events}) == len(events), "DUPLICATE events")
    check(log is not None, "TG_CLUSTER_DIR is not set: cannot check the server log (one LOG line per refusal)")
    log.check_one_line_each(tag, sent, "full queue")


# -- 3. clean shutdown drains the queue ----------------------------------------------------------

def _refuse_then_restart(fx, mode, n=300, block_writer=False):
    """Refuses n statements (2 connections), then restarts at once; returns (sent, tag, unwritten
    when the restart began, ServerLog)."""
    log = ServerLog(fx)                             # also fails at once without TG_CLUSTER_DIR
    tag = _tag(f"stop-{mode}")
    su = fx.su()
    if block_writer:
        # The writer's INSERT waits for this lock: its events are certainly still unwritten when
        # the shutdown begins (the lock goes with this session when the shutdown ends it).
        run(su, "BEGIN")
        run(su, "LOCK TABLE tenant_guard.audit_log IN SHARE MODE")
    sent, _pids, _took = _refuse_concurrently(fx, tag, 2, n // 2)
    unwritten = len(sent) - _count(su, tag)         # one quick look, no waiting
    if mode == "smart":
        _close_all(fx)                              # a smart shutdown waits for every client
    _restart(fx, mode)
    return sent, tag, unwritten, log


def _check_all_landed_after_restart(fx, sent, tag, unwritten, log, mode):
    su = fx.su()
    n, _ = _wait_count(su, tag, len(sent), deadline=0.5)    # they must be there already
    events = _events(su, tag)
    print(f"     restart {mode}: {unwritten} of {len(sent)} events unwritten when it began; "
          f"{len(events)} in audit_log after it", flush=True)
    _check_exactly_once(events, sent, f"after restart {mode}")
    log.check_one_line_each(tag, sent, f"restart {mode}")


def test_fast_shutdown_writes_queued_events(fx):
    sent, tag, unwritten, log = _refuse_then_restart(fx, "fast")
    _check_all_landed_after_restart(fx, sent, tag, unwritten, log, "fast")


def test_fast_shutdown_writes_events_of_a_blocked_writer(fx):
    """The writer is stuck (its INSERT waits for a lock) with every event unwritten when the fast
    shutdown begins: the shutdown ends the lock holder, the writer drains, then exits."""
    sent, tag, unwritten, log = _refuse_then_restart(fx, "fast", block_writer=True)
    check(unwritten == len(sent), f"the writer was not blocked: {len(sent) - unwritten} written before the restart")
    _check_all_landed_after_restart(fx, sent, tag, unwritten, log, "fast, writer blocked")


def test_smart_shutdown_writes_queued_events(fx):
    sent, tag, unwritten, log = _refuse_then_restart(fx, "smart")
    _check_all_landed_after_restart(fx, sent, tag, unwritten, log, "smart")


# -- 4. crash: the documented loss window ----------------------------------------------------------

def test_crash_keeps_written_events_and_logs_every_refusal(fx):
    """Immediate shutdown. Written events survive; queued-but-unwritten ones may be lost from the
    table, never from the server log (table subset of sent, log == sent); the writer comes back."""
    log = ServerLog(fx)
    tag = _tag("crash")
    su = fx.su()
    app = fx.app()
    before = _refuser(app, tag, 0, 100)
    n, waited = _wait_count(su, tag, len(before))
    check(n == len(before), f"{n} of {len(before)} events written {waited:.1f}s before the crash")
    _wait_settled(su, tag)
    # Hold the writer (its INSERT waits for this lock), so that the next events are certainly queued
    # or in the writer's hands, unwritten, when the server crashes.
    run(su, "BEGIN")
    run(su, "LOCK TABLE tenant_guard.audit_log IN SHARE MODE")
    pending = _refuser(app, tag, 1, 300)
    depth = _status(su)["audit_queue_depth"]
    _restart(fx, "immediate")

    su = fx.su()
    events = _events(su, tag)
    kept = [e for e in events if e[0] == 0]
    survived = [e for e in events if e[0] == 1]
    _check_exactly_once(kept, before, "events written before the crash")
    ids = [(e[0], e[1]) for e in survived]
    check(len(set(ids)) == len(ids), "DUPLICATE events after crash recovery")
    check(set(ids) <= set(pending), "events after the crash for statements never sent")
    print(f"     crash: {len(before)} written before, kept {len(kept)}; {len(pending)} unwritten at the crash "
          f"(queue depth {depth}), {len(survived)} of them in audit_log after recovery, "
          f"{len(pending) - len(survived)} only in the server log", flush=True)
    # ... never lost from the server log
    log.check_one_line_each(tag, before + pending, "crash")

    # The writer comes back: a new refusal lands within a few seconds, status() names the writer.
    app = fx.app()
    after = _refuser(app, tag, 2, 1)
    pid = _wait_writer(su)
    n, waited = _wait_count(su, f"{tag}-c2", 1)
    check(n == 1, f"after the crash, a new refusal's event did not land within {LAND_DEADLINE}s")
    check(pid is not None, "after the crash, status().audit_writer_pid stays NULL while an event is written")
    _check_exactly_once([e for e in _events(su, tag) if e[0] == 2], after, "refusal after the crash")


# -- 5. a terminated writer is replaced ------------------------------------------------------------

def test_terminated_writer_is_replaced(fx):
    tag = _tag("kill")
    su = fx.su()
    app = fx.app()
    first = _refuser(app, tag, 0, 5)
    n, _ = _wait_count(su, tag, len(first))
    check(n == len(first), f"{n} of {len(first)} events before the writer is terminated")
    pid = _wait_writer(su)
    check(pid is not None, "status().audit_writer_pid is NULL right after events were written")
    check((pid, fx.dbname) in _writers(su),
          f"status() names writer {pid}, pg_stat_activity lists {_writers(su)}")
    expect = run(su, "SELECT pg_terminate_backend(%s)", (pid,))[0][0]
    check(expect is True, f"pg_terminate_backend({pid}) returned {expect!r}")
    deadline = time.monotonic() + LAND_DEADLINE
    while any(p == pid for p, _ in _writers(su)):
        check(time.monotonic() < deadline, f"writer {pid} still runs {LAND_DEADLINE}s after pg_terminate_backend")
        time.sleep(0.05)

    second = _refuser(app, tag, 1, 20)
    n, waited = _wait_count(su, tag, len(first) + len(second))
    check(n == len(first) + len(second),
          f"after the writer was terminated, {n - len(first)} of {len(second)} new events landed within {waited:.1f}s")
    new_pid = _wait_writer(su)
    check(new_pid is not None and new_pid != pid, f"writer pid after termination: {new_pid} (was {pid})")
    _wait_settled(su, tag)
    _check_exactly_once(_events(su, tag), first + second, "around a terminated writer")


# -- 6. databases ----------------------------------------------------------------------------------

OTHER_DB = "tg_sessions_dur_b"
PLAIN_DB = "tg_sessions_dur_plain"


def test_events_land_in_their_own_database_and_plain_databases_get_none(fx):
    admin = fx.connect(SUPERUSER, dbname="postgres")
    for db in (OTHER_DB, PLAIN_DB):
        run(admin, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        run(admin, f"CREATE DATABASE {db}")
    try:
        setup = fx.connect(SUPERUSER, dbname=OTHER_DB)
        run(setup, "CREATE EXTENSION tenant_guard")
        run(setup, "CREATE TABLE invoices (tenant_id text NOT NULL, amount int)")
        run(setup, "CREATE INDEX ON invoices (tenant_id)")
        run(setup, "SELECT tenant_guard.protect('invoices')")
        run(setup, "GRANT SELECT ON invoices TO tg_app")
        setup.close()
        plain_su = fx.connect(SUPERUSER, dbname=PLAIN_DB)
        run(plain_su, "CREATE TABLE invoices (id serial PRIMARY KEY, tenant_id text NOT NULL, amount int)")
        run(plain_su, "INSERT INTO invoices (tenant_id, amount) VALUES ('acme', 1), ('globex', 2)")
        run(plain_su, "GRANT SELECT, INSERT, UPDATE, DELETE ON invoices TO tg_app")
        run(plain_su, "GRANT USAGE ON SEQUENCE invoices_id_seq TO tg_app")

        su_a, su_b = fx.su(), fx.connect(SUPERUSER, dbname=OTHER_DB)
        tag_a, tag_b = _tag("dba"), _tag("dbb")
        app_a, app_b = fx.app(), fx.connect(APP, dbname=OTHER_DB)
        pid_a = run(app_a, "SELECT pg_backend_pid()")[0][0]
        pid_b = run(app_b, "SELECT pg_backend_pid()")[0][0]
        gate = threading.Barrier(2)
        ta = fx.thread(_refuser, app_a, tag_a, 0, 40, gate, True)
        tb = fx.thread(_refuser, app_b, tag_b, 0, 40, gate, True)
        sent_a, sent_b = ta.get(timeout=60), tb.get(timeout=60)
        na, _ = _wait_count(su_a, tag_a, 40)
        nb, _ = _wait_count(su_b, tag_b, 40)
        writer_dbs = {d for _, d in _writers(su_a)}
        check(na == 40, f"{na} of 40 events in {fx.dbname}.audit_log")
        check(nb == 40, f"{nb} of 40 events in {OTHER_DB}.audit_log (writers running: {writer_dbs})")
        _wait_settled(su_a, tag_a)
        _wait_settled(su_b, tag_b)
        ev_a, ev_b = _events(su_a, tag_a), _events(su_b, tag_b)
        _check_exactly_once(ev_a, sent_a, fx.dbname)
        _check_exactly_once(ev_b, sent_b, OTHER_DB)
        check(all(e[6] == pid_a for e in ev_a), f"{fx.dbname}: events of another backend than {pid_a}")
        check(all(e[6] == pid_b for e in ev_b), f"{OTHER_DB}: events of another backend than {pid_b}")
        check(_count(su_a, tag_b) == 0, f"events of {OTHER_DB} landed in {fx.dbname}.audit_log")
        check(_count(su_b, tag_a) == 0, f"events of {fx.dbname} landed in {OTHER_DB}.audit_log")

        # The database without the extension: nothing protected, nothing refused, nothing queued.
        enq = _status(su_a)["events_enqueued"]
        plain_app = fx.connect(APP, dbname=PLAIN_DB)
        check(run(plain_su, "SELECT count(*) FROM pg_extension WHERE extname = 'tenant_guard'")[0][0] == 0,
              "the extension exists in the plain database")
        check(run(plain_su, "SELECT to_regclass('tenant_guard.audit_log') IS NULL")[0][0], "audit_log in the plain database")
        for conn, who in ((plain_app, "tg_app"), (plain_su, "superuser")):
            rows = run(conn, "SELECT tenant_id, amount FROM invoices ORDER BY id")
            check(rows[:2] == [("acme", 1), ("globex", 2)], f"{who} in {PLAIN_DB}: {rows!r}")
            run(conn, "BEGIN")
            run(conn, "INSERT INTO invoices (tenant_id, amount) VALUES ('initech', 3)")
            run(conn, "UPDATE invoices SET amount = amount + 1 WHERE tenant_id = 'initech'")
            run(conn, "DELETE FROM invoices WHERE tenant_id = 'initech'")
            run(conn, "ROLLBACK")
            run(conn, "SELECT count(*) FROM invoices /* plain, no guard */")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:          # a writer for it would connect within this
            plain_writers = [p for p, d in _writers(su_a) if d == PLAIN_DB]
            check(not plain_writers, f"an audit writer connected to {PLAIN_DB} (no extension there): {plain_writers}")
            time.sleep(0.1)
        enq_after = _status(su_a)["events_enqueued"]
        check(enq_after == enq, f"statements in {PLAIN_DB} enqueued {enq_after - enq} audit event(s)")
    finally:
        _close_all(fx)
        with psycopg.connect(**fx.cfg.conninfo(SUPERUSER, "postgres"), autocommit=True) as c:
            for db in (OTHER_DB, PLAIN_DB):
                c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


# -- 7. events that cannot be written are counted, not silently lost -------------------------------

def test_events_a_failing_writer_took_are_counted(fx):
    """The writer's INSERT fails (here: the database has default_transaction_read_only = on, an
    ordinary ops setting that the writer inherits when it connects). The events it took from the
    queue are gone from the queue and can never land: they must be counted in events_dropped
    (written + dropped == sent), and the writer must work again once the setting is gone."""
    tag = _tag("rofail")
    su = fx.su()
    before, _, _ = _wait_settled(su, tag)
    run(su, f"ALTER DATABASE {fx.dbname} SET default_transaction_read_only = on")
    try:
        app = fx.app()                               # a read-only session; its refusals don't care
        sent = _refuser(app, tag, 0, 20)
        after, written, _ = _wait_settled(su, tag)
    finally:
        run(su, f"ALTER DATABASE {fx.dbname} RESET default_transaction_read_only")
    dropped = after["events_dropped"] - before["events_dropped"]
    enqueued = after["events_enqueued"] - before["events_enqueued"]
    written_ctr = after["events_written"] - before["events_written"]
    print(f"     failing writer: sent={len(sent)} enqueued={enqueued} written={written} "
          f"(counter {written_ctr}) dropped={dropped}", flush=True)
    # Once the setting is gone, a new writer stores new events.
    app = fx.app()
    later = _refuser(app, tag, 1, 1)
    n, waited = _wait_count(su, f"{tag}-c1", 1)
    check(written + dropped == len(sent),
          f"EVENTS SILENTLY LOST: {written} in audit_log + {dropped} counted dropped != {len(sent)} sent "
          f"(status(): events_enqueued +{enqueued}, events_written +{written_ctr}, queue depth "
          f"{after['audit_queue_depth']}); the writer took them from the queue and its INSERT failed "
          f"(server log: 'cannot execute INSERT in a read-only transaction')")
    check(n == 1, f"after the setting was reset, a new refusal's event did not land within {waited:.1f}s")
    _check_exactly_once([e for e in _events(su, tag) if e[0] == 1], later, "after the reset")


# -- 8. more databases with events than writers can run -------------------------------------------

SLOT_DB = "tg_sessions_dur_w"


def test_events_wait_for_a_writer_and_are_written(fx):
    """One refusal in each of max_worker_processes + 1 databases at once: not every database gets
    a writer immediately (the worker slots run out; the refused session gets a WARNING), but the
    writers leave after 2 idle seconds, and every database's event must land within a few seconds
    more - not wait in the queue until that database's next event (and be lost at shutdown)."""
    admin = fx.connect(SUPERUSER, dbname="postgres")
    n_db = int(run(admin, "SHOW max_worker_processes")[0][0]) + 1
    check(n_db <= 17, f"max_worker_processes = {n_db - 1}: this test creates that many databases + 1; "
                      f"run it on a cluster with the default 8")
    tag = _tag("slots")
    dbs = [f"{SLOT_DB}{i}" for i in range(n_db)]
    warned = []
    try:
        for db in dbs:
            run(admin, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            run(admin, f"CREATE DATABASE {db}")
            with psycopg.connect(**fx.cfg.conninfo(SUPERUSER, db), autocommit=True) as c:
                c.execute("CREATE EXTENSION tenant_guard")
                c.execute("CREATE TABLE invoices (tenant_id text NOT NULL)")
                c.execute("CREATE INDEX ON invoices (tenant_id)")
                c.execute("SELECT tenant_guard.protect('invoices')")
                c.execute("GRANT SELECT ON invoices TO tg_app")
        apps = [fx.connect(APP, dbname=db) for db in dbs]
        sus = [fx.connect(SUPERUSER, dbname=db) for db in dbs]
        end = time.monotonic() + 6   # writers of earlier tests leave after 2 idle seconds
        while _writers(admin) and time.monotonic() < end:
            time.sleep(0.1)
        for k, app in enumerate(apps):
            app.add_notice_handler(lambda d, k=k: warned.append(k) if "could not start" in (d.message_primary or "") else None)
            _refuser(app, tag, k, 1)
        deadline = time.monotonic() + 8.0
        while True:
            missing = [dbs[k] for k, s in enumerate(sus) if _count(s, tag) != 1]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        st = _status(sus[0])
        print(f"     writer slots: {n_db} databases, {len(warned)} refusal(s) got the 'could not start an audit "
              f"writer' warning, {len(missing)} event(s) not written after 8 s (queue depth {st['audit_queue_depth']})",
              flush=True)
        check(not missing, f"EVENTS STUCK IN THE QUEUE: the event of {len(missing)} database(s) ({', '.join(missing)}) "
                           f"is not in their audit_log 8 s after the refusal, long after the other writers left "
                           f"(queue depth {st['audit_queue_depth']}, writers running: {_writers(sus[0])}); "
                           f"no writer is started for them until their next event, and a clean shutdown loses them")
    finally:
        # Unstick what the current build leaves queued (else the queue is never empty again): a new
        # refusal in each database starts its writer, now that the others have left.
        try:
            stuck = [k for k, s in enumerate(sus) if _count(s, tag) == 0]
            if stuck:
                end = time.monotonic() + 5
                while _writers(admin) and time.monotonic() < end:
                    time.sleep(0.2)
                for k in stuck:
                    _refuser(apps[k], tag, k, 1)
                end = time.monotonic() + 5
                while _status(sus[0])["audit_queue_depth"] and time.monotonic() < end:
                    time.sleep(0.2)
        except Exception:
            pass
        _close_all(fx)
        with psycopg.connect(**fx.cfg.conninfo(SUPERUSER, "postgres"), autocommit=True) as c:
            for db in dbs:
                c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


# The two tests above fail with the current build and may leave writers restarting or events
# queued for a while: run them after everything else.
test_events_a_failing_writer_took_are_counted.run_last = True
test_events_wait_for_a_writer_and_are_written.run_last = True
