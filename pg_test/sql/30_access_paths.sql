-- 30_access_paths: every route by which a statement reads a protected table.
-- Each route is tried by the application (tg_app) without a claim (refused, 42501, the message
-- names the protected table) and with the claim 'acme' (only acme's rows: never globex's, never
-- the row whose tenant is ''). Contract, "The guard", items 1, 4 and 8; threat model families 1, 9.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- ---------------------------------------------------------------------------------------------
-- Fixture, as the owner. Rows are loaded before protect(): afterwards even the owner needs a claim.
-- Every value of another tenant contains 'globex' or 'orphan', so a leak shows in the output.
-- autovacuum is off so that plans do not change while the file runs.
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
CREATE TABLE a_items (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    name      text NOT NULL,
    secret    text NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITH (autovacuum_enabled = off);
INSERT INTO a_items VALUES
    ('acme',   1, 'anvil',           '101'),
    ('acme',   2, 'rocket',          '102'),
    ('globex', 3, 'globex-doomsday', 'globex-secret-3'),
    ('globex', 4, 'globex-laser',    'globex-secret-4'),
    ('',       5, 'orphan',          'orphan-secret-5');
CREATE TABLE a_orders (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    item_id   int  NOT NULL,
    qty       int  NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, item_id) REFERENCES a_items (tenant_id, id)
) WITH (autovacuum_enabled = off);
INSERT INTO a_orders VALUES
    ('acme',   10, 1, 7),
    ('acme',   11, 2, 8),
    ('globex', 12, 3, 900),
    ('',       13, 5, 901);
-- uuid tenant keys; the nil uuid plays the "empty" tenant
CREATE TABLE a_uuid (
    tenant_id uuid NOT NULL,
    id        int  NOT NULL,
    name      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITH (autovacuum_enabled = off);
INSERT INTO a_uuid VALUES
    ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 1, 'uuid-acme'),
    ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 2, 'uuid-globex'),
    ('00000000-0000-0000-0000-000000000000', 3, 'uuid-orphan');
-- a partitioned table whose partitions each hold several tenants
CREATE TABLE a_part (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    name      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
) PARTITION BY RANGE (id);
CREATE TABLE a_part_low  PARTITION OF a_part FOR VALUES FROM (0) TO (100) WITH (autovacuum_enabled = off);
CREATE TABLE a_part_high PARTITION OF a_part FOR VALUES FROM (100) TO (200) WITH (autovacuum_enabled = off);
INSERT INTO a_part VALUES
    ('acme', 1, 'part-acme-low'), ('globex', 2, 'globex-part-low'),
    ('acme', 101, 'part-acme-high'), ('globex', 102, 'globex-part-high'), ('', 103, 'orphan-part-high');
-- an inheritance parent and child
CREATE TABLE a_base (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    name      text NOT NULL
) WITH (autovacuum_enabled = off);
CREATE INDEX ON a_base (tenant_id);
CREATE TABLE a_base_kid (extra int NOT NULL DEFAULT 0) INHERITS (a_base) WITH (autovacuum_enabled = off);
CREATE INDEX ON a_base_kid (tenant_id);
INSERT INTO a_base VALUES ('acme', 1, 'base-acme'), ('globex', 2, 'globex-base');
INSERT INTO a_base_kid VALUES ('acme', 3, 'kid-acme', 1), ('globex', 4, 'globex-kid', 2), ('', 5, 'orphan-kid', 3);
-- enough rows for a parallel plan: 1000 rows per tenant
CREATE TABLE a_big (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITH (autovacuum_enabled = off);
INSERT INTO a_big
    SELECT (ARRAY['acme', 'globex', ''])[1 + g % 3], g FROM generate_series(1, 3000) g;
-- an unprotected table without tenants
CREATE TABLE a_plain (n int NOT NULL) WITH (autovacuum_enabled = off);
INSERT INTO a_plain SELECT generate_series(1, 20);

SELECT tenant_guard.protect('a_items');
SELECT tenant_guard.protect('a_orders');
SELECT tenant_guard.protect('a_uuid');
SELECT tenant_guard.protect('a_part');
SELECT tenant_guard.protect('a_base');
SELECT tenant_guard.protect('a_big');
-- a partition attached after protect() is protected by the event trigger
CREATE TABLE a_part_late (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    name      text NOT NULL
) WITH (autovacuum_enabled = off);
INSERT INTO a_part_late VALUES ('acme', 201, 'part-acme-late'), ('globex', 202, 'globex-part-late');
ALTER TABLE a_part ATTACH PARTITION a_part_late FOR VALUES FROM (200) TO (300);
SELECT relid, tenant_column, parent FROM tenant_guard.protected_tables
 WHERE relid::text LIKE 'a\_%' ORDER BY relid::text;

-- Views, functions and the leak probe, owned by the table owner.
CREATE VIEW a_items_view AS SELECT id, name FROM a_items;
CREATE VIEW a_items_invoker WITH (security_invoker = on) AS SELECT id, name FROM a_items;
-- inlined into the calling query (SQL, STABLE, not SECURITY DEFINER, no SET clause)
CREATE FUNCTION a_items_sql() RETURNS SETOF a_items
    LANGUAGE sql STABLE AS $$ SELECT * FROM a_items $$;
CREATE FUNCTION a_items_plpgsql() RETURNS SETOF a_items
    LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN QUERY SELECT * FROM a_items; END $$;
CREATE FUNCTION a_items_atomic() RETURNS bigint
    LANGUAGE sql STABLE BEGIN ATOMIC SELECT count(*) FROM a_items; END;
-- runs as tg_owner, the owner, for whom FORCE ROW LEVEL SECURITY keeps the policies on
CREATE FUNCTION a_items_definer() RETURNS SETOF a_items
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ SELECT * FROM a_items $$;
-- reads a protected table from inside a parallel worker when the outer query scans a_plain
CREATE FUNCTION a_items_count_parallel() RETURNS bigint
    LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$ BEGIN RETURN (SELECT count(*) FROM a_items); END $$;
-- reads only the unprotected a_plain; IMMUTABLE, so the planner runs it while planning
CREATE FUNCTION a_min_plain() RETURNS int
    LANGUAGE sql IMMUTABLE AS $$ SELECT min(n) FROM public.a_plain $$;
-- the leak probe of rowsecurity.sql: cheap, not LEAKPROOF, says what it sees
CREATE FUNCTION a_leak(text) RETURNS boolean
    LANGUAGE plpgsql COST 0.0000001 AS $$ BEGIN RAISE NOTICE 'a_leak sees %', $1; RETURN true; END $$;

GRANT SELECT ON a_items, a_uuid, a_part, a_part_low, a_part_high, a_part_late, a_base, a_base_kid,
    a_big, a_plain, a_items_view, a_items_invoker TO tg_app;
GRANT SELECT, INSERT ON a_orders TO tg_app;
RESET ROLE;

SET ROLE tg_app;

-- ---------------------------------------------------------------------------------------------
-- Direct SELECT
-- ---------------------------------------------------------------------------------------------
SELECT * FROM a_items ORDER BY id;                  -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = '';              -- '' is no claim
SELECT * FROM a_items ORDER BY id;                  -- refused: no claim (the '' row stays hidden)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT * FROM a_items ORDER BY id;                  -- allowed: only acme's rows 1 and 2
SELECT * FROM a_items WHERE tenant_id = 'globex';   -- allowed: zero rows
SELECT * FROM a_items WHERE tenant_id = '';         -- allowed: zero rows
SELECT * FROM a_items WHERE id = 3;                 -- allowed: zero rows (globex's id)
COMMIT;

-- uuid keys: the claim is read as a uuid
SELECT * FROM a_uuid ORDER BY id;                   -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
SELECT * FROM a_uuid ORDER BY id;                   -- allowed: only uuid-acme
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT * FROM a_uuid ORDER BY id;                   -- refused: 'acme' is not a uuid (22023)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- ---------------------------------------------------------------------------------------------
-- Views: the view's owner (tg_owner, FORCE on) or the invoker; both are filtered
-- ---------------------------------------------------------------------------------------------
SELECT * FROM a_items_view ORDER BY id;             -- refused: no claim, names public.a_items
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM a_items_invoker ORDER BY id;          -- refused: no claim, names public.a_items
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT * FROM a_items_view ORDER BY id;             -- allowed: only acme (owner is filtered)
SELECT * FROM a_items_invoker ORDER BY id;          -- allowed: only acme
COMMIT;

-- ---------------------------------------------------------------------------------------------
-- Functions: inlined SQL, plpgsql, SQL-standard body, SECURITY DEFINER owned by the owner
-- ---------------------------------------------------------------------------------------------
SELECT id, name FROM a_items_sql() ORDER BY id;     -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
SELECT id, name FROM a_items_plpgsql() ORDER BY id; -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
SELECT a_items_atomic();                            -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
SELECT id, name FROM a_items_definer() ORDER BY id; -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, name FROM a_items_sql() ORDER BY id;     -- allowed: only acme
SELECT id, name FROM a_items_plpgsql() ORDER BY id; -- allowed: only acme
SELECT a_items_atomic();                            -- allowed: 2
SELECT id, name FROM a_items_definer() ORDER BY id; -- allowed: only acme (the definer is filtered)
COMMIT;

-- ---------------------------------------------------------------------------------------------
-- CTE, sub-query, sub-links, UNION, join of two protected tables
-- ---------------------------------------------------------------------------------------------
WITH c AS MATERIALIZED (SELECT * FROM a_items) SELECT id, name FROM c ORDER BY id;  -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT n FROM a_plain WHERE n IN (SELECT id FROM a_items) ORDER BY n;               -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT EXISTS (SELECT 1 FROM a_items WHERE id = 3);                                 -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT (SELECT name FROM a_items WHERE id = 3);                                     -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT n FROM a_plain WHERE n = 1 UNION ALL SELECT id FROM a_items;                 -- refused
\echo :LAST_ERROR_SQLSTATE
SELECT o.id, i.name FROM a_orders o JOIN a_items i ON i.id = o.item_id;             -- refused
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
WITH c AS MATERIALIZED (SELECT * FROM a_items) SELECT id, name FROM c ORDER BY id;  -- only acme
WITH c AS (SELECT * FROM a_items) SELECT id, name FROM c ORDER BY id;               -- only acme
SELECT * FROM (SELECT id, name FROM a_items) s ORDER BY id;                         -- only acme
SELECT n FROM a_plain WHERE n IN (SELECT id FROM a_items) ORDER BY n;               -- 1, 2
SELECT n FROM a_plain WHERE NOT EXISTS (SELECT 1 FROM a_items WHERE id = n) AND n <= 6 ORDER BY n; -- 3..6
SELECT EXISTS (SELECT 1 FROM a_items WHERE id = 3);                                 -- f: globex's row is invisible
SELECT (SELECT name FROM a_items WHERE id = 3);                                     -- NULL
SELECT id, name FROM a_items UNION SELECT id, name FROM a_part ORDER BY 1, 2;       -- only acme
-- the join, both sides filtered: acme's two orders, never globex's qty 900 or ''s 901
SELECT o.id, o.qty, i.name FROM a_orders o JOIN a_items i ON i.id = o.item_id ORDER BY o.id;
SELECT o.id, o.qty, i.name FROM a_orders o FULL JOIN a_items i ON i.id = o.item_id ORDER BY o.id, i.id;
COMMIT;

-- ---------------------------------------------------------------------------------------------
-- Partitions and inheritance children, directly and through the parent
-- ---------------------------------------------------------------------------------------------
SELECT * FROM a_part ORDER BY id;                   -- refused: no claim, names public.a_part
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM a_part_high ORDER BY id;              -- refused: no claim, names public.a_part_high
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM a_part_late ORDER BY id;              -- refused: no claim, names public.a_part_late
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM a_base_kid ORDER BY id;               -- refused: no claim, names public.a_base_kid
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT * FROM a_part ORDER BY id;                   -- allowed: acme's rows of every partition
SELECT * FROM a_part_low ORDER BY id;               -- allowed: only part-acme-low
SELECT * FROM a_part_high ORDER BY id;              -- allowed: only part-acme-high
SELECT * FROM a_part_late ORDER BY id;              -- allowed: only part-acme-late
SELECT * FROM a_base ORDER BY id;                   -- allowed: base-acme and kid-acme
SELECT * FROM ONLY a_base ORDER BY id;              -- allowed: base-acme
SELECT * FROM a_base_kid ORDER BY id;               -- allowed: only kid-acme
COMMIT;

-- ---------------------------------------------------------------------------------------------
-- Cursors
-- ---------------------------------------------------------------------------------------------
BEGIN;
DECLARE c_noclaim CURSOR FOR SELECT * FROM a_items ORDER BY id;   -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DECLARE c_acme CURSOR FOR SELECT id, name FROM a_items ORDER BY id;  -- allowed
FETCH 1 FROM c_acme;                                -- anvil
FETCH ALL FROM c_acme;                              -- rocket, then nothing
FETCH ALL FROM c_acme;                              -- nothing
CLOSE c_acme;
DECLARE c_scroll SCROLL CURSOR FOR SELECT id FROM a_items ORDER BY id;
FETCH LAST FROM c_scroll;                           -- 2
FETCH ABSOLUTE 1 FROM c_scroll;                     -- 1
COMMIT;
-- WITH HOLD: its rows would outlive the claim (claim_scope = transaction), refused even with one
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DECLARE c_hold CURSOR WITH HOLD FOR SELECT id, name FROM a_items ORDER BY id;        -- refused
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DECLARE c_hold_view CURSOR WITH HOLD FOR SELECT id, name FROM a_items_view ORDER BY id; -- refused
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- planning this cursor runs a query first (the IMMUTABLE function is folded to a constant): the
-- cursor over a_items must still be refused
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DECLARE c_hold_folded CURSOR WITH HOLD FOR SELECT id, name FROM a_items WHERE id >= a_min_plain() ORDER BY id; -- refused
\echo :LAST_ERROR_SQLSTATE
COMMIT;
FETCH ALL FROM c_hold_folded;                       -- fails: the cursor does not exist (34000)
\echo :LAST_ERROR_SQLSTATE
-- The same through a plpgsql function. DECLARE reads nothing yet; the function reads a_items when
-- the cursor is materialized at COMMIT, under acme's claim, and those rows would then be fetched
-- after the claim ended (by the next client of a pooled connection). The COMMIT must fail.
-- (VERBOSITY terse: the refusal matters here, not the words of its DETAIL and HINT.)
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DECLARE c_hold_fn CURSOR WITH HOLD FOR SELECT id, name FROM a_items_plpgsql() ORDER BY id; -- nothing read yet
\set VERBOSITY terse
COMMIT;                                             -- refused: WITH HOLD over protected table public.a_items
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
FETCH ALL FROM c_hold_fn;                           -- fails: the cursor does not exist (34000)
\echo :LAST_ERROR_SQLSTATE
-- WITH HOLD over an unprotected table is fine
BEGIN;
DECLARE c_hold_plain CURSOR WITH HOLD FOR SELECT n FROM a_plain WHERE n <= 2 ORDER BY n;
COMMIT;
FETCH ALL FROM c_hold_plain;                        -- 1, 2
CLOSE c_hold_plain;

-- ---------------------------------------------------------------------------------------------
-- COPY ... TO
-- ---------------------------------------------------------------------------------------------
COPY a_items TO STDOUT;                             -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
COPY (SELECT id, name FROM a_items ORDER BY id) TO STDOUT;   -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
COPY a_part_high TO STDOUT;                         -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
COPY a_items TO STDOUT;                             -- allowed: only acme's rows
COPY (SELECT id, name FROM a_items ORDER BY id) TO STDOUT;   -- allowed: only acme's rows
COPY a_part_high (id, name) TO STDOUT;              -- allowed: only part-acme-high
COMMIT;

-- ---------------------------------------------------------------------------------------------
-- CREATE TABLE AS / SELECT INTO (into temporary tables of the application): the copy would
-- be a relation without tenant policies (a temp table even outlives the transaction on a pooled
-- connection), so the tamper guard refuses it, with or without a claim
-- ---------------------------------------------------------------------------------------------
CREATE TEMP TABLE a_copy AS SELECT * FROM a_items;  -- refused: copies protected rows
\echo :LAST_ERROR_SQLSTATE
SELECT * INTO TEMP a_copy2 FROM a_items;            -- refused: copies protected rows
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
CREATE TEMP TABLE a_copy AS SELECT * FROM a_items;  -- refused: with a claim too
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT * INTO TEMP a_copy2 FROM a_items_view;       -- refused: through a view too
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- ---------------------------------------------------------------------------------------------
-- TABLESAMPLE, whole-row references, aggregates
-- ---------------------------------------------------------------------------------------------
SELECT id FROM a_items TABLESAMPLE SYSTEM (100) ORDER BY id;  -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
SELECT t FROM a_items t ORDER BY t.id;              -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM a_items;                       -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id FROM a_items TABLESAMPLE SYSTEM (100) ORDER BY id;                   -- 1, 2
SELECT id FROM a_items TABLESAMPLE BERNOULLI (100) REPEATABLE (1) ORDER BY id; -- 1, 2
SELECT t FROM a_items t ORDER BY t.id;              -- acme's two rows
SELECT row_to_json(t) FROM a_items t ORDER BY t.id; -- acme's two rows
SELECT count(*) FROM a_items;                       -- 2, not 5
SELECT count(*), sum(qty), max(item_id) FROM a_orders;  -- 2, 15, 2
SELECT count(*) FROM a_part;                        -- 3
SELECT count(*) FROM a_big;                         -- 1000
SELECT tenant_id, count(*) FROM a_items GROUP BY tenant_id ORDER BY 1;  -- acme only
SELECT string_agg(name, ',' ORDER BY id) FROM a_items;  -- anvil,rocket
COMMIT;

-- ---------------------------------------------------------------------------------------------
-- The leak probe: only acme's values reach the non-LEAKPROOF function (and its NOTICEs)
-- ---------------------------------------------------------------------------------------------
SELECT id FROM a_items WHERE a_leak(secret);        -- refused before any row is read: no NOTICE
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id FROM a_items WHERE a_leak(secret) ORDER BY id;                 -- NOTICEs for 101, 102 only
SELECT id FROM a_items_view WHERE a_leak(name) ORDER BY id;              -- anvil, rocket only
SELECT id FROM a_items_invoker WHERE a_leak(name) ORDER BY id;           -- anvil, rocket only
SELECT id FROM a_part WHERE a_leak(name) ORDER BY id;                    -- part-acme-* only
SELECT id FROM a_items WHERE a_leak(secret) AND id = 3;                  -- no NOTICE, no row
-- a cast that would fail on another tenant's secret: the policy runs first, so no error
SELECT id FROM a_items WHERE secret::int > 100 ORDER BY id;              -- 1, 2
SELECT id FROM a_items WHERE 1 / (CASE WHEN tenant_id = 'globex' THEN 0 ELSE 1 END) = 1 ORDER BY id; -- 1, 2
COMMIT;

-- ---------------------------------------------------------------------------------------------
-- EXPLAIN: plain EXPLAIN reads nothing and needs no claim; EXPLAIN ANALYZE of a protected table is
-- refused even with a claim: its "Rows Removed by Filter" counts other tenants' rows
-- ---------------------------------------------------------------------------------------------
EXPLAIN (COSTS OFF) SELECT * FROM a_items WHERE id = 3;       -- allowed without a claim
EXPLAIN (COSTS OFF) SELECT * FROM a_items_view;               -- allowed without a claim
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM a_items;  -- refused: EXPLAIN ANALYZE
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM a_items WHERE id = 1;  -- refused: EXPLAIN ANALYZE
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- ---------------------------------------------------------------------------------------------
-- Foreign keys between protected tables: the check is internal work (item 8)
-- ---------------------------------------------------------------------------------------------
INSERT INTO a_orders VALUES ('acme', 14, 1, 1);     -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO a_orders VALUES ('acme', 14, 1, 1);     -- allowed: the FK check finds (acme, 1)
INSERT INTO a_orders VALUES ('acme', 15, 99, 1);    -- refused by the FK (23503): no item 99
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO a_orders VALUES ('acme', 14, 1, 1);     -- allowed
SELECT o.id, i.name FROM a_orders o JOIN a_items i ON i.id = o.item_id ORDER BY o.id;  -- 10, 11, 14
COMMIT;

-- ---------------------------------------------------------------------------------------------
-- Parallel query: workers run under the leader's claim
-- ---------------------------------------------------------------------------------------------
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET min_parallel_index_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM a_big;     -- allowed without a claim: a parallel plan
SELECT count(*) FROM a_big;                         -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM a_big;                         -- allowed: 1000
SELECT count(*), min(id), max(id) FROM a_big WHERE id % 2 = 0;  -- allowed: 500, 6, 3000
COMMIT;
SET force_parallel_mode = on;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM a_big;                         -- allowed: 1000
SELECT id, name FROM a_items ORDER BY id;           -- allowed: only acme
COMMIT;
SELECT count(*) FROM a_big;                         -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
RESET force_parallel_mode;
-- A parallel-safe function that reads a protected table, called per row of an unprotected
-- table: the function's query runs in the workers (the leader does not take part), and must be
-- judged like the same query in the leader.
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT a_items_count_parallel() FROM a_plain;   -- a parallel plan
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT DISTINCT a_items_count_parallel() FROM a_plain;              -- allowed: 2
COMMIT;
-- (VERBOSITY sqlstate: whether the worker's refusal comes from the guard or from the policy does
-- not matter here; that it is a refusal and not a count does.)
\set VERBOSITY sqlstate
SELECT DISTINCT a_items_count_parallel() FROM a_plain;              -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
-- a session-level claim left behind by an earlier transaction (a pooled connection's previous
-- client) does not count in this one, in the workers either
SET tenant_guard.tenant_id = 'globex';
SELECT DISTINCT a_items_count_parallel() FROM a_plain;              -- refused: stale claim, not globex's count 2
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT count(*) FROM a_items;                                       -- refused: stale claim
\echo :LAST_ERROR_SQLSTATE
RESET tenant_guard.tenant_id;
RESET parallel_leader_participation;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET min_parallel_index_scan_size;
RESET max_parallel_workers_per_gather;
RESET enable_indexscan;
RESET enable_bitmapscan;

-- ---------------------------------------------------------------------------------------------
-- Nothing was changed for the other tenants (checked under globex)
-- ---------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT * FROM a_items ORDER BY id;                  -- globex's rows 3 and 4 only
SELECT id, item_id, qty FROM a_orders ORDER BY id;  -- globex's order 12 only
COMMIT;

RESET ROLE;
