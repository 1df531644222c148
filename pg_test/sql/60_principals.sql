-- 60_principals: who is asking. Roles that void row security (superusers, BYPASSRLS, an owner
-- without FORCE, anyone once row level security is disabled) are refused even with a claim,
-- unless listed in tenant_guard.trusted_roles; the table owner under FORCE is filtered like the
-- application; row_security = off is an error, never unfiltered rows; the modes shadow and off.
-- Contract, "The guard", items 1, 2 and 7; threat model families 1 and 9.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- ---------------------------------------------------------------------------------------------
-- Fixture
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
CREATE TABLE pr_items (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    name      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITH (autovacuum_enabled = off);
INSERT INTO pr_items VALUES
    ('acme',   1, 'pr-acme-1'),
    ('acme',   2, 'pr-acme-2'),
    ('globex', 3, 'globex-pr-3'),
    ('',       4, 'orphan-pr-4');
-- a second table whose protection drifts below
CREATE TABLE pr_drift (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    name      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITH (autovacuum_enabled = off);
INSERT INTO pr_drift VALUES ('acme', 1, 'drift-acme'), ('globex', 2, 'globex-drift'), ('', 3, 'orphan-drift');
-- an unprotected table, for a parallel plan
CREATE TABLE pr_plain (n int NOT NULL) WITH (autovacuum_enabled = off);
INSERT INTO pr_plain SELECT generate_series(1, 20);
SELECT tenant_guard.protect('pr_items');
SELECT tenant_guard.protect('pr_drift');
-- a parallel-safe function that reads the protected table (runs in the workers of a parallel plan)
CREATE FUNCTION pr_count_parallel() RETURNS bigint
    LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$ BEGIN RETURN (SELECT count(*) FROM pr_items); END $$;
GRANT SELECT, INSERT, UPDATE, DELETE ON pr_items, pr_drift TO tg_app, tg_admin;
GRANT SELECT ON pr_plain TO tg_app, tg_admin;
RESET ROLE;
-- owned by the superuser: a SECURITY DEFINER function and a view (no security_invoker)
CREATE FUNCTION pr_count_as_superuser() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT count(*) FROM pr_items $$;
CREATE VIEW pr_items_superuser_view AS SELECT id, name FROM pr_items;
-- with security_invoker the invoker is checked, not the superuser who owns the view
CREATE VIEW pr_items_superuser_invoker WITH (security_invoker = on) AS SELECT id, name FROM pr_items;
GRANT SELECT ON pr_items_superuser_view, pr_items_superuser_invoker TO tg_app;
-- a SECURITY DEFINER function owned by the BYPASSRLS role
CREATE FUNCTION pr_count_as_admin() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT count(*) FROM pr_items $$;
ALTER FUNCTION pr_count_as_admin() OWNER TO tg_admin;
-- a BYPASSRLS role and a login role that may SET ROLE to it
CREATE ROLE pr_ops NOLOGIN BYPASSRLS;
CREATE ROLE pr_ops_member LOGIN;
GRANT pr_ops TO pr_ops_member;
GRANT SELECT ON pr_items TO pr_ops;

-- ---------------------------------------------------------------------------------------------
-- The superuser: refused without a claim and with one
-- ---------------------------------------------------------------------------------------------
SELECT count(*) FROM pr_items;                      -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM pr_items;                      -- refused: postgres is a superuser (never 4)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
COPY pr_items TO STDOUT;                            -- refused: COPY by a role that bypasses the policies
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
UPDATE pr_items SET name = name;                    -- refused: superuser
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO pr_items VALUES ('globex', 9, 'planted-by-superuser');  -- refused: superuser
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DELETE FROM pr_items WHERE id = 3;                  -- refused: superuser
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- ---------------------------------------------------------------------------------------------
-- A BYPASSRLS role: refused without a claim and with one; also when reached by SET ROLE
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_admin;
SELECT count(*) FROM pr_items;                      -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM pr_items;                      -- refused: tg_admin has BYPASSRLS
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
COPY pr_items TO STDOUT;                            -- refused: tg_admin has BYPASSRLS
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
UPDATE pr_items SET name = 'x' WHERE id = 3;        -- refused: tg_admin has BYPASSRLS
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SET SESSION AUTHORIZATION pr_ops_member;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_items ORDER BY id;          -- allowed: the member itself is filtered (acme's rows)
COMMIT;
SET ROLE pr_ops;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_items ORDER BY id;          -- refused: after SET ROLE, pr_ops has BYPASSRLS
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------------------------------
-- The owner: FORCE ROW LEVEL SECURITY keeps it filtered
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
SELECT count(*) FROM pr_items;                      -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_items ORDER BY id;          -- allowed: acme's rows only
SELECT count(*) FROM pr_items;                      -- 2
INSERT INTO pr_items VALUES ('globex', 9, 'planted-by-owner');  -- refused by the policy
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- Drift: the owner without FORCE, then row level security disabled. The drift is made while the
-- guard is off (with the guard on, the ALTER TABLE itself is a tamper operation).
-- ---------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL tenant_guard.enforce = off;
SET LOCAL ROLE tg_owner;
ALTER TABLE pr_drift NO FORCE ROW LEVEL SECURITY;
COMMIT;
SET ROLE tg_owner;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_drift ORDER BY id;          -- refused: the owner is no longer filtered
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_drift ORDER BY id;          -- allowed: the application still is (acme's row)
COMMIT;
RESET ROLE;
SET ROLE tg_owner;
SELECT tenant_guard.protect('pr_drift');            -- restores FORCE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_drift ORDER BY id;          -- allowed again: acme's row
COMMIT;
RESET ROLE;

BEGIN;
SET LOCAL tenant_guard.enforce = off;
SET LOCAL ROLE tg_owner;
ALTER TABLE pr_drift DISABLE ROW LEVEL SECURITY;
COMMIT;
-- now nobody is filtered, so every role is refused, with or without trust
SET ROLE tg_app;
SELECT count(*) FROM pr_drift;                      -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_drift ORDER BY id;          -- refused: row level security is disabled (never 3 rows)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DELETE FROM pr_drift WHERE id = 2;                  -- refused: row level security is disabled
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SET ROLE tg_owner;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_drift ORDER BY id;          -- refused: row level security is disabled
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_drift ORDER BY id;          -- refused (postgres): row level security is disabled
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SET tenant_guard.trusted_roles = 'tg_admin';
SET ROLE tg_admin;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_drift ORDER BY id;          -- refused: disabled row security is refused even to trusted roles
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
RESET tenant_guard.trusted_roles;
SET ROLE tg_owner;
SELECT tenant_guard.protect('pr_drift');            -- restores ENABLE
RESET ROLE;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_drift ORDER BY id;          -- allowed again: acme's row only
COMMIT;
RESET ROLE;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'pr_drift'::regclass;  -- t, t

-- ---------------------------------------------------------------------------------------------
-- row_security = off: an error, never unfiltered rows
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_app;
SET row_security = off;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_items ORDER BY id;          -- refused: the query would be affected by row level security
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT id, name FROM pr_items ORDER BY id;          -- refused (no claim, and row security)
\echo :LAST_ERROR_SQLSTATE
RESET row_security;
RESET ROLE;
SET ROLE tg_owner;
SET row_security = off;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_items ORDER BY id;          -- refused: the owner too (FORCE)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET row_security;
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- tenant_guard.trusted_roles: only a superuser sets it; a trusted role still needs a claim
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_app;
SET tenant_guard.trusted_roles = 'tg_app';          -- refused: only superusers may set it
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.trusted_roles = 'tg_app';    -- refused
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT set_config('tenant_guard.trusted_roles', 'tg_app', false);  -- refused
\echo :LAST_ERROR_SQLSTATE
SHOW tenant_guard.trusted_roles;                    -- still empty
RESET ROLE;
SET tenant_guard.trusted_roles = 'tg_admin';
SET ROLE tg_admin;
SELECT count(*) FROM pr_items;                      -- refused: a trusted role still needs a claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_items ORDER BY id;          -- allowed: every tenant's rows (BYPASSRLS, trusted)
COMMIT;
SET tenant_guard.trusted_roles = '';                -- refused: tg_admin may not change it either
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
-- postgres is not in the list: a superuser is not implicitly a member of the trusted roles
SELECT count(*) FROM pr_items;                      -- refused: superuser (never 4)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- membership counts: pr_ops_member may SET ROLE to the trusted pr_ops
SET tenant_guard.trusted_roles = 'pr_ops';
SET SESSION AUTHORIZATION pr_ops_member;
SET ROLE pr_ops;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM pr_items;                      -- allowed: 4 (trusted, BYPASSRLS)
COMMIT;
RESET ROLE;
RESET SESSION AUTHORIZATION;
RESET tenant_guard.trusted_roles;
SET ROLE tg_admin;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM pr_items;                      -- refused again: no longer trusted
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- tenant_guard.enforce: only a superuser changes it
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_app;
SET tenant_guard.enforce = off;                     -- refused
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.enforce = shadow;            -- refused
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT set_config('tenant_guard.enforce', 'off', true);  -- refused
\echo :LAST_ERROR_SQLSTATE
SHOW tenant_guard.enforce;                          -- on
RESET ROLE;

-- enforce = shadow: what the guard would refuse is allowed with a WARNING
SET tenant_guard.enforce = shadow;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM pr_items;                      -- WARNING (superuser), then 4
COMMIT;
SELECT count(*) FROM pr_items;                      -- WARNING (no claim), then 4
SET ROLE tg_admin;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM pr_items;                      -- WARNING (BYPASSRLS), then 4
COMMIT;
RESET ROLE;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM pr_items;                      -- 2, no WARNING: nothing to refuse
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT count(*) FROM pr_items;                      -- WARNING (tenant switch), then globex's 1
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DECLARE c_shadow_hold CURSOR WITH HOLD FOR SELECT id FROM pr_items ORDER BY id;  -- WARNING (WITH HOLD)
COMMIT;
FETCH ALL FROM c_shadow_hold;                       -- 1, 2
CLOSE c_shadow_hold;
-- the guard only warns, but the policies still fail closed without a claim
SELECT count(*) FROM pr_items;                      -- WARNING (no claim), then the policy's error
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
RESET tenant_guard.enforce;

-- enforce = off: no guard at all; the policies still filter and fail closed
SET tenant_guard.enforce = off;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM pr_items;                      -- 4, no WARNING (superuser, unguarded)
COMMIT;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_items ORDER BY id;          -- acme's rows: the policies filter
COMMIT;
SELECT count(*) FROM pr_items;                      -- refused by the policy: no claim
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
RESET tenant_guard.enforce;
SHOW tenant_guard.enforce;                          -- on

-- ---------------------------------------------------------------------------------------------
-- SET ROLE and SET SESSION AUTHORIZATION from the superuser to the application
-- ---------------------------------------------------------------------------------------------
SET SESSION AUTHORIZATION tg_app;
SELECT current_user, session_user;
SELECT count(*) FROM pr_items;                      -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_items ORDER BY id;          -- allowed: acme's rows
COMMIT;
SET ROLE tg_admin;                                  -- refused: tg_app is not a member of tg_admin
\echo :LAST_ERROR_SQLSTATE
RESET SESSION AUTHORIZATION;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_items ORDER BY id;          -- allowed: acme's rows
RESET ROLE;
SELECT id, name FROM pr_items ORDER BY id;          -- refused: back to the superuser in the same transaction
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;                                         -- (the ROLLBACK undid the RESET ROLE above)
BEGIN;
SET LOCAL ROLE tg_app;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM pr_items;                      -- 2
COMMIT;
SELECT current_user;                                -- postgres again

-- ---------------------------------------------------------------------------------------------
-- Objects owned by the superuser void the policies for whoever uses them
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_app;
SELECT pr_count_as_superuser();                     -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT pr_count_as_superuser();                     -- refused: runs as postgres, a superuser (never 4)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_items_superuser_view ORDER BY id;  -- refused: the view's owner is a superuser
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT pr_count_as_admin();                         -- refused: runs as tg_admin, BYPASSRLS (never 4)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pr_items_superuser_invoker ORDER BY id;  -- allowed: security_invoker, acme's rows
COMMIT;
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- Plain EXPLAIN needs no claim because it reads nothing; but partition pruning at executor
-- start-up does evaluate STABLE functions, and a query they run is guarded like any other
-- ---------------------------------------------------------------------------------------------
CREATE TABLE pr_pp (n int NOT NULL) PARTITION BY LIST (n);
CREATE TABLE pr_pp1 PARTITION OF pr_pp FOR VALUES IN (1);
CREATE TABLE pr_pp2 PARTITION OF pr_pp FOR VALUES IN (2);
CREATE FUNCTION pr_peek() RETURNS int
    LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN (SELECT count(*) FROM pr_items); END $$;
EXPLAIN (COSTS OFF) SELECT * FROM pr_pp WHERE n = 1;            -- allowed: nothing is read
EXPLAIN (COSTS OFF) SELECT * FROM pr_pp WHERE n = pr_peek();    -- refused: pr_peek() reads pr_items without a claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
EXPLAIN (COSTS OFF) SELECT * FROM pr_pp WHERE n = pr_peek();    -- refused: postgres is a superuser
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
DROP FUNCTION pr_peek();
DROP TABLE pr_pp;

-- ---------------------------------------------------------------------------------------------
-- Parallel workers: a policy-voiding role must not read through a worker what the leader may not
-- (VERBOSITY sqlstate: where in the workers or the leader the refusal is raised does not matter)
-- ---------------------------------------------------------------------------------------------
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT pr_count_parallel() FROM pr_plain;  -- a parallel plan
\set VERBOSITY sqlstate
SELECT DISTINCT pr_count_parallel() FROM pr_plain;              -- refused: no claim (never 4)
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT DISTINCT pr_count_parallel() FROM pr_plain;              -- refused: superuser (never 4)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SET ROLE tg_admin;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT DISTINCT pr_count_parallel() FROM pr_plain;              -- refused: BYPASSRLS (never 4)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
\set VERBOSITY default
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT DISTINCT pr_count_parallel() FROM pr_plain;              -- allowed: 2
COMMIT;
RESET ROLE;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;

-- clean up the roles of this file (roles are cluster-wide)
DROP VIEW pr_items_superuser_view, pr_items_superuser_invoker;
DROP FUNCTION pr_count_as_superuser(), pr_count_as_admin();
REVOKE SELECT ON pr_items FROM pr_ops;
DROP ROLE pr_ops_member;
DROP ROLE pr_ops;
