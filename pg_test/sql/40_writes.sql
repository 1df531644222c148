-- 40_writes: the write path. With the claim 'acme' the application writes acme's rows only: it
-- can neither write a row for another tenant, nor move a row to another tenant, nor touch, return
-- or count another tenant's rows. Without a claim every write is refused (42501, tenant_guard
-- message naming the table). Contract, "The guard", item 1 and protect(); threat model family 7.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- ---------------------------------------------------------------------------------------------
-- Fixture, as the owner, loaded before protect()
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
-- sku is unique across tenants on purpose: it lets an insert conflict with another tenant's row
CREATE TABLE w_items (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    sku       text NOT NULL UNIQUE,
    qty       int  NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITH (autovacuum_enabled = off);
INSERT INTO w_items VALUES
    ('acme',   1, 'A-1', 10),
    ('acme',   2, 'A-2', 20),
    ('globex', 3, 'G-3', 30),
    ('globex', 4, 'G-4', 40),
    ('',       5, 'E-5', 50);
-- bigint tenant keys: acme is 1, globex is 2, 0 plays the "empty" tenant
CREATE TABLE w_big (
    tenant_id bigint NOT NULL,
    id        int    NOT NULL,
    note      text   NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITH (autovacuum_enabled = off);
INSERT INTO w_big VALUES (1, 1, 'big-acme'), (2, 2, 'globex-big'), (0, 3, 'orphan-big');
-- an unprotected source table for INSERT ... SELECT and MERGE
CREATE TABLE w_src (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    sku       text NOT NULL,
    qty       int  NOT NULL
) WITH (autovacuum_enabled = off);
INSERT INTO w_src VALUES
    ('acme',   1, 'A-1', 11),     -- matches acme's row 1
    ('acme',   2, 'A-2', 999),    -- matches acme's row 2, to be deleted
    ('acme',   6, 'A-6', 60),     -- no match: inserted
    ('globex', 3, 'G-3', 31),     -- would match globex's row 3, which acme cannot see
    ('globex', 7, 'G-7', 70);     -- no match, other tenant: must not be inserted
CREATE FUNCTION w_divide(d int) RETURNS int
    LANGUAGE plpgsql AS $$ BEGIN RETURN 1 / d; END $$;
SELECT tenant_guard.protect('w_items');
SELECT tenant_guard.protect('w_big');
GRANT SELECT, INSERT, UPDATE, DELETE ON w_items, w_big TO tg_app;
GRANT SELECT ON w_src TO tg_app;
RESET ROLE;

SET ROLE tg_app;

-- ---------------------------------------------------------------------------------------------
-- Without a claim every write is refused, whatever it would touch
-- ---------------------------------------------------------------------------------------------
INSERT INTO w_items VALUES ('acme', 10, 'A-10', 1);                 -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
INSERT INTO w_items SELECT tenant_id, id + 100, sku || '-copy', qty FROM w_src;  -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
UPDATE w_items SET qty = 0;                                         -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
UPDATE w_items SET qty = 0 WHERE false;                             -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
DELETE FROM w_items;                                                -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
DELETE FROM w_items WHERE id = 3 RETURNING *;                       -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
INSERT INTO w_items VALUES ('acme', 1, 'A-1', 0)
    ON CONFLICT (tenant_id, id) DO UPDATE SET qty = 0;              -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
INSERT INTO w_items VALUES ('acme', 1, 'A-1', 0) ON CONFLICT DO NOTHING;  -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
MERGE INTO w_items t USING w_src s ON t.id = s.id
    WHEN MATCHED THEN UPDATE SET qty = s.qty;                       -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
MERGE INTO w_items t USING w_src s ON t.id = s.id
    WHEN NOT MATCHED THEN DO NOTHING;                               -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
WITH d AS (DELETE FROM w_items RETURNING id) SELECT count(*) FROM d;  -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
WITH s AS (SELECT 1) UPDATE w_items SET qty = 0 FROM s;             -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
\copy w_items FROM '/dev/null'
-- (the line above) refused: no claim
\echo :LAST_ERROR_SQLSTATE
UPDATE w_items SET qty = 0 WHERE CURRENT OF no_such_cursor;         -- refused: no claim (before the cursor is looked up)
\echo :LAST_ERROR_SQLSTATE
INSERT INTO w_big VALUES (1, 10, 'big-acme-2');                     -- refused: no claim
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = '';
DELETE FROM w_items WHERE tenant_id = '';                           -- refused: '' is no claim
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- ---------------------------------------------------------------------------------------------
-- INSERT
-- ---------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO w_items VALUES ('acme', 10, 'A-10', 1);                 -- allowed: own tenant
INSERT INTO w_items VALUES ('acme', 11, 'A-11', 2) RETURNING *;     -- allowed: returns the new row
-- INSERT ... SELECT from a protected table copies acme's rows only (ids 1, 2, 10, 11)
WITH i AS (INSERT INTO w_items SELECT tenant_id, id + 100, sku || '-copy', qty FROM w_items RETURNING id, sku)
    SELECT * FROM i ORDER BY id;
SELECT id, sku, qty FROM w_items ORDER BY id;                       -- acme's 8 rows
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO w_items VALUES ('globex', 12, 'G-12', 1);               -- refused by the policy: another tenant
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO w_items VALUES ('', 12, 'E-12', 1);                     -- refused by the policy: the '' tenant
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO w_items SELECT tenant_id, id + 200, sku || '-src', qty FROM w_src;  -- refused by the policy: globex's rows in the source
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
-- a multi-row insert with one foreign row is refused as a whole
INSERT INTO w_items VALUES ('acme', 13, 'A-13', 1), ('globex', 14, 'G-14', 1);  -- refused by the policy
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- bigint keys
BEGIN;
SET LOCAL tenant_guard.tenant_id = '1';
INSERT INTO w_big VALUES (1, 10, 'big-acme-2') RETURNING *;         -- allowed
SELECT * FROM w_big ORDER BY id;                                    -- acme's two rows only
INSERT INTO w_big VALUES (2, 11, 'big-for-globex');                 -- refused by the policy: another tenant
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO w_big VALUES (1, 10, 'big-acme-2');                     -- refused: 'acme' is not a bigint (22023)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- ---------------------------------------------------------------------------------------------
-- UPDATE and DELETE
-- ---------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
UPDATE w_items SET qty = qty + 1 WHERE tenant_id = 'globex';        -- UPDATE 0
UPDATE w_items SET qty = qty + 1 WHERE id IN (3, 4, 5);             -- UPDATE 0: the ids of other tenants
DELETE FROM w_items WHERE tenant_id = 'globex';                     -- DELETE 0
DELETE FROM w_items WHERE id IN (3, 4, 5) RETURNING *;              -- DELETE 0, nothing returned
WITH u AS (UPDATE w_items SET qty = qty + 1 RETURNING id, qty)
    SELECT * FROM u ORDER BY id;                                    -- acme's 8 rows only
UPDATE w_items SET qty = qty WHERE sku LIKE 'G-%' OR sku LIKE 'E-%' RETURNING *;  -- nothing
WITH d AS (DELETE FROM w_items WHERE id > 100 RETURNING id, sku)
    SELECT * FROM d ORDER BY id;                                    -- acme's 4 copies only
DELETE FROM w_items WHERE id IN (10, 11);                           -- DELETE 2
SELECT id, sku, qty FROM w_items ORDER BY id;                       -- 1 and 2 (qty 11, 21)
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
UPDATE w_items SET tenant_id = 'globex' WHERE id = 1;               -- refused by the policy: moves a row to another tenant
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
UPDATE w_items SET tenant_id = '' WHERE id = 1;                     -- refused by the policy: moves a row to the '' tenant
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '1';
UPDATE w_big SET tenant_id = 2 WHERE id = 1;                        -- refused by the policy: moves a row to another tenant
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '1';
UPDATE w_big SET note = 'changed' WHERE tenant_id = 2;              -- UPDATE 0
DELETE FROM w_big WHERE id IN (2, 3) RETURNING *;                   -- DELETE 0
UPDATE w_big SET note = note RETURNING *;                           -- acme's row only
COMMIT;

-- ---------------------------------------------------------------------------------------------
-- INSERT ... ON CONFLICT
-- ---------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO w_items VALUES ('acme', 1, 'A-1', 100)
    ON CONFLICT (tenant_id, id) DO UPDATE SET qty = EXCLUDED.qty RETURNING *;  -- allowed: updates acme's row 1
INSERT INTO w_items VALUES ('acme', 20, 'A-20', 5)
    ON CONFLICT (tenant_id, id) DO UPDATE SET qty = EXCLUDED.qty RETURNING *;  -- allowed: inserts
INSERT INTO w_items VALUES ('acme', 1, 'A-1', 7) ON CONFLICT DO NOTHING;       -- INSERT 0 0: own row exists
INSERT INTO w_items VALUES ('acme', 21, 'A-21', 7) ON CONFLICT DO NOTHING;     -- INSERT 0 1
COMMIT;
-- the conflicting row (sku G-3) belongs to globex: it must not be updated, the statement fails
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO w_items VALUES ('acme', 30, 'G-3', 0)
    ON CONFLICT (sku) DO UPDATE SET qty = 0;                        -- refused by the policy (USING expression)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO w_items VALUES ('acme', 30, 'G-3', 0)
    ON CONFLICT (sku) DO UPDATE SET qty = 0, tenant_id = 'acme' RETURNING *;  -- refused: cannot take the row over
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO w_items VALUES ('globex', 3, 'G-3', 0)
    ON CONFLICT (tenant_id, id) DO UPDATE SET qty = 0;              -- refused by the policy: a globex row
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO w_items VALUES ('acme', 1, 'A-1', 0)
    ON CONFLICT (tenant_id, id) DO UPDATE SET tenant_id = 'globex'; -- refused by the policy: moves the row
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- DO NOTHING on another tenant's row: nothing is inserted and nothing is changed (INSERT 0 0;
-- the unique constraint on sku alone is the existence oracle that lint reports)
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO w_items VALUES ('acme', 31, 'G-4', 0) ON CONFLICT DO NOTHING RETURNING *;  -- INSERT 0 0, no row returned
INSERT INTO w_items VALUES ('globex', 31, 'G-31', 0) ON CONFLICT DO NOTHING;          -- refused by the policy
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- ---------------------------------------------------------------------------------------------
-- MERGE, every WHEN branch
-- ---------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
-- target rows of globex are invisible: the globex source rows are NOT MATCHED, and DO NOTHING
MERGE INTO w_items t USING w_src s ON t.id = s.id
    WHEN MATCHED AND s.qty > 900 THEN DELETE
    WHEN MATCHED THEN UPDATE SET qty = s.qty
    WHEN NOT MATCHED AND s.tenant_id = 'acme' THEN INSERT VALUES (s.tenant_id, s.id, s.sku, s.qty)
    WHEN NOT MATCHED THEN DO NOTHING;                               -- MERGE 3: update 1, delete 2, insert 6
SELECT id, sku, qty FROM w_items ORDER BY id;                       -- 1 (qty 11), 6, 20, 21
-- MATCHED ... DO NOTHING
MERGE INTO w_items t USING w_src s ON t.id = s.id
    WHEN MATCHED THEN DO NOTHING;                                   -- MERGE 0
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
MERGE INTO w_items t USING w_src s ON t.id = s.id
    WHEN NOT MATCHED THEN INSERT VALUES (s.tenant_id, s.id, s.sku, s.qty);  -- refused by the policy: inserts globex rows 3 and 7
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
MERGE INTO w_items t USING w_src s ON t.id = s.id
    WHEN MATCHED THEN UPDATE SET tenant_id = 'globex';              -- refused by the policy: moves acme's rows
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
-- joining on the tenant-free sku: globex's G-3 is still not matched (invisible), so nothing of it
-- is updated or deleted
MERGE INTO w_items t USING (SELECT * FROM w_src WHERE tenant_id = 'globex') s ON t.sku = s.sku
    WHEN MATCHED THEN DELETE
    WHEN NOT MATCHED THEN DO NOTHING;                               -- MERGE 0
COMMIT;

-- ---------------------------------------------------------------------------------------------
-- Writable CTEs
-- ---------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
WITH u AS (UPDATE w_items SET qty = qty + 1000 RETURNING id, qty)
    SELECT * FROM u ORDER BY id;                                    -- acme's rows only
WITH d AS (DELETE FROM w_items WHERE tenant_id <> 'acme' RETURNING *)
    SELECT count(*) FROM d;                                         -- 0
WITH i AS (INSERT INTO w_items VALUES ('acme', 40, 'A-40', 4) RETURNING id)
    SELECT id FROM i;                                               -- 40
WITH d AS (DELETE FROM w_items WHERE id = 40 RETURNING id),
     u AS (UPDATE w_items SET qty = qty - 1000 WHERE id NOT IN (SELECT id FROM d) RETURNING id, qty)
    SELECT * FROM u ORDER BY id;                                    -- acme's rows only
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
WITH i AS (INSERT INTO w_items VALUES ('globex', 41, 'G-41', 4) RETURNING *)
    SELECT * FROM i;                                                -- refused by the policy
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- ---------------------------------------------------------------------------------------------
-- WHERE CURRENT OF
-- ---------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DECLARE c_upd CURSOR FOR SELECT id, sku FROM w_items ORDER BY id FOR UPDATE;
FETCH 1 FROM c_upd;                                                 -- 1
UPDATE w_items SET qty = -1 WHERE CURRENT OF c_upd RETURNING id, qty;    -- acme's row 1
FETCH 1 FROM c_upd;                                                 -- 6
DELETE FROM w_items WHERE CURRENT OF c_upd RETURNING id;                 -- acme's row 6
FETCH ALL FROM c_upd;                                               -- 20, 21: never a globex row
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DECLARE c_move CURSOR FOR SELECT id FROM w_items ORDER BY id FOR UPDATE;
FETCH 1 FROM c_move;
UPDATE w_items SET tenant_id = 'globex' WHERE CURRENT OF c_move;    -- refused by the policy: moves the row
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- ---------------------------------------------------------------------------------------------
-- Errors of an allowed write keep every field PostgreSQL gives them (applications map unique
-- violations by constraint name): the guard's hooks must not strip them
-- ---------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO w_items VALUES ('acme', 1, 'A-1-again', 0);             -- unique violation on acme's own key (23505)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
DO $$
DECLARE
    c text; t text; n text;
BEGIN
    INSERT INTO w_items VALUES ('acme', 1, 'A-1-again', 0);
EXCEPTION WHEN unique_violation THEN
    GET STACKED DIAGNOSTICS c = CONSTRAINT_NAME, t = TABLE_NAME, n = SCHEMA_NAME;
    RAISE NOTICE 'unique_violation: constraint=% table=% schema=%', c, t, n;
END
$$;                                                                 -- NOTICE: constraint=w_items_pkey table=w_items schema=public
COMMIT;
-- and the context of an error raised inside a function keeps the function's own line
DO $$
DECLARE
    ctx text;
BEGIN
    PERFORM w_divide(0);
EXCEPTION WHEN division_by_zero THEN
    GET STACKED DIAGNOSTICS ctx = PG_EXCEPTION_CONTEXT;
    RAISE NOTICE 'context names w_divide: %', ctx LIKE '%PL/pgSQL function w_divide(integer) line 1 at RETURN%';
END
$$;                                                                 -- NOTICE: context names w_divide: t

-- ---------------------------------------------------------------------------------------------
-- COPY FROM: refused by PostgreSQL on a table with row level security (use INSERT)
-- ---------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
\copy w_items FROM '/dev/null'
-- (the line above) refused: COPY FROM is not supported with row level security (0A000)
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- ---------------------------------------------------------------------------------------------
-- What every tenant holds now: acme's writes landed, globex's and ''s rows are untouched
-- ---------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT * FROM w_items ORDER BY id;                                  -- 1 (qty -1), 20, 21
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT * FROM w_items ORDER BY id;                                  -- 3 (qty 30), 4 (qty 40), unchanged
COMMIT;
BEGIN;
SET LOCAL tenant_guard.tenant_id = '2';
SELECT * FROM w_big ORDER BY id;                                    -- globex-big, unchanged
COMMIT;
RESET ROLE;
-- the whole table, seen by the superuser with the guard off for this transaction only
BEGIN;
SET LOCAL tenant_guard.enforce = off;
SELECT * FROM w_items ORDER BY id;                                  -- acme 1, 20, 21; globex 3, 4; '' 5
SELECT * FROM w_big ORDER BY id;                                    -- 1, 2, 3 as loaded
COMMIT;
