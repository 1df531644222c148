-- tenant_guard's registry: which tables are protected, and which are knowingly shared.
-- Both tables are extension configuration: pg_dump keeps their rows.

CREATE TABLE tenant_guard.protected_tables (
    relid           regclass    PRIMARY KEY,
    tenant_column   name        NOT NULL,
    tenant_type     regtype     NOT NULL,
    -- the protected ancestor this partition or child table was protected with (NULL for a root)
    parent          regclass,
    -- row level security as it was before protect(), restored by unprotect()
    rls_was_enabled boolean     NOT NULL DEFAULT false,
    rls_was_forced  boolean     NOT NULL DEFAULT false,
    -- per-table overrides of tenant_guard.broad_read_rows and tenant_guard.max_rows (NULL: the setting)
    broad_read_rows integer     CHECK (broad_read_rows >= 0),
    max_rows        integer     CHECK (max_rows >= 0),
    protected_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    protected_by    name        NOT NULL
);

COMMENT ON TABLE tenant_guard.protected_tables IS
    'Tables under tenant_guard: every statement that touches one needs a tenant claim. Change it only through tenant_guard.protect() and tenant_guard.unprotect().';

CREATE TABLE tenant_guard.exempt_tables (
    relid       regclass    PRIMARY KEY,
    reason      text        NOT NULL CHECK (pg_catalog.btrim(reason) <> ''),
    exempted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    exempted_by name        NOT NULL
);

COMMENT ON TABLE tenant_guard.exempt_tables IS
    'Tables that have a tenant column but are shared by all tenants on purpose. Change it only through tenant_guard.exempt().';

SELECT pg_catalog.pg_extension_config_dump('tenant_guard.protected_tables', '');
SELECT pg_catalog.pg_extension_config_dump('tenant_guard.exempt_tables', '');

-- Everyone may see what is protected (lint, explain and the application's own checks read it);
-- only the helpers, running as the extension's owner, change it.
GRANT USAGE ON SCHEMA tenant_guard TO PUBLIC;
REVOKE ALL ON tenant_guard.protected_tables, tenant_guard.exempt_tables FROM PUBLIC;
GRANT SELECT ON tenant_guard.protected_tables, tenant_guard.exempt_tables TO PUBLIC;
