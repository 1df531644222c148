#!/usr/bin/env python3
"""tenant_guard's multi-session tests: a small self-contained runner (no pytest).

    python3 pg_test/sessions/run.py --host /tmp/tgS/cluster --port 5503 [-k SUBSTRING] [--keep]

Discovers the functions named test_* in the modules test_*.py of this folder (in file order),
runs each with a fresh fixture (harness.Fixture: a new database tg_sessions with the extension
and the protected table invoices), prints `ok   name` or `FAIL name: reason` per test, and ends
with the line `N passed, M failed`. Exit code 0 only when nothing failed.

Connection: --host/--port, else PGHOST/PGPORT, else /var/run/postgresql and 5432. The superuser
is `postgres`, trust authentication.
"""

import argparse
import importlib.util
import inspect
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


def discover(pattern):
    tests = []
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        modname = fname[:-3]
        spec = importlib.util.spec_from_file_location(modname, os.path.join(HERE, fname))
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception as e:  # a broken module is one failing test, not a crashed runner
            err = e

            def broken(fx, err=err):
                raise AssertionError(f"cannot import {fname}: {type(err).__name__}: {err}")

            if pattern is None or pattern in modname:
                tests.append((f"{modname}.<import>", broken))
            continue
        fns = [
            f for name, f in vars(mod).items()
            if name.startswith("test_") and inspect.isfunction(f) and f.__module__ == modname
        ]
        fns.sort(key=lambda f: f.__code__.co_firstlineno)
        for f in fns:
            full = f"{modname}.{f.__name__}"
            if pattern is None or pattern in full:
                tests.append((full, f))
    # Tests marked run_last (they may leave the cluster in a worse state when they fail) go last.
    tests.sort(key=lambda t: bool(getattr(t[1], "run_last", False)))
    return tests


def one_line(text):
    return " | ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default=os.environ.get("PGHOST", "/var/run/postgresql"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    ap.add_argument("-k", dest="pattern", default=None, help="run only tests whose name contains this")
    ap.add_argument("-v", dest="verbose", action="store_true", help="print tracebacks of failures")
    ap.add_argument("--keep", action="store_true", help="keep the database tg_sessions at the end")
    args = ap.parse_args()

    cfg = harness.Config(args.host, args.port)
    tests = discover(args.pattern)
    passed = failed = 0
    try:
        harness.ensure_roles(cfg)
    except Exception as e:
        # Nothing can run: every test fails, for the same reason.
        for name, _ in tests:
            print(f"FAIL {name}: cannot prepare the cluster: {one_line(e)}")
        print(f"0 passed, {len(tests)} failed")
        return 1

    for name, fn in tests:
        fx = harness.Fixture(cfg)
        started = time.monotonic()
        try:
            fx.setup()
        except Exception as e:
            failed += 1
            hint = ""
            if "could not find function" in str(e):
                hint = (" (the server runs an older tenant_guard.so than the installed SQL script:"
                        " restart the cluster after reinstalling)")
            print(f"FAIL {name}: fixture: {one_line(e)}{hint}", flush=True)
            fx.teardown()
            continue
        try:
            fn(fx)
        except Exception as e:
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {one_line(e)}", flush=True)
            if args.verbose:
                traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            took = time.monotonic() - started
            print(f"ok   {name}" + (f" ({took:.1f}s)" if args.verbose else ""), flush=True)
        finally:
            fx.teardown()

    if not args.keep:
        try:
            harness.drop_database(cfg)
        except Exception:
            pass
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
