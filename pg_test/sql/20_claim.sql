-- 20_claim: the tenant claim tenant_guard.tenant_id and its helpers: where a claim may come from,
-- how long it lasts (claim_scope), what counts as unset, switching tenants, and claims that do not
-- fit the tenant column's type. Tables of this file start with c_.
\set VERBOSITY default
\set SHOW_CONTEXT never

SET ROLE tg_owner;
CREATE TABLE c_invoices (id bigint NOT NULL, tenant_id text NOT NULL, amount numeric NOT NULL,
                         PRIMARY KEY (tenant_id, id));
-- two tenants and a row whose tenant is '' (a value of a NOT NULL text column; no claim reaches it)
INSERT INTO c_invoices VALUES (1, 'acme', 10), (2, 'acme', 20), (3, 'globex', 30), (4, '', 40);
CREATE TABLE c_uuid (id bigint NOT NULL, tenant_id uuid NOT NULL, PRIMARY KEY (tenant_id, id));
INSERT INTO c_uuid VALUES (1, '00000000-0000-0000-0000-0000000000a1'), (2, '00000000-0000-0000-0000-0000000000b2');
CREATE TABLE c_bigint (id bigint NOT NULL, tenant_id bigint NOT NULL, PRIMARY KEY (tenant_id, id));
INSERT INTO c_bigint VALUES (1, 101), (2, 202);
CREATE TABLE c_integer (id bigint NOT NULL, tenant_id integer NOT NULL, PRIMARY KEY (tenant_id, id));
INSERT INTO c_integer VALUES (1, 101), (2, 202);
GRANT SELECT, INSERT, UPDATE, DELETE ON c_invoices, c_uuid, c_bigint, c_integer TO tg_app;
SELECT tenant_guard.protect('c_invoices');
SELECT tenant_guard.protect('c_uuid');
SELECT tenant_guard.protect('c_bigint');
SELECT tenant_guard.protect('c_integer');
RESET ROLE;
-- long claims, built once (the statements below show the variable, not the value)
SELECT repeat('x', 256) AS claim256, repeat('x', 257) AS claim257 \gset
SELECT current_database() AS dbname \gset

SET ROLE tg_app;
--------------------------------------------------------------------------------------------------
-- 1. set_tenant(), current_tenant(), clear_tenant()
--------------------------------------------------------------------------------------------------
-- allowed: NULL when no claim is set
SELECT tenant_guard.current_tenant() IS NULL AS unset;
SELECT claim FROM tenant_guard.status();
BEGIN;
-- allowed: set_tenant() returns the tenant and sets it for this transaction
SELECT tenant_guard.set_tenant('acme');
SELECT tenant_guard.current_tenant();
SELECT claim FROM tenant_guard.status();
-- allowed: sees only acme
SELECT id, tenant_id, amount FROM c_invoices ORDER BY id;
COMMIT;
-- after the transaction: no claim (set_tenant() is transaction-local)
SELECT tenant_guard.current_tenant() IS NULL AS unset;
SELECT current_setting('tenant_guard.tenant_id') AS raw_setting;
-- set_tenant() in its own (implicit) transaction does not last to the next statement
SELECT tenant_guard.set_tenant('acme');
SELECT tenant_guard.current_tenant() IS NULL AS unset;
-- refused: no claim
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
-- clear_tenant() drops the claim
BEGIN;
SELECT tenant_guard.set_tenant('acme');
SELECT tenant_guard.clear_tenant();
SELECT tenant_guard.current_tenant() IS NULL AS unset;
-- refused: no claim after clear_tenant()
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- clear_tenant() also clears a session-level value, for good
SET tenant_guard.tenant_id = 'acme';
SELECT tenant_guard.clear_tenant();
SELECT current_setting('tenant_guard.tenant_id') AS raw_setting;
SELECT claim FROM tenant_guard.status();
-- refused: set_tenant() needs a tenant
SELECT tenant_guard.set_tenant(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant('');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant('   ');
\echo :LAST_ERROR_SQLSTATE
-- refused: more than 256 bytes (257 ASCII bytes; 129 two-byte characters = 258 bytes)
SELECT tenant_guard.set_tenant(repeat('x', 257));
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_tenant(repeat('é', 129));
\echo :LAST_ERROR_SQLSTATE
-- refused: the same limit on SET and set_config()
SET tenant_guard.tenant_id = :'claim257';
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = :'claim257';
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT set_config('tenant_guard.tenant_id', repeat('x', 257), true);
\echo :LAST_ERROR_SQLSTATE
-- nothing was set by the refused calls
SELECT current_setting('tenant_guard.tenant_id') AS raw_setting;
-- allowed: exactly 256 bytes, by every route
BEGIN;
SELECT octet_length(tenant_guard.set_tenant(repeat('x', 256))) AS bytes;
SELECT octet_length(tenant_guard.current_tenant()) AS bytes;
SELECT count(*) AS rows FROM c_invoices;
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = :'claim256';
SELECT octet_length(tenant_guard.current_tenant()) AS bytes;
COMMIT;
BEGIN;
SELECT octet_length(set_config('tenant_guard.tenant_id', repeat('é', 128), true)) AS bytes;
SELECT octet_length(tenant_guard.current_tenant()) AS bytes;
COMMIT;

--------------------------------------------------------------------------------------------------
-- 2. No claim, no access; '' is unset; SET LOCAL; session-level SET and claim_scope = transaction
--------------------------------------------------------------------------------------------------
-- refused: no claim; the message names the table and the hint shows how to set the claim
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
-- refused: '' is unset, whether SET for the session or SET LOCAL
SET tenant_guard.tenant_id = '';
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = '';
SELECT tenant_guard.current_tenant() IS NULL AS unset;
SELECT id FROM c_invoices WHERE tenant_id = '';
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET tenant_guard.tenant_id;
-- SET LOCAL in a transaction: only that tenant's rows
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT tenant_guard.current_tenant();
-- allowed: sees only acme
SELECT id, tenant_id, amount FROM c_invoices ORDER BY id;
-- allowed: globex's and ''s rows are not there, even when asked for by key or tenant
SELECT count(*) AS rows FROM c_invoices WHERE tenant_id IN ('globex', '') OR id IN (3, 4);
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
-- allowed: sees only globex
SELECT id, tenant_id, amount FROM c_invoices ORDER BY id;
COMMIT;
-- refused: SET LOCAL ended with its transaction
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
-- a session-level SET in one statement, then a query in the next transaction: stale, refused
SET tenant_guard.tenant_id = 'acme';
SELECT current_setting('tenant_guard.tenant_id') AS raw_setting;
SELECT tenant_guard.current_tenant() IS NULL AS not_in_force;
SELECT claim FROM tenant_guard.status();
-- refused: stale claim, with the DETAIL that says why
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- refused: the policies themselves fail closed on a stale claim (a plain EXPLAIN is not guarded,
-- evaluating the policy's init-plan is)
SELECT tenant_guard.require_tenant();
\echo :LAST_ERROR_SQLSTATE
RESET tenant_guard.tenant_id;
-- refused: after RESET, plainly unset (no stale DETAIL)
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
-- a session-level SET inside a BEGIN block counts within that block
BEGIN;
SET tenant_guard.tenant_id = 'globex';
-- allowed: sees only globex
SELECT id, tenant_id FROM c_invoices ORDER BY id;
COMMIT;
-- refused: the same value in the next transaction is stale
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
RESET tenant_guard.tenant_id;
-- COMMIT AND CHAIN starts a new transaction: a session-level claim of the first one is stale in it
BEGIN;
SET tenant_guard.tenant_id = 'acme';
SELECT count(*) AS rows FROM c_invoices;
COMMIT AND CHAIN;
-- refused: stale
SELECT count(*) AS rows FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET tenant_guard.tenant_id;
-- set_config(..., false) behaves like SET, set_config(..., true) like SET LOCAL
SELECT set_config('tenant_guard.tenant_id', 'acme', false);
-- refused: stale
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
RESET tenant_guard.tenant_id;
BEGIN;
SELECT set_config('tenant_guard.tenant_id', 'globex', true);
-- allowed: sees only globex
SELECT id, tenant_id FROM c_invoices ORDER BY id;
COMMIT;
-- SET LOCAL then RESET in the same transaction
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
RESET tenant_guard.tenant_id;
SELECT tenant_guard.current_tenant() IS NULL AS unset;
-- refused: no claim after RESET
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- RESET ALL and DISCARD ALL never bring a tenant back
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
RESET ALL;
SELECT tenant_guard.current_tenant() IS NULL AS unset;
ROLLBACK;
SET tenant_guard.tenant_id = 'acme';
RESET ROLE;
DISCARD ALL;
SET ROLE tg_app;
SELECT current_setting('tenant_guard.tenant_id') AS raw_setting;
SELECT tenant_guard.current_tenant() IS NULL AS unset;
-- SAVEPOINT + SET LOCAL + ROLLBACK TO SAVEPOINT restores the earlier (unset) claim
BEGIN;
SAVEPOINT s1;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT tenant_guard.current_tenant();
ROLLBACK TO SAVEPOINT s1;
SELECT tenant_guard.current_tenant() IS NULL AS unset;
-- refused: no claim after the rollback to the savepoint
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- ... and an earlier claim of the same transaction comes back intact
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SAVEPOINT s1;
SET LOCAL tenant_guard.tenant_id = 'globex';
ROLLBACK TO SAVEPOINT s1;
SELECT tenant_guard.current_tenant();
-- allowed: sees only acme
SELECT id, tenant_id FROM c_invoices ORDER BY id;
COMMIT;
-- ... but a stale session claim restored by a savepoint rollback stays stale
SET tenant_guard.tenant_id = 'acme';
BEGIN;
SAVEPOINT s1;
SET LOCAL tenant_guard.tenant_id = 'globex';
ROLLBACK TO SAVEPOINT s1;
SELECT tenant_guard.current_tenant() IS NULL AS not_in_force;
-- refused: stale
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET tenant_guard.tenant_id;
-- a procedure that commits ends the claim it set before the COMMIT
RESET ROLE;
SET ROLE tg_owner;
CREATE PROCEDURE c_commit_midway() LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.set_config('tenant_guard.tenant_id', 'acme', false);
    RAISE NOTICE 'before commit: %', (SELECT pg_catalog.count(*) FROM public.c_invoices);
    COMMIT;
    RAISE NOTICE 'after commit: %', (SELECT pg_catalog.count(*) FROM public.c_invoices);
END
$$;
SET ROLE tg_app;
-- refused: the second query runs in a new transaction, where the claim is stale
CALL c_commit_midway();
\echo :LAST_ERROR_SQLSTATE
RESET tenant_guard.tenant_id;

--------------------------------------------------------------------------------------------------
-- 3. Claims from stored settings are refused: function SET clauses, ALTER ROLE/DATABASE, ALTER SYSTEM
--------------------------------------------------------------------------------------------------
RESET ROLE;
SET ROLE tg_owner;
-- refused: a function SET clause
CREATE FUNCTION c_as_acme() RETURNS bigint LANGUAGE sql
    SET tenant_guard.tenant_id = 'acme'
    AS 'SELECT count(*) FROM public.c_invoices';
\echo :LAST_ERROR_SQLSTATE
CREATE FUNCTION c_as_acme_plpgsql() RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
    SET tenant_guard.tenant_id TO 'acme'
    AS $$ BEGIN RETURN (SELECT count(*) FROM public.c_invoices); END $$;
\echo :LAST_ERROR_SQLSTATE
-- refused: SET ... FROM CURRENT while a tenant is set
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
CREATE FUNCTION c_from_current() RETURNS int LANGUAGE sql SET tenant_guard.tenant_id FROM CURRENT AS 'SELECT 1';
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- refused: ALTER FUNCTION ... SET
CREATE FUNCTION c_plain() RETURNS int LANGUAGE sql AS 'SELECT 1';
ALTER FUNCTION c_plain() SET tenant_guard.tenant_id = 'acme';
\echo :LAST_ERROR_SQLSTATE
SELECT proname, proconfig FROM pg_proc WHERE proname LIKE 'c\_%' ORDER BY proname;
RESET ROLE;
-- refused, even for a superuser: a function SET clause
CREATE FUNCTION c_as_acme_su() RETURNS int LANGUAGE sql SET tenant_guard.tenant_id = 'acme' AS 'SELECT 1';
\echo :LAST_ERROR_SQLSTATE
-- refused: role and database defaults
ALTER ROLE tg_app SET tenant_guard.tenant_id = 'acme';
\echo :LAST_ERROR_SQLSTATE
ALTER ROLE tg_app IN DATABASE :"dbname" SET tenant_guard.tenant_id = 'acme';
\echo :LAST_ERROR_SQLSTATE
ALTER ROLE ALL SET tenant_guard.tenant_id = 'acme';
\echo :LAST_ERROR_SQLSTATE
ALTER DATABASE :"dbname" SET tenant_guard.tenant_id = 'acme';
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS stored_claims FROM pg_db_role_setting WHERE array_to_string(setconfig, ',') LIKE '%tenant_guard.tenant_id%';
-- refused: ALTER SYSTEM (postgresql.auto.conf)
ALTER SYSTEM SET tenant_guard.tenant_id = 'acme';
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS file_claims FROM pg_file_settings WHERE name LIKE 'tenant_guard%';

--------------------------------------------------------------------------------------------------
-- 4. Switching tenant inside a transaction
--------------------------------------------------------------------------------------------------
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) AS rows FROM c_invoices;
-- allowed by itself: changing the setting
SET LOCAL tenant_guard.tenant_id = 'globex';
-- refused: the transaction already touched c_invoices as acme
SELECT count(*) AS rows FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT tenant_guard.set_tenant('acme');
SELECT count(*) AS rows FROM c_invoices;
SELECT tenant_guard.set_tenant('globex');
-- refused: switch through set_tenant(), and on another protected table too
SELECT count(*) AS rows FROM c_bigint;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SAVEPOINT s1;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) AS rows FROM c_invoices;
ROLLBACK TO SAVEPOINT s1;
SET LOCAL tenant_guard.tenant_id = 'globex';
-- refused: rows of acme were already read in this transaction; a savepoint rollback does not undo that
SELECT count(*) AS rows FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- switching back to the same tenant is no switch
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) AS rows FROM c_invoices;
SET LOCAL tenant_guard.tenant_id = 'globex';
SET LOCAL tenant_guard.tenant_id = 'acme';
-- allowed: still acme
SELECT count(*) AS rows FROM c_invoices;
COMMIT;
-- switching before touching a protected table is fine
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SET LOCAL tenant_guard.tenant_id = 'globex';
-- allowed: sees only globex
SELECT id, tenant_id FROM c_invoices ORDER BY id;
COMMIT;
-- and the next transaction may use another tenant
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
-- allowed: sees only acme
SELECT id, tenant_id FROM c_invoices ORDER BY id;
COMMIT;
-- after a refused switch and its rollback, the next transaction starts fresh
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT count(*) AS rows FROM c_invoices;
COMMIT;

--------------------------------------------------------------------------------------------------
-- 5. claim_scope, enforce and the other settings: only superusers; the prefix is reserved
--------------------------------------------------------------------------------------------------
-- refused: tg_app cannot change claim_scope
SET tenant_guard.claim_scope = session;
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('tenant_guard.claim_scope', 'session', false);
\echo :LAST_ERROR_SQLSTATE
SHOW tenant_guard.claim_scope;
-- a superuser sets claim_scope = session: a session-level claim from an earlier transaction counts
RESET ROLE;
SET tenant_guard.claim_scope = session;
SET ROLE tg_app;
SHOW tenant_guard.claim_scope;
SET tenant_guard.tenant_id = 'acme';
SELECT tenant_guard.current_tenant();
SELECT claim FROM tenant_guard.status();
-- allowed: sees only acme, in later transactions too
SELECT id, tenant_id FROM c_invoices ORDER BY id;
BEGIN;
SELECT id, tenant_id FROM c_invoices ORDER BY id;
COMMIT;
-- refused: '' is still unset in session scope
SET tenant_guard.tenant_id = '';
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
-- back to transaction scope: the session-level claim set under session scope is stale again
SET tenant_guard.tenant_id = 'acme';
RESET ROLE;
RESET tenant_guard.claim_scope;
SET ROLE tg_app;
SHOW tenant_guard.claim_scope;
-- refused: stale
SELECT id FROM c_invoices;
\echo :LAST_ERROR_SQLSTATE
RESET tenant_guard.tenant_id;
-- refused: tg_app cannot change enforce, by SET, SET LOCAL or set_config()
SET tenant_guard.enforce = off;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.enforce = shadow;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT set_config('tenant_guard.enforce', 'off', false);
\echo :LAST_ERROR_SQLSTATE
SHOW tenant_guard.enforce;
-- refused: tg_app cannot make itself trusted
SET tenant_guard.trusted_roles = 'tg_app';
\echo :LAST_ERROR_SQLSTATE
-- refused: misspelt settings under the reserved prefix are errors, not silent placeholders
SET tenant_guard.tenant = 'acme';
\echo :LAST_ERROR_SQLSTATE
SET tenant_guard.tenantid = 'acme';
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_ids = 'acme';
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT set_config('tenant_guard.tenant', 'acme', true);
\echo :LAST_ERROR_SQLSTATE
SHOW tenant_guard.tenant;
\echo :LAST_ERROR_SQLSTATE
SELECT current_setting('tenant_guard.tenant', true) IS NULL AS no_such_setting;
-- refused: the same for a superuser
RESET ROLE;
SET tenant_guard.tenant = 'acme';
\echo :LAST_ERROR_SQLSTATE
SET ROLE tg_app;

--------------------------------------------------------------------------------------------------
-- 6. A claim is only a value: quotes, SQL, unicode, case, blanks, wildcards
--------------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'a''; DROP TABLE c_invoices; --';
SELECT tenant_guard.current_tenant();
-- allowed: zero rows, no error
SELECT count(*) AS rows FROM c_invoices;
COMMIT;
BEGIN;
SELECT tenant_guard.set_tenant('x'' OR ''1''=''1');
SELECT count(*) AS rows FROM c_invoices;
COMMIT;
BEGIN;
SELECT tenant_guard.set_tenant('ünïcødé');
SELECT tenant_guard.current_tenant();
SELECT count(*) AS rows FROM c_invoices;
COMMIT;
BEGIN;
SELECT tenant_guard.set_tenant('%');
SELECT count(*) AS rows FROM c_invoices;
COMMIT;
BEGIN;
SELECT tenant_guard.set_tenant('*');
SELECT count(*) AS rows FROM c_invoices;
COMMIT;
BEGIN;
SELECT tenant_guard.set_tenant('ACME');
SELECT count(*) AS rows FROM c_invoices;
COMMIT;
BEGIN;
SELECT tenant_guard.set_tenant(' acme ');
SELECT count(*) AS rows FROM c_invoices;
COMMIT;
BEGIN;
SELECT tenant_guard.set_tenant(E'acme\n');
SELECT count(*) AS rows FROM c_invoices;
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = :'claim256';
SELECT count(*) AS rows FROM c_invoices;
COMMIT;
-- the table is still there
RESET ROLE;
SELECT to_regclass('public.c_invoices') IS NOT NULL AS still_there;
SET ROLE tg_app;

--------------------------------------------------------------------------------------------------
-- 7. Claims that are not values of the tenant column's type: a clear 22023, never a crash
--------------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
-- refused: not a uuid
SELECT id FROM c_uuid;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '00000000-0000-0000-0000-0000000000a1x';
-- refused: not a uuid
SELECT id FROM c_uuid;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = :'claim256';
-- refused: not a uuid (the message shows at most 64 characters of the claim)
SELECT id FROM c_uuid;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'a''; DROP TABLE c_uuid; --';
-- refused: not a uuid; the claim is shown as text, not run
INSERT INTO c_uuid VALUES (9, '00000000-0000-0000-0000-0000000000a1');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '00000000-0000-0000-0000-0000000000a1';
-- allowed: sees only its row
SELECT id, tenant_id FROM c_uuid;
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '{00000000000000000000000000000A1}';
-- refused: 31 hex digits is not a uuid
SELECT id FROM c_uuid;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '{000000000000000000000000000000B2}';
-- allowed: the other textual forms of a uuid PostgreSQL accepts (braces, no hyphens, upper case)
SELECT id, tenant_id FROM c_uuid;
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
-- refused: not a bigint
SELECT id FROM c_bigint;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '99999999999999999999';
-- refused: out of range for bigint
SELECT id FROM c_bigint;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '101.0';
-- refused: not a bigint
SELECT id FROM c_bigint;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '101';
-- allowed: sees only tenant 101
SELECT id, tenant_id FROM c_bigint;
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '3000000000';
-- refused: out of range for integer
SELECT id FROM c_integer;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '202';
-- allowed: sees only tenant 202
SELECT id, tenant_id FROM c_integer;
COMMIT;

--------------------------------------------------------------------------------------------------
-- 8. Parallel workers act on the leader's claim, never on more: a stale claim stays stale, an unset
--    claim stays unset, a tenant switch stays refused, also when the protected table is read only
--    inside a worker (a PARALLEL SAFE function, forced into a worker)
--------------------------------------------------------------------------------------------------
RESET ROLE;
SET ROLE tg_owner;
CREATE FUNCTION c_parallel_list() RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$ BEGIN RETURN (SELECT string_agg(id::text || ':' || tenant_id, ',' ORDER BY id) FROM public.c_invoices); END $$;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SET LOCAL force_parallel_mode = on;
SET LOCAL parallel_leader_participation = off;
-- the whole statement runs in a worker
EXPLAIN (COSTS OFF) SELECT c_parallel_list();
-- allowed: the worker sees the leader's claim, and only acme's rows
SELECT tenant_guard.current_tenant();
SELECT c_parallel_list();
COMMIT;
-- a stale session-level claim (the previous client's, on a pooled connection)
SET tenant_guard.tenant_id = 'acme';
BEGIN;
SET LOCAL force_parallel_mode = on;
SET LOCAL parallel_leader_participation = off;
-- not in force in a worker either
SELECT tenant_guard.current_tenant() IS NULL AS not_in_force;
-- refused: stale, also when only a worker reads the table
SELECT c_parallel_list();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET tenant_guard.tenant_id;
BEGIN;
SET LOCAL force_parallel_mode = on;
SET LOCAL parallel_leader_participation = off;
-- refused: no claim, also when only a worker reads the table (the guard's message, naming the table)
SELECT c_parallel_list();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) AS rows FROM c_invoices;
SET LOCAL tenant_guard.tenant_id = 'globex';
SET LOCAL force_parallel_mode = on;
SET LOCAL parallel_leader_participation = off;
-- refused: tenant switch, also when only a worker reads the table
SELECT c_parallel_list();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
