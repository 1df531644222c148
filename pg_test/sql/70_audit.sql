\set SHOW_CONTEXT never
\set VERBOSITY default
-- 70_audit: the audit trail tenant_guard.audit_log. Refusals are audited although their
-- transaction aborts (written asynchronously by the audit writer); shadow mode's would_deny;
-- protect/unprotect/exempt events in the caller's transaction; broad reads and the row cap
-- (global settings, per-table overrides from set_limits(), boundaries); the table is append-only
-- (prune_audit() is the only way out); query text truncation; status() counters.
-- Contract: "Broad reads and row caps", "Audit trail", "Errors"; issue 3. Tables start with au_.
--
-- Guard events arrive asynchronously: au_seen(marker, n) polls (up to 5 s) until n events whose
-- query contains /* marker */ are in the log, then lists them (stable columns only). To show that
-- an event did NOT happen, a later refused statement (a barrier) is awaited first: events of one
-- backend are written in the order they were queued.

-- ---------------------------------------------------------------------------------------------
-- Fixture
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
CREATE TABLE au_invoices (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    amount    int  NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITH (autovacuum_enabled = off);
-- acme: 5 rows, globex: 4 rows, initech: 2 rows
INSERT INTO au_invoices
    SELECT 'acme', g, g * 10 FROM generate_series(1, 5) g
    UNION ALL SELECT 'globex', g, g * 10 FROM generate_series(6, 9) g
    UNION ALL SELECT 'initech', g, g * 10 FROM generate_series(10, 11) g;
CREATE TABLE au_qt (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
INSERT INTO au_qt VALUES ('acme', 1);
CREATE TABLE au_plain (id int PRIMARY KEY);          -- never protected
SELECT tenant_guard.protect('au_invoices');
SELECT tenant_guard.protect('au_qt');
CREATE FUNCTION au_count_fn() RETURNS bigint
    LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN (SELECT count(*) FROM au_invoices); END $$;
CREATE VIEW au_invoices_view WITH (security_invoker = on) AS SELECT tenant_id, id FROM au_invoices;
-- the owner's SECURITY DEFINER function that reads the audit log (tg_owner may not read it either)
CREATE FUNCTION au_peek_audit() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT count(*) FROM tenant_guard.audit_log $$;
GRANT SELECT, INSERT, UPDATE, DELETE ON au_invoices, au_qt TO tg_app, tg_admin;
GRANT SELECT ON au_invoices_view TO tg_app;
RESET ROLE;

-- waits until `expected` events carrying /* marker */ in their query are written, then lists them
CREATE FUNCTION au_seen(marker text, expected int)
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
-- 1. Refusals are audited, and the event survives the statement's rollback
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_app;
BEGIN;
SELECT * FROM au_invoices /* au-rollback */;        -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
-- exactly one event: denied, no_claim, the table, SELECT, tg_app (SET ROLE from postgres), no tenant
SELECT * FROM au_seen('au-rollback', 1);
-- the query text is the statement as sent; pid, application name and client address are this session's
SELECT query,
       backend_pid = pg_backend_pid() AS same_pid,
       application_name = current_setting('application_name') AS same_application,
       client_addr IS NOT DISTINCT FROM inet_client_addr() AS same_client,
       at <= clock_timestamp() AND at > clock_timestamp() - interval '1 minute' AS recent
  FROM tenant_guard.audit_log WHERE query LIKE '%/* au-rollback */%';

-- statements after the refusal in the aborted transaction never run: no event for them
SET ROLE tg_app;
BEGIN;
SELECT * FROM au_invoices /* au-aborted-1 */;       -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM au_invoices /* au-aborted-2 */;       -- refused: the transaction is aborted (not the guard)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SELECT * FROM au_seen('au-aborted-1', 1);           -- one event
SELECT * FROM au_seen('au-aborted-2', 0);           -- none

-- a statement that names the table twice is refused once: one event
SET ROLE tg_app;
SELECT count(*) FROM au_invoices a JOIN au_invoices b USING (tenant_id, id) /* au-selfjoin */;  -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM au_seen('au-selfjoin', 1);

-- a stale claim (session-level SET, next transaction): reason stale_claim, tenant = the stale value
SET ROLE tg_app;
SET tenant_guard.tenant_id = 'acme';                -- allowed, but it counts only in its own transaction
SELECT count(*) FROM au_invoices /* au-stale */;    -- refused: stale claim
\echo :LAST_ERROR_SQLSTATE
RESET tenant_guard.tenant_id;
RESET ROLE;
SELECT * FROM au_seen('au-stale', 1);

-- switching tenants inside a transaction: reason tenant_switch, tenant = the new claim
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM au_invoices;                   -- allowed: 5 (acme's rows)
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT count(*) FROM au_invoices /* au-switch */;   -- refused: tenant switch
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SELECT * FROM au_seen('au-switch', 1);

-- refusals inside a plpgsql function, a DO block, a view, an INSERT and a COPY
SET ROLE tg_app;
SELECT au_count_fn() /* au-fn */;                   -- refused: no claim (inside the function)
\echo :LAST_ERROR_SQLSTATE
DO $$ BEGIN PERFORM count(*) FROM au_invoices; END $$ /* au-do */;  -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM au_invoices_view /* au-view */;       -- refused: no claim (the view's table is named)
\echo :LAST_ERROR_SQLSTATE
INSERT INTO au_invoices VALUES ('acme', 99, 0) /* au-insert */;  -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
COPY au_invoices TO STDOUT /* au-copy */;           -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM au_seen('au-fn', 1);
SELECT * FROM au_seen('au-do', 1);
SELECT * FROM au_seen('au-view', 1);
SELECT * FROM au_seen('au-insert', 1);
SELECT * FROM au_seen('au-copy', 1);

-- a refusal caught by an exception handler is audited all the same (once)
SET ROLE tg_app;
DO $$
BEGIN
    PERFORM count(*) FROM au_invoices;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'caught: %', SQLSTATE;
END
$$ /* au-caught */;                                 -- allowed: NOTICE caught: 42501
RESET ROLE;
SELECT * FROM au_seen('au-caught', 1);

-- SET SESSION AUTHORIZATION: role and session_role are both the application
SET SESSION AUTHORIZATION tg_app;
SELECT count(*) FROM au_invoices /* au-session */;  -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
RESET SESSION AUTHORIZATION;
SELECT * FROM au_seen('au-session', 1);

-- the superuser with a claim: reason superuser, the claim recorded
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM au_invoices /* au-superuser */;  -- refused: superuser (never 11)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT * FROM au_seen('au-superuser', 1);

-- a BYPASSRLS role with a claim: reason bypassrls
SET ROLE tg_admin;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM au_invoices /* au-bypassrls */;  -- refused: BYPASSRLS
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SELECT * FROM au_seen('au-bypassrls', 1);

-- a WITH HOLD cursor in claim_scope = transaction: reason hold_cursor
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DECLARE au_hold CURSOR WITH HOLD FOR SELECT id FROM au_invoices /* au-hold */;  -- refused: WITH HOLD
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SELECT * FROM au_seen('au-hold', 1);

-- an allowed statement is not an event
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id FROM au_invoices ORDER BY id /* au-allowed */;  -- allowed: acme's 5 rows
COMMIT;
SELECT 1 FROM au_invoices /* au-barrier-1 */;       -- refused: no claim (the barrier)
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) FROM au_seen('au-barrier-1', 1);    -- 1
SELECT * FROM au_seen('au-allowed', 0);             -- none

-- ---------------------------------------------------------------------------------------------
-- 2. Shadow mode: allowed with a WARNING, audited as would_deny
-- ---------------------------------------------------------------------------------------------
SET tenant_guard.enforce = shadow;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM au_invoices /* au-shadow-superuser */;  -- WARNING (superuser), then 11
COMMIT;
SELECT count(*) FROM au_invoices /* au-shadow-noclaim */;    -- WARNING (no claim), then 11
-- the application without a claim: the guard only warns, the policy still fails closed
SET ROLE tg_app;
SELECT count(*) FROM au_invoices /* au-shadow-app */;        -- WARNING (no claim), then the policy's error
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- a statement that names the table twice would be refused once: one WARNING, one event
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM au_invoices a JOIN au_invoices b USING (tenant_id, id) /* au-shadow-selfjoin */;  -- WARNING (superuser), then 11
COMMIT;
RESET tenant_guard.enforce;
SELECT * FROM au_seen('au-shadow-superuser', 1);
SELECT * FROM au_seen('au-shadow-noclaim', 1);
SELECT * FROM au_seen('au-shadow-app', 1);
SELECT * FROM au_seen('au-shadow-selfjoin', 1);     -- one event, not one per mention of the table

-- ---------------------------------------------------------------------------------------------
-- 3. protect / unprotect / exempt: written in the caller's transaction (no wait needed)
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
CREATE TABLE au_helper (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE au_parts (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id))
    PARTITION BY LIST (tenant_id);
CREATE TABLE au_parts_acme PARTITION OF au_parts FOR VALUES IN ('acme');
CREATE TABLE au_parts_other PARTITION OF au_parts DEFAULT;
CREATE TABLE au_nocol (id int PRIMARY KEY);
-- a protect() that is rolled back leaves no event
BEGIN;
SELECT tenant_guard.protect('au_helper');           -- allowed
ROLLBACK;
RESET ROLE;
SELECT count(*) FROM tenant_guard.audit_log WHERE relations @> '{public.au_helper}';  -- 0
SET ROLE tg_owner;
SELECT tenant_guard.protect('au_helper');           -- allowed: protect event
SELECT tenant_guard.protect('au_helper');           -- allowed: already protected, no second event
SELECT tenant_guard.protect('au_nocol');            -- refused: no tenant column (no event)
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.unprotect('au_helper', '   '); -- refused: empty reason (no event)
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT tenant_guard.unprotect('au_helper', 'rolled back');  -- allowed, then rolled back: no event
ROLLBACK;
SELECT tenant_guard.unprotect('au_helper', 'moving to a shared catalog');  -- allowed: unprotect event
SELECT tenant_guard.exempt('au_helper', 'shared lookup table');            -- allowed: exempt event
BEGIN;
SELECT tenant_guard.exempt('au_helper', 'rolled back exemption');          -- allowed, then rolled back: no event
ROLLBACK;
SELECT tenant_guard.protect('au_parts');            -- allowed: one protect event per table of the tree
RESET ROLE;
-- visible at once, in order; the reason says the tenant column or repeats the reason given
SELECT event, reason, relations, command, rows, tenant, role, session_role, query
  FROM tenant_guard.audit_log
 WHERE relations && '{public.au_helper,public.au_parts,public.au_parts_acme,public.au_parts_other,public.au_nocol}'
 ORDER BY id;

-- ---------------------------------------------------------------------------------------------
-- 4. Broad reads: tenant_guard.broad_read_rows, set_limits(), trusted roles
-- ---------------------------------------------------------------------------------------------
-- in a new connection, a broad read may be the backend's first event: it must work like any other
\c
\set SHOW_CONTEXT never
\set VERBOSITY default
SET tenant_guard.broad_read_rows = 5;               -- the superuser sets it; SET ROLE keeps it
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id FROM au_invoices ORDER BY id /* au-broad-first */;  -- allowed: 5 rows, a broad read
COMMIT;
RESET ROLE;
SELECT * FROM au_seen('au-broad-first', 1);         -- broad_read, rows>=5, 5 rows, tenant acme
SET ROLE tg_app;
SET tenant_guard.broad_read_rows = 1000;            -- refused: only superusers change it
\echo :LAST_ERROR_SQLSTATE
SHOW tenant_guard.broad_read_rows;                  -- 5
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id FROM au_invoices ORDER BY id /* au-broad-5 */;      -- allowed: 5 rows, a broad read
SELECT count(*) FROM au_invoices /* au-broad-count */;        -- allowed: 1 row returned, not broad
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT id FROM au_invoices ORDER BY id /* au-broad-4 */;      -- allowed: 4 rows, not broad
COMMIT;
-- a broad read in a transaction that rolls back is audited all the same
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id FROM au_invoices ORDER BY id /* au-broad-rollback */;  -- allowed: 5 rows, a broad read
ROLLBACK;
SELECT 1 FROM au_invoices /* au-barrier-2 */;       -- refused: no claim (the barrier)
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) FROM au_seen('au-barrier-2', 1);    -- 1
SELECT * FROM au_seen('au-broad-5', 1);             -- broad_read, rows>=5, 5 rows, tenant acme
SELECT * FROM au_seen('au-broad-rollback', 1);      -- the same
SELECT * FROM au_seen('au-broad-4', 0);             -- none
SELECT * FROM au_seen('au-broad-count', 0);         -- none

-- a cursor: the rows of all its FETCHes count (3 + 2 = 5 rows: a broad read)
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DECLARE au_cur_broad CURSOR FOR SELECT id FROM au_invoices ORDER BY id /* au-broad-cursor */;  -- allowed
FETCH 3 FROM au_cur_broad /* au-broad-cursor */;    -- allowed: 1, 2, 3
FETCH 3 FROM au_cur_broad /* au-broad-cursor */;    -- allowed: 4, 5
CLOSE au_cur_broad /* au-broad-cursor */;
COMMIT;
RESET ROLE;
SELECT * FROM au_seen('au-broad-cursor', 1);        -- broad_read, rows>=5, 5 rows

-- an admitted statement that fails inside a savepoint leaves nothing behind: the next statement,
-- which reads no protected table, is not a broad read
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SAVEPOINT au_sp;
SELECT 1 / (id - id) FROM au_invoices /* au-sp-div */;  -- refused: division by zero
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO au_sp;
SELECT g FROM generate_series(1, 5) g /* au-sp-div-after */;  -- allowed: 5 rows, no protected table
COMMIT;
SELECT 1 FROM au_invoices /* au-barrier-4 */;       -- refused: no claim (the barrier)
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) FROM au_seen('au-barrier-4', 1);    -- 1
SELECT * FROM au_seen('au-sp-div', 0);              -- none
SELECT * FROM au_seen('au-sp-div-after', 0);        -- none

-- per-table override: set_limits(rel, broad_read_rows, max_rows) by the owner
SET ROLE tg_owner;
SELECT tenant_guard.set_limits('au_invoices', 2, NULL);  -- allowed
RESET ROLE;
SELECT broad_read_rows, max_rows FROM tenant_guard.protected_tables WHERE relid = 'au_invoices'::regclass;  -- 2, NULL
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'initech';
SELECT id FROM au_invoices ORDER BY id /* au-broad-table-2 */;  -- allowed: 2 rows, broad for this table
COMMIT;
RESET ROLE;
SELECT * FROM au_seen('au-broad-table-2', 1);       -- broad_read, rows>=2, 2 rows, tenant initech
-- an override of 0 turns broad reads by count off for the table, whatever the setting
SET ROLE tg_owner;
SELECT tenant_guard.set_limits('au_invoices', 0, NULL);  -- allowed
RESET ROLE;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id FROM au_invoices ORDER BY id /* au-broad-table-0 */;  -- allowed: 5 rows, not broad (override 0)
COMMIT;
SELECT 1 FROM au_invoices /* au-barrier-3 */;       -- refused: no claim (the barrier)
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) FROM au_seen('au-barrier-3', 1);    -- 1
SELECT * FROM au_seen('au-broad-table-0', 0);       -- none

-- set_limits() refuses bad input
SET ROLE tg_owner;
SELECT tenant_guard.set_limits(NULL, 1, 1);         -- refused: NULL table
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_limits('au_invoices', -1, NULL);  -- refused: negative broad_read_rows
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_limits('au_invoices', NULL, -1);  -- refused: negative max_rows
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_limits('au_plain', 10, 10); -- refused: not protected
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.set_limits('au_invoices_view', 10, 10);  -- refused: a view
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE tg_app;
SELECT tenant_guard.set_limits('au_invoices', 1000000, 0);  -- refused: not the owner
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT broad_read_rows, max_rows FROM tenant_guard.protected_tables WHERE relid = 'au_invoices'::regclass;  -- 0, NULL (unchanged)
SET ROLE tg_owner;
SELECT tenant_guard.set_limits('au_invoices', NULL, NULL);  -- allowed: back to the settings
RESET ROLE;

-- a trusted role (BYPASSRLS, listed in tenant_guard.trusted_roles): every read is broad, also
-- the first statement of a new connection
\c
\set SHOW_CONTEXT never
\set VERBOSITY default
SET tenant_guard.broad_read_rows = 5;
SET tenant_guard.trusted_roles = 'tg_admin';
SET ROLE tg_admin;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM au_invoices /* au-trusted-count */;      -- allowed: 11 (every tenant)
SELECT id FROM au_invoices ORDER BY id /* au-trusted-rows */; -- allowed: 11 rows
COMMIT;
RESET ROLE;
RESET tenant_guard.trusted_roles;
RESET tenant_guard.broad_read_rows;
SELECT * FROM au_seen('au-trusted-count', 1);       -- broad_read, trusted_role, 1 row, role tg_admin
SELECT * FROM au_seen('au-trusted-rows', 1);        -- broad_read, trusted_role, 11 rows

-- ---------------------------------------------------------------------------------------------
-- 5. Row cap: tenant_guard.max_rows
-- ---------------------------------------------------------------------------------------------
SET tenant_guard.max_rows = 3;
SET ROLE tg_app;
SET tenant_guard.max_rows = 0;                      -- refused: only superusers change it
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.max_rows = 0;                -- refused
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT set_config('tenant_guard.max_rows', '0', false);  -- refused
\echo :LAST_ERROR_SQLSTATE
SHOW tenant_guard.max_rows;                         -- 3
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id FROM au_invoices ORDER BY id LIMIT 3 /* au-cap-3 */;  -- allowed: exactly 3 rows
SELECT count(*) FROM au_invoices;                   -- allowed: 5 rows read, 1 returned
SELECT id FROM au_invoices ORDER BY id /* au-cap-5 */;  -- refused: would return 5 > 3 rows
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SELECT * FROM au_seen('au-cap-5', 1);               -- row_cap, max_rows=3, rows 4 (the row past the cap)
SELECT * FROM au_seen('au-cap-3', 0);               -- none

-- per-table override: set_limits(rel, NULL, 2)
SET ROLE tg_owner;
SELECT tenant_guard.set_limits('au_invoices', NULL, 2);  -- allowed
RESET ROLE;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id FROM au_invoices ORDER BY id LIMIT 2;     -- allowed: 2 rows
SELECT id FROM au_invoices ORDER BY id LIMIT 3 /* au-cap-table */;  -- refused: 3 > 2 rows
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SELECT * FROM au_seen('au-cap-table', 1);           -- row_cap, max_rows=2, rows 3
-- an override of 0 lifts the cap for the table
SET ROLE tg_owner;
SELECT tenant_guard.set_limits('au_invoices', NULL, 0);  -- allowed
RESET ROLE;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id FROM au_invoices ORDER BY id;             -- allowed: 5 rows (no cap on this table)
COMMIT;
RESET ROLE;
SET ROLE tg_owner;
SELECT tenant_guard.set_limits('au_invoices', NULL, NULL);  -- allowed: back to the settings
RESET ROLE;

-- a cursor: the FETCHes together may not pass the cap; the row past it is refused
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DECLARE au_cur CURSOR FOR SELECT id FROM au_invoices ORDER BY id /* au-cap-fetch */;  -- allowed
FETCH 2 FROM au_cur /* au-cap-fetch */;             -- allowed: 1, 2
FETCH 2 FROM au_cur /* au-cap-fetch */;             -- refused: the 4th row passes the cap of 3
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SELECT * FROM au_seen('au-cap-fetch', 1);           -- row_cap, max_rows=3, rows 4
-- the same through psql's FETCH_COUNT (a cursor fetched 2 rows at a time, like a driver's fetch size)
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
\set FETCH_COUNT 2
SELECT id FROM au_invoices ORDER BY id;             -- refused at the 4th row: 1, 2 shown, then 54000
\echo :LAST_ERROR_SQLSTATE
\unset FETCH_COUNT
ROLLBACK;
RESET ROLE;

-- a capped statement inside a savepoint leaves nothing behind: the next statement, which reads
-- no protected table, is not capped
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SAVEPOINT au_sp;
SELECT id FROM au_invoices ORDER BY id /* au-sp-cap */;  -- refused: 5 > 3 rows
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO au_sp;
SELECT g FROM generate_series(1, 5) g /* au-sp-cap-after */;  -- allowed: 5 rows, no protected table
COMMIT;
SELECT 1 FROM au_invoices /* au-barrier-5 */;       -- refused: no claim (the barrier)
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) FROM au_seen('au-barrier-5', 1);    -- 1
SELECT * FROM au_seen('au-sp-cap', 1);              -- row_cap, max_rows=3, rows 4
SELECT * FROM au_seen('au-sp-cap-after', 0);        -- none

-- max_rows = 0: no cap
SET tenant_guard.max_rows = 0;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id FROM au_invoices ORDER BY id;             -- allowed: 5 rows
COMMIT;
RESET ROLE;
RESET tenant_guard.max_rows;
SHOW tenant_guard.max_rows;                         -- 0 (the default)

-- ---------------------------------------------------------------------------------------------
-- 6. The audit log is append-only; prune_audit() is the only way rows leave it
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_app;
SELECT count(*) FROM tenant_guard.audit_log;        -- refused: permission denied
\echo :LAST_ERROR_SQLSTATE
INSERT INTO tenant_guard.audit_log (at, event) VALUES (now(), 'denied');  -- refused: permission denied
\echo :LAST_ERROR_SQLSTATE
UPDATE tenant_guard.audit_log SET reason = 'forged';  -- refused: permission denied
\echo :LAST_ERROR_SQLSTATE
DELETE FROM tenant_guard.audit_log;                 -- refused: permission denied
\echo :LAST_ERROR_SQLSTATE
TRUNCATE tenant_guard.audit_log;                    -- refused: permission denied
\echo :LAST_ERROR_SQLSTATE
COPY tenant_guard.audit_log TO STDOUT;              -- refused: permission denied
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE tenant_guard.audit_log DISABLE TRIGGER audit_log_append_only;  -- refused: not the owner
\echo :LAST_ERROR_SQLSTATE
SELECT au_peek_audit();                             -- refused: the owner of the function may not read it either
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.prune_audit(interval '1 hour'); -- refused: permission denied for the function
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard._prune_audit_before(now());     -- refused: permission denied for the function
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- ops read it through the documented grant, and still cannot change it
CREATE ROLE au_ops;
GRANT SELECT ON tenant_guard.audit_log TO au_ops;
SET ROLE au_ops;
SELECT count(*) > 0 AS can_read FROM tenant_guard.audit_log WHERE query LIKE '%/* au-rollback */%';  -- t
DELETE FROM tenant_guard.audit_log;                 -- refused: permission denied
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.prune_audit(interval '1 hour'); -- refused: permission denied for the function
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
REVOKE SELECT ON tenant_guard.audit_log FROM au_ops;
DROP ROLE au_ops;
-- the superuser may append (an old event, to prune below) but not change or remove rows
INSERT INTO tenant_guard.audit_log (at, event, reason, query)
    VALUES ('2001-01-01 00:00:00+00', 'denied', 'no_claim', '/* au-old */');  -- allowed
SELECT count(*) AS before FROM tenant_guard.audit_log \gset
UPDATE tenant_guard.audit_log SET reason = 'forged'
 WHERE id = (SELECT min(id) FROM tenant_guard.audit_log);  -- refused: append-only
\echo :LAST_ERROR_SQLSTATE
DELETE FROM tenant_guard.audit_log
 WHERE id = (SELECT min(id) FROM tenant_guard.audit_log);  -- refused: append-only
\echo :LAST_ERROR_SQLSTATE
TRUNCATE tenant_guard.audit_log;                    -- refused: append-only
\echo :LAST_ERROR_SQLSTATE
-- not even with triggers switched off for replication
BEGIN;
SET LOCAL session_replication_role = replica;
DELETE FROM tenant_guard.audit_log
 WHERE id = (SELECT min(id) FROM tenant_guard.audit_log);  -- refused: append-only
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT count(*) = :before AS unchanged FROM tenant_guard.audit_log;  -- t
SELECT tenant_guard.prune_audit(NULL);              -- refused: NULL interval
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.prune_audit(interval '-1 day'); -- refused: negative interval
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.prune_audit(interval '0');      -- refused: zero interval
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard._prune_audit_before(NULL);      -- refused: NULL cutoff
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.prune_audit(interval '1 day');  -- allowed: 1 (only the old event)
SELECT count(*) = :before - 1 AS one_fewer,
       count(*) FILTER (WHERE query = '/* au-old */') AS old_left
  FROM tenant_guard.audit_log;                      -- t, 0
-- after pruning, the log is append-only again
DELETE FROM tenant_guard.audit_log
 WHERE id = (SELECT min(id) FROM tenant_guard.audit_log);  -- refused: append-only
\echo :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------------------------------------
-- 7. Query text: tenant_guard.audit_query_max; tenant_guard.audit_queue_size is fixed at start
-- ---------------------------------------------------------------------------------------------
SET tenant_guard.audit_query_max = 10;
SET ROLE tg_app;
SELECT count(*) FROM au_qt;                         -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
SELECT 'xé' AS v, count(*) FROM au_qt;              -- refused: no claim (10th byte inside 'é')
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET tenant_guard.audit_query_max = 0;
SET ROLE tg_app;
SELECT count(*) FROM au_qt;                         -- refused: no claim (no query text)
\echo :LAST_ERROR_SQLSTATE
SET tenant_guard.audit_query_max = 100;             -- refused: only superusers change it
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
RESET tenant_guard.audit_query_max;
DO $$
BEGIN
    FOR i IN 1..50 LOOP
        EXIT WHEN (SELECT count(*) FROM tenant_guard.audit_log
                    WHERE relations @> '{public.au_qt}' AND event = 'denied') >= 3;
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
-- at most 10 bytes, cut at a character boundary; then no query text at all
SELECT event, reason, query, octet_length(query) AS bytes
  FROM tenant_guard.audit_log WHERE relations @> '{public.au_qt}' AND event = 'denied' ORDER BY id;
SET tenant_guard.audit_query_max = -1;              -- refused: out of range
\echo :LAST_ERROR_SQLSTATE
SET tenant_guard.audit_query_max = 5000;            -- refused: out of range
\echo :LAST_ERROR_SQLSTATE
SET tenant_guard.broad_read_rows = -1;              -- refused: out of range
\echo :LAST_ERROR_SQLSTATE
SET tenant_guard.max_rows = -1;                     -- refused: out of range
\echo :LAST_ERROR_SQLSTATE
SHOW tenant_guard.audit_query_max;                  -- 1024 (the default)
SET tenant_guard.audit_queue_size = 100;            -- refused: set at server start only
\echo :LAST_ERROR_SQLSTATE
SHOW tenant_guard.audit_queue_size;                 -- 4096

-- ---------------------------------------------------------------------------------------------
-- 8. Events land in the database where they happened; a database without the extension is left
--    alone
-- ---------------------------------------------------------------------------------------------
SELECT current_database() AS au_home \gset
CREATE DATABASE au_db2;
CREATE DATABASE au_db3;
\c au_db2
\set SHOW_CONTEXT never
\set VERBOSITY default
SET client_min_messages = warning;
CREATE EXTENSION tenant_guard;
RESET client_min_messages;
BEGIN;   -- one migration: the new-table guard wants the table protected by commit
CREATE TABLE au_db2_t (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenant_guard.protect('au_db2_t');
COMMIT;
GRANT SELECT ON au_db2_t TO tg_app;
SET ROLE tg_app;
SELECT * FROM au_db2_t /* au-db2 */;                -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DO $$
BEGIN
    FOR i IN 1..50 LOOP
        EXIT WHEN (SELECT count(*) FROM tenant_guard.audit_log WHERE query LIKE '%/* au-db2 */%') >= 1;
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT event, reason, relations, role FROM tenant_guard.audit_log
 WHERE query LIKE '%/* au-db2 */%' ORDER BY id;     -- one event, in au_db2
\c au_db3
\set SHOW_CONTEXT never
\set VERBOSITY default
CREATE TABLE au_db3_t (tenant_id text NOT NULL, id int NOT NULL);
INSERT INTO au_db3_t VALUES ('acme', 1);
GRANT SELECT ON au_db3_t TO tg_app;
SET ROLE tg_app;
SELECT count(*) FROM au_db3_t;                      -- allowed: no extension here, nothing to guard
RESET ROLE;
SELECT to_regclass('tenant_guard.audit_log') IS NULL AS no_audit_log;  -- t
\c :au_home
\set SHOW_CONTEXT never
\set VERBOSITY default
SELECT count(*) FROM tenant_guard.audit_log WHERE query LIKE '%/* au-db2 */%';  -- 0: not in this database
DROP DATABASE au_db2 WITH (FORCE);
DROP DATABASE au_db3;

-- ---------------------------------------------------------------------------------------------
-- 9. status(): the writer's counters (only stable comparisons)
-- ---------------------------------------------------------------------------------------------
SELECT audit_queue_size = 4096 AS queue_size,
       events_enqueued > 0 AS enqueued,
       events_written > 0 AS written,
       events_written <= events_enqueued AS written_le_enqueued,
       events_dropped = 0 AS none_dropped,
       jsonb_typeof(denials) AS denials_type,
       (denials->>'no_claim')::bigint > 0 AS no_claim,
       (denials->>'stale_claim')::bigint > 0 AS stale_claim,
       (denials->>'tenant_switch')::bigint > 0 AS tenant_switch,
       (denials->>'hold_cursor')::bigint > 0 AS hold_cursor,
       (denials->>'policy_voiding_role')::bigint > 0 AS policy_voiding_role
  FROM tenant_guard.status();
SELECT denials ?& array['no_claim', 'stale_claim', 'tenant_switch', 'hold_cursor', 'policy_voiding_role']
       AS has_kinds FROM tenant_guard.status();
