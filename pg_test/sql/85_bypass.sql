-- 85_bypass: the audited admin bypass. tenant_guard.bypass_roles (superuser-only) names the roles
-- whose members may call tenant_guard.begin_bypass(reason); the caller also needs BYPASSRLS. A
-- bypass lasts until the end of its transaction (commit, rollback, rollback of a savepoint that
-- contained it) or end_bypass(); RESET ALL, DISCARD ALL, SET ROLE, SET SESSION AUTHORIZATION and
-- function SET clauses never start or extend one, and the setting that holds it is internal.
-- Under a bypass the role reads and writes every tenant's rows and may run the statements the
-- tamper guard refuses; every statement on a protected table is audited as bypass with the
-- reason, the relations, the command and the row count. Tenant queries keep their plans.
-- Contract: "The guard" item 6, "Errors"; issue 4. Tables and roles start with bp_.
--
-- bp_seen(marker, n) waits (up to 5 s) for n audit events whose query contains /* marker */ and
-- lists them. To show that an event did NOT happen, a later refused statement (a barrier) is
-- awaited first: events of one backend are written in the order they were queued.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- ---------------------------------------------------------------------------------------------
-- Fixture
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
CREATE TABLE bp_x (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    v         int  NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, id)
) WITH (autovacuum_enabled = off);
-- three tenants, three rows each
INSERT INTO bp_x SELECT t, g, 0 FROM unnest(ARRAY['acme', 'globex', 'initech']) t, generate_series(1, 3) g;
-- a larger table for plans: 50 tenants, 100 rows each
CREATE TABLE bp_big (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    payload   text NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITH (autovacuum_enabled = off);
INSERT INTO bp_big SELECT 't' || (g % 50), g, 'payload-' || g FROM generate_series(1, 5000) g;
ANALYZE bp_big;
SELECT tenant_guard.protect('bp_x');
SELECT tenant_guard.protect('bp_big');
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON bp_x TO tg_app, tg_admin;
GRANT SELECT ON bp_big TO tg_app;
RESET ROLE;
-- begins a bypass inside a function that has a SET clause of its own
CREATE FUNCTION bp_begin_in_function(reason text) RETURNS text
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
    AS $$ BEGIN RETURN tenant_guard.begin_bypass(reason); END $$;

-- waits until `expected` events carrying /* marker */ in their query are written, then lists them
CREATE FUNCTION bp_seen(marker text, expected int)
RETURNS TABLE (event text, reason text, relations text[], command text, rows bigint,
               tenant text, role text, session_role text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    FOR i IN 1..50 LOOP
        EXIT WHEN (SELECT count(*) FROM tenant_guard.audit_log a
                    WHERE a.query LIKE '%/* ' || marker || ' */%') >= expected;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN QUERY
        SELECT a.event, a.reason, a.relations, a.command, a.rows, a.tenant, a.role, a.session_role
          FROM tenant_guard.audit_log a
         WHERE a.query LIKE '%/* ' || marker || ' */%'
         ORDER BY a.id;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- 1. tenant_guard.bypass_roles: only a superuser sets it
-- ---------------------------------------------------------------------------------------------
SHOW tenant_guard.bypass_roles;                     -- empty: nobody may begin a bypass
SET ROLE tg_app;
SET tenant_guard.bypass_roles = 'tg_app';           -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('tenant_guard.bypass_roles', 'tg_app', false);  -- refused
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE tg_admin;
SET tenant_guard.bypass_roles = 'tg_admin';         -- refused: BYPASSRLS is not superuser
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET tenant_guard.bypass_roles = 'tg_admin';         -- allowed: the superuser
SHOW tenant_guard.bypass_roles;

-- ---------------------------------------------------------------------------------------------
-- 2. A bypass: tg_admin reads and writes every tenant's rows, without a claim; every statement
--    on a protected table is audited as bypass, with the reason, relations, command and rows
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_admin;
SELECT count(*) FROM bp_x /* bp-before */;          -- refused: no claim (no bypass yet)
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT tenant_guard.begin_bypass('backfill TICKET-1') /* bp-backfill */;  -- allowed: NOTICE, and what it began
SELECT current_setting('tenant_guard.bypass') LIKE '%backfill TICKET-1' AS in_bypass;  -- t
SELECT tenant_id, id, v FROM bp_x ORDER BY tenant_id, id /* bp-backfill */;  -- allowed: all 9 rows
UPDATE bp_x SET v = v + 1 WHERE tenant_id IN ('acme', 'globex') /* bp-backfill */;  -- allowed: UPDATE 6
SELECT tenant_id, sum(v) AS v FROM bp_x GROUP BY tenant_id ORDER BY tenant_id /* bp-backfill */;  -- allowed: 3 rows
DO $$ BEGIN UPDATE bp_x SET v = v + 10 WHERE tenant_id = 'initech' AND id = 1; END $$ /* bp-backfill */;  -- allowed: 1 row, DO block
COPY bp_x TO STDOUT /* bp-backfill */;              -- allowed: an export of all 9 rows
COPY bp_x FROM STDIN /* bp-backfill */;             -- allowed: an import of 1 row
hyperion	1	0
\.
DELETE FROM bp_x WHERE tenant_id = 'hyperion' /* bp-backfill */;  -- allowed: DELETE 1
COMMIT;
RESET ROLE;
-- one event for begin_bypass, then one per statement: its command and its row count
SELECT * FROM bp_seen('bp-backfill', 8);
-- the writes were committed: each tenant sees its own rows
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT tenant_id, id, v FROM bp_x ORDER BY id;      -- allowed: acme's rows, v = 1
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'initech';
SELECT tenant_id, id, v FROM bp_x ORDER BY id;      -- allowed: initech's rows, v = 10, 0, 0
COMMIT;
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- 3. Under a bypass the tamper guard lets the admin change the table (here undone again):
--    audited as bypass, not refused
-- ---------------------------------------------------------------------------------------------
GRANT tg_owner TO tg_admin;                         -- the DDL itself needs the owner's rights
SET ROLE tg_admin;
BEGIN;
SELECT tenant_guard.begin_bypass('policy maintenance TICKET-2') /* bp-ddl */;  -- allowed
CREATE POLICY bp_extra ON bp_x AS RESTRICTIVE USING (v >= 0) /* bp-ddl */;  -- allowed
DROP POLICY bp_extra ON bp_x /* bp-ddl */;          -- allowed
ALTER TABLE bp_x DISABLE ROW LEVEL SECURITY /* bp-ddl */;  -- allowed
ALTER TABLE bp_x ENABLE ROW LEVEL SECURITY /* bp-ddl */;   -- allowed (never refused: no event)
COMMIT;
BEGIN;
SELECT tenant_guard.begin_bypass('truncate rehearsal TICKET-3') /* bp-truncate */;  -- allowed
TRUNCATE bp_x /* bp-truncate */;                    -- allowed
SELECT count(*) FROM bp_x /* bp-truncate */;        -- allowed: 0
ROLLBACK;
-- outside the bypass the same statements are refused again
CREATE POLICY bp_extra ON bp_x AS RESTRICTIVE USING (v >= 0) /* bp-ddl-after */;  -- refused
\echo :LAST_ERROR_SQLSTATE
TRUNCATE bp_x /* bp-ddl-after */;                   -- refused
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
REVOKE tg_owner FROM tg_admin;
SELECT * FROM bp_seen('bp-ddl', 4);                -- begin_bypass, CREATE POLICY, DROP POLICY, ALTER TABLE
SELECT * FROM bp_seen('bp-truncate', 3);           -- begin_bypass, TRUNCATE TABLE, SELECT (1 row)
SELECT * FROM bp_seen('bp-ddl-after', 2);          -- tamper: create_policy, truncate
-- the table is as protect() left it, with its rows
SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'bp_x';
SELECT policyname FROM pg_policies WHERE tablename = 'bp_x' ORDER BY policyname;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT count(*) FROM bp_x;                          -- allowed: 3
COMMIT;
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- 4. begin_bypass() refusals: a reason is required (22023); only members of bypass_roles with
--    BYPASSRLS may (42501, audited)
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_admin;
SELECT tenant_guard.begin_bypass(NULL);             -- refused: no reason
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.begin_bypass('');               -- refused: empty reason
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.begin_bypass('   ');            -- refused: blank reason
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.begin_bypass(repeat('x', 201)); -- refused: 201 bytes
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.begin_bypass(repeat('é', 101)); -- refused: 101 characters, 202 bytes
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT length(tenant_guard.begin_bypass(repeat('x', 200))) > 0 AS begun;  -- allowed: 200 bytes
ROLLBACK;
BEGIN;
SELECT tenant_guard.begin_bypass('   padded reason   ') /* bp-trimmed */;  -- allowed: the reason is trimmed
ROLLBACK;
RESET ROLE;
SELECT * FROM bp_seen('bp-trimmed', 1);            -- reason 'padded reason'
-- the application is not in bypass_roles
SET ROLE tg_app;
SELECT tenant_guard.begin_bypass('the app wants everything') /* bp-refused-app */;  -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM bp_x /* bp-refused-app */;     -- refused: no claim (no bypass was begun)
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM bp_seen('bp-refused-app', 2);        -- denied bypass_not_allowed, then denied no_claim
-- a group listed in bypass_roles: a member without BYPASSRLS is refused, one with it is allowed
CREATE ROLE bp_group NOLOGIN;
CREATE ROLE bp_ops NOBYPASSRLS;
CREATE ROLE bp_ops_rls BYPASSRLS;
GRANT bp_group TO bp_ops, bp_ops_rls;
GRANT SELECT ON bp_x TO bp_group;
SET tenant_guard.bypass_roles = 'tg_admin, bp_group';
SET ROLE bp_ops;
SELECT tenant_guard.begin_bypass('ops on call') /* bp-refused-ops */;  -- refused: no BYPASSRLS
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE bp_ops_rls;
BEGIN;
SELECT tenant_guard.begin_bypass('ops on call') /* bp-group */;  -- allowed: member of bp_group, BYPASSRLS
SELECT count(*) FROM bp_x /* bp-group */;           -- allowed: 9
COMMIT;
RESET ROLE;
SELECT * FROM bp_seen('bp-refused-ops', 1);        -- denied, bypass_without_bypassrls
SELECT * FROM bp_seen('bp-group', 2);              -- bypass: begin_bypass, SELECT 1 row
-- a superuser that is not listed is refused too
SELECT tenant_guard.begin_bypass('superuser wants in') /* bp-refused-su */;  -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM bp_seen('bp-refused-su', 1);         -- denied, bypass_not_allowed, role postgres
SET tenant_guard.bypass_roles = 'tg_admin';

-- ---------------------------------------------------------------------------------------------
-- 5. The bypass ends: at COMMIT (the next transaction of the same, pooled, connection has none),
--    at ROLLBACK, at ROLLBACK TO a savepoint that contained it, with end_bypass()
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_admin;
BEGIN;
SELECT tenant_guard.begin_bypass('ends at commit');  -- allowed
SELECT count(*) FROM bp_x;                          -- allowed: 9
COMMIT;
SELECT count(*) FROM bp_x /* bp-ended */;           -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM bp_x /* bp-ended */;           -- refused: BYPASSRLS, a claim is not enough
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT tenant_guard.begin_bypass('ends at rollback');  -- allowed
ROLLBACK;
SELECT count(*) FROM bp_x /* bp-ended */;           -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SAVEPOINT before_bypass;
SELECT tenant_guard.begin_bypass('inside a savepoint');  -- allowed
SELECT count(*) FROM bp_x;                          -- allowed: 9
ROLLBACK TO SAVEPOINT before_bypass;
SELECT count(*) FROM bp_x /* bp-ended */;           -- refused: no claim (the savepoint held the bypass)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT tenant_guard.begin_bypass('savepoint after it');  -- allowed
SAVEPOINT after_bypass;
SELECT count(*) FROM bp_x;                          -- allowed: 9
ROLLBACK TO SAVEPOINT after_bypass;
SELECT count(*) FROM bp_x;                          -- allowed: 9 (the bypass began before the savepoint)
RELEASE SAVEPOINT after_bypass;
COMMIT;
BEGIN;
SELECT tenant_guard.begin_bypass('ended early');   -- allowed
SELECT tenant_guard.end_bypass();                   -- t
SELECT tenant_guard.end_bypass();                   -- f: none left
SELECT count(*) FROM bp_x /* bp-ended */;           -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT tenant_guard.end_bypass();                   -- f: outside a transaction block, none
RESET ROLE;
SELECT * FROM bp_seen('bp-ended', 5);              -- no_claim, bypassrls (tenant acme), no_claim x3
-- a WITH HOLD cursor opened under a bypass would hand its rows to whoever uses the connection
-- after the bypass ended (the next client of a pool): refused, as it is in claim_scope =
-- transaction (only the SQLSTATE is pinned here)
SET ROLE tg_admin;
BEGIN;
SELECT tenant_guard.begin_bypass('held cursor');   -- allowed
\set VERBOSITY sqlstate
DECLARE bp_hold CURSOR WITH HOLD FOR SELECT tenant_id, id FROM bp_x ORDER BY tenant_id, id /* bp-hold */;  -- refused
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
COMMIT;
RESET ROLE;
SET ROLE tg_app;
FETCH ALL FROM bp_hold;                             -- refused: no such cursor, no rows of any tenant
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- 6. RESET ALL, DISCARD ALL, SET ROLE, SET SESSION AUTHORIZATION and function SET clauses never
--    start or extend a bypass; the setting that holds it cannot be set
-- ---------------------------------------------------------------------------------------------
-- RESET ALL inside a bypass leaves it alone until the end of the transaction, then it is gone
SET ROLE tg_admin;
BEGIN;
SELECT tenant_guard.begin_bypass('reset all inside');  -- allowed
RESET ALL;
SELECT count(*) FROM bp_x;                          -- allowed: 9 (still the same transaction)
COMMIT;
RESET ALL;
SELECT count(*) FROM bp_x /* bp-reset */;           -- refused: no claim (RESET ALL brings nothing back)
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- RESET ALL reset bypass_roles too (a session SET); set it again
SET tenant_guard.bypass_roles = 'tg_admin';
-- DISCARD ALL, outside a transaction block, after a committed bypass
SET ROLE tg_admin;
BEGIN;
SELECT tenant_guard.begin_bypass('before discard all');  -- allowed
DISCARD ALL;                                        -- refused: not inside a transaction block
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT tenant_guard.begin_bypass('before discard all');  -- allowed
COMMIT;
DISCARD ALL;                                        -- allowed (and back to the session user)
SET tenant_guard.bypass_roles = 'tg_admin';
SET ROLE tg_admin;
SELECT count(*) FROM bp_x /* bp-reset */;           -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM bp_seen('bp-reset', 2);              -- two no_claim refusals of tg_admin
-- a bypass belongs to the role that began it: SET ROLE to another role does not carry it along
BEGIN;
SET LOCAL ROLE tg_admin;
SELECT tenant_guard.begin_bypass('role switch');   -- allowed
SELECT count(*) FROM bp_x;                          -- allowed: 9
SET LOCAL ROLE tg_app;
SELECT count(*) FROM bp_x /* bp-role-switch */;     -- refused: no claim (tg_app is not in the bypass)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL ROLE tg_admin;
SELECT tenant_guard.begin_bypass('role switch');   -- allowed
RESET ROLE;
SELECT count(*) FROM bp_x /* bp-role-switch */;     -- refused: no claim (the superuser is not in it either)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL ROLE tg_admin;
SELECT tenant_guard.begin_bypass('session authorization switch');  -- allowed
SET SESSION AUTHORIZATION tg_app;
SELECT count(*) FROM bp_x /* bp-role-switch */;     -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT session_user, current_user;                  -- postgres, postgres (rolled back)
-- SET SESSION AUTHORIZATION to the role of an earlier bypass: nothing is left of it
SET SESSION AUTHORIZATION tg_admin;
BEGIN;
SELECT tenant_guard.begin_bypass('as session user');  -- allowed
SELECT count(*) FROM bp_x;                          -- allowed: 9
COMMIT;
SET SESSION AUTHORIZATION tg_admin;
SELECT count(*) FROM bp_x /* bp-role-switch */;     -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
RESET SESSION AUTHORIZATION;
SELECT * FROM bp_seen('bp-role-switch', 4);        -- tg_app, postgres, tg_app, tg_admin: no_claim
-- a function with a SET clause: a bypass begun inside lasts to the end of the transaction, not beyond
SET ROLE tg_admin;
BEGIN;
SELECT bp_begin_in_function('inside a function');  -- allowed
SELECT count(*) FROM bp_x;                          -- allowed: 9
COMMIT;
SELECT count(*) FROM bp_x /* bp-function */;        -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM bp_seen('bp-function', 1);
-- the internal setting cannot be set by anyone, by any route
SET ROLE tg_admin;
SET tenant_guard.bypass = 'x';                      -- refused
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.bypass = 'x';                -- refused
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT set_config('tenant_guard.bypass', 'x', true);  -- refused
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET tenant_guard.bypass = 'x';                      -- refused: the superuser too
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('tenant_guard.bypass', 'x', false);  -- refused
\echo :LAST_ERROR_SQLSTATE
RESET tenant_guard.bypass;                          -- refused
\echo :LAST_ERROR_SQLSTATE
CREATE FUNCTION bp_set_clause() RETURNS int
    LANGUAGE sql SET tenant_guard.bypass = 'x' AS $$ SELECT 1 $$;  -- refused
\echo :LAST_ERROR_SQLSTATE
ALTER FUNCTION bp_begin_in_function(text) SET tenant_guard.bypass = 'x';  -- refused
\echo :LAST_ERROR_SQLSTATE
ALTER ROLE tg_admin SET tenant_guard.bypass = 'x';  -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT current_setting('tenant_guard.bypass') = '' AS no_bypass;  -- t

-- ---------------------------------------------------------------------------------------------
-- 7. A statement under a bypass that fails after reading is audited too
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_admin;
BEGIN;
SELECT tenant_guard.begin_bypass('failing read');  -- allowed
SELECT id, 10 / (3 - id) AS q FROM bp_x WHERE tenant_id = 'acme' ORDER BY id /* bp-failing */;  -- fails on its third row
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SELECT event, reason, relations, command FROM bp_seen('bp-failing', 1);  -- one bypass event: SELECT of public.bp_x

-- ---------------------------------------------------------------------------------------------
-- 8. Ordinary tenant queries keep their plan while bypass_roles is set: the claim is an index
--    condition on the tenant column
-- ---------------------------------------------------------------------------------------------
SHOW tenant_guard.bypass_roles;                     -- tg_admin
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 't7';
EXPLAIN (COSTS OFF) SELECT id, payload FROM bp_big WHERE id = 7;
SELECT id, payload FROM bp_big WHERE id = 7;        -- allowed: t7's row
SELECT id, payload FROM bp_big WHERE id = 8;        -- allowed: no rows (8 is t8's)
EXPLAIN (COSTS OFF) SELECT count(*) FROM bp_big;
COMMIT;
RESET ROLE;
-- the same plans without any bypass role
RESET tenant_guard.bypass_roles;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 't7';
EXPLAIN (COSTS OFF) SELECT id, payload FROM bp_big WHERE id = 7;
EXPLAIN (COSTS OFF) SELECT count(*) FROM bp_big;
COMMIT;
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- Teardown: no bypass open, settings back to their defaults
-- ---------------------------------------------------------------------------------------------
SHOW tenant_guard.bypass_roles;                     -- empty
SELECT tenant_guard.end_bypass();                   -- f
SET ROLE tg_owner;
SELECT tenant_guard.unprotect('bp_x', 'bp_ test teardown');
SELECT tenant_guard.unprotect('bp_big', 'bp_ test teardown');
DROP TABLE bp_x, bp_big;
RESET ROLE;
DROP FUNCTION bp_begin_in_function(text), bp_seen(text, int);
DROP ROLE bp_ops, bp_ops_rls, bp_group;
