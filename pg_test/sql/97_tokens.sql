-- 97_tokens: claims you can trust. tenant_guard.set_tenant_token(token) verifies a compact JWS
-- (HS256/HS384/HS512) against keys that only a superuser configures and nobody else can read
-- (tenant_guard.token_keys: comma-separated kid:secret), checks exp and nbf with a leeway
-- (tenant_guard.token_leeway), optionally iss and aud, takes the tenant from a configurable claim
-- (tenant_guard.token_tenant_claim, a name or a dotted path) and sets it transaction-locally.
-- Every rejection is 42501 with words that never echo the token, and an audit event
-- token_rejected with the reason code and no query text. tenant_guard.require_token = on makes
-- the token the only way to set the claim. tenant_guard.jwt_claims_path takes the tenant from
-- PostgREST's request.jwt.claims (JSON, set per transaction) with the same scope rules.
-- Contract: "The guard" items 4 and 5, "Errors"; issue 6. Tables and helpers start with tk_.
--
-- Tokens are signed here in SQL with pgcrypto's hmac(). In an application they are signed on the
-- server and passed as a bind parameter: SELECT tenant_guard.set_tenant_token($1) (docs/claims.md).
\set VERBOSITY default
\set SHOW_CONTEXT never

-- ---------------------------------------------------------------------------------------------
-- Fixture
-- ---------------------------------------------------------------------------------------------
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
RESET client_min_messages;
SET ROLE tg_owner;
CREATE TABLE tk_docs (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    body      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
INSERT INTO tk_docs VALUES ('acme', 1, 'acme one'), ('acme', 2, 'acme two'),
                           ('globex', 1, 'globex one'), ('42', 1, 'tenant forty-two');
SELECT tenant_guard.protect('tk_docs');
GRANT SELECT, INSERT ON tk_docs TO tg_app;
RESET ROLE;

-- base64url without padding
CREATE FUNCTION tk_b64url(bytea) RETURNS text LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT translate(rtrim(replace(encode($1, 'base64'), E'\n', ''), '='), '+/', '-_') $$;
CREATE FUNCTION tk_b64url(text) RETURNS text LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT tk_b64url(convert_to($1, 'UTF8')) $$;
-- a compact JWS: header.payload signed with HMAC-<hash> (sha256, sha384, sha512)
CREATE FUNCTION tk_sign(header text, payload text, secret bytea, hash text DEFAULT 'sha256')
RETURNS text LANGUAGE sql IMMUTABLE
AS $$
    SELECT signed || '.' || tk_b64url(hmac(convert_to(signed, 'UTF8'), secret, hash))
      FROM (SELECT tk_b64url(header) || '.' || tk_b64url(payload) AS signed) s
$$;
CREATE FUNCTION tk_sign(header jsonb, payload jsonb, secret text, hash text DEFAULT 'sha256')
RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT tk_sign(header::text, payload::text, convert_to(secret, 'UTF8'), hash) $$;
-- seconds since the epoch, now (the extension checks exp and nbf against the clock)
CREATE FUNCTION tk_now() RETURNS bigint LANGUAGE sql VOLATILE
AS $$ SELECT extract(epoch FROM clock_timestamp())::bigint $$;
-- the test's two keys
CREATE FUNCTION tk_secret(kid text) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT CASE kid WHEN 'k1' THEN 'tk-first-secret-0123456789'
                      WHEN 'k2' THEN 'tk-second-secret-0123456789'
                      ELSE 'tk-unknown-secret-0123456789' END $$;
-- a good HS256 token for a tenant, signed with key kid, valid for 5 minutes
CREATE FUNCTION tk_tok(tenant text, kid text DEFAULT 'k1') RETURNS text LANGUAGE sql VOLATILE
AS $$ SELECT tk_sign(jsonb_build_object('alg', 'HS256', 'typ', 'JWT', 'kid', kid),
                     jsonb_build_object('tenant_id', tenant, 'exp', tk_now() + 300),
                     tk_secret(kid)) $$;
-- a token with this payload (and exp in 5 minutes unless the payload has its own exp), signed
-- with k1 under the header alg (the signature is always HMAC-<hash>)
CREATE FUNCTION tk_with(payload jsonb, alg text DEFAULT 'HS256', hash text DEFAULT 'sha256')
RETURNS text LANGUAGE sql VOLATILE
AS $$ SELECT tk_sign(jsonb_build_object('alg', alg, 'kid', 'k1'),
                     jsonb_build_object('exp', tk_now() + 300) || payload,
                     tk_secret('k1'), hash) $$;
-- waits (up to 5 s) until `expected` token_rejected events are written, then lists them
CREATE FUNCTION tk_events(expected int)
RETURNS TABLE (n bigint, reason text, command text, relations text[], tenant text, role text,
               query_is_null boolean)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..50 LOOP
        EXIT WHEN (SELECT count(*) FROM tenant_guard.audit_log a
                    WHERE a.event = 'token_rejected') >= expected;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN QUERY
        SELECT row_number() OVER (ORDER BY a.id), a.reason, a.command, a.relations, a.tenant,
               a.role, a.query IS NULL
          FROM tenant_guard.audit_log a
         WHERE a.event = 'token_rejected'
         ORDER BY a.id;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- 1. Keys: only a superuser configures them, and nobody else can read them
-- ---------------------------------------------------------------------------------------------
SELECT tenant_guard.set_tenant_token(tk_tok('acme'));          -- refused: no keys configured
\echo :LAST_ERROR_SQLSTATE
-- a superuser's session SET is accepted (production: ALTER SYSTEM or postgresql.conf)
SET tenant_guard.token_keys = 'k1:tk-first-secret-0123456789, k2:tk-second-secret-0123456789';
SET tenant_guard.token_keys = 'k1:short';                       -- refused: secrets of 16 bytes at least
\echo :LAST_ERROR_SQLSTATE
SET tenant_guard.token_keys = 'k1:base64:***';                  -- refused: not base64
\echo :LAST_ERROR_SQLSTATE
-- role and database settings live in a catalog every role can read: refused
ALTER ROLE tg_app SET tenant_guard.token_keys = 'k9:tk-stored-secret-0123456789';
\echo :LAST_ERROR_SQLSTATE
ALTER ROLE tg_app IN DATABASE regression SET tenant_guard.token_keys = 'k9:tk-stored-secret-0123456789';
\echo :LAST_ERROR_SQLSTATE
ALTER DATABASE regression SET tenant_guard.token_keys = 'k9:tk-stored-secret-0123456789';
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS stored_keys FROM pg_db_role_setting
 WHERE array_to_string(setconfig, ',') LIKE '%token_keys%';                         -- 0

SET ROLE tg_app;
SHOW tenant_guard.token_keys;                                   -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT current_setting('tenant_guard.token_keys');              -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT current_setting('tenant_guard.token_keys', true);        -- refused (missing_ok does not help)
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS listed FROM pg_settings WHERE name = 'tenant_guard.token_keys';  -- 0
SELECT count(*) AS leaked FROM pg_settings
 WHERE setting LIKE '%tk-first-secret%' OR setting LIKE '%tk-second-secret%';       -- 0
SELECT count(*) AS leaked FROM pg_show_all_settings()
 WHERE setting LIKE '%tk-first-secret%' OR setting LIKE '%tk-second-secret%';       -- 0
SET tenant_guard.token_keys = 'k1:tk-attacker-secret-0123456789';                   -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('tenant_guard.token_keys', 'k1:tk-attacker-secret-0123456789', true);  -- refused
\echo :LAST_ERROR_SQLSTATE
RESET tenant_guard.token_keys;                                  -- refused
\echo :LAST_ERROR_SQLSTATE
-- nor can the application loosen the rules
SET tenant_guard.token_leeway = 3600;                           -- refused
\echo :LAST_ERROR_SQLSTATE
SET tenant_guard.token_tenant_claim = 'sub';                    -- refused
\echo :LAST_ERROR_SQLSTATE
SET tenant_guard.jwt_claims_path = 'tenant_id';                 -- refused
\echo :LAST_ERROR_SQLSTATE
-- status() and explain() say nothing about the keys
SELECT strpos(s::text, 'tk-first-secret') + strpos(s::text, 'tk-second-secret') AS reveals_keys
  FROM tenant_guard.status() s;                                 -- 0
SELECT coalesce(sum(strpos(e::text, 'tk-first-secret') + strpos(e::text, 'tk-second-secret')), 0)
       AS reveals_keys
  FROM tenant_guard.explain('tk_docs') e;                       -- 0
RESET ROLE;
SELECT strpos(s::text, 'tk-first-secret') + strpos(s::text, 'tk-second-secret') AS reveals_keys
  FROM tenant_guard.status() s;                                 -- 0, for a superuser too

-- ---------------------------------------------------------------------------------------------
-- 2. An accepted token sets the claim for its transaction only
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_app;
BEGIN;
SELECT tenant_guard.set_tenant_token(tk_tok('acme'));          -- allowed: returns the tenant
SELECT tenant_guard.current_tenant();                           -- acme
SHOW tenant_guard.tenant_id;                                    -- acme
SELECT * FROM tk_docs ORDER BY tenant_id, id;                   -- allowed: sees only acme
SELECT count(*) AS globex_rows FROM tk_docs WHERE tenant_id = 'globex';  -- 0
INSERT INTO tk_docs VALUES ('acme', 3, 'written under a token');         -- allowed
INSERT INTO tk_docs VALUES ('globex', 3, 'written for another tenant');  -- refused: row policy
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT tenant_guard.set_tenant_token(tk_tok('acme'));
SELECT count(*) AS acme_rows FROM tk_docs;                      -- 2
COMMIT;
SELECT tenant_guard.current_tenant() IS NULL AS no_claim_after_commit;   -- t
SHOW tenant_guard.tenant_id;                                    -- empty
SELECT * FROM tk_docs;                                          -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
-- in autocommit the token's claim ends with its own statement
SELECT tenant_guard.set_tenant_token(tk_tok('acme'));
SELECT * FROM tk_docs;                                          -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
-- a savepoint rolled back takes the claim with it
BEGIN;
SAVEPOINT s1;
SELECT tenant_guard.set_tenant_token(tk_tok('acme'));
ROLLBACK TO SAVEPOINT s1;
SELECT tenant_guard.current_tenant() IS NULL AS no_claim;       -- t
COMMIT;
-- a token cannot switch tenants in a transaction that has touched a protected table
BEGIN;
SELECT tenant_guard.set_tenant_token(tk_tok('acme'));
SELECT count(*) AS acme_rows FROM tk_docs;                      -- 2
SELECT tenant_guard.set_tenant_token(tk_tok('globex'));
SELECT count(*) FROM tk_docs;                                   -- refused: tenant switch
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- ---------------------------------------------------------------------------------------------
-- 3. Key rotation with kid, and tokens without kid
-- ---------------------------------------------------------------------------------------------
BEGIN;
SELECT tenant_guard.set_tenant_token(tk_tok('acme', 'k1'));    -- allowed: old key
COMMIT;
BEGIN;
SELECT tenant_guard.set_tenant_token(tk_tok('acme', 'k2'));    -- allowed: new key
COMMIT;
BEGIN;   -- no kid: any configured key may have signed it
SELECT tenant_guard.set_tenant_token(tk_sign('{"alg":"HS256"}', jsonb_build_object('tenant_id', 'acme', 'exp', tk_now() + 300), tk_secret('k2')));
COMMIT;
-- refused: bad signature (no kid, and no configured key signed it)
SELECT tenant_guard.set_tenant_token(tk_sign('{"alg":"HS256"}', jsonb_build_object('tenant_id', 'acme', 'exp', tk_now() + 300), tk_secret('k3')));
\echo :LAST_ERROR_SQLSTATE
-- refused: bad signature (kid k1, signed with k2's secret)
SELECT tenant_guard.set_tenant_token(tk_sign('{"alg":"HS256","kid":"k1"}', jsonb_build_object('tenant_id', 'acme', 'exp', tk_now() + 300), tk_secret('k2')));
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_tok('acme', 'k3'));    -- refused: unknown kid
\echo :LAST_ERROR_SQLSTATE
-- refused: bad signature (a forged payload under acme's genuine header and signature)
SELECT tenant_guard.set_tenant_token(split_part(tk_tok('acme'), '.', 1) || '.' ||
                                     tk_b64url(jsonb_build_object('tenant_id', 'globex', 'exp', tk_now() + 300)::text) || '.' ||
                                     split_part(tk_tok('acme'), '.', 3));
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- rotation, step 2: k1 retired
SET tenant_guard.token_keys = 'k2:tk-second-secret-0123456789';
SET ROLE tg_app;
SELECT tenant_guard.set_tenant_token(tk_tok('acme', 'k1'));    -- refused: k1 is no longer configured
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT tenant_guard.set_tenant_token(tk_tok('acme', 'k2'));    -- allowed
COMMIT;
RESET ROLE;
-- a key without kid, and a binary key written in base64 (bytes 0x00..0x1f)
SET tenant_guard.token_keys = 'tk-first-secret-0123456789, kb:base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
SET ROLE tg_app;
BEGIN;   -- no kid, the key without kid
SELECT tenant_guard.set_tenant_token(tk_sign('{"alg":"HS256"}', jsonb_build_object('tenant_id', 'acme', 'exp', tk_now() + 300), tk_secret('k1')));
COMMIT;
SELECT tenant_guard.set_tenant_token(tk_tok('acme', 'k1'));    -- refused: kid k1 names no key
\echo :LAST_ERROR_SQLSTATE
BEGIN;   -- kid kb, the binary key
SELECT tenant_guard.set_tenant_token(tk_sign('{"alg":"HS256","kid":"kb"}', jsonb_build_object('tenant_id', 'globex', 'exp', tk_now() + 300)::text, decode('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex')));
SELECT * FROM tk_docs ORDER BY id;                              -- allowed: sees only globex
COMMIT;
RESET ROLE;
SET tenant_guard.token_keys = 'k1:tk-first-secret-0123456789, k2:tk-second-secret-0123456789';
SET ROLE tg_app;

-- ---------------------------------------------------------------------------------------------
-- 4. HS384 and HS512
-- ---------------------------------------------------------------------------------------------
BEGIN;
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme"}', 'HS384', 'sha384'));  -- allowed
COMMIT;
BEGIN;
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme"}', 'HS512', 'sha512'));  -- allowed
SELECT count(*) AS acme_rows FROM tk_docs;                      -- 2
COMMIT;
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme"}', 'HS384', 'sha256'));  -- refused: header says HS384, signed with HS256
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme"}', 'HS256', 'sha512'));  -- refused
\echo :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------------------------------------
-- 5. Time: exp, nbf, leeway (default 30 s)
-- ---------------------------------------------------------------------------------------------
SHOW tenant_guard.token_leeway;
SELECT tenant_guard.set_tenant_token(tk_with(jsonb_build_object('tenant_id', 'acme', 'exp', tk_now() - 120)));  -- refused: expired
\echo :LAST_ERROR_SQLSTATE
BEGIN;   -- expired 10 s ago: within the leeway
SELECT tenant_guard.set_tenant_token(tk_with(jsonb_build_object('tenant_id', 'acme', 'exp', tk_now() - 10)));
COMMIT;
SELECT tenant_guard.set_tenant_token(tk_with(jsonb_build_object('tenant_id', 'acme', 'nbf', tk_now() + 120)));  -- refused: not valid yet
\echo :LAST_ERROR_SQLSTATE
BEGIN;   -- valid 10 s from now: within the leeway
SELECT tenant_guard.set_tenant_token(tk_with(jsonb_build_object('tenant_id', 'acme', 'nbf', tk_now() + 10)));
COMMIT;
SELECT tenant_guard.set_tenant_token(tk_sign('{"alg":"HS256","kid":"k1"}', '{"tenant_id":"acme"}', tk_secret('k1')));  -- refused: no exp
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_with('{"exp":"tomorrow","tenant_id":"acme"}'));  -- refused: exp is not a number
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET tenant_guard.token_leeway = 0;
SET ROLE tg_app;
SELECT tenant_guard.set_tenant_token(tk_with(jsonb_build_object('tenant_id', 'acme', 'exp', tk_now() - 10)));  -- refused: expired, no leeway
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
RESET tenant_guard.token_leeway;
SET ROLE tg_app;

-- ---------------------------------------------------------------------------------------------
-- 6. Algorithms other than HMAC-SHA2
-- ---------------------------------------------------------------------------------------------
-- refused: alg none, unsigned
SELECT tenant_guard.set_tenant_token(tk_b64url('{"alg":"none"}') || '.' || tk_b64url(jsonb_build_object('tenant_id', 'acme', 'exp', tk_now() + 300)::text) || '.');
\echo :LAST_ERROR_SQLSTATE
-- refused: alg none, with a valid HMAC signature all the same
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme"}', 'none'));
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme"}', 'RS256'));  -- refused: RS256
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme"}', 'hs256'));  -- refused: names are case-sensitive
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_sign('{"typ":"JWT"}', jsonb_build_object('tenant_id', 'acme', 'exp', tk_now() + 300), tk_secret('k1')));  -- refused: no alg
\echo :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------------------------------------
-- 7. Malformed tokens
-- ---------------------------------------------------------------------------------------------
SELECT tenant_guard.set_tenant_token('abc');                    -- refused: one part
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(split_part(tk_tok('acme'), '.', 1) || '.' || split_part(tk_tok('acme'), '.', 2));  -- refused: two parts
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_tok('acme') || '.' || split_part(tk_tok('acme'), '.', 3));  -- refused: four parts
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token('!!!.' || split_part(tk_tok('acme'), '.', 2) || '.' || split_part(tk_tok('acme'), '.', 3));  -- refused: header not base64
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_tok('acme') || '*');    -- refused: signature not base64
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_sign('not json', jsonb_build_object('tenant_id', 'acme', 'exp', tk_now() + 300)::text, convert_to(tk_secret('k1'), 'UTF8')));  -- refused: header not JSON
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_sign('["HS256"]', jsonb_build_object('tenant_id', 'acme', 'exp', tk_now() + 300)::text, convert_to(tk_secret('k1'), 'UTF8')));  -- refused: header not an object
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_sign('{"alg":"HS256","kid":"k1"}', 'not json', convert_to(tk_secret('k1'), 'UTF8')));  -- refused: payload not JSON (signature valid)
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_sign('{"alg":"HS256","kid":7}', jsonb_build_object('tenant_id', 'acme', 'exp', tk_now() + 300), tk_secret('k1')));  -- refused: kid not a string
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_sign('{"alg":"HS256","kid":"k1","crit":["exp"]}', jsonb_build_object('tenant_id', 'acme', 'exp', tk_now() + 300), tk_secret('k1')));  -- refused: crit
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(NULL);                     -- refused: NULL
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token('');                       -- refused: empty
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token('   ');                    -- refused: blank
\echo :LAST_ERROR_SQLSTATE
-- refused: oversized (checked before parsing), although correctly signed
SELECT length(tk_with(jsonb_build_object('tenant_id', 'acme', 'pad', repeat('x', 6200)))) > 8192 AS over_8192;
SELECT tenant_guard.set_tenant_token(tk_with(jsonb_build_object('tenant_id', 'acme', 'pad', repeat('x', 6200))));
\echo :LAST_ERROR_SQLSTATE
-- allowed: just below the limit
SELECT length(tk_with(jsonb_build_object('tenant_id', 'acme', 'pad', repeat('x', 5900)))) <= 8192 AS under_8192;
BEGIN;
SELECT tenant_guard.set_tenant_token(tk_with(jsonb_build_object('tenant_id', 'acme', 'pad', repeat('x', 5900))));
COMMIT;

-- ---------------------------------------------------------------------------------------------
-- 8. The tenant claim: missing, empty, a number, too long, at a nested path
-- ---------------------------------------------------------------------------------------------
SELECT tenant_guard.set_tenant_token(tk_with('{"sub":"user-1"}'));       -- refused: no tenant
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":""}'));       -- refused: empty tenant
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":{"id":"acme"}}'));  -- refused: not a string
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_with(jsonb_build_object('tenant_id', repeat('a', 300))));  -- refused: too long
\echo :LAST_ERROR_SQLSTATE
BEGIN;   -- an integer tenant
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":42}'));
SELECT * FROM tk_docs;                                          -- allowed: sees only tenant 42
COMMIT;
RESET ROLE;
SET tenant_guard.token_tenant_claim = 'app_metadata.tenant_id';
SET ROLE tg_app;
BEGIN;
SELECT tenant_guard.set_tenant_token(tk_with('{"sub":"user-1","app_metadata":{"tenant_id":"globex"}}'));  -- allowed
SELECT * FROM tk_docs;                                          -- sees only globex
COMMIT;
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme"}'));   -- refused: not at the configured path
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_with('{"app_metadata":{"tenant":"acme"}}'));  -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_with('{"app_metadata":"acme"}'));  -- refused
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
RESET tenant_guard.token_tenant_claim;

-- ---------------------------------------------------------------------------------------------
-- 9. Issuer and audience, when configured
-- ---------------------------------------------------------------------------------------------
SET tenant_guard.token_issuer = 'https://auth.example.com';
SET tenant_guard.token_audience = 'api';
SET ROLE tg_app;
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme","aud":"api"}'));  -- refused: no iss
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme","aud":"api","iss":"https://evil.example.com"}'));  -- refused: wrong iss
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme","iss":"https://auth.example.com"}'));  -- refused: no aud
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme","iss":"https://auth.example.com","aud":"web"}'));  -- refused: wrong aud
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme","iss":"https://auth.example.com","aud":["web","admin"]}'));  -- refused
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme","iss":"https://auth.example.com","aud":"api"}'));  -- allowed
COMMIT;
BEGIN;
SELECT tenant_guard.set_tenant_token(tk_with('{"tenant_id":"acme","iss":"https://auth.example.com","aud":["web","api"]}'));  -- allowed
COMMIT;
RESET ROLE;
RESET tenant_guard.token_issuer;
RESET tenant_guard.token_audience;

-- ---------------------------------------------------------------------------------------------
-- 10. The audit trail: one token_rejected event per rejection, with its reason code; no query
--     text, and never the token or a key
-- ---------------------------------------------------------------------------------------------
SELECT * FROM tk_events(45);
-- a token rejected once more, kept in a variable to look for it afterwards
SELECT tk_sign('{"alg":"HS256","kid":"k1"}', jsonb_build_object('tenant_id', 'acme', 'exp', tk_now() + 300, 'nonce', 'tk-needle'), tk_secret('k2')) AS tk_rejected \gset
SET ROLE tg_app;
SELECT tenant_guard.set_tenant_token(:'tk_rejected');           -- refused: bad signature
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS events FROM tk_events(46);                   -- 46
SELECT count(*) AS rows_with_token
  FROM tenant_guard.audit_log a
 WHERE strpos(a::text, left(:'tk_rejected', 20)) > 0
    OR strpos(a::text, split_part(:'tk_rejected', '.', 2)) > 0
    OR strpos(a::text, right(:'tk_rejected', 20)) > 0;          -- 0
SELECT count(*) AS rows_with_key
  FROM tenant_guard.audit_log a
 WHERE strpos(a::text, 'tk-first-secret') > 0 OR strpos(a::text, 'tk-second-secret') > 0
    OR strpos(a::text, 'tk-needle') > 0;                         -- 0
-- status() counts nothing that would reveal a key either
SELECT strpos(s::text, 'tk-first-secret') + strpos(s::text, 'tk-second-secret')
       + strpos(s::text, split_part(:'tk_rejected', '.', 3)) AS reveals
  FROM tenant_guard.status() s;                                 -- 0

-- ---------------------------------------------------------------------------------------------
-- 11. require_token = on: the token is the only way to set the claim
-- ---------------------------------------------------------------------------------------------
SET tenant_guard.require_token = on;
SET ROLE tg_app;
SET tenant_guard.tenant_id = 'acme';                            -- refused
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';                      -- refused
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT set_config('tenant_guard.tenant_id', 'acme', true);      -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('tenant_guard.tenant_id', 'acme', false);     -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant('acme');                         -- refused
\echo :LAST_ERROR_SQLSTATE
SHOW tenant_guard.tenant_id;                                    -- still empty
-- clearing the claim is always allowed
SET tenant_guard.tenant_id = '';
RESET tenant_guard.tenant_id;
SELECT set_config('tenant_guard.tenant_id', '', true);
SELECT tenant_guard.clear_tenant();
-- the token still works
BEGIN;
SELECT tenant_guard.set_tenant_token(tk_tok('globex'));
SELECT * FROM tk_docs;                                          -- allowed: sees only globex
COMMIT;
-- and the application cannot turn require_token off
SET tenant_guard.require_token = off;                           -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('tenant_guard.require_token', 'off', false);  -- refused
\echo :LAST_ERROR_SQLSTATE
RESET tenant_guard.require_token;                               -- refused
\echo :LAST_ERROR_SQLSTATE
SHOW tenant_guard.require_token;                                -- on
RESET ROLE;
SET tenant_guard.tenant_id = 'acme';                            -- refused for a superuser too
\echo :LAST_ERROR_SQLSTATE
RESET tenant_guard.require_token;
-- As a stored setting (the way to deploy it: postgresql.conf, ALTER SYSTEM, or a role default),
-- RESET ALL and DISCARD ALL in the application's session do not turn it off.
ALTER ROLE tg_app SET tenant_guard.require_token = on;
\c - tg_app
SHOW tenant_guard.require_token;                                -- on
RESET ALL;
DISCARD ALL;
SHOW tenant_guard.require_token;                                -- on
SET tenant_guard.tenant_id = 'acme';                            -- refused
\echo :LAST_ERROR_SQLSTATE
\c - postgres
ALTER ROLE tg_app RESET tenant_guard.require_token;
-- (\c started a new session: the test's keys are configured again)
SET tenant_guard.token_keys = 'k1:tk-first-secret-0123456789, k2:tk-second-secret-0123456789';

-- ---------------------------------------------------------------------------------------------
-- 12. PostgREST / Supabase: the tenant from request.jwt.claims at a configured path
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_app;
BEGIN;   -- not configured: request.jwt.claims means nothing to the guard
SELECT set_config('request.jwt.claims', '{"role":"authenticated","app_metadata":{"tenant_id":"acme"}}', true) IS NOT NULL AS set;
SELECT * FROM tk_docs;                                          -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SET tenant_guard.jwt_claims_path = 'app_metadata.tenant_id';
SET ROLE tg_app;
-- what PostgREST does for each request: set_config('request.jwt.claims', <verified claims>, true)
BEGIN;
SELECT set_config('request.jwt.claims', '{"role":"authenticated","sub":"user-1","app_metadata":{"tenant_id":"acme"}}', true) IS NOT NULL AS set;
SELECT tenant_guard.current_tenant();                           -- acme
SELECT * FROM tk_docs ORDER BY id;                              -- allowed: sees only acme
SELECT count(*) AS globex_rows FROM tk_docs WHERE tenant_id = 'globex';  -- 0
COMMIT;
SELECT current_setting('request.jwt.claims', true) = '' AS claims_gone;  -- t
SELECT tenant_guard.current_tenant() IS NULL AS no_claim;       -- t
SELECT * FROM tk_docs;                                          -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT set_config('request.jwt.claims', '{"role":"authenticated","app_metadata":{"tenant_id":"globex"}}', true) IS NOT NULL AS set;
SELECT * FROM tk_docs;                                          -- allowed: sees only globex
COMMIT;
-- a session-level value left by an earlier transaction is stale
SELECT set_config('request.jwt.claims', '{"app_metadata":{"tenant_id":"acme"}}', false) IS NOT NULL AS set;
SELECT tenant_guard.current_tenant() IS NULL AS no_claim;       -- t
SELECT * FROM tk_docs;                                          -- refused: stale
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT * FROM tk_docs;                                          -- refused: stale in a new transaction too
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- set at session level inside the transaction that uses it: counts in that transaction only
BEGIN;
SELECT set_config('request.jwt.claims', '{"app_metadata":{"tenant_id":"globex"}}', false) IS NOT NULL AS set;
SELECT count(*) AS globex_rows FROM tk_docs;                    -- 1
COMMIT;
SELECT * FROM tk_docs;                                          -- refused: stale
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('request.jwt.claims', '', false) IS NOT NULL AS cleared;
-- malformed JSON, a missing path, a value that is not a tenant: no claim
BEGIN;
SELECT set_config('request.jwt.claims', '{"app_metadata":{"tenant_id":"acme"', true) IS NOT NULL AS set;
SELECT * FROM tk_docs;                                          -- refused: not JSON
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', '{"role":"authenticated","tenant_id":"acme"}', true) IS NOT NULL AS set;
SELECT * FROM tk_docs;                                          -- refused: not at the path
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', '{"app_metadata":{"tenant_id":{"id":"acme"}}}', true) IS NOT NULL AS set;
SELECT * FROM tk_docs;                                          -- refused: an object, not a tenant
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', '{"app_metadata":{"tenant_id":""}}', true) IS NOT NULL AS set;
SELECT * FROM tk_docs;                                          -- refused: empty
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', '["app_metadata"]', true) IS NOT NULL AS set;
SELECT * FROM tk_docs;                                          -- refused: not an object
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;   -- a numeric tenant
SELECT set_config('request.jwt.claims', '{"app_metadata":{"tenant_id":42}}', true) IS NOT NULL AS set;
SELECT * FROM tk_docs;                                          -- allowed: sees only tenant 42
COMMIT;
-- the native claim, when set, takes precedence
BEGIN;
SELECT set_config('request.jwt.claims', '{"app_metadata":{"tenant_id":"acme"}}', true) IS NOT NULL AS set;
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT tenant_guard.current_tenant();                           -- globex
SELECT * FROM tk_docs;                                          -- sees only globex
COMMIT;
-- ... and a stale native claim is not replaced by the JWT: the connection fails closed
SET tenant_guard.tenant_id = 'globex';
BEGIN;
SELECT set_config('request.jwt.claims', '{"app_metadata":{"tenant_id":"acme"}}', true) IS NOT NULL AS set;
SELECT * FROM tk_docs;                                          -- refused: stale
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET tenant_guard.tenant_id;
-- switching tenants through the JWT after touching a protected table is refused too
BEGIN;
SELECT set_config('request.jwt.claims', '{"app_metadata":{"tenant_id":"acme"}}', true) IS NOT NULL AS set;
SELECT count(*) AS acme_rows FROM tk_docs;                      -- 2
SELECT set_config('request.jwt.claims', '{"app_metadata":{"tenant_id":"globex"}}', true) IS NOT NULL AS set;
SELECT count(*) FROM tk_docs;                                   -- refused: tenant switch
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
-- A changed path applies at once, also to claims identical to earlier ones (an operator who
-- moves the tenant from a user-editable place to app_metadata must not be ignored by
-- long-lived connections that keep receiving the same claims).
SET tenant_guard.jwt_claims_path = 'tenant_id';
SET ROLE tg_app;
BEGIN;
SELECT set_config('request.jwt.claims', '{"tenant_id":"globex","app_metadata":{"tenant_id":"acme"}}', true) IS NOT NULL AS set;
SELECT tenant_guard.current_tenant();                           -- globex
COMMIT;
RESET ROLE;
SET tenant_guard.jwt_claims_path = 'app_metadata.tenant_id';
SET ROLE tg_app;
BEGIN;
SELECT set_config('request.jwt.claims', '{"tenant_id":"globex","app_metadata":{"tenant_id":"acme"}}', true) IS NOT NULL AS set;
SELECT tenant_guard.current_tenant();                           -- acme: the new path
COMMIT;
RESET ROLE;
-- require_token = on: only a signed token sets the claim. request.jwt.claims can be set by any
-- SQL client (set_config), so with require_token = on it must not provide a tenant either.
SET tenant_guard.require_token = on;
SET ROLE tg_app;
BEGIN;
SELECT set_config('request.jwt.claims', '{"app_metadata":{"tenant_id":"acme"}}', true) IS NOT NULL AS set;
SELECT tenant_guard.current_tenant() IS NULL AS no_claim;       -- t: an unsigned claim does not count
ROLLBACK;
BEGIN;
SELECT tenant_guard.set_tenant_token(tk_tok('globex'));         -- the token still works
SELECT * FROM tk_docs;                                          -- allowed: sees only globex
COMMIT;
RESET ROLE;
RESET tenant_guard.require_token;
RESET tenant_guard.jwt_claims_path;

-- ---------------------------------------------------------------------------------------------
-- Clean-up
-- ---------------------------------------------------------------------------------------------
RESET tenant_guard.token_keys;
SET ROLE tg_owner;
SELECT tenant_guard.unprotect('tk_docs', '97_tokens clean-up');
DROP TABLE tk_docs;
RESET ROLE;
