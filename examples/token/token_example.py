#!/usr/bin/env python3
"""tenant_guard with signed tenant tokens, from Python (psycopg 3; signing with the standard
library only).

The application server, after it has authenticated the user, signs a short-lived HS256 token
that names the user's tenant, with a key that it shares with the database. The database
verifies it in tenant_guard.set_tenant_token($1) (signature, exp, nbf, optionally iss and aud)
and sets the tenant claim for the transaction. With tenant_guard.require_token = on nothing else
can set the claim: a SQL injection in the application cannot pick another tenant without the key.

    # once, as a superuser (the key never goes into a role or database setting):
    #   ALTER SYSTEM SET tenant_guard.token_keys = 'k1:<secret of at least 16 bytes>';
    #   ALTER SYSTEM SET tenant_guard.require_token = on;     -- optional, recommended
    #   SELECT pg_reload_conf();
    TG_TOKEN_KID=k1 TG_TOKEN_SECRET=... PGHOST=... PGUSER=app PGDATABASE=... python3 token_example.py
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time

import psycopg


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_tenant_token(tenant_id, kid, secret, ttl_seconds=60, now=None):
    """A compact JWS (HS256): base64url(header).base64url(payload).base64url(HMAC-SHA256).
    exp is required by tenant_guard; keep tokens short-lived (seconds to minutes)."""
    now = int(time.time()) if now is None else now
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    payload = {"tenant_id": tenant_id, "iat": now, "exp": now + ttl_seconds}
    signed = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    signature = hmac.new(secret.encode(), signed.encode("ascii"), hashlib.sha256).digest()
    return signed + "." + b64url(signature)


def read_invoices(conn, token):
    with conn.transaction():
        # Always a bind parameter, never a literal in the SQL text: PostgreSQL logs the text of
        # failing statements (and shows running ones in pg_stat_activity).
        conn.execute("SELECT tenant_guard.set_tenant_token(%s)", (token,))
        return conn.execute("SELECT tenant_id, amount FROM invoices ORDER BY id").fetchall()


def attempt(conn, label, fn):
    try:
        print(f"{label} -> {json.dumps([list(r) for r in fn()])}")
    except psycopg.Error as err:
        print(f"{label} -> refused {err.sqlstate}: {err.diag.message_primary}")


def main():
    kid = os.environ.get("TG_TOKEN_KID")
    secret = os.environ.get("TG_TOKEN_SECRET")
    if not kid or not secret:
        sys.exit("set TG_TOKEN_KID and TG_TOKEN_SECRET (the key configured in tenant_guard.token_keys)")

    with psycopg.connect(autocommit=True, prepare_threshold=None) as conn:
        for tenant in ("acme", "globex"):
            token = sign_tenant_token(tenant, kid, secret)
            attempt(conn, tenant, lambda: read_invoices(conn, token))

        expired = sign_tenant_token("acme", kid, secret, now=int(time.time()) - 3600)
        attempt(conn, "expired token", lambda: read_invoices(conn, expired))

        header, _, signature = sign_tenant_token("acme", kid, secret).split(".")
        forged_payload = b64url(json.dumps({"tenant_id": "globex", "exp": int(time.time()) + 60}).encode())
        attempt(conn, "forged token", lambda: read_invoices(conn, f"{header}.{forged_payload}.{signature}"))

        wrong_key = sign_tenant_token("globex", kid, "not-the-configured-secret")
        attempt(conn, "token signed with another key", lambda: read_invoices(conn, wrong_key))

        # Setting the claim directly: allowed unless tenant_guard.require_token = on.
        def direct():
            with conn.transaction():
                conn.execute("SELECT set_config('tenant_guard.tenant_id', %s, true)", ("globex",))
                return conn.execute("SELECT tenant_id, amount FROM invoices ORDER BY id").fetchall()

        attempt(conn, "direct set_config", direct)


if __name__ == "__main__":
    main()
