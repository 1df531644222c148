\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
\set ECHO queries
\echo
\echo '--- 1. A migration creates invoices for two tenants and protects the table ---'
CREATE EXTENSION tenant_guard;
CREATE ROLE owner;                       -- owns the tables (runs migrations)
CREATE ROLE app LOGIN;                   -- the application: not owner, no BYPASSRLS
GRANT CREATE, USAGE ON SCHEMA public TO owner;
SET ROLE owner;
BEGIN;  -- a migration creates and protects its table in one transaction
CREATE TABLE invoices (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text   NOT NULL,
    customer  text   NOT NULL,
    amount    numeric(10,2) NOT NULL
);
CREATE INDEX ON invoices (tenant_id);
INSERT INTO invoices (tenant_id, customer, amount) VALUES
    ('acme', 'Road Runner Inc.', 120.00), ('acme', 'Wile E. Coyote', 99.95),
    ('globex', 'Hank Scorpio', 5000.00);
GRANT SELECT, INSERT, UPDATE, DELETE ON invoices TO app;
SELECT tenant_guard.protect('invoices');
COMMIT;
RESET ROLE;

\echo
\echo '--- 2. The application forgets to set the tenant: refused ---'
SET ROLE app;
SELECT * FROM invoices;

\echo
\echo '--- 3. Tenant acme, claim set for the transaction: only acme rows ---'
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT id, tenant_id, customer, amount FROM invoices ORDER BY id;
COMMIT;

\echo
\echo '--- 4. Tenant globex: only globex rows ---'
BEGIN;
SELECT tenant_guard.set_tenant('globex');
SELECT id, tenant_id, customer, amount FROM invoices ORDER BY id;
COMMIT;

\echo
\echo '--- 5. acme tries to write a row for globex: refused ---'
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
INSERT INTO invoices (tenant_id, customer, amount) VALUES ('globex', 'Mallory', 1.00);
ROLLBACK;

\echo
\echo '--- 6. The claim does not outlive its transaction (pooled connections) ---'
SET tenant_guard.tenant_id = 'acme';
SELECT count(*) FROM invoices;
RESET tenant_guard.tenant_id;
RESET ROLE;

\echo
\echo '--- 7. A superuser skips row security, so it is refused even with a claim ---'
BEGIN;
SET LOCAL tenant_guard.tenant_id = 'acme';
SELECT * FROM invoices;
ROLLBACK;

\echo
\echo '--- 8. The audit trail: every refusal above, although each statement was rolled back ---'
DO $$ BEGIN
    FOR i IN 1..50 LOOP   -- the audit writer stores queued events within about 100 ms
        EXIT WHEN (SELECT count(*) FROM tenant_guard.audit_log WHERE event = 'denied') >= 3;
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT id, event, reason, relations, command, role, tenant FROM tenant_guard.audit_log ORDER BY id;

\echo
\echo '--- 9. status() ---'
SELECT preloaded, guard_active, enforce, claim_scope, protected_tables, events_written, events_dropped, denials
  FROM tenant_guard.status();
