-- 50_plans: plans outlive the claim they were made under. Prepared statements (custom and generic
-- plans), plpgsql's cached plans and cursors must always see the claim of the execution, never
-- the one at planning time, nor the role that planned them; a claim switched inside a transaction
-- that already touched a protected table is refused. Contract, "The guard", items 1, 2 and 4;
-- threat model family 8 (CVE-2016-2193, CVE-2023-2455, CVE-2024-10976) and family 9.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- ---------------------------------------------------------------------------------------------
-- Fixture, as the owner, loaded before protect()
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
CREATE TABLE pl_items (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    name      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITH (autovacuum_enabled = off);
INSERT INTO pl_items VALUES
    ('acme',   1, 'pl-acme-1'),
    ('acme',   2, 'pl-acme-2'),
    ('globex', 3, 'globex-pl-3'),
    ('globex', 4, 'globex-pl-4'),
    ('',       5, 'orphan-pl-5');
CREATE TABLE pl_big (
    tenant_id bigint NOT NULL,
    id        int    NOT NULL,
    name      text   NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITH (autovacuum_enabled = off);
INSERT INTO pl_big VALUES (1, 1, 'big-acme'), (2, 2, 'globex-big'), (0, 3, 'orphan-big');
SELECT tenant_guard.protect('pl_items');
SELECT tenant_guard.protect('pl_big');
-- plpgsql keeps the plans of its statements for the session
CREATE FUNCTION pl_names() RETURNS text
    LANGUAGE plpgsql STABLE
    AS $$ BEGIN RETURN (SELECT string_agg(name, ',' ORDER BY id) FROM pl_items); END $$;
CREATE FUNCTION pl_count_of(t text) RETURNS bigint
    LANGUAGE plpgsql STABLE
    AS $$ BEGIN RETURN (SELECT count(*) FROM pl_items WHERE tenant_id = t); END $$;
-- switches the claim, then reads: called inside a statement that already read under acme
CREATE FUNCTION pl_switch_and_read(t text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    AS $$ BEGIN PERFORM tenant_guard.set_tenant(t); RETURN (SELECT count(*) FROM pl_items); END $$;
GRANT SELECT, UPDATE ON pl_items, pl_big TO tg_app;
GRANT SELECT ON pl_items TO tg_admin;
RESET ROLE;

SET ROLE tg_app;

-- ---------------------------------------------------------------------------------------------
-- A prepared statement, executed under acme, under globex, and without a claim
-- ---------------------------------------------------------------------------------------------
PREPARE p_all AS SELECT id, name FROM pl_items ORDER BY id;
EXECUTE p_all;                                      -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
EXECUTE p_all;                                      -- allowed: acme's rows only
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
EXECUTE p_all;                                      -- allowed: globex's rows only
COMMIT;
EXECUTE p_all;                                      -- refused: no claim (the last one ended with its transaction)
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = '';
EXECUTE p_all;                                      -- refused: '' is no claim
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- prepared inside acme's transaction, executed in globex's
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
PREPARE p_made_in_acme AS SELECT id, name FROM pl_items ORDER BY id;
EXECUTE p_made_in_acme;                             -- acme's rows
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
EXECUTE p_made_in_acme;                             -- globex's rows, not acme's
COMMIT;
EXECUTE p_made_in_acme;                             -- refused: no claim
\echo :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------------------------------------
-- Generic plans: the claim is a parameter of the plan (an init-plan), never a constant in it
-- ---------------------------------------------------------------------------------------------
SET plan_cache_mode = force_generic_plan;
PREPARE p_gen(int) AS SELECT id, name FROM pl_items WHERE id >= $1 ORDER BY id;
EXPLAIN (COSTS OFF) EXECUTE p_gen(0);               -- allowed without a claim; the claim is $0, not a literal
EXECUTE p_gen(0);                                   -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
EXECUTE p_gen(0);                                   -- acme's rows
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
EXECUTE p_gen(0);                                   -- globex's rows
COMMIT;
-- a parameter naming another tenant finds nothing
PREPARE p_gen_tenant(text) AS SELECT id, name FROM pl_items WHERE tenant_id = $1 ORDER BY id;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
EXECUTE p_gen_tenant('globex');                     -- zero rows
EXECUTE p_gen_tenant('');                           -- zero rows
EXECUTE p_gen_tenant('acme');                       -- acme's rows
COMMIT;
-- bigint keys
PREPARE p_gen_big AS SELECT * FROM pl_big ORDER BY id;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '1';
EXECUTE p_gen_big;                                  -- big-acme
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '2';
EXECUTE p_gen_big;                                  -- globex-big
COMMIT;
EXECUTE p_gen_big;                                  -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
-- writes through a generic plan
PREPARE p_gen_upd(text) AS UPDATE pl_items SET name = name WHERE name <> $1 RETURNING id;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
EXECUTE p_gen_upd('x');                             -- globex's ids 3, 4 only
COMMIT;
EXECUTE p_gen_upd('x');                             -- refused: no claim
\echo :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------------------------------------
-- Custom plans
-- ---------------------------------------------------------------------------------------------
SET plan_cache_mode = force_custom_plan;
PREPARE p_cus(int) AS SELECT id, name FROM pl_items WHERE id >= $1 ORDER BY id;
EXECUTE p_cus(0);                                   -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
EXECUTE p_cus(0);                                   -- acme's rows
EXECUTE p_gen_tenant('globex');                     -- zero rows (now planned as a custom plan)
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
EXECUTE p_cus(0);                                   -- globex's rows
COMMIT;

-- ---------------------------------------------------------------------------------------------
-- auto: five custom plans, then the generic plan; the tenants alternate across the switch
-- ---------------------------------------------------------------------------------------------
SET plan_cache_mode = auto;
PREPARE p_auto(int) AS SELECT count(*), string_agg(name, ',' ORDER BY id) FROM pl_items WHERE id > $1;
BEGIN; SELECT tenant_guard.set_tenant('acme');   EXECUTE p_auto(0); COMMIT;   -- 2, acme's
BEGIN; SELECT tenant_guard.set_tenant('globex'); EXECUTE p_auto(0); COMMIT;   -- 2, globex's
BEGIN; SELECT tenant_guard.set_tenant('acme');   EXECUTE p_auto(0); COMMIT;   -- 2, acme's
BEGIN; SELECT tenant_guard.set_tenant('globex'); EXECUTE p_auto(0); COMMIT;   -- 2, globex's
BEGIN; SELECT tenant_guard.set_tenant('acme');   EXECUTE p_auto(0); COMMIT;   -- 2, acme's
BEGIN; SELECT tenant_guard.set_tenant('globex'); EXECUTE p_auto(0); COMMIT;   -- 2, globex's
BEGIN; SELECT tenant_guard.set_tenant('acme');   EXECUTE p_auto(0); COMMIT;   -- 2, acme's
BEGIN; SELECT tenant_guard.set_tenant('globex'); EXECUTE p_auto(0); COMMIT;   -- 2, globex's
EXECUTE p_auto(0);                                  -- refused: no claim, with the generic plan
\echo :LAST_ERROR_SQLSTATE
SELECT generic_plans > 0 AS generic_used, custom_plans FROM pg_prepared_statements WHERE name = 'p_auto';

-- ---------------------------------------------------------------------------------------------
-- plpgsql's cached plans
-- ---------------------------------------------------------------------------------------------
SELECT pl_names();                                  -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN; SET LOCAL tenant_guard.tenant_id = 'acme';   SELECT pl_names(), pl_count_of('globex'); COMMIT;  -- acme's; 0
BEGIN; SET LOCAL tenant_guard.tenant_id = 'globex'; SELECT pl_names(), pl_count_of('globex'); COMMIT;  -- globex's; 2
BEGIN; SET LOCAL tenant_guard.tenant_id = 'acme';   SELECT pl_names(), pl_count_of('globex'); COMMIT;  -- acme's; 0
BEGIN; SET LOCAL tenant_guard.tenant_id = 'globex'; SELECT pl_names(), pl_count_of('globex'); COMMIT;  -- globex's; 2
BEGIN; SET LOCAL tenant_guard.tenant_id = 'acme';   SELECT pl_names(), pl_count_of('globex'); COMMIT;  -- acme's; 0
BEGIN; SET LOCAL tenant_guard.tenant_id = 'globex'; SELECT pl_names(), pl_count_of('globex'); COMMIT;  -- globex's; 2
BEGIN; SET LOCAL tenant_guard.tenant_id = 'acme';   SELECT pl_names(), pl_count_of('globex'); COMMIT;  -- acme's; 0 (generic by now)
SELECT pl_names();                                  -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
SET plan_cache_mode = force_generic_plan;
DISCARD PLANS;
BEGIN; SET LOCAL tenant_guard.tenant_id = 'globex'; SELECT pl_names(), pl_count_of('acme'); COMMIT;    -- globex's; 0
BEGIN; SET LOCAL tenant_guard.tenant_id = 'acme';   SELECT pl_names(), pl_count_of('acme'); COMMIT;    -- acme's; 2
RESET plan_cache_mode;

-- ---------------------------------------------------------------------------------------------
-- A plan made by one role, executed by another
-- ---------------------------------------------------------------------------------------------
-- made by tg_app, executed by the superuser and by a BYPASSRLS role: refused, even with a claim
RESET ROLE;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
EXECUTE p_all;                                      -- refused: postgres is a superuser
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SET ROLE tg_admin;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
EXECUTE p_all;                                      -- refused: tg_admin has BYPASSRLS
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- made by the superuser (not filtered), executed by tg_app: filtered
RESET ROLE;
PREPARE p_by_superuser AS SELECT id, name FROM pl_items ORDER BY id;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
EXECUTE p_by_superuser;                             -- allowed: acme's rows only
COMMIT;
EXECUTE p_by_superuser;                             -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
-- made with row_security on, executed with it off: an error, never unfiltered rows
SET row_security = off;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
EXECUTE p_all;                                      -- refused: the query would be affected by row level security
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET row_security;

-- ---------------------------------------------------------------------------------------------
-- Switching the tenant inside a transaction that already touched a protected table
-- ---------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM pl_items ORDER BY id;          -- acme's rows
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT id, name FROM pl_items ORDER BY id;          -- refused: the claim changed after acme touched pl_items
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT tenant_guard.set_tenant('acme');
SELECT count(*) FROM pl_items;                      -- 2
SELECT tenant_guard.set_tenant('globex');
SELECT count(*) FROM pl_items;                      -- refused: tenant switch
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- through a prepared statement
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
EXECUTE p_all;                                      -- acme's rows
SET LOCAL tenant_guard.tenant_id = 'globex';
EXECUTE p_all;                                      -- refused: tenant switch
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- through a plpgsql function's cached plan
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT pl_names();                                  -- acme's names
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT pl_names();                                  -- refused: tenant switch
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- on another protected table than the one touched first
BEGIN;
SET LOCAL tenant_guard.tenant_id = '1';
SELECT count(*) FROM pl_big;                        -- 1
SET LOCAL tenant_guard.tenant_id = '2';
SELECT count(*) FROM pl_big;                        -- refused: tenant switch
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- a function that switches the claim in the middle of a statement, then reads
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, pl_switch_and_read('globex') FROM pl_items ORDER BY id;  -- refused: tenant switch
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- a rolled-back savepoint does not undo what the transaction already read
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SAVEPOINT s1;
SELECT count(*) FROM pl_items;                      -- 2
ROLLBACK TO SAVEPOINT s1;
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT count(*) FROM pl_items;                      -- refused: tenant switch
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- the refused switch is only refused: rolled back to a savepoint, acme goes on
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM pl_items;                      -- 2
SAVEPOINT s2;
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT count(*) FROM pl_items;                      -- refused: tenant switch
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO SAVEPOINT s2;
SELECT tenant_guard.current_tenant(), count(*) FROM pl_items;  -- acme, 2
COMMIT;
-- clearing the claim after touching: no claim
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM pl_items;                      -- 2
SELECT tenant_guard.clear_tenant();
SELECT count(*) FROM pl_items;                      -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- a cursor opened (and admitted) under acme, first fetched after the claim switched to globex:
-- the switch is refused, the transaction that began as acme never gets globex's rows
-- (VERBOSITY sqlstate: whether the guard or the policy raises it does not matter here)
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DECLARE c_switch CURSOR FOR SELECT id, name FROM pl_items ORDER BY id;
SET LOCAL tenant_guard.tenant_id = 'globex';
\set VERBOSITY sqlstate
FETCH ALL FROM c_switch;                            -- refused: tenant switch
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
ROLLBACK;
-- allowed: switching before anything was touched, and switching back to the same tenant
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT id, name FROM pl_items ORDER BY id;          -- globex's rows
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM pl_items;                      -- 2
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM pl_items;                      -- 2
COMMIT;
-- and the next transaction may take another tenant
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT count(*) FROM pl_items;                      -- 2
COMMIT;

DEALLOCATE ALL;
RESET ROLE;
