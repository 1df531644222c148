#!/usr/bin/env python3
"""tenant_guard's adversarial security suite (issue 8): every known way past row security.

    python3 pg_test/security/run.py --host DIR_OR_HOST --port PORT [--seed N] [--long]
                                    [--statements N] [-f FAMILY] [-k SUBSTRING] [-v] [--keep]

Needs a cluster with shared_preload_libraries = 'tenant_guard' and tenant_guard.watched_schemas = ''
(the fixture creates tables and protects them in separate statements), a superuser `postgres`
and trust authentication:

    bash scripts/cluster.sh start /tmp/tgsec 5512 preload
    psql -h /tmp/tgsec -p 5512 -U postgres -qXc "ALTER SYSTEM SET tenant_guard.watched_schemas = ''" \
         -c "SELECT pg_reload_conf()" postgres
    python3 pg_test/security/run.py --host /tmp/tgsec --port 5512

It builds two databases (tg_security, guarded; tg_security_ref, the reference of the differential
test), runs the families below, prints `FAIL family.case: reason` for every failure, a summary per
family, and ends with the line `N passed, M failed` (exit 0 only when M = 0).

Families: matrix (principals x operations x access paths), cve (CVE-shaped regressions),
oracles (existence oracles), channels (side channels and claim hygiene), handwritten (20+ cases per
protected table, two tenants in two connections), differential (random statements as tenant A,
compared with a reference that holds only A's rows; --seed, --statements, --long), crash (malformed
input to every function and setting: no internal error, no crashed backend).
"""

import argparse
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ left in the source tree

import fixture as fx  # noqa: E402
import lib  # noqa: E402

FAMILIES = ["matrix", "cve", "oracles", "channels", "handwritten", "differential", "crash"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default=os.environ.get("PGHOST", "/var/run/postgresql"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    ap.add_argument("--seed", type=int, default=None, help="seed of the differential test (default: random, printed)")
    ap.add_argument("--statements", type=int, default=None, help="generated statements (default 1000)")
    ap.add_argument("--long", action="store_true", help="100,000 generated statements")
    ap.add_argument("-f", dest="families", action="append", choices=FAMILIES, help="run only this family (repeatable)")
    ap.add_argument("-k", dest="pattern", default=None, help="run only cases whose name contains this")
    ap.add_argument("-v", dest="verbose", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the databases at the end")
    args = ap.parse_args()

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    statements = args.statements or (100_000 if args.long else 1000)
    cfg = lib.Config(args.host, args.port)
    suite = lib.Suite(cfg, verbose=args.verbose, pattern=args.pattern)
    started = time.monotonic()

    try:
        fx.build(cfg)
        sentinel = suite.connect(fx.SUPERUSER, keep=True)
        log_path, log_start = lib.server_log(sentinel)
    except Exception as e:
        print(f"FAIL setup: cannot build the fixture: {lib.one_line(e)}")
        if "could not find function" in str(e):
            print("  (the server runs an older tenant_guard.so than the installed SQL: restart the cluster)")
        print("0 passed, 1 failed")
        return 1

    import fam_cve
    import fam_crash
    import fam_differential
    import fam_handwritten
    import fam_matrix
    import fam_oracles
    import fam_channels
    runners = {
        "matrix": lambda: fam_matrix.run(suite),
        "cve": lambda: fam_cve.run(suite),
        "oracles": lambda: fam_oracles.run(suite),
        "channels": lambda: fam_channels.run(suite),
        "handwritten": lambda: fam_handwritten.run(suite),
        "differential": lambda: fam_differential.run(suite, seed, statements),
        "crash": lambda: fam_crash.run(suite, seed),
    }
    timings = {}
    for fam in FAMILIES:
        if args.families and fam not in args.families:
            continue
        t0 = time.monotonic()
        try:
            runners[fam]()
        except Exception as e:  # a broken family is one failure, the others still run
            suite.family(fam)
            suite.case("<family>", _raise, e)
        timings[fam] = time.monotonic() - t0
        if not sentinel.alive():
            suite.family(fam)
            suite.case("<backends survived>", _fail, "the sentinel connection died: a backend crashed "
                       "(PostgreSQL restarted every backend)")
            sentinel = suite.connect(fx.SUPERUSER, keep=True)

    # crashes anywhere: the server log must show no crashed backend and no PANIC
    suite.family("crash")
    suite.case("server_log_has_no_crash", check_log, sentinel, log_path, log_start)

    print()
    print(f"{'family':<14} {'cases':>6} {'passed':>7} {'failed':>7} {'seconds':>8}")
    for fam in suite.order:
        cases = suite.families[fam]
        p = sum(1 for c in cases if c.passed)
        print(f"{fam:<14} {len(cases):>6} {p:>7} {len(cases) - p:>7} {timings.get(fam, 0):>8.1f}")
    print(f"differential seed: {seed} (rerun: --seed {seed})")
    print(f"total time: {time.monotonic() - started:.1f}s")
    if not args.keep:
        try:
            with lib.psycopg.connect(**cfg.conninfo(fx.SUPERUSER, "postgres"), autocommit=True) as c:
                fx.drop_databases(c)
        except Exception:
            pass
    passed, failed = suite.totals()
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


def _raise(e):
    raise AssertionError(f"{type(e).__name__}: {lib.one_line(e)}")


def _fail(msg):
    raise AssertionError(msg)


def check_log(sentinel, path, start):
    bad = lib.crash_lines(sentinel, path, start)
    if bad is None:
        return  # the log is not where cluster.sh puts it: the sentinel connection still checks
    lib.check(not bad, "the server log shows a crash: " + " | ".join(bad[:5]))
    # and no client backend of the suite is left behind, stuck or crashed
    for _ in range(30):
        left = sentinel.rows("SELECT pid, state, left(query, 80) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                             "AND datname LIKE 'tg_security%' AND pid <> pg_backend_pid()")
        if not left:
            break
        time.sleep(0.1)
    lib.check(not left, f"backends of the suite are still there: {left!r}")


if __name__ == "__main__":
    sys.exit(main())
