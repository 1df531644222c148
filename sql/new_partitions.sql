-- Partitions and child tables of a protected table are protected too, including ones created or
-- attached later: PostgreSQL applies a parent's policies only to queries that name the parent, so
-- a partition queried directly needs policies of its own.
--
-- The trigger runs as the user whose DDL fired it (the owner of the new partition), so protect()
-- applies the usual ownership rules.

CREATE FUNCTION tenant_guard._protect_new_children()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    child record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tenant_guard.protected_tables) THEN
        RETURN;
    END IF;
    FOR child IN
        WITH RECURSIVE touched(relid) AS (
            SELECT c.objid
              FROM pg_event_trigger_ddl_commands() c
             WHERE c.classid = 'pg_catalog.pg_class'::regclass AND c.object_type = 'table'
            UNION
            SELECT i.inhrelid FROM pg_inherits i JOIN touched t ON i.inhparent = t.relid
        )
        SELECT t.relid::regclass AS rel,
               (WITH RECURSIVE up(relid, depth) AS (
                    SELECT i.inhparent, 1 FROM pg_inherits i WHERE i.inhrelid = t.relid
                    UNION
                    SELECT i.inhparent, up.depth + 1 FROM pg_inherits i JOIN up ON i.inhrelid = up.relid)
                SELECT p.tenant_column
                  FROM up JOIN tenant_guard.protected_tables p ON p.relid = up.relid::regclass
                 ORDER BY up.depth
                 LIMIT 1) AS tenant_column
          FROM touched t
         WHERE NOT EXISTS (SELECT 1 FROM tenant_guard.protected_tables p WHERE p.relid = t.relid::regclass)
    LOOP
        IF child.tenant_column IS NOT NULL THEN
            RAISE NOTICE 'tenant_guard: %', tenant_guard.protect(child.rel, child.tenant_column);
        END IF;
    END LOOP;
END
$$;

CREATE EVENT TRIGGER tenant_guard_protect_new_children
    ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION tenant_guard._protect_new_children();

-- A dropped table leaves the registry with it (its policies went with the table).
CREATE FUNCTION tenant_guard._forget_dropped()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM tenant_guard.protected_tables p
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0 AND d.objid = p.relid::oid;
    DELETE FROM tenant_guard.exempt_tables e
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0 AND d.objid = e.relid::oid;
END
$$;

REVOKE ALL ON FUNCTION tenant_guard._forget_dropped() FROM PUBLIC;

CREATE EVENT TRIGGER tenant_guard_forget_dropped
    ON sql_drop
    EXECUTE FUNCTION tenant_guard._forget_dropped();
