\set VERBOSITY default
\set SHOW_CONTEXT never
-- 96_explain: tenant_guard.explain(rel) answers "why is my table empty?" for the current session:
-- a report in words and a JSON document (protection, claim and its scope, the role's posture,
-- row level security, policies, mode, and a verdict per command with the exact fix). And
-- tenant_guard.status() from a non-superuser. Every posture: no claim, stale claim, valid claim,
-- tenant switch, no privilege, superuser, BYPASSRLS, BYPASSRLS in a bypass, trusted role, owner
-- with FORCE (filtered) and without (refused), an unprotected table, an exempt table, a partition
-- of a protected table, claim_scope = session, enforce = shadow, bad arguments.
-- Contract: "Ops surface" (explain, status); issue 5 ("explain() and status()", "Tests").
-- Tables start with ex_.
--
-- Only stable fields are shown (no oids, pids or timestamps). The report is printed unaligned,
-- so each of its lines is a line of this file. ex_doc(rel) picks the JSON paths that matter;
-- ex_check(rel) compares explain's SELECT verdict with what a SELECT of the table really does
-- (in a subtransaction): the two columns must always agree.
\pset format unaligned

-- ---------------------------------------------------------------------------------------------
-- Fixture
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
CREATE TABLE ex_invoices (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
INSERT INTO ex_invoices VALUES ('acme', 1), ('acme', 2), ('globex', 3);
SELECT tenant_guard.protect('ex_invoices');
-- protected, but tg_app may only INSERT
CREATE TABLE ex_nopriv (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenant_guard.protect('ex_nopriv');
-- owned by tg_owner, for the owner without FORCE
CREATE TABLE ex_owned (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
INSERT INTO ex_owned VALUES ('acme', 1), ('globex', 2);
SELECT tenant_guard.protect('ex_owned');
-- never protected
CREATE TABLE ex_plain (tenant_id text, id int);
INSERT INTO ex_plain VALUES ('acme', 1), ('globex', 2);
-- shared by every tenant on purpose
CREATE TABLE ex_shared (tenant_id text, price int);
SELECT tenant_guard.exempt('ex_shared', 'global price list');
-- a partitioned table, protected with its partition
CREATE TABLE ex_parts (tenant_id text NOT NULL, k int NOT NULL, PRIMARY KEY (tenant_id, k)) PARTITION BY LIST (k);
CREATE TABLE ex_parts_1 PARTITION OF ex_parts FOR VALUES IN (1);
INSERT INTO ex_parts VALUES ('acme', 1), ('globex', 1);
SELECT tenant_guard.protect('ex_parts');
-- a uuid tenant column
CREATE TABLE ex_uuid (tenant_id uuid NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenant_guard.protect('ex_uuid');
-- a view over a protected table, filtered as its caller
CREATE VIEW ex_view WITH (security_invoker = on) AS SELECT tenant_id, id FROM ex_invoices;
GRANT SELECT, INSERT, UPDATE, DELETE ON ex_invoices, ex_owned, ex_plain, ex_parts, ex_parts_1, ex_uuid TO tg_app, tg_admin;
GRANT INSERT ON ex_nopriv TO tg_app;
GRANT SELECT ON ex_shared, ex_view TO tg_app;
RESET ROLE;

-- the JSON paths that matter, one row
CREATE FUNCTION ex_doc(rel regclass)
RETURNS TABLE (tbl text, protected text, inherits text, parent text, exempt text, rls text,
               claim_state text, claim_value text, valid_now text, scope text,
               role text, superuser text, bypassrls text, owner text, trusted text, in_bypass text,
               enforce text, select_allowed text, insert_allowed text, update_allowed text,
               delete_allowed text, select_fix text)
LANGUAGE sql AS $$
    SELECT d->>'table', d->>'protected', d->>'inherits_protection', d->'registration'->>'parent',
           d->'exempt'->>'reason',
           (d->'row_level_security'->>'enabled') || '/' || (d->'row_level_security'->>'forced'),
           d->'claim'->>'state', d->'claim'->>'value', d->'claim'->>'valid_now', d->'claim'->>'scope',
           d->'role'->>'name', d->'role'->>'superuser', d->'role'->>'bypassrls', d->'role'->>'owner',
           d->'role'->>'trusted', d->'role'->>'in_bypass', d->'mode'->>'enforce',
           d->'verdict'->'select'->>'allowed', d->'verdict'->'insert'->>'allowed',
           d->'verdict'->'update'->>'allowed', d->'verdict'->'delete'->>'allowed',
           d->'verdict'->'select'->>'fix'
      FROM (SELECT document AS d FROM tenant_guard.explain(rel)) e
$$;

-- explain's SELECT verdict next to what a SELECT really does (false when it fails: 42501 or
-- 22023). If explain itself refuses the relation (22023), its verdict counts as "not allowed".
CREATE FUNCTION ex_check(rel regclass, OUT explain_allowed boolean, OUT select_ran boolean)
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        SELECT (document->'verdict'->'select'->>'allowed')::boolean INTO explain_allowed
          FROM tenant_guard.explain(rel);
    EXCEPTION WHEN invalid_parameter_value THEN
        explain_allowed := false;
    END;
    BEGIN
        EXECUTE format('SELECT count(*) FROM %s', rel);
        select_ran := true;
    EXCEPTION WHEN insufficient_privilege OR invalid_parameter_value THEN
        select_ran := false;
    END;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- 1. tg_app (the application role), every state of the claim
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_app;
-- no claim: refused, and the fix is to set one
SELECT report FROM tenant_guard.explain('ex_invoices');
SELECT * FROM ex_doc('ex_invoices') \gx
SELECT * FROM ex_check('ex_invoices');              -- f f

-- a session-level claim from an earlier transaction: stale, refused
SET tenant_guard.tenant_id = 'acme';
SELECT report FROM tenant_guard.explain('ex_invoices');
SELECT claim_state, claim_value, valid_now, select_allowed, select_fix FROM ex_doc('ex_invoices') \gx
SELECT * FROM ex_check('ex_invoices');              -- f f
RESET tenant_guard.tenant_id;

-- a valid claim: allowed, only acme's rows
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT report FROM tenant_guard.explain('ex_invoices');
SELECT * FROM ex_doc('ex_invoices') \gx
SELECT * FROM ex_check('ex_invoices');              -- t t
SELECT tenant_id, id FROM ex_invoices ORDER BY id;  -- allowed: acme 1, 2
SELECT count(*) FROM ex_invoices WHERE tenant_id <> 'acme';  -- 0: never another tenant's rows
COMMIT;

-- a tenant switch after a protected table was touched: refused until the next transaction
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM ex_invoices;                   -- allowed: 2
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT report FROM tenant_guard.explain('ex_invoices');
SELECT claim_value, valid_now, select_allowed, select_fix FROM ex_doc('ex_invoices') \gx
SELECT * FROM ex_check('ex_invoices');              -- f f
ROLLBACK;

-- no SELECT privilege: the fix is the GRANT (INSERT is granted, so INSERT is allowed)
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT report FROM tenant_guard.explain('ex_nopriv');
SELECT select_allowed, insert_allowed, select_fix FROM ex_doc('ex_nopriv') \gx
SELECT * FROM ex_check('ex_nopriv');                -- f f
COMMIT;

-- claim_scope = session (set by a superuser): a session claim is valid in later transactions
RESET ROLE;
SET tenant_guard.claim_scope = session;
SET ROLE tg_app;
SET tenant_guard.tenant_id = 'acme';
SELECT report FROM tenant_guard.explain('ex_invoices');
SELECT claim_state, claim_value, valid_now, scope, select_allowed FROM ex_doc('ex_invoices') \gx
SELECT * FROM ex_check('ex_invoices');              -- t t
RESET tenant_guard.tenant_id;
RESET ROLE;
RESET tenant_guard.claim_scope;

-- a uuid tenant column and a claim that is not a uuid: the policy refuses (22023), so explain
-- must not say "allowed"
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT select_allowed FROM ex_doc('ex_uuid');       -- false
SELECT * FROM ex_check('ex_uuid');                  -- f f
COMMIT;
-- a view over a protected table: a SELECT of it without a claim is refused, so explain must not
-- say "allowed" (either it follows the view, or it refuses a relation that is not a table)
SELECT * FROM ex_check('ex_view');                  -- f f
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- 2. Roles that row security would not filter
-- ---------------------------------------------------------------------------------------------
-- the superuser, with a claim: refused (it bypasses row security); it does not own the table
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT report FROM tenant_guard.explain('ex_invoices');
SELECT role, superuser, bypassrls, owner, trusted, in_bypass, select_allowed, select_fix FROM ex_doc('ex_invoices') \gx
SELECT * FROM ex_check('ex_invoices');              -- f f
COMMIT;

-- tg_admin (BYPASSRLS), with a claim: refused
SET ROLE tg_admin;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT report FROM tenant_guard.explain('ex_invoices');
SELECT role, superuser, bypassrls, owner, trusted, in_bypass, select_allowed, select_fix FROM ex_doc('ex_invoices') \gx
SELECT * FROM ex_check('ex_invoices');              -- f f
COMMIT;
RESET ROLE;

-- tg_admin in an audited bypass (a member of tenant_guard.bypass_roles): allowed across tenants,
-- no claim needed
SET tenant_guard.bypass_roles = 'tg_admin';
SET ROLE tg_admin;
BEGIN;
SELECT tenant_guard.begin_bypass('ex: support ticket 42');
SELECT report FROM tenant_guard.explain('ex_invoices');
SELECT role, bypassrls, in_bypass, claim_state, select_allowed, select_fix FROM ex_doc('ex_invoices') \gx
SELECT * FROM ex_check('ex_invoices');              -- t t
SELECT count(*) FROM ex_invoices;                   -- allowed: 3, every tenant
COMMIT;
-- the bypass ended with its transaction
SELECT in_bypass, select_allowed FROM ex_doc('ex_invoices') \gx
RESET ROLE;
RESET tenant_guard.bypass_roles;

-- tg_admin listed in tenant_guard.trusted_roles, with a claim: allowed across tenants
SET tenant_guard.trusted_roles = 'tg_admin';
SET ROLE tg_admin;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT report FROM tenant_guard.explain('ex_invoices');
SELECT role, bypassrls, trusted, select_allowed, select_fix FROM ex_doc('ex_invoices') \gx
SELECT * FROM ex_check('ex_invoices');              -- t t
SELECT count(*) FROM ex_invoices;                   -- allowed: 3, every tenant (a broad read)
COMMIT;
-- still no claim, no access
SELECT report FROM tenant_guard.explain('ex_invoices');
SELECT * FROM ex_check('ex_invoices');              -- f f
RESET ROLE;
RESET tenant_guard.trusted_roles;

-- the owner with FORCE on (what protect() sets): filtered like the application
SET ROLE tg_owner;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT report FROM tenant_guard.explain('ex_owned');
SELECT role, owner, rls, select_allowed FROM ex_doc('ex_owned') \gx
SELECT * FROM ex_check('ex_owned');                 -- t t
SELECT tenant_id, id FROM ex_owned ORDER BY id;     -- allowed: acme 1 only
COMMIT;
RESET ROLE;
-- the owner after FORCE was removed (possible only with the guard off): refused
SET tenant_guard.enforce = off;
SET ROLE tg_owner;
ALTER TABLE ex_owned NO FORCE ROW LEVEL SECURITY;   -- allowed: enforce = off
RESET ROLE;
RESET tenant_guard.enforce;
SET ROLE tg_owner;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT report FROM tenant_guard.explain('ex_owned');
SELECT role, owner, rls, select_allowed, select_fix FROM ex_doc('ex_owned') \gx
SELECT * FROM ex_check('ex_owned');                 -- f f
COMMIT;
SELECT tenant_guard.protect('ex_owned');            -- allowed: repairs FORCE
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- 3. Tables that tenant_guard does not restrict, and partitions
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_app;
-- an unprotected table: every row
SELECT report FROM tenant_guard.explain('ex_plain');
SELECT protected, exempt, rls, select_allowed FROM ex_doc('ex_plain') \gx
SELECT * FROM ex_check('ex_plain');                 -- t t
-- an exempt table: every row, and the reason
SELECT report FROM tenant_guard.explain('ex_shared');
SELECT protected, exempt, select_allowed, insert_allowed FROM ex_doc('ex_shared') \gx
-- a partition of a protected table: protected itself, on the parent's column
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT report FROM tenant_guard.explain('ex_parts_1');
SELECT tbl, protected, inherits, parent, select_allowed FROM ex_doc('ex_parts_1') \gx
SELECT * FROM ex_check('ex_parts_1');               -- t t
SELECT tenant_id, k FROM ex_parts_1;                -- allowed: acme only
COMMIT;
-- without a claim: refused
SELECT select_allowed, select_fix FROM ex_doc('ex_parts_1') \gx
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- 4. enforce = shadow: what the guard would refuse is allowed (and audited as would_deny), but
--    the tenant policies still apply
-- ---------------------------------------------------------------------------------------------
SET tenant_guard.enforce = shadow;
-- the superuser with a claim: allowed across tenants, would_deny
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT report FROM tenant_guard.explain('ex_invoices');
SELECT enforce, superuser, select_allowed FROM ex_doc('ex_invoices') \gx
SELECT * FROM ex_check('ex_invoices');              -- t t (with the WARNING)
COMMIT;
-- tg_app with a claim: allowed, filtered
SET ROLE tg_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT report FROM tenant_guard.explain('ex_invoices');
SELECT * FROM ex_check('ex_invoices');              -- t t
COMMIT;
-- tg_app without a claim: the guard would only warn, but the policies fail closed, so a SELECT
-- is refused (42501 from the policy) and explain must say so
SELECT enforce, claim_state, select_allowed, insert_allowed, update_allowed, delete_allowed FROM ex_doc('ex_invoices') \gx
SELECT * FROM ex_check('ex_invoices');              -- f f
SELECT count(*) FROM ex_invoices;                   -- refused: WARNING (guard), then the policy's 42501
\echo :LAST_ERROR_SQLSTATE
-- the same with a stale claim
SET tenant_guard.tenant_id = 'acme';
SELECT claim_state, select_allowed FROM ex_doc('ex_invoices') \gx
SELECT * FROM ex_check('ex_invoices');              -- f f
RESET tenant_guard.tenant_id;
RESET ROLE;
RESET tenant_guard.enforce;

-- ---------------------------------------------------------------------------------------------
-- 5. Bad arguments
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_app;
SELECT * FROM tenant_guard.explain(NULL);           -- refused: 22023
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM tenant_guard.explain('ex_no_such_table');  -- refused: 42P01 (the regclass cast)
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM tenant_guard.explain(4000000000::oid::regclass);  -- refused: 42P01, no such oid
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- 6. status() from a non-superuser
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_app;
SELECT preloaded, guard_active, version, enforce, claim_scope, claim,
       protected_tables > 0 AS has_protected, audit_queue_size, jsonb_typeof(denials) AS denials
  FROM tenant_guard.status() \gx
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT claim FROM tenant_guard.status();            -- set (the tenant itself is never shown)
COMMIT;
SET tenant_guard.tenant_id = 'acme';
SELECT claim FROM tenant_guard.status();            -- stale (set in an earlier transaction)
RESET tenant_guard.tenant_id;
RESET ROLE;
SET tenant_guard.enforce = shadow;
SET ROLE tg_app;
SELECT guard_active, enforce FROM tenant_guard.status();  -- t, shadow
RESET ROLE;
SET tenant_guard.enforce = off;
SET ROLE tg_app;
SELECT guard_active, enforce FROM tenant_guard.status();  -- f, off
RESET ROLE;
RESET tenant_guard.enforce;
