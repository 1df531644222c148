#!/usr/bin/env python3
"""tenant_guard from Python with psycopg 3: the tenant claim is set once per transaction, as a
bind parameter, with set_config(..., true) (the SET LOCAL of a function call).

    PGHOST=... PGPORT=... PGUSER=app PGDATABASE=... python3 example.py

The connection settings come from the usual PG* environment variables (or pass a conninfo
string to psycopg.connect). One connection serves every tenant below, one transaction after
the other, as a pooled connection would.
"""

import json
from contextlib import contextmanager

import psycopg


@contextmanager
def tenant_transaction(conn, tenant_id):
    """A transaction whose tenant claim is tenant_id. The claim ends with the transaction (commit
    or rollback), so the next user of the connection starts without one."""
    with conn.transaction():
        conn.execute("SELECT set_config('tenant_guard.tenant_id', %s, true)", (tenant_id,))
        yield conn


def refusal(err):
    return f"refused {err.sqlstate}: {err.diag.message_primary}"


def main():
    # autocommit=True: psycopg does not open a transaction behind our back; conn.transaction()
    # says BEGIN and COMMIT (or ROLLBACK on an exception) explicitly.
    # prepare_threshold=None: behind PgBouncer < 1.21 in transaction mode, protocol-level
    # prepared statements do not survive; harmless elsewhere.
    with psycopg.connect(autocommit=True, prepare_threshold=None) as conn:
        # Each tenant sees only its own rows.
        for tenant in ("acme", "globex"):
            with tenant_transaction(conn, tenant):
                rows = conn.execute("SELECT tenant_id, amount FROM invoices ORDER BY id").fetchall()
            print(f"{tenant} -> {json.dumps([list(r) for r in rows])}")

        # A write for another tenant is refused by the row policies (and rolled back).
        try:
            with tenant_transaction(conn, "acme"):
                conn.execute("INSERT INTO invoices (tenant_id, amount) VALUES (%s, %s)", ("globex", 1))
            print("acme writes a globex row -> allowed")
        except psycopg.Error as err:
            print(f"acme writes a globex row -> {refusal(err)}")

        # The careless call: no claim. Refused, never "all rows".
        try:
            rows = conn.execute("SELECT tenant_id, amount FROM invoices").fetchall()
            print(f"forgot the claim -> {json.dumps([list(r) for r in rows])}")
        except psycopg.Error as err:
            print(f"forgot the claim -> {refusal(err)}")

        # A session-level SET left on the connection does not count in later transactions.
        conn.execute("SET tenant_guard.tenant_id = 'acme'")
        try:
            conn.execute("SELECT tenant_id, amount FROM invoices").fetchall()
            print("stale session claim -> allowed")
        except psycopg.Error as err:
            print(f"stale session claim -> {refusal(err)}")
        conn.execute("RESET tenant_guard.tenant_id")


if __name__ == "__main__":
    main()
