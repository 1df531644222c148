-- 10_protect: tenant_guard.protect(), unprotect() and exempt(): what they install, what they
-- refuse (22023 for bad arguments, 42501 for a caller who does not own the table), partitions and
-- inheritance children (including ones created or attached later), and the registry itself.
-- Tables of this file start with p_. Tables are created and protected as tg_owner and queried as
-- tg_app (not owner, NOBYPASSRLS).
\set VERBOSITY default
\set SHOW_CONTEXT never

--------------------------------------------------------------------------------------------------
-- 1. protect() on every supported tenant column type
--------------------------------------------------------------------------------------------------
SET ROLE tg_owner;
-- allowed: plain tables; every one has an index leading with its tenant column
CREATE TABLE p_text (id bigint NOT NULL, tenant_id text NOT NULL, note text, PRIMARY KEY (tenant_id, id));
CREATE TABLE p_varchar (id bigint NOT NULL, tenant_id varchar(40) NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE p_uuid (id bigint NOT NULL, tenant_id uuid NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE p_bigint (id bigint NOT NULL, tenant_id bigint NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE p_integer (id bigint NOT NULL, tenant_id integer NOT NULL, PRIMARY KEY (tenant_id, id));
-- allowed: fixture rows of two tenants and of the tenant '' (written before protect())
INSERT INTO p_text VALUES (1, 'acme', 'a1'), (2, 'acme', 'a2'), (3, 'globex', 'g3'), (4, '', 'empty');
INSERT INTO p_varchar VALUES (1, 'acme'), (2, 'globex');
INSERT INTO p_uuid VALUES (1, '00000000-0000-0000-0000-0000000000a1'), (2, '00000000-0000-0000-0000-0000000000b2');
INSERT INTO p_bigint VALUES (1, 101), (2, 202);
INSERT INTO p_integer VALUES (1, 101), (2, 202);
GRANT SELECT, INSERT, UPDATE, DELETE ON p_text, p_varchar, p_uuid, p_bigint, p_integer TO tg_app;
-- before protect(): row level security is off
SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'p_text';
-- allowed: each call says what it protected, on which column and type
SELECT tenant_guard.protect('p_text');
SELECT tenant_guard.protect('public.p_varchar');
SELECT tenant_guard.protect('p_uuid', 'tenant_id');
SELECT tenant_guard.protect('p_bigint');
SELECT tenant_guard.protect('p_integer');
-- the registry: one row per table, the column, its type, no parent
SELECT relid, tenant_column, tenant_type, parent, rls_was_enabled, rls_was_forced, protected_by
  FROM tenant_guard.protected_tables
 WHERE relid::text IN ('p_text', 'p_varchar', 'p_uuid', 'p_bigint', 'p_integer')
 ORDER BY relid::text;
-- row level security is enabled AND forced on every one of them
SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class
 WHERE relname IN ('p_text', 'p_varchar', 'p_uuid', 'p_bigint', 'p_integer') ORDER BY relname;
-- the four policies, permissive, for PUBLIC, comparing through the init-plan form
SELECT policyname, cmd, permissive, roles, qual, with_check FROM pg_policies
 WHERE schemaname = 'public' AND tablename = 'p_text' ORDER BY policyname;
-- each column type compares with the claim through its own typed function
SELECT tablename, policyname, qual FROM pg_policies
 WHERE tablename IN ('p_varchar', 'p_uuid', 'p_bigint', 'p_integer') AND policyname = 'tenant_guard_select'
 ORDER BY tablename;
-- allowed, idempotent: a second call changes nothing and does not fail
SELECT tenant_guard.protect('p_text');
SELECT tenant_guard.protect('p_text', 'tenant_id');
SELECT count(*) AS policies FROM pg_policies WHERE tablename = 'p_text';
SELECT count(*) AS registry_rows FROM tenant_guard.protected_tables WHERE relid = 'p_text'::regclass;

-- a custom tenant column name
CREATE TABLE p_org (id bigint NOT NULL, org_id text NOT NULL, PRIMARY KEY (org_id, id));
INSERT INTO p_org VALUES (1, 'acme'), (2, 'globex');
GRANT SELECT ON p_org TO tg_app;
-- allowed: protected on org_id
SELECT tenant_guard.protect('p_org', 'org_id');
SELECT relid, tenant_column, tenant_type FROM tenant_guard.protected_tables WHERE relid = 'p_org'::regclass;
SELECT policyname, qual FROM pg_policies WHERE tablename = 'p_org' AND policyname = 'tenant_guard_select';
-- a table and a column whose names need quoting
CREATE TABLE "p_Odd ""name""" (id bigint NOT NULL, "Org Id" text NOT NULL, PRIMARY KEY ("Org Id", id));
INSERT INTO "p_Odd ""name""" VALUES (1, 'acme'), (2, 'globex');
GRANT SELECT ON "p_Odd ""name""" TO tg_app;
-- allowed: names are quoted in the policies and the messages
SELECT tenant_guard.protect('"p_Odd ""name"""', 'Org Id');
SELECT tenant_guard.protect('"p_Odd ""name"""', 'Org Id');
SELECT policyname, qual FROM pg_policies WHERE tablename = 'p_Odd "name"' AND policyname = 'tenant_guard_select';

--------------------------------------------------------------------------------------------------
-- 2. The policies work as tg_app, and use an index on the tenant column (init-plan form)
--------------------------------------------------------------------------------------------------
SET ROLE tg_app;
-- refused: no claim
SELECT id FROM p_text;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
-- allowed: sees only acme
SELECT id, tenant_id, note FROM p_text ORDER BY id;
SELECT id, tenant_id FROM p_varchar ORDER BY id;
SELECT id FROM p_org ORDER BY id;
SELECT id, "Org Id" FROM "p_Odd ""name""" ORDER BY id;
-- allowed: another tenant's row by its key is simply not there
SELECT id FROM p_text WHERE id = 3;
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
-- a point lookup: the tenant comparison is an Index Cond on the (tenant_id, id) index, fed by an InitPlan
EXPLAIN (COSTS OFF) SELECT * FROM p_text WHERE id = 1;
-- a tenant listing: the tenant comparison alone is the Index Cond
EXPLAIN (COSTS OFF) SELECT * FROM p_text;
-- varchar compares as text and still uses its index
EXPLAIN (COSTS OFF) SELECT * FROM p_varchar WHERE id = 1;
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '00000000-0000-0000-0000-0000000000a1';
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
-- allowed: uuid tenant, sees only its row
SELECT id, tenant_id FROM p_uuid;
EXPLAIN (COSTS OFF) SELECT * FROM p_uuid WHERE id = 1;
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '202';
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
-- allowed: bigint and integer tenants, see only their rows
SELECT id, tenant_id FROM p_bigint;
SELECT id, tenant_id FROM p_integer;
EXPLAIN (COSTS OFF) SELECT * FROM p_bigint WHERE id = 2;
EXPLAIN (COSTS OFF) SELECT * FROM p_integer;
COMMIT;
RESET ROLE;

--------------------------------------------------------------------------------------------------
-- 3. Refusals: bad arguments (22023), unknown relation (42P01), not the owner (42501)
--------------------------------------------------------------------------------------------------
SET ROLE tg_owner;
CREATE TABLE p_bad (
    id bigint PRIMARY KEY,
    tenant_id text,                 -- nullable
    t_numeric numeric NOT NULL,
    t_jsonb jsonb NOT NULL,
    t_float float8 NOT NULL,
    t_ok text NOT NULL
);
-- refused: NULL relation
SELECT tenant_guard.protect(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.protect(NULL, 'tenant_id');
\echo :LAST_ERROR_SQLSTATE
-- refused: NULL column
SELECT tenant_guard.protect('p_bad', NULL);
\echo :LAST_ERROR_SQLSTATE
-- refused: empty and blank column names
SELECT tenant_guard.protect('p_bad', '');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.protect('p_bad', '   ');
\echo :LAST_ERROR_SQLSTATE
-- refused: unknown column, with a hint naming the fix
SELECT tenant_guard.protect('p_bad', 'org_id');
\echo :LAST_ERROR_SQLSTATE
-- refused: nullable tenant column, with the ALTER TABLE that fixes it
SELECT tenant_guard.protect('p_bad');
\echo :LAST_ERROR_SQLSTATE
-- refused: types that cannot be compared with the claim
SELECT tenant_guard.protect('p_bad', 't_numeric');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.protect('p_bad', 't_jsonb');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.protect('p_bad', 't_float');
\echo :LAST_ERROR_SQLSTATE
-- refused: system columns are not tenant columns
SELECT tenant_guard.protect('p_bad', 'ctid');
\echo :LAST_ERROR_SQLSTATE
-- refused: a column name longer than any identifier (64 bytes; the name argument keeps 63)
SELECT tenant_guard.protect('p_bad', repeat('x', 64));
\echo :LAST_ERROR_SQLSTATE
-- refused: a huge string as column name, through the public function and the internal one
SELECT tenant_guard.protect('p_bad', repeat('x', 100000));
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard._protect('p_bad'::regclass::oid, repeat('x', 100000));
\echo :LAST_ERROR_SQLSTATE
-- nothing of p_bad was registered or changed by the refused calls
SELECT count(*) AS registry_rows FROM tenant_guard.protected_tables WHERE relid = 'p_bad'::regclass;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'p_bad';
SELECT count(*) AS policies FROM pg_policies WHERE tablename = 'p_bad';
-- refused: unknown relation (the regclass cast)
SELECT tenant_guard.protect('p_no_such_table');
\echo :LAST_ERROR_SQLSTATE
-- refused: relations that are not tables
CREATE VIEW p_view AS SELECT id, tenant_id FROM p_text;
SELECT tenant_guard.protect('p_view');
\echo :LAST_ERROR_SQLSTATE
CREATE MATERIALIZED VIEW p_matview AS SELECT 1::bigint AS id, 'acme'::text AS tenant_id;
SELECT tenant_guard.protect('p_matview');
\echo :LAST_ERROR_SQLSTATE
CREATE SEQUENCE p_seq;
SELECT tenant_guard.protect('p_seq');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.protect('p_text_pkey');
\echo :LAST_ERROR_SQLSTATE
-- refused: a temporary table (its schema name varies with the backend, so only the SQLSTATE and the
-- normalised message are shown)
CREATE TEMP TABLE p_temp (id bigint, tenant_id text NOT NULL);
\set VERBOSITY sqlstate
SELECT tenant_guard.protect('p_temp');
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
SELECT regexp_replace(:'LAST_ERROR_MESSAGE', 'pg_temp_[0-9]+', 'pg_temp_N') AS message;
DROP TABLE p_temp;
-- refused: a table with a permissive policy of its own (it would be ORed with the tenant policies)
CREATE TABLE p_permissive (id bigint, tenant_id text NOT NULL);
CREATE INDEX ON p_permissive (tenant_id);
CREATE POLICY p_everyone ON p_permissive FOR SELECT USING (true);
SELECT tenant_guard.protect('p_permissive');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registry_rows FROM tenant_guard.protected_tables WHERE relid = 'p_permissive'::regclass;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'p_permissive';
-- allowed: once the policy is recreated AS RESTRICTIVE (it can only narrow access)
DROP POLICY p_everyone ON p_permissive;
CREATE POLICY p_everyone ON p_permissive AS RESTRICTIVE FOR SELECT USING (true);
SELECT tenant_guard.protect('p_permissive');
SELECT policyname, permissive, cmd FROM pg_policies WHERE tablename = 'p_permissive' ORDER BY policyname;
-- refused: protect() with a different column on an already protected table
SELECT tenant_guard.protect('p_org', 'tenant_id');
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE p_org ADD COLUMN tenant_id text NOT NULL DEFAULT 'x';
SELECT tenant_guard.protect('p_org', 'tenant_id');
\echo :LAST_ERROR_SQLSTATE
SELECT relid, tenant_column FROM tenant_guard.protected_tables WHERE relid = 'p_org'::regclass;
-- warning (allowed): no index leads with the tenant column
CREATE TABLE p_noindex (id bigint PRIMARY KEY, tenant_id text NOT NULL);
CREATE INDEX ON p_noindex (id, tenant_id);
SELECT tenant_guard.protect('p_noindex');
-- no second warning on the idempotent call (nothing changed)
SELECT tenant_guard.protect('p_noindex');
-- refused: tg_app does not own the table
CREATE TABLE p_owned (id bigint, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
SET ROLE tg_app;
SELECT tenant_guard.protect('p_owned');
\echo :LAST_ERROR_SQLSTATE
-- refused: tg_app cannot unprotect or exempt a table it does not own either
SELECT tenant_guard.unprotect('p_text', 'app wants out');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.exempt('p_owned', 'app says shared');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS registry_rows FROM tenant_guard.protected_tables WHERE relid = 'p_owned'::regclass;
SELECT count(*) AS exempt_rows FROM tenant_guard.exempt_tables WHERE relid = 'p_owned'::regclass;

--------------------------------------------------------------------------------------------------
-- 4. Partitioned tables, sub-partitions, partitions created or attached later, inheritance
--------------------------------------------------------------------------------------------------
SET ROLE tg_owner;
CREATE TABLE p_part (id bigint NOT NULL, tenant_id text NOT NULL, note text, PRIMARY KEY (tenant_id, id))
    PARTITION BY RANGE (id);
CREATE TABLE p_part_1 PARTITION OF p_part FOR VALUES FROM (0) TO (100);
CREATE TABLE p_part_2 PARTITION OF p_part FOR VALUES FROM (100) TO (1000) PARTITION BY LIST (tenant_id);
CREATE TABLE p_part_2a PARTITION OF p_part_2 FOR VALUES IN ('acme');
CREATE TABLE p_part_2b PARTITION OF p_part_2 DEFAULT;
INSERT INTO p_part VALUES (1, 'acme', 'a1'), (2, 'globex', 'g2'), (3, '', 'empty'),
                          (101, 'acme', 'a101'), (102, 'globex', 'g102');
GRANT SELECT, INSERT, UPDATE, DELETE ON p_part, p_part_1, p_part_2, p_part_2a, p_part_2b TO tg_app;
-- allowed: the parent and its four descendants (p_part_2 is itself partitioned)
SELECT tenant_guard.protect('p_part');
-- every partition is registered, with the protected root as parent
SELECT relid, tenant_column, tenant_type, parent FROM tenant_guard.protected_tables
 WHERE relid::text LIKE 'p\_part%' ORDER BY relid::text;
SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname LIKE 'p\_part%' AND relkind IN ('r', 'p')
 ORDER BY relname;
SELECT tablename, count(*) AS policies FROM pg_policies WHERE tablename LIKE 'p\_part%' GROUP BY tablename ORDER BY tablename;
-- allowed, idempotent on a tree
SELECT tenant_guard.protect('p_part');
-- allowed and protected automatically: a partition created later (NOTICE from the event trigger)
CREATE TABLE p_part_3 PARTITION OF p_part FOR VALUES FROM (1000) TO (2000);
-- and a sub-partition created later under a protected partition
CREATE TABLE p_part_2c PARTITION OF p_part_2 FOR VALUES IN ('initech');
-- allowed and protected automatically: a table attached later; it is a plain table before
CREATE TABLE p_part_4 (id bigint NOT NULL, tenant_id text NOT NULL, note text, PRIMARY KEY (tenant_id, id));
INSERT INTO p_part_4 VALUES (2001, 'acme', 'a2001'), (2002, 'globex', 'g2002');
SELECT count(*) AS registry_rows FROM tenant_guard.protected_tables WHERE relid = 'p_part_4'::regclass;
ALTER TABLE p_part ATTACH PARTITION p_part_4 FOR VALUES FROM (2000) TO (3000);
GRANT SELECT ON p_part_3, p_part_2c, p_part_4 TO tg_app;
SELECT relid, parent FROM tenant_guard.protected_tables
 WHERE relid IN ('p_part_3'::regclass, 'p_part_2c'::regclass, 'p_part_4'::regclass) ORDER BY relid::text;
SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class
 WHERE relname IN ('p_part_3', 'p_part_2c', 'p_part_4') ORDER BY relname;
SELECT tablename, count(*) AS policies FROM pg_policies
 WHERE tablename IN ('p_part_3', 'p_part_2c', 'p_part_4') GROUP BY tablename ORDER BY tablename;
-- refused: a table with a permissive policy cannot be attached (protect() of it is refused)
CREATE TABLE p_part_5 (id bigint NOT NULL, tenant_id text NOT NULL, note text, PRIMARY KEY (tenant_id, id));
CREATE POLICY p_open ON p_part_5 USING (true);
ALTER TABLE p_part ATTACH PARTITION p_part_5 FOR VALUES FROM (3000) TO (4000);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS attached FROM pg_inherits WHERE inhrelid = 'p_part_5'::regclass;
DROP TABLE p_part_5;
-- refused: unprotecting a partition while its parent is protected
SELECT tenant_guard.unprotect('p_part_1', 'partition only');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.unprotect('p_part_2a', 'sub-partition only');
\echo :LAST_ERROR_SQLSTATE
-- refused: protecting a partition on another column than its protected parent
ALTER TABLE p_part ADD COLUMN other_tenant text NOT NULL DEFAULT 'x';
SELECT tenant_guard.protect('p_part_1', 'other_tenant');
\echo :LAST_ERROR_SQLSTATE
-- allowed: protect() of a partition already protected through its parent is a no-op
SELECT tenant_guard.protect('p_part_1');

SET ROLE tg_app;
-- refused: no claim, through the parent and through each partition named directly
SELECT id FROM p_part;
\echo :LAST_ERROR_SQLSTATE
SELECT id FROM p_part_1;
\echo :LAST_ERROR_SQLSTATE
SELECT id FROM p_part_2a;
\echo :LAST_ERROR_SQLSTATE
SELECT id FROM p_part_4;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
-- allowed: through the parent, only globex, from every partition
SELECT id, tenant_id, note FROM p_part ORDER BY id;
-- allowed: each partition named directly is filtered by its own policies
SELECT id, tenant_id FROM p_part_1 ORDER BY id;
SELECT id, tenant_id FROM p_part_2 ORDER BY id;
SELECT id, tenant_id FROM p_part_2a ORDER BY id;
SELECT id, tenant_id FROM p_part_2b ORDER BY id;
SELECT id, tenant_id FROM p_part_4 ORDER BY id;
SELECT count(*) AS rows FROM p_part_3;
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
-- allowed: the attached partition shows only acme's row to acme
SELECT id, tenant_id, note FROM p_part_4 ORDER BY id;
-- refused: a row for another tenant cannot be written through a partition
INSERT INTO p_part_1 VALUES (50, 'globex', 'forged');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;

-- a detached partition stays protected (it still needs a claim) and, being no longer part of the
-- protected parent, can be unprotected on its own
SET ROLE tg_owner;
ALTER TABLE p_part DETACH PARTITION p_part_3;
SELECT count(*) AS registry_rows FROM tenant_guard.protected_tables WHERE relid = 'p_part_3'::regclass;
SET ROLE tg_app;
-- refused: no claim
SELECT id FROM p_part_3;
\echo :LAST_ERROR_SQLSTATE
SET ROLE tg_owner;
-- allowed: it is no longer a partition of p_part
SELECT tenant_guard.unprotect('p_part_3', 'test: detached partition retired');
SELECT count(*) AS registry_rows FROM tenant_guard.protected_tables WHERE relid = 'p_part_3'::regclass;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'p_part_3';
RESET ROLE;

-- a partition protected on its own first, then its parent: the partition becomes part of the tree
SET ROLE tg_owner;
CREATE TABLE p_pre (id bigint NOT NULL, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id)) PARTITION BY RANGE (id);
CREATE TABLE p_pre_1 PARTITION OF p_pre FOR VALUES FROM (0) TO (100);
INSERT INTO p_pre VALUES (1, 'acme'), (2, 'globex');
GRANT SELECT ON p_pre, p_pre_1 TO tg_app;
-- allowed: the partition alone, then the parent
SELECT tenant_guard.protect('p_pre_1');
SELECT tenant_guard.protect('p_pre');
-- the partition is now registered as part of its parent
SELECT relid, parent FROM tenant_guard.protected_tables WHERE relid::text LIKE 'p\_pre%' ORDER BY relid::text;
-- refused: unprotecting the partition while its parent is protected
SELECT tenant_guard.unprotect('p_pre_1', 'partition only');
\echo :LAST_ERROR_SQLSTATE
SELECT relid, parent FROM tenant_guard.protected_tables WHERE relid::text LIKE 'p\_pre%' ORDER BY relid::text;
SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname LIKE 'p\_pre%' AND relkind IN ('r', 'p') ORDER BY relname;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
-- allowed: only acme, through the parent and the partition
SELECT id, tenant_id FROM p_pre;
SELECT id, tenant_id FROM p_pre_1;
COMMIT;
RESET ROLE;

-- inheritance children
SET ROLE tg_owner;
CREATE TABLE p_inh (id bigint NOT NULL, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE p_inh_child (extra text) INHERITS (p_inh);
INSERT INTO p_inh VALUES (1, 'acme'), (2, 'globex');
INSERT INTO p_inh_child VALUES (11, 'acme', 'x'), (12, 'globex', 'y');
GRANT SELECT ON p_inh, p_inh_child TO tg_app;
-- allowed: parent and child
SELECT tenant_guard.protect('p_inh');
-- allowed and protected automatically: a child created later with INHERITS
CREATE TABLE p_inh_child2 () INHERITS (p_inh);
GRANT SELECT ON p_inh_child2 TO tg_app;
-- allowed and protected automatically: an existing table that becomes a child (ALTER TABLE ... INHERIT)
CREATE TABLE p_inh_late (id bigint NOT NULL, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
INSERT INTO p_inh_late VALUES (21, 'acme'), (22, 'globex');
ALTER TABLE p_inh_late INHERIT p_inh;
GRANT SELECT ON p_inh_late TO tg_app;
SELECT relid, tenant_column, parent FROM tenant_guard.protected_tables WHERE relid::text LIKE 'p\_inh%' ORDER BY relid::text;
SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname LIKE 'p\_inh%' AND relkind = 'r' ORDER BY relname;
SET ROLE tg_app;
-- refused: no claim on the child named directly
SELECT id FROM p_inh_child;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
-- allowed: only acme, through the parent and through the child
SELECT id, tenant_id FROM p_inh ORDER BY id;
SELECT id, tenant_id, extra FROM p_inh_child ORDER BY id;
SELECT count(*) AS rows FROM p_inh_child2;
SELECT id, tenant_id FROM p_inh_late ORDER BY id;
COMMIT;
RESET ROLE;

--------------------------------------------------------------------------------------------------
-- 5. unprotect(): a reason, the owner, whole trees only; restores row security as it was
--------------------------------------------------------------------------------------------------
SET ROLE tg_owner;
-- refused: no reason, empty reason, blank reason
SELECT tenant_guard.unprotect('p_integer', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.unprotect('p_integer', '');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.unprotect('p_integer', '   ');
\echo :LAST_ERROR_SQLSTATE
-- refused: NULL relation
SELECT tenant_guard.unprotect(NULL, 'why');
\echo :LAST_ERROR_SQLSTATE
-- still protected after the refused calls
SELECT count(*) AS registry_rows FROM tenant_guard.protected_tables WHERE relid = 'p_integer'::regclass;
-- allowed: a table without row security before protect() gets it disabled again
SELECT tenant_guard.unprotect('p_integer', 'test: integer tenant table retired');
SELECT count(*) AS registry_rows FROM tenant_guard.protected_tables WHERE relid = 'p_integer'::regclass;
SELECT count(*) AS policies FROM pg_policies WHERE tablename = 'p_integer';
SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'p_integer';
-- allowed: unprotect() of a table that is not protected is a no-op with a message
SELECT tenant_guard.unprotect('p_integer', 'again');
SELECT tenant_guard.unprotect('p_bad', 'never protected');
-- refused: unprotect() of something that is not a table
SELECT tenant_guard.unprotect('p_view', 'not a table');
\echo :LAST_ERROR_SQLSTATE
SET ROLE tg_app;
-- allowed: the table is an ordinary table again, readable without a claim
SELECT id, tenant_id FROM p_integer ORDER BY id;
RESET ROLE;

-- a table whose row level security was enabled (not forced) before protect(), with a restrictive policy
SET ROLE tg_owner;
CREATE TABLE p_had_rls (id bigint NOT NULL, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
INSERT INTO p_had_rls VALUES (1, 'acme'), (2, 'globex');
GRANT SELECT ON p_had_rls TO tg_app;
ALTER TABLE p_had_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY p_only_low_ids ON p_had_rls AS RESTRICTIVE FOR SELECT USING (id < 100);
-- a table whose row level security was forced (not enabled) before protect()
CREATE TABLE p_had_force (id bigint NOT NULL, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
ALTER TABLE p_had_force FORCE ROW LEVEL SECURITY;
SELECT tenant_guard.protect('p_had_rls');
SELECT tenant_guard.protect('p_had_force');
SELECT relid, rls_was_enabled, rls_was_forced FROM tenant_guard.protected_tables
 WHERE relid IN ('p_had_rls'::regclass, 'p_had_force'::regclass) ORDER BY relid::text;
SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname IN ('p_had_rls', 'p_had_force') ORDER BY relname;
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
-- allowed: the tenant policy and the restrictive policy both apply
SELECT id, tenant_id FROM p_had_rls;
COMMIT;
SET ROLE tg_owner;
-- allowed: unprotect restores exactly the earlier flags; the user's own policy stays
SELECT tenant_guard.unprotect('p_had_rls', 'test: restore enabled, not forced');
SELECT tenant_guard.unprotect('p_had_force', 'test: restore forced, not enabled');
SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname IN ('p_had_rls', 'p_had_force') ORDER BY relname;
SELECT tablename, policyname, permissive FROM pg_policies WHERE tablename IN ('p_had_rls', 'p_had_force') ORDER BY 1, 2;
SET ROLE tg_app;
-- allowed without a claim: no longer protected; row security is on again with only a restrictive
-- policy, so PostgreSQL's own default-deny shows no rows
SELECT count(*) AS rows FROM p_had_rls;
RESET ROLE;

-- unprotect() of a partitioned root removes the whole tree
SET ROLE tg_owner;
SELECT tenant_guard.unprotect('p_part', 'test: whole tree');
SELECT count(*) AS registry_rows FROM tenant_guard.protected_tables WHERE relid::text LIKE 'p\_part%';
SELECT count(*) AS policies FROM pg_policies WHERE tablename LIKE 'p\_part%';
SELECT count(*) AS rls_tables FROM pg_class WHERE relname LIKE 'p\_part%' AND (relrowsecurity OR relforcerowsecurity);
SET ROLE tg_app;
-- allowed: every partition readable without a claim again
SELECT count(*) AS rows FROM p_part;
SELECT count(*) AS rows FROM p_part_1;
RESET ROLE;

--------------------------------------------------------------------------------------------------
-- 6. exempt(): shared on purpose; needs a reason; never for a protected table
--------------------------------------------------------------------------------------------------
SET ROLE tg_owner;
CREATE TABLE p_shared (id bigint PRIMARY KEY, tenant_id text NOT NULL, label text);
CREATE INDEX ON p_shared (tenant_id);
-- refused: no reason, empty reason, blank reason
SELECT tenant_guard.exempt('p_shared', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.exempt('p_shared', '');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.exempt('p_shared', '   ');
\echo :LAST_ERROR_SQLSTATE
-- refused: a reason too long to be a reason
SELECT tenant_guard.exempt('p_shared', repeat('x', 100000));
\echo :LAST_ERROR_SQLSTATE
-- refused: NULL relation, a view
SELECT tenant_guard.exempt(NULL, 'why');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.exempt('p_view', 'a view');
\echo :LAST_ERROR_SQLSTATE
-- refused: a protected table cannot be exempt
SELECT tenant_guard.exempt('p_text', 'shared after all');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS exempt_rows FROM tenant_guard.exempt_tables WHERE relid = 'p_text'::regclass;
-- allowed: exempt with a reason; recorded with who did it
SELECT tenant_guard.exempt('p_shared', 'shared lookup table');
SELECT relid, reason, exempted_by FROM tenant_guard.exempt_tables WHERE relid = 'p_shared'::regclass;
-- allowed: exempt again replaces the reason (one row)
SELECT tenant_guard.exempt('p_shared', '  shared lookup table, see ticket 42  ');
SELECT relid, reason, exempted_by FROM tenant_guard.exempt_tables WHERE relid = 'p_shared'::regclass;
-- allowed: protect() of an exempt table removes the exemption, with a NOTICE
SELECT tenant_guard.protect('p_shared');
SELECT count(*) AS exempt_rows FROM tenant_guard.exempt_tables WHERE relid = 'p_shared'::regclass;
SELECT relid, tenant_column FROM tenant_guard.protected_tables WHERE relid = 'p_shared'::regclass;
-- DROP TABLE of an exempt table removes its exemption (sql_drop event trigger)
CREATE TABLE p_shared2 (id bigint PRIMARY KEY, tenant_id text NOT NULL);
SELECT tenant_guard.exempt('p_shared2', 'shared too');
SELECT relid FROM tenant_guard.exempt_tables ORDER BY relid::text;
DROP TABLE p_shared2;
-- no exemption is left behind for a table that no longer exists
SELECT count(*) AS dangling FROM tenant_guard.exempt_tables e WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = e.relid);
SELECT relid FROM tenant_guard.exempt_tables ORDER BY relid::text;
RESET ROLE;

--------------------------------------------------------------------------------------------------
-- 7. DROP TABLE of a protected table
--------------------------------------------------------------------------------------------------
SET ROLE tg_owner;
CREATE TABLE p_drop (id bigint NOT NULL, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenant_guard.protect('p_drop');
-- refused (contract, "The guard" item 3): DROP TABLE of a protected table without unprotect() first
DROP TABLE p_drop;
\echo :LAST_ERROR_SQLSTATE
SELECT relid, tenant_column FROM tenant_guard.protected_tables WHERE relid::text = 'p_drop';
RESET ROLE;
-- allowed: with the guard switched off by a superuser the table can be dropped, and the sql_drop
-- event trigger removes its registry row, so the registry never points at a dropped table
SET tenant_guard.enforce = off;
DROP TABLE p_drop;
RESET tenant_guard.enforce;
SELECT count(*) AS dangling FROM tenant_guard.protected_tables p WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = p.relid);
SELECT count(*) AS registry_rows FROM tenant_guard.protected_tables WHERE relid::text = 'p_drop';
-- allowed: after unprotect() a table is dropped normally
SET ROLE tg_owner;
CREATE TABLE p_drop2 (id bigint NOT NULL, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenant_guard.protect('p_drop2');
SELECT tenant_guard.unprotect('p_drop2', 'test: table retired');
DROP TABLE p_drop2;
RESET ROLE;

--------------------------------------------------------------------------------------------------
-- 8. The registry: everyone reads it, nobody but the helpers writes it
--------------------------------------------------------------------------------------------------
SET ROLE tg_app;
-- allowed: tg_app reads the registry
SELECT relid, tenant_column, tenant_type FROM tenant_guard.protected_tables WHERE relid = 'p_text'::regclass;
SELECT count(*) AS exempt_rows FROM tenant_guard.exempt_tables;
-- refused: tg_app writes the registry
INSERT INTO tenant_guard.protected_tables (relid, tenant_column, tenant_type, protected_by)
VALUES ('p_bad', 't_ok', 'text', 'tg_app');
\echo :LAST_ERROR_SQLSTATE
UPDATE tenant_guard.protected_tables SET tenant_column = 'note' WHERE relid = 'p_text'::regclass;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM tenant_guard.protected_tables WHERE relid = 'p_text'::regclass;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO tenant_guard.exempt_tables (relid, reason, exempted_by) VALUES ('p_text', 'mine', 'tg_app');
\echo :LAST_ERROR_SQLSTATE
UPDATE tenant_guard.exempt_tables SET reason = 'x';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM tenant_guard.exempt_tables;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE tenant_guard.protected_tables;
\echo :LAST_ERROR_SQLSTATE
-- refused: the table owner cannot write it either
SET ROLE tg_owner;
DELETE FROM tenant_guard.protected_tables WHERE relid = 'p_text'::regclass;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- the registry is unchanged
SELECT relid, tenant_column, parent FROM tenant_guard.protected_tables WHERE relid::text ~ '^"?p_' ORDER BY relid::text;
SELECT relid, reason FROM tenant_guard.exempt_tables WHERE relid::text ~ '^"?p_' ORDER BY relid::text;

-- refused: tenant_guard's own tables are not application tables (even for a superuser)
SELECT tenant_guard.protect('tenant_guard.exempt_tables', 'relid');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_guard.exempt('tenant_guard.audit_log', 'ops table');
\echo :LAST_ERROR_SQLSTATE
