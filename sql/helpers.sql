-- The policy helpers, with the signatures of the contract. Each is a thin SQL wrapper over the
-- Rust implementation; the wrappers pin search_path so that a migration's search_path cannot
-- change what the helpers' own queries mean.

CREATE FUNCTION tenant_guard.protect(rel regclass, tenant_column name DEFAULT 'tenant_id')
RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenant_guard._protect(rel::oid, tenant_column::text) $$;

COMMENT ON FUNCTION tenant_guard.protect(regclass, name) IS
    'Registers a table (with its partitions and child tables) as tenant-scoped: ENABLE and FORCE row level security and install the tenant policies. Idempotent.';

CREATE FUNCTION tenant_guard.unprotect(rel regclass, reason text)
RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenant_guard._unprotect(rel::oid, reason) $$;

COMMENT ON FUNCTION tenant_guard.unprotect(regclass, text) IS
    'The only sanctioned way to remove protection: drops the tenant policies and restores row level security as it was before protect().';

CREATE FUNCTION tenant_guard.exempt(rel regclass, reason text)
RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenant_guard._exempt(rel::oid, reason) $$;

COMMENT ON FUNCTION tenant_guard.exempt(regclass, text) IS
    'Records that a table with a tenant column is shared by all tenants on purpose.';

CREATE FUNCTION tenant_guard.set_limits(rel regclass, broad_read_rows integer, max_rows integer)
RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenant_guard._set_limits(rel::oid, broad_read_rows, max_rows) $$;

COMMENT ON FUNCTION tenant_guard.set_limits(regclass, integer, integer) IS
    'Per-table overrides of tenant_guard.broad_read_rows and tenant_guard.max_rows (NULL: the setting; 0: off).';

CREATE FUNCTION tenant_guard.explain(rel regclass)
RETURNS TABLE (report text, document jsonb)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM tenant_guard._explain(rel::oid) $$;

COMMENT ON FUNCTION tenant_guard.explain(regclass) IS
    'Why this session can or cannot see the table''s rows: protection, claim, role, row security, policies, mode, and the verdict per command with its fix.';
