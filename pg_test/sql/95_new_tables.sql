\set VERBOSITY default
\set SHOW_CONTEXT never
-- 95_new_tables: the new-table guard. A table in a watched schema (tenant_guard.watched_schemas)
-- that gets a tenant column (tenant_guard.tenant_columns) in a transaction must be protected or
-- exempt when that transaction commits; tenant_guard.new_table_action says what happens if it is
-- not: error (default: the commit fails, the message shows both ways out, a 'denied' event),
-- warn (WARNING at commit, the table is kept, a 'would_deny' event) or protect (protected on the
-- spot by the event trigger, a 'protect' event). Every DDL form: CREATE TABLE, CREATE TABLE AS,
-- SELECT INTO, ALTER TABLE ... ADD COLUMN, CREATE TABLE ... PARTITION OF. The migrations run as
-- the owner role tg_owner; the settings are superuser-only, so postgres sets them for the
-- session and SET ROLE keeps them.
-- Contract: "Ops surface" (New tables); issue 5 ("New tables", "Tests"). Tables start with nt_.
--
-- 00_setup sets ALTER DATABASE ... SET tenant_guard.watched_schemas = '' for the other files;
-- this file watches 'public' for its own session and resets it at the end.
--
-- Guard events are written asynchronously. nt_seen(relation, n) polls (up to 5 s) until n
-- new_table_unprotected events name the relation, then lists them. The complete list of this
-- file's events is checked at the end, after waiting for the last one (events of one backend
-- are written in the order they were queued), so missing and extra events both show.

-- ---------------------------------------------------------------------------------------------
-- Fixture: legacy tables created while no schema is watched (the database default here)
-- ---------------------------------------------------------------------------------------------
SHOW tenant_guard.watched_schemas;                  -- '' (the database default of the suite)
SHOW tenant_guard.tenant_columns;                   -- tenant_id
SHOW tenant_guard.new_table_action;                 -- error (the default)
CREATE SCHEMA nt_other AUTHORIZATION tg_owner;      -- never watched
SET ROLE tg_owner;
-- a legacy tenant table that nobody protected yet (its tenant column predates every migration below)
CREATE TABLE nt_legacy (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
-- legacy tables that get a tenant column later
CREATE TABLE nt_legacy_add (id int PRIMARY KEY);
CREATE TABLE nt_legacy_add2 (id int PRIMARY KEY);
CREATE TABLE nt_legacy_add3 (id int PRIMARY KEY);
CREATE TABLE nt_legacy_ren (tid text NOT NULL, id int PRIMARY KEY);
-- an unprotected source for CREATE TABLE AS / SELECT INTO (a protected source is the tamper
-- guard's business: copy_into_unprotected)
CREATE TABLE nt_src (id int PRIMARY KEY);
INSERT INTO nt_src VALUES (1), (2);
-- an unprotected partitioned parent with a tenant column, and a protected one
CREATE TABLE nt_lparent (tenant_id text NOT NULL, k int NOT NULL, PRIMARY KEY (tenant_id, k)) PARTITION BY LIST (k);
CREATE TABLE nt_pparent (tenant_id text NOT NULL, k int NOT NULL, PRIMARY KEY (tenant_id, k)) PARTITION BY LIST (k);
SELECT tenant_guard.protect('nt_pparent');
-- a tenant table in a schema nobody watches, moved into public later
CREATE TABLE nt_other.nt_moved (tenant_id text NOT NULL PRIMARY KEY);
RESET ROLE;

-- waits until `expected` new_table_unprotected events name `rel`, then lists them
CREATE FUNCTION nt_seen(rel text, expected int)
RETURNS TABLE (event text, reason text, relations text[], command text, tenant text, role text, session_role text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    FOR i IN 1..50 LOOP
        EXIT WHEN (SELECT count(*) FROM tenant_guard.audit_log a
                    WHERE a.reason = 'new_table_unprotected' AND a.relations = ARRAY[rel]) >= expected;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN QUERY
        SELECT a.event, a.reason, a.relations, a.command, a.tenant, a.role, a.session_role
          FROM tenant_guard.audit_log a
         WHERE a.reason = 'new_table_unprotected' AND a.relations = ARRAY[rel]
         ORDER BY a.id;
END
$$;

-- from here on, public is watched (session setting of postgres, kept across SET ROLE)
SET tenant_guard.watched_schemas = 'public';
SELECT (denials->>'tamper')::bigint AS tamper_before FROM tenant_guard.status() \gset

-- ---------------------------------------------------------------------------------------------
-- 1. The settings are superuser-only
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
SET tenant_guard.new_table_action = warn;           -- refused: only superusers change it
\echo :LAST_ERROR_SQLSTATE
SET tenant_guard.watched_schemas = '';              -- refused: only superusers change it
\echo :LAST_ERROR_SQLSTATE
SET tenant_guard.tenant_columns = 'nothing';        -- refused: only superusers change it
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.new_table_action = protect;  -- refused: only superusers change it
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT set_config('tenant_guard.new_table_action', 'warn', false);  -- refused
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SHOW tenant_guard.new_table_action;                 -- error
SHOW tenant_guard.watched_schemas;                  -- public

-- ---------------------------------------------------------------------------------------------
-- 2. new_table_action = error, the table created in one transaction and left unprotected:
--    the commit fails (42501) with both ways out in the hint; the table does not exist after
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
-- CREATE TABLE
CREATE TABLE nt_e_create (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));  -- refused at commit
\echo :LAST_ERROR_SQLSTATE
SELECT to_regclass('public.nt_e_create') IS NULL AS gone;  -- t
-- CREATE TABLE AS, from an unprotected source
CREATE TABLE nt_e_ctas AS SELECT 'acme'::text AS tenant_id, id FROM nt_src;  -- refused at commit
\echo :LAST_ERROR_SQLSTATE
SELECT to_regclass('public.nt_e_ctas') IS NULL AS gone;    -- t
-- SELECT INTO
SELECT 'acme'::text AS tenant_id, id INTO nt_e_into FROM nt_src;  -- refused at commit
\echo :LAST_ERROR_SQLSTATE
SELECT to_regclass('public.nt_e_into') IS NULL AS gone;    -- t
-- ALTER TABLE ... ADD COLUMN tenant_id on an existing table
ALTER TABLE nt_legacy_add ADD COLUMN tenant_id text NOT NULL DEFAULT 'acme';  -- refused at commit
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS tenant_columns FROM pg_attribute
 WHERE attrelid = 'nt_legacy_add'::regclass AND attname = 'tenant_id' AND NOT attisdropped;  -- 0
-- CREATE TABLE ... PARTITION OF an unprotected partitioned parent
CREATE TABLE nt_lparent_1 PARTITION OF nt_lparent FOR VALUES IN (1);  -- refused at commit
\echo :LAST_ERROR_SQLSTATE
SELECT to_regclass('public.nt_lparent_1') IS NULL AS gone; -- t
-- a migration split over several transactions: the table cannot wait for the next one
BEGIN;
CREATE TABLE nt_e_split (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));  -- allowed for now
INSERT INTO nt_e_split VALUES ('acme', 1);          -- allowed for now
COMMIT;                                             -- refused: not protected at commit
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT tenant_guard.protect('nt_e_split');          -- refused: the table was never created
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- two new tables, only one protected: the commit fails on the other, and neither exists after
BEGIN;
CREATE TABLE nt_e_two_a (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE nt_e_two_b (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenant_guard.protect('nt_e_two_a');          -- allowed
COMMIT;                                             -- refused: nt_e_two_b is neither protected nor exempt
\echo :LAST_ERROR_SQLSTATE
SELECT to_regclass('public.nt_e_two_a') IS NULL AND to_regclass('public.nt_e_two_b') IS NULL AS both_gone;  -- t
-- protected, then unprotected again in the same migration: unprotected at commit
BEGIN;
CREATE TABLE nt_e_unprot (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenant_guard.protect('nt_e_unprot');         -- allowed
SELECT tenant_guard.unprotect('nt_e_unprot', 'changed my mind');  -- allowed
COMMIT;                                             -- refused: neither protected nor exempt at commit
\echo :LAST_ERROR_SQLSTATE
-- a table created in a savepoint that is released is still the transaction's new table
BEGIN;
SAVEPOINT s1;
CREATE TABLE nt_e_released (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
RELEASE SAVEPOINT s1;
COMMIT;                                             -- refused: created in this transaction, not protected
\echo :LAST_ERROR_SQLSTATE
SELECT to_regclass('public.nt_e_released') IS NULL AS gone;  -- t
-- the same in a plpgsql block with an exception handler (a common idempotent-migration shape;
-- the block runs in a subtransaction)
DO $$
BEGIN
    CREATE TABLE nt_e_do (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
EXCEPTION WHEN duplicate_table THEN NULL;
END
$$;                                                 -- refused at commit
\echo :LAST_ERROR_SQLSTATE
SELECT to_regclass('public.nt_e_do') IS NULL AS gone;  -- t
-- other routes to a tenant-scoped table in a watched schema:
-- an UNLOGGED table (protect() accepts it, so it must be protected like any other)
CREATE UNLOGGED TABLE nt_e_unlogged (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));  -- refused at commit
\echo :LAST_ERROR_SQLSTATE
SELECT to_regclass('public.nt_e_unlogged') IS NULL AS gone;  -- t
-- a column renamed to the tenant column
ALTER TABLE nt_legacy_ren RENAME COLUMN tid TO tenant_id;  -- refused at commit
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS tenant_columns FROM pg_attribute
 WHERE attrelid = 'nt_legacy_ren'::regclass AND attname = 'tenant_id';  -- 0
-- a table moved into a watched schema
ALTER TABLE nt_other.nt_moved SET SCHEMA public;    -- refused at commit
\echo :LAST_ERROR_SQLSTATE
SELECT to_regclass('public.nt_moved') IS NULL AS not_moved;  -- t
RESET ROLE;
-- each refusal is audited as 'denied', reason new_table_unprotected, command COMMIT, by tg_owner
SELECT * FROM nt_seen('public.nt_e_create', 1);
SELECT * FROM nt_seen('public.nt_e_ctas', 1);
SELECT * FROM nt_seen('public.nt_e_into', 1);
SELECT * FROM nt_seen('public.nt_legacy_add', 1);
SELECT * FROM nt_seen('public.nt_lparent_1', 1);
SELECT * FROM nt_seen('public.nt_e_split', 1);
SELECT * FROM nt_seen('public.nt_e_two_b', 1);
SELECT * FROM nt_seen('public.nt_e_unprot', 1);
-- a new-table refusal is not tampering with a protected table: the tamper counter did not move
SELECT (denials->>'tamper')::bigint = :tamper_before AS tamper_unchanged FROM tenant_guard.status();  -- t

-- ---------------------------------------------------------------------------------------------
-- 3. new_table_action = error, inside one migration transaction: protect() or exempt() later
--    in the same transaction, and the commit succeeds
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
-- CREATE TABLE, rows, an index, then protect()
BEGIN;
CREATE TABLE nt_m_create (tenant_id text NOT NULL, id int NOT NULL, amount int);
INSERT INTO nt_m_create VALUES ('acme', 1, 10), ('globex', 2, 20);
CREATE INDEX ON nt_m_create (tenant_id, id);
SELECT tenant_guard.protect('nt_m_create');         -- allowed
COMMIT;                                             -- allowed
-- CREATE TABLE AS (its columns are nullable: SET NOT NULL first), then protect()
BEGIN;
CREATE TABLE nt_m_ctas AS SELECT 'acme'::text AS tenant_id, id FROM nt_src;
ALTER TABLE nt_m_ctas ALTER COLUMN tenant_id SET NOT NULL;
CREATE INDEX ON nt_m_ctas (tenant_id);
SELECT tenant_guard.protect('nt_m_ctas');           -- allowed
COMMIT;                                             -- allowed
-- SELECT INTO, then exempt()
BEGIN;
SELECT 'acme'::text AS tenant_id, id INTO nt_m_into FROM nt_src;
SELECT tenant_guard.exempt('nt_m_into', 'copy of a shared list');  -- allowed
COMMIT;                                             -- allowed
-- ADD COLUMN tenant_id on an existing table, then protect()
BEGIN;
ALTER TABLE nt_legacy_add ADD COLUMN tenant_id text NOT NULL DEFAULT 'acme';
CREATE INDEX ON nt_legacy_add (tenant_id);
SELECT tenant_guard.protect('nt_legacy_add');       -- allowed
COMMIT;                                             -- allowed
-- PARTITION OF an unprotected parent, then protect() of the parent (and so the partition)
BEGIN;
CREATE TABLE nt_lparent_1 PARTITION OF nt_lparent FOR VALUES IN (1);
SELECT tenant_guard.protect('nt_lparent');          -- allowed: parent and 1 partition
COMMIT;                                             -- allowed
-- a shared table: exempt() in the same migration
BEGIN;
CREATE TABLE nt_m_plans (tenant_id text, name text, price int);
SELECT tenant_guard.exempt('nt_m_plans', 'global price list, same for every tenant');  -- allowed
COMMIT;                                             -- allowed
RESET ROLE;
SELECT relid, tenant_column, parent FROM tenant_guard.protected_tables
 WHERE relid::text LIKE 'nt\_%' ORDER BY relid::text;  -- nt_legacy_add, nt_lparent(+_1), nt_m_create, nt_m_ctas, nt_pparent
SELECT relid, reason FROM tenant_guard.exempt_tables WHERE relid::text LIKE 'nt\_%' ORDER BY relid::text;

-- PARTITION OF a protected parent: protected on the spot by the partition trigger, no error
SET ROLE tg_owner;
CREATE TABLE nt_pparent_1 PARTITION OF nt_pparent FOR VALUES IN (1);  -- allowed: NOTICE protected
BEGIN;
CREATE TABLE nt_pparent_2 PARTITION OF nt_pparent FOR VALUES IN (2);  -- allowed: NOTICE protected
COMMIT;                                             -- allowed
RESET ROLE;
SELECT relid, tenant_column, parent FROM tenant_guard.protected_tables
 WHERE relid IN ('nt_pparent_1'::regclass, 'nt_pparent_2'::regclass) ORDER BY relid::text;

-- a table created in a savepoint that is rolled back is not flagged
SET ROLE tg_owner;
BEGIN;
SAVEPOINT s1;
CREATE TABLE nt_sp_gone (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
ROLLBACK TO SAVEPOINT s1;
COMMIT;                                             -- allowed: the table never existed
-- nor a table created and dropped in the same transaction
BEGIN;
CREATE TABLE nt_dropped (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
DROP TABLE nt_dropped;
COMMIT;                                             -- allowed
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- 4. Not flagged
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
CREATE TABLE nt_no_tenant (id int PRIMARY KEY, tenant text);  -- allowed: no column named tenant_id
CREATE TABLE nt_other.nt_elsewhere (tenant_id text NOT NULL PRIMARY KEY);  -- allowed: schema not watched
CREATE TEMP TABLE nt_temp (tenant_id text NOT NULL PRIMARY KEY);  -- allowed: temporary table
ALTER TABLE nt_legacy ADD COLUMN note text;         -- allowed: the tenant column predates the transaction
CREATE INDEX nt_legacy_note ON nt_legacy (note);    -- allowed: not a table change
RESET ROLE;
SELECT to_regclass('public.nt_no_tenant') IS NOT NULL AS no_tenant,
       to_regclass('nt_other.nt_elsewhere') IS NOT NULL AS elsewhere,
       to_regclass('pg_temp.nt_temp') IS NOT NULL AS temp,
       (SELECT count(*) FROM pg_attribute WHERE attrelid = 'nt_legacy'::regclass AND attname = 'note') AS legacy_note;  -- t t t 1

-- a custom list of tenant columns
SET tenant_guard.tenant_columns = 'tenant_id, org_id';
SET ROLE tg_owner;
CREATE TABLE nt_org (org_id uuid NOT NULL, id int NOT NULL, PRIMARY KEY (org_id, id));  -- refused at commit: org_id is a tenant column now
\echo :LAST_ERROR_SQLSTATE
BEGIN;
CREATE TABLE nt_org (org_id uuid NOT NULL, id int NOT NULL, PRIMARY KEY (org_id, id));
SELECT tenant_guard.protect('nt_org', 'org_id');    -- allowed
COMMIT;                                             -- allowed
CREATE TABLE nt_org_tenant (tenant_id text NOT NULL PRIMARY KEY);  -- refused at commit: tenant_id is still listed
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
RESET tenant_guard.tenant_columns;
SET ROLE tg_owner;
CREATE TABLE nt_org_default (org_id uuid NOT NULL PRIMARY KEY);  -- allowed: org_id is not in the default list
RESET ROLE;
SELECT * FROM nt_seen('public.nt_org', 1);
SELECT * FROM nt_seen('public.nt_org_tenant', 1);

-- ---------------------------------------------------------------------------------------------
-- 5. new_table_action = warn: a WARNING at commit, the table is kept, a 'would_deny' event
-- ---------------------------------------------------------------------------------------------
SET tenant_guard.new_table_action = warn;
SET ROLE tg_owner;
CREATE TABLE nt_w_create (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));  -- allowed: WARNING
BEGIN;
ALTER TABLE nt_legacy_add2 ADD COLUMN tenant_id text NOT NULL DEFAULT 'acme';  -- allowed
COMMIT;                                             -- allowed: WARNING
BEGIN;
CREATE TABLE nt_w_protected (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenant_guard.protect('nt_w_protected');      -- allowed
COMMIT;                                             -- allowed: no warning
RESET ROLE;
SELECT to_regclass('public.nt_w_create') IS NOT NULL AS kept,
       EXISTS (SELECT 1 FROM tenant_guard.protected_tables WHERE relid = 'nt_w_create'::regclass) AS protected;  -- t f
SELECT * FROM nt_seen('public.nt_w_create', 1);    -- would_deny
SELECT * FROM nt_seen('public.nt_legacy_add2', 1); -- would_deny
RESET tenant_guard.new_table_action;

-- ---------------------------------------------------------------------------------------------
-- 6. new_table_action = protect: protected on the spot (NOTICE, registry row, 'protect' event)
-- ---------------------------------------------------------------------------------------------
SET tenant_guard.new_table_action = protect;
SET ROLE tg_owner;
CREATE TABLE nt_p_create (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));  -- allowed: NOTICE protected
ALTER TABLE nt_legacy_add3 ADD COLUMN tenant_id text NOT NULL DEFAULT 'acme';  -- allowed: NOTICE protected (after the WARNING: no index leads with tenant_id)
BEGIN;
CREATE TABLE nt_p_txn (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));  -- allowed: NOTICE protected
SELECT tenant_guard.protect('nt_p_txn');            -- allowed: already protected
COMMIT;
-- protect() refuses a nullable tenant column, and so does the DDL that would need it
CREATE TABLE nt_p_nullable (tenant_id text, id int);  -- refused: 22023 nullable tenant column
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE nt_p_ctas AS SELECT 'acme'::text AS tenant_id, id FROM nt_src;  -- refused: 22023 (CREATE TABLE AS columns are nullable)
\echo :LAST_ERROR_SQLSTATE
SELECT to_regclass('public.nt_p_nullable') IS NULL AND to_regclass('public.nt_p_ctas') IS NULL AS both_gone;  -- t
GRANT SELECT ON nt_p_create TO tg_app;
RESET ROLE;
-- the column from the custom list is the one protected
SET tenant_guard.tenant_columns = 'tenant_id, org_id';
SET ROLE tg_owner;
CREATE TABLE nt_p_org (org_id uuid NOT NULL, id int NOT NULL, PRIMARY KEY (org_id, id));  -- allowed: NOTICE protected on org_id
RESET ROLE;
RESET tenant_guard.tenant_columns;
RESET tenant_guard.new_table_action;
SELECT relid, tenant_column, tenant_type FROM tenant_guard.protected_tables
 WHERE relid IN ('nt_p_create'::regclass, 'nt_legacy_add3'::regclass, 'nt_p_txn'::regclass, 'nt_p_org'::regclass)
 ORDER BY relid::text;
SELECT event, reason, relations, command, role FROM tenant_guard.audit_log
 WHERE event = 'protect' AND relations && ARRAY['public.nt_p_create', 'public.nt_legacy_add3', 'public.nt_p_txn', 'public.nt_p_org']
 ORDER BY relations;                                -- one event per table
-- and it is enforced at once
SET ROLE tg_app;
SELECT count(*) FROM nt_p_create;                   -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- 7. Every new_table_unprotected event of this file, in order (none for the tables that were
--    not flagged, none for protect mode)
-- ---------------------------------------------------------------------------------------------
SELECT count(*) FROM nt_seen('public.nt_legacy_add2', 1);  -- 1 (the last one queued)
SELECT event, relations, command, role FROM tenant_guard.audit_log
 WHERE reason = 'new_table_unprotected'
   AND (relations[1] LIKE 'public.nt\_%' OR relations[1] LIKE 'nt\_other.%')
 ORDER BY id;

-- back to the suite's settings
RESET tenant_guard.watched_schemas;
SHOW tenant_guard.watched_schemas;                  -- '' (the database default)
SHOW tenant_guard.new_table_action;                 -- error
SHOW tenant_guard.tenant_columns;                   -- tenant_id
