-- The new-table guard (see src/new_tables.rs): tables in tenant_guard.watched_schemas whose
-- tenant column (one of tenant_guard.tenant_columns) was created or changed by this transaction
-- must be protected or exempt when the transaction commits.

CREATE FUNCTION tenant_guard._check_new_tables()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    action text := coalesce(current_setting('tenant_guard.new_table_action', true), 'error');
BEGIN
    FOR t IN
        SELECT DISTINCT ON (c.oid) c.oid AS relid, a.attname::text AS tenant_column
          FROM pg_event_trigger_ddl_commands() d
          JOIN pg_class c ON c.oid = d.objid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE d.classid = 'pg_catalog.pg_class'::regclass
           AND d.object_type IN ('table', 'table column')
           AND c.relkind IN ('r', 'p')
           AND c.relpersistence IN ('p', 'u')
           AND n.nspname = ANY (tenant_guard._watched_schemas())
           AND a.attname = ANY (tenant_guard._tenant_columns())
           -- the column was created or changed by this transaction or one of its savepoints
           -- (CREATE TABLE, ADD COLUMN, RENAME COLUMN, ...)
           AND tenant_guard._in_this_transaction(a.xmin)
           AND NOT EXISTS (SELECT 1 FROM tenant_guard.protected_tables p WHERE p.relid = c.oid::regclass)
           AND NOT EXISTS (SELECT 1 FROM tenant_guard.exempt_tables e WHERE e.relid = c.oid::regclass)
           -- partitions and children of protected tables are protected by their own trigger
           AND NOT EXISTS (SELECT 1 FROM pg_inherits i
                             JOIN tenant_guard.protected_tables p ON p.relid = i.inhparent::regclass
                            WHERE i.inhrelid = c.oid)
         ORDER BY c.oid, array_position(tenant_guard._tenant_columns(), a.attname::text)
    LOOP
        IF action = 'protect' THEN
            RAISE NOTICE 'tenant_guard: %', tenant_guard.protect(t.relid::regclass, t.tenant_column::name);
        ELSE
            PERFORM tenant_guard._defer_new_table_check(t.relid, t.tenant_column);
        END IF;
    END LOOP;
END
$$;

CREATE EVENT TRIGGER tenant_guard_new_tables
    ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE')
    EXECUTE FUNCTION tenant_guard._check_new_tables();
