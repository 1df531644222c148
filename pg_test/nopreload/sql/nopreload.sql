-- tenant_guard loaded WITHOUT shared_preload_libraries: CREATE EXTENSION works, status() says the
-- guard is inactive, and the generated policies alone still refuse access without a claim with an
-- error (not an empty result). What only the hooks do (refusing superusers, BYPASSRLS roles and
-- owners) is not done here — status() says so loudly.
\set VERBOSITY default
CREATE EXTENSION tenant_guard;                       -- allowed
SELECT preloaded, guard_active FROM tenant_guard.status();   -- WARNING: the guard is NOT active
CREATE ROLE np_owner;
CREATE ROLE np_app;
GRANT CREATE, USAGE ON SCHEMA public TO np_owner;
SET ROLE np_owner;
BEGIN;                                               -- one migration: create, then protect
CREATE TABLE np_invoices (id int PRIMARY KEY, tenant_id text NOT NULL, amount int);
CREATE INDEX ON np_invoices (tenant_id);
INSERT INTO np_invoices VALUES (1, 'acme', 10), (2, 'acme', 20), (3, 'globex', 30), (4, '', 40);
GRANT SELECT, INSERT, UPDATE, DELETE ON np_invoices TO np_app;
SELECT tenant_guard.protect('np_invoices');          -- allowed: policies installed
COMMIT;
RESET ROLE;
SET ROLE np_app;
SELECT * FROM np_invoices;                           -- refused by the policy itself: no claim
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM np_invoices WHERE id = 3;              -- refused: index path evaluates the claim too
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL tenant_guard.tenant_id = '';                -- the empty claim is unset
SELECT * FROM np_invoices;                           -- refused
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT tenant_guard.set_tenant('acme');
SELECT * FROM np_invoices ORDER BY id;               -- allowed: acme's two rows only
INSERT INTO np_invoices VALUES (5, 'globex', 50);    -- refused: row for another tenant
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SET tenant_guard.tenant_id = 'acme';                 -- session-level, in its own transaction
SELECT * FROM np_invoices;                           -- refused: the claim is stale here
\echo :LAST_ERROR_SQLSTATE
RESET tenant_guard.tenant_id;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'globex';
SELECT * FROM np_invoices ORDER BY id;               -- allowed: globex's row only
COMMIT;
RESET ROLE;
-- Without the hooks a superuser is not refused (row security does not apply to superusers):
SELECT count(*) FROM np_invoices;                    -- allowed here; refused when preloaded
-- A new connection: the library is loaded by the first policy evaluation, after the claim was set.
\c
SET ROLE np_app;
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';           -- set before the library is loaded
SELECT * FROM np_invoices ORDER BY id;               -- allowed: acme's rows only
COMMIT;
\c
SET ROLE np_app;
SET tenant_guard.tenant_id = 'globex';               -- session-level, before the library is loaded
BEGIN;
SELECT * FROM np_invoices ORDER BY id;               -- refused: set in an earlier transaction
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- lint() says loudly that the guard is not preloaded
\c
SELECT severity, code FROM tenant_guard.lint() WHERE code = 'guard_not_preloaded';
