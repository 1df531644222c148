-- tenant_guard.lint(): what in this database weakens tenant isolation, one row per finding.
--
--   SELECT * FROM tenant_guard.lint();
--
-- Each row is (severity, code, object, message, fix): severity is error | warning | info, code is
-- a stable snake_case name documented in docs/lint.md, object names what to change (as
-- pg_identify_object() would: public.invoices, tenant_guard_select on public.invoices, a role, a
-- setting), and fix is SQL that resolves the finding when there is one (NULL otherwise).
-- Rows come ordered by severity, then code, then object.
--
-- How it works:
-- - Everything is read from the catalogs in set-based queries (no query per table), except for
--   counting rows whose tenant is NULL: that needs to read the table, and is done only for the
--   few tables whose tenant column is nullable (itself a finding), each in its own
--   subtransaction, so that one unreadable table becomes an info finding instead of an error.
-- - It runs as the caller (SECURITY INVOKER). A non-superuser sees every catalog it reads; what
--   it cannot inspect (a table it may not read, function bodies hidden from it) is reported as an
--   info finding that says so.
-- - It never reads a protected table (the guard would refuse a superuser, and the policies would
--   filter everyone else), and never loads the library (no warning from status()): whether the
--   library was preloaded is known from tenant_guard.audit_queue_size, a setting that exists only
--   under shared_preload_libraries, and from shared_preload_libraries itself when it is visible.
-- - lock_timeout bounds the wait for a table locked by a running migration. A group of checks
--   that cannot run (a lock not granted, a catalog the caller may not read) becomes a
--   lint_incomplete finding; the other groups' findings are still returned.
-- - jit is off: the catalog joins are cheap, but their estimates are not, and compiling the
--   query would cost seconds on a database with a thousand tables.

-- The finding for a group of checks that could not run (a lock not granted, a catalog the caller
-- may not read), as a one-element jsonb array for lint()'s list of early findings.
CREATE FUNCTION tenant_guard._lint_incomplete(what text, err text, state text)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
        'severity', 'warning', 'code', 'lint_incomplete', 'object', 'tenant_guard.lint()',
        'message', pg_catalog.format('%s were not checked: %s (SQLSTATE %s). Run lint() again, or as a role that may read the catalogs.',
                                     what, err, state),
        'fix', NULL))
$$;

CREATE FUNCTION tenant_guard.lint()
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
SET jit = off
AS $lint$
#variable_conflict use_column
DECLARE
    -- views and materialized views that read a protected table (directly or through other views)
    rv_view pg_catalog.oid[];
    rv_table pg_catalog.oid[];
    -- findings gathered before the main query (security definer functions, NULL tenants)
    early pg_catalog.jsonb := '[]';
    can_read_bodies pg_catalog.bool := pg_catalog.has_column_privilege('pg_catalog.pg_proc'::pg_catalog.regclass, 'prosrc', 'SELECT');
    cand record;
    null_rows pg_catalog.int8;
    why pg_catalog.text;
BEGIN
    ------------------------------------------------------------------------------------------
    -- Views and materialized views over protected tables, through any chain of views.
    ------------------------------------------------------------------------------------------
    BEGIN
        WITH RECURSIVE
        prot AS (SELECT p.relid::pg_catalog.oid AS relid FROM tenant_guard.protected_tables p),
        vdep AS (
            SELECT DISTINCT rw.ev_class AS viewid, d.refobjid AS ref
              FROM pg_catalog.pg_depend d
              JOIN pg_catalog.pg_rewrite rw ON rw.oid = d.objid
             WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
               AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
               AND d.refobjid <> rw.ev_class
        ),
        reads(viewid, tabid) AS (
            SELECT v.viewid, v.ref FROM vdep v JOIN prot p ON p.relid = v.ref
            UNION
            SELECT v.viewid, r.tabid
              FROM vdep v
              JOIN reads r ON v.ref = r.viewid
              JOIN pg_catalog.pg_class c ON c.oid = r.viewid AND c.relkind = 'v'
        )
        SELECT coalesce(pg_catalog.array_agg(r.viewid ORDER BY r.viewid, r.tabid), '{}'),
               coalesce(pg_catalog.array_agg(r.tabid ORDER BY r.viewid, r.tabid), '{}')
          INTO rv_view, rv_table
          FROM reads r;
    EXCEPTION WHEN insufficient_privilege OR lock_not_available THEN
        early := early || tenant_guard._lint_incomplete('Views over protected tables', SQLERRM, SQLSTATE);
    END;

    ------------------------------------------------------------------------------------------
    -- SECURITY DEFINER functions owned by a role that bypasses row security and that read a
    -- protected table, or a view over one: recorded dependencies (SQL functions with a
    -- BEGIN ATOMIC body) and, when the caller may see function bodies, the table's name as a
    -- word in the body.
    ------------------------------------------------------------------------------------------
    BEGIN
        IF can_read_bodies THEN
            WITH targets AS (
                SELECT c.oid, c.relname, pg_catalog.format('%I.%I', ns.nspname, c.relname) AS qname,
                       '\m' || pg_catalog.regexp_replace(pg_catalog.lower(c.relname), '([^[:alnum:]_])', '\\\1', 'g') || '\M' AS word
                  FROM pg_catalog.pg_class c
                  JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
                 WHERE c.oid IN (SELECT p.relid::pg_catalog.oid FROM tenant_guard.protected_tables p)
                    OR (c.oid = ANY (rv_view) AND c.relkind = 'v')
            ),
            definers AS (
                SELECT p.oid, p.oid::pg_catalog.regprocedure::pg_catalog.text AS fname, r.rolname, r.rolsuper,
                       CASE WHEN l.lanname IN ('c', 'internal') THEN '' ELSE pg_catalog.lower(p.prosrc) END AS body
                  FROM pg_catalog.pg_proc p
                  JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
                  JOIN pg_catalog.pg_language l ON l.oid = p.prolang
                  JOIN pg_catalog.pg_namespace ns ON ns.oid = p.pronamespace
                 WHERE p.prosecdef
                   AND (r.rolsuper OR r.rolbypassrls)
                   AND ns.nspname NOT IN ('pg_catalog', 'information_schema', 'tenant_guard')
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                                    WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND e.objid = p.oid
                                      AND e.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND e.deptype = 'e')
            ),
            reads AS (
                SELECT d.oid, tg.qname
                  FROM definers d
                  JOIN pg_catalog.pg_depend x
                    ON x.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND x.objid = d.oid
                   AND x.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                  JOIN targets tg ON tg.oid = x.refobjid
                UNION
                SELECT d.oid, tg.qname
                  FROM definers d
                  -- strpos() first: a regular expression per table is compiled only for a likely hit
                  JOIN targets tg ON CASE WHEN pg_catalog.strpos(d.body, pg_catalog.lower(tg.relname)) > 0
                                          THEN d.body ~ tg.word ELSE false END
            ),
            hits AS (
                SELECT d.oid, d.fname, d.rolname, d.rolsuper, pg_catalog.string_agg(r.qname, ', ' ORDER BY r.qname) AS tables
                  FROM definers d
                  JOIN reads r ON r.oid = d.oid
                 GROUP BY d.oid, d.fname, d.rolname, d.rolsuper
            )
            SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                       'severity', 'error',
                       'code', 'security_definer_reads_protected',
                       'object', h.fname,
                       'message', pg_catalog.format(
                           'SECURITY DEFINER function %s runs as %s, which %s, and reads protected %s. Inside it the '
                           'tenant policies do not filter: without the preload (or for a role in '
                           'tenant_guard.trusted_roles) every caller reads every tenant''s rows; with the guard it '
                           'is refused. Found by its recorded dependencies and by the table''s name in its body '
                           '(dynamic SQL and calls to other functions are not followed).',
                           h.fname, pg_catalog.quote_ident(h.rolname),
                           CASE WHEN h.rolsuper THEN 'is a superuser' ELSE 'has BYPASSRLS' END, h.tables),
                       'fix', pg_catalog.format('ALTER FUNCTION %s SECURITY INVOKER;', h.fname))), '[]')
              INTO early
              FROM hits h;
        ELSE
            WITH targets AS (
                SELECT c.oid, pg_catalog.format('%I.%I', ns.nspname, c.relname) AS qname
                  FROM pg_catalog.pg_class c
                  JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
                 WHERE c.oid IN (SELECT p.relid::pg_catalog.oid FROM tenant_guard.protected_tables p)
                    OR (c.oid = ANY (rv_view) AND c.relkind = 'v')
            ),
            hits AS (
                SELECT p.oid::pg_catalog.regprocedure::pg_catalog.text AS fname, r.rolname, r.rolsuper,
                       pg_catalog.string_agg(DISTINCT tg.qname, ', ') AS tables
                  FROM pg_catalog.pg_proc p
                  JOIN pg_catalog.pg_roles r ON r.oid = p.proowner
                  JOIN pg_catalog.pg_depend x ON x.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND x.objid = p.oid
                                             AND x.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                  JOIN targets tg ON tg.oid = x.refobjid
                  JOIN pg_catalog.pg_namespace ns ON ns.oid = p.pronamespace
                 WHERE p.prosecdef AND (r.rolsuper OR r.rolbypassrls)
                   AND ns.nspname NOT IN ('pg_catalog', 'information_schema', 'tenant_guard')
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
                                    WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND e.objid = p.oid
                                      AND e.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND e.deptype = 'e')
                 GROUP BY p.oid, r.rolname, r.rolsuper
            )
            SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                       'severity', 'error',
                       'code', 'security_definer_reads_protected',
                       'object', h.fname,
                       'message', pg_catalog.format(
                           'SECURITY DEFINER function %s runs as %s, which %s, and reads protected %s (found by its '
                           'recorded dependencies). Inside it the tenant policies do not filter.',
                           h.fname, pg_catalog.quote_ident(h.rolname),
                           CASE WHEN h.rolsuper THEN 'is a superuser' ELSE 'has BYPASSRLS' END, h.tables),
                       'fix', pg_catalog.format('ALTER FUNCTION %s SECURITY INVOKER;', h.fname))), '[]')
              INTO early
              FROM hits h;
            early := early || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                'severity', 'info',
                'code', 'function_bodies_not_inspected',
                'object', 'pg_catalog.pg_proc.prosrc',
                'message', 'You may not read function bodies (pg_proc.prosrc), so SECURITY DEFINER functions were '
                           'checked only through their recorded dependencies (SQL functions with a BEGIN ATOMIC '
                           'body); plpgsql and other functions that read protected tables were not found. Run lint() '
                           'as a role that may read pg_proc.prosrc.',
                'fix', NULL));
        END IF;
    EXCEPTION WHEN insufficient_privilege OR lock_not_available THEN
        early := early || tenant_guard._lint_incomplete('SECURITY DEFINER functions', SQLERRM, SQLSTATE);
    END;

    ------------------------------------------------------------------------------------------
    -- Rows whose tenant is NULL: only tables whose tenant column is nullable, and only those
    -- the caller can read without row level security in the way.
    ------------------------------------------------------------------------------------------
    BEGIN
        FOR cand IN
            WITH RECURSIVE
            cfg AS (
                -- comma-separated names, read like the extension reads them: blanks trimmed, "quoted"
                -- kept as is, others folded to lower case; the tenant column is the first listed one
                SELECT (SELECT pg_catalog.array_agg(CASE WHEN i.x ~ '^".*"$' THEN pg_catalog.replace(pg_catalog.substr(i.x, 2, pg_catalog.length(i.x) - 2), '""', '"')
                                                       ELSE pg_catalog.lower(i.x) END ORDER BY i.n)
                      FROM pg_catalog.unnest(pg_catalog.string_to_array(coalesce(pg_catalog.current_setting('tenant_guard.watched_schemas', true), 'public'), ',')) WITH ORDINALITY u(x, n)
                      CROSS JOIN LATERAL (SELECT pg_catalog.btrim(u.x, E' \t\n\r') AS x, u.n) i
                     WHERE i.x <> '') AS watched,
                       (SELECT pg_catalog.array_agg(CASE WHEN i.x ~ '^".*"$' THEN pg_catalog.replace(pg_catalog.substr(i.x, 2, pg_catalog.length(i.x) - 2), '""', '"')
                                                       ELSE pg_catalog.lower(i.x) END ORDER BY i.n)
                      FROM pg_catalog.unnest(pg_catalog.string_to_array(coalesce(pg_catalog.current_setting('tenant_guard.tenant_columns', true), 'tenant_id'), ',')) WITH ORDINALITY u(x, n)
                      CROSS JOIN LATERAL (SELECT pg_catalog.btrim(u.x, E' \t\n\r') AS x, u.n) i
                     WHERE i.x <> '') AS tcols
            ),
            reg AS (SELECT p.relid::pg_catalog.oid AS relid, p.tenant_column::pg_catalog.text AS tcol FROM tenant_guard.protected_tables p),
            ex AS (SELECT e.relid::pg_catalog.oid AS relid FROM tenant_guard.exempt_tables e),
            -- protected tables and every table below one (registered or not)
            guarded(relid, tcol) AS (
                SELECT r.relid, r.tcol FROM reg r
                UNION
                SELECT i.inhrelid, g.tcol FROM pg_catalog.pg_inherits i JOIN guarded g ON g.relid = i.inhparent
            ),
            shared(relid) AS (
                SELECT x.relid FROM ex x
                UNION
                SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN shared s ON s.relid = i.inhparent
            ),
            cand AS (
                -- protected (or below a protected table), on the registered column
                SELECT g.relid, g.tcol, true AS is_guarded
                  FROM guarded g
                UNION
                -- tenant-looking tables in watched schemas that are not shared on purpose
                (SELECT DISTINCT ON (c.oid) c.oid, a.attname::pg_catalog.text, false
                  FROM pg_catalog.pg_class c
                  JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                  CROSS JOIN cfg
                 WHERE c.relkind IN ('r', 'p') AND c.relpersistence IN ('p', 'u')
                   AND ns.nspname = ANY (cfg.watched)
                   AND ns.nspname NOT IN ('pg_catalog', 'information_schema', 'tenant_guard')
                   AND a.attname = ANY (cfg.tcols)
                   AND c.oid NOT IN (SELECT g.relid FROM guarded g)
                   AND c.oid NOT IN (SELECT s.relid FROM shared s)
                 ORDER BY c.oid, pg_catalog.array_position(cfg.tcols, a.attname::pg_catalog.text))
            )
            SELECT c.oid AS relid, pg_catalog.format('%I.%I', ns.nspname, c.relname) AS qname, k.tcol, a.attnum,
                   CASE
                       WHEN pg_catalog.bool_or(k.is_guarded) THEN
                           'it is protected: reading it needs a tenant claim (and the guard refuses roles that skip '
                           'the policies), and a row whose tenant is NULL matches no claim'
                       WHEN NOT pg_catalog.has_schema_privilege(ns.oid, 'USAGE') THEN
                           pg_catalog.format('you have no USAGE privilege on schema %I', ns.nspname)
                       WHEN NOT pg_catalog.has_column_privilege(c.oid, a.attnum, 'SELECT') THEN
                           'you have no SELECT privilege on it'
                       WHEN pg_catalog.row_security_active(c.oid) THEN
                           'row level security applies to you on it, so a count would only cover the rows you may see'
                   END AS why
              FROM cand k
              JOIN pg_catalog.pg_class c ON c.oid = k.relid
              JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
              JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = k.tcol AND a.attnum > 0 AND NOT a.attisdropped
             WHERE c.relkind = 'r' AND NOT a.attnotnull
             GROUP BY c.oid, ns.oid, ns.nspname, c.relname, k.tcol, a.attnum
             ORDER BY 2
        LOOP
            why := cand.why;
            null_rows := NULL;
            IF why IS NULL THEN
                BEGIN
                    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM ONLY %s WHERE %I IS NULL', cand.qname, cand.tcol)
                       INTO null_rows;
                EXCEPTION WHEN OTHERS THEN
                    why := pg_catalog.format('reading it failed: %s (SQLSTATE %s)', SQLERRM, SQLSTATE);
                END;
            END IF;
            IF why IS NOT NULL THEN
                early := early || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                    'severity', 'info',
                    'code', 'null_tenant_rows_not_checked',
                    'object', cand.qname,
                    'message', pg_catalog.format('Rows whose tenant (%I) is NULL were not counted in %s: %s.', cand.tcol, cand.qname, why),
                    'fix', NULL));
            ELSIF null_rows > 0 THEN
                early := early || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                    'severity', 'warning',
                    'code', 'null_tenant_rows',
                    'object', cand.qname,
                    'message', pg_catalog.format(
                        '%s row(s) of %s have a NULL tenant (%I). Such rows belong to no tenant: once the table is '
                        'protected no claim matches them (no tenant can see or fix them), and until then they are '
                        'shared by everyone. protect() refuses the table while its tenant column is nullable, and '
                        'SET NOT NULL fails while such rows exist. Give each row its tenant, or delete it.',
                        null_rows, cand.qname, cand.tcol),
                    'fix', pg_catalog.format('UPDATE %s SET %I = ''<tenant>'' WHERE %I IS NULL;', cand.qname, cand.tcol, cand.tcol)));
            END IF;
        END LOOP;
    EXCEPTION WHEN insufficient_privilege OR lock_not_available THEN
        early := early || tenant_guard._lint_incomplete('Rows whose tenant is NULL', SQLERRM, SQLSTATE);
    END;

    ------------------------------------------------------------------------------------------
    -- Everything else, from the catalogs, in one statement.
    ------------------------------------------------------------------------------------------
    BEGIN
        RETURN QUERY
        WITH RECURSIVE
        cfg AS (
            SELECT (SELECT pg_catalog.array_agg(CASE WHEN i.x ~ '^".*"$' THEN pg_catalog.replace(pg_catalog.substr(i.x, 2, pg_catalog.length(i.x) - 2), '""', '"')
                                                       ELSE pg_catalog.lower(i.x) END ORDER BY i.n)
                      FROM pg_catalog.unnest(pg_catalog.string_to_array(coalesce(pg_catalog.current_setting('tenant_guard.watched_schemas', true), 'public'), ',')) WITH ORDINALITY u(x, n)
                      CROSS JOIN LATERAL (SELECT pg_catalog.btrim(u.x, E' \t\n\r') AS x, u.n) i
                     WHERE i.x <> '') AS watched,
                   (SELECT pg_catalog.array_agg(CASE WHEN i.x ~ '^".*"$' THEN pg_catalog.replace(pg_catalog.substr(i.x, 2, pg_catalog.length(i.x) - 2), '""', '"')
                                                       ELSE pg_catalog.lower(i.x) END ORDER BY i.n)
                      FROM pg_catalog.unnest(pg_catalog.string_to_array(coalesce(pg_catalog.current_setting('tenant_guard.tenant_columns', true), 'tenant_id'), ',')) WITH ORDINALITY u(x, n)
                      CROSS JOIN LATERAL (SELECT pg_catalog.btrim(u.x, E' \t\n\r') AS x, u.n) i
                     WHERE i.x <> '') AS tcols,
                   -- defined only when the library was loaded through shared_preload_libraries
                   EXISTS (SELECT 1 FROM pg_catalog.pg_settings s WHERE s.name = 'tenant_guard.audit_queue_size') AS queue_defined,
                   -- visible to superusers and members of pg_read_all_settings only
                   (SELECT s.setting FROM pg_catalog.pg_settings s WHERE s.name = 'shared_preload_libraries') AS spl,
                   pg_catalog.current_setting('tenant_guard.enforce', true) AS enforce
        ),
        libs AS (
            SELECT cfg.*,
                   (SELECT pg_catalog.array_agg(pg_catalog.btrim(x, ' "'))
                      FROM pg_catalog.unnest(pg_catalog.string_to_array(cfg.spl, ',')) x
                     WHERE pg_catalog.btrim(x, ' "') <> '') AS spl_list
              FROM cfg
        ),
        preload AS (
            SELECT l.*,
                   l.queue_defined
                   AND (l.spl IS NULL OR EXISTS (SELECT 1 FROM pg_catalog.unnest(l.spl_list) x
                                                  WHERE x ~ '(^|/)tenant_guard(\.so)?$')) AS preloaded
              FROM libs l
        ),
        reg AS (
            SELECT p.relid::pg_catalog.oid AS relid, p.tenant_column::pg_catalog.text AS tcol,
                   p.tenant_type::pg_catalog.oid AS ttype, p.parent::pg_catalog.oid AS parent
              FROM tenant_guard.protected_tables p
        ),
        -- registered tables that exist, with their registered tenant column, the SQL that repairs
        -- them, and the condition protect() generated for them
        prot AS (
            SELECT r.relid, r.tcol, r.ttype, r.parent, c.relname, ns.nspname, c.relkind, c.relowner,
                   c.relrowsecurity AS rls, c.relforcerowsecurity AS forced, c.relispartition,
                   pg_catalog.format('%I.%I', ns.nspname, c.relname) AS qname,
                   a.attnum AS tatt, a.atttypid AS tatttype, a.attnotnull AS tnotnull,
                   CASE WHEN r.tcol = 'tenant_id'
                        THEN pg_catalog.format('SELECT tenant_guard.protect(%L);', pg_catalog.format('%I.%I', ns.nspname, c.relname))
                        ELSE pg_catalog.format('SELECT tenant_guard.protect(%L, %L);', pg_catalog.format('%I.%I', ns.nspname, c.relname), r.tcol)
                   END AS protect_sql,
                   -- an altered generated policy is reinstalled on the registered root: unprotect()
                   -- drops the generated policies by name, protect() puts them back
                   (SELECT pg_catalog.format(
                               'BEGIN; SELECT tenant_guard.unprotect(%L, %L); SELECT tenant_guard.protect(%L, %L); COMMIT;',
                               pg_catalog.format('%I.%I', rn.nspname, rc.relname), 'lint: reinstall the generated tenant policies',
                               pg_catalog.format('%I.%I', rn.nspname, rc.relname), r.tcol)
                      FROM pg_catalog.pg_class rc
                      JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
                     WHERE rc.oid = CASE WHEN r.parent IS NULL THEN r.relid ELSE (
                               WITH RECURSIVE up(relid, parent, depth) AS (
                                   SELECT r.relid, r.parent, 0
                                   UNION ALL
                                   SELECT q.relid::pg_catalog.oid, q.parent::pg_catalog.oid, up.depth + 1
                                     FROM tenant_guard.protected_tables q
                                     JOIN up ON q.relid = up.parent::pg_catalog.regclass
                                    WHERE up.depth < 100)
                               SELECT up.relid FROM up ORDER BY up.depth DESC LIMIT 1) END) AS reinstall_sql,
                   pg_catalog.format('(%s = ( SELECT tenant_guard.%s() AS %2$s))',
                       CASE WHEN r.ttype = 'pg_catalog.varchar'::pg_catalog.regtype::pg_catalog.oid
                            THEN pg_catalog.format('(%s)::text', pg_catalog.quote_ident(r.tcol))
                            ELSE pg_catalog.quote_ident(r.tcol) END,
                       CASE r.ttype
                            WHEN 'pg_catalog.uuid'::pg_catalog.regtype::pg_catalog.oid THEN 'require_tenant_uuid'
                            WHEN 'pg_catalog.int8'::pg_catalog.regtype::pg_catalog.oid THEN 'require_tenant_bigint'
                            WHEN 'pg_catalog.int4'::pg_catalog.regtype::pg_catalog.oid THEN 'require_tenant_integer'
                            ELSE 'require_tenant' END) AS expected
              FROM reg r
              JOIN pg_catalog.pg_class c ON c.oid = r.relid
              JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
              LEFT JOIN pg_catalog.pg_attribute a
                     ON a.attrelid = r.relid AND a.attname = r.tcol AND a.attnum > 0 AND NOT a.attisdropped
        ),
        -- tables below a protected table that are not registered themselves
        unreg_child(relid, tcol, ancestor) AS (
            SELECT i.inhrelid, p.tcol, p.qname
              FROM pg_catalog.pg_inherits i JOIN prot p ON p.relid = i.inhparent
             WHERE i.inhrelid NOT IN (SELECT relid FROM reg)
            UNION
            SELECT i.inhrelid, u.tcol, u.ancestor
              FROM pg_catalog.pg_inherits i JOIN unreg_child u ON u.relid = i.inhparent
             WHERE i.inhrelid NOT IN (SELECT relid FROM reg)
        ),
        shared(relid) AS (
            SELECT e.relid::pg_catalog.oid FROM tenant_guard.exempt_tables e
            UNION
            SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN shared s ON s.relid = i.inhparent
        ),
        -- tables in watched schemas with a tenant column that are neither protected nor exempt
        tenantish AS (
            SELECT DISTINCT ON (c.oid) c.oid AS relid, pg_catalog.format('%I.%I', ns.nspname, c.relname) AS qname,
                   c.relispartition, a.attname::pg_catalog.text AS tcol, a.attnotnull, a.atttypid
              FROM pg_catalog.pg_class c
              JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
              JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              CROSS JOIN cfg
             WHERE c.relkind IN ('r', 'p') AND c.relpersistence IN ('p', 'u')
               AND ns.nspname = ANY (cfg.watched)
               AND ns.nspname NOT IN ('pg_catalog', 'information_schema', 'tenant_guard')
               AND a.attname = ANY (cfg.tcols)
               AND c.oid NOT IN (SELECT relid FROM reg)
               AND c.oid NOT IN (SELECT relid FROM unreg_child)
               AND c.oid NOT IN (SELECT relid FROM shared)
             ORDER BY c.oid, pg_catalog.array_position(cfg.tcols, a.attname::pg_catalog.text)
        ),
        -- the policies of protected tables
        pol AS (
            SELECT p.relid, p.qname, p.tcol, p.tatt, p.expected, p.reinstall_sql,
                   po.oid AS polid, po.polrelid, po.polname::pg_catalog.text AS polname,
                   po.polcmd, po.polpermissive, po.polroles, po.polqual, po.polwithcheck,
                   pg_catalog.format('%I on %s', po.polname, p.qname) AS pobj,
                   po.polname IN ('tenant_guard_select', 'tenant_guard_insert', 'tenant_guard_update', 'tenant_guard_delete') AS generated,
                   -- the fix for a policy that should not be as it is: a generated one is reinstalled,
                   -- another one is dropped under an audited bypass (the tamper guard refuses DROP POLICY)
                   CASE WHEN po.polname IN ('tenant_guard_select', 'tenant_guard_insert', 'tenant_guard_update', 'tenant_guard_delete')
                        THEN p.reinstall_sql
                        ELSE pg_catalog.format(
                            'BEGIN; SELECT tenant_guard.begin_bypass(%L); DROP POLICY %I ON %s; COMMIT;',
                            'lint: drop policy ' || po.polname || ' on ' || p.qname, po.polname, p.qname)
                   END AS fix
              FROM prot p
              JOIN pg_catalog.pg_policy po ON po.polrelid = p.relid
        ),
        -- Generated policies that are exactly as protect() made them ("pristine") need no further
        -- look. Deparsing a policy (pg_get_expr) locks its table, so it is done once per shape: the
        -- same node tree on a table whose tenant column has the same name and position deparses to
        -- the same text.
        shapes AS (
            SELECT s.*,
                   s.polpermissive AND s.polroles = '{0}'
                   AND s.polcmd = CASE s.polname WHEN 'tenant_guard_select' THEN 'r' WHEN 'tenant_guard_insert' THEN 'a'
                                                 WHEN 'tenant_guard_update' THEN 'w' ELSE 'd' END
                   AND pg_catalog.pg_get_expr(r.polqual, r.polrelid) IS NOT DISTINCT FROM
                           (CASE WHEN s.polname <> 'tenant_guard_insert' THEN r.expected END)
                   AND pg_catalog.pg_get_expr(r.polwithcheck, r.polrelid) IS NOT DISTINCT FROM
                           (CASE WHEN s.polname IN ('tenant_guard_insert', 'tenant_guard_update') THEN r.expected END)
                   AS pristine
              FROM (SELECT l.polname, l.polcmd, l.polpermissive, l.polroles, l.tcol, l.tatt,
                           coalesce(l.polqual::pg_catalog.text, '') AS qual_tree,
                           coalesce(l.polwithcheck::pg_catalog.text, '') AS check_tree,
                           pg_catalog.min(l.polid) AS rep
                      FROM pol l
                     WHERE l.generated AND l.tatt IS NOT NULL
                     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8) s
              JOIN pol r ON r.polid = s.rep
        ),
        -- the other policies, with their expressions, the functions they call (recorded
        -- dependencies: user functions and the functions of user operators; built-in ones are pinned
        -- and recorded nowhere) and the claim-like calls among them (no argument, not immutable:
        -- current_tenant(), auth.uid(), ...)
        -- (a materialized step: the expressions are deparsed only for these few)
        oddpol AS MATERIALIZED (
            SELECT p.*
              FROM pol p
             WHERE NOT EXISTS (
                       SELECT 1 FROM shapes s
                        WHERE s.pristine AND s.polname = p.polname AND s.polcmd = p.polcmd
                          AND s.polpermissive = p.polpermissive AND s.polroles = p.polroles
                          AND s.tcol = p.tcol AND s.tatt = p.tatt
                          AND s.qual_tree = coalesce(p.polqual::pg_catalog.text, '')
                          AND s.check_tree = coalesce(p.polwithcheck::pg_catalog.text, ''))
        ),
        odd AS (
            SELECT l.*, coalesce(l.q, '') || ' ' || coalesce(l.wc, '') AS x, f.volatile_fns,
                   coalesce(f.claim_fns, '{}') || '{current_setting}'::pg_catalog.text[] AS claim_fns
              FROM (SELECT p.*,
                           pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS q,
                           pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS wc
                      FROM oddpol p) l
              CROSS JOIN LATERAL (
                  SELECT pg_catalog.array_agg(DISTINCT fn.oid::pg_catalog.regprocedure::pg_catalog.text ORDER BY fn.oid::pg_catalog.regprocedure::pg_catalog.text)
                             FILTER (WHERE fn.provolatile = 'v') AS volatile_fns,
                         pg_catalog.array_agg(DISTINCT fn.proname::pg_catalog.text)
                             FILTER (WHERE fn.pronargs = 0 AND fn.provolatile <> 'i' AND fn.proname ~ '^[[:alnum:]_]+$') AS claim_fns
                    FROM pg_catalog.pg_depend d
                    LEFT JOIN pg_catalog.pg_operator o
                           ON d.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass AND o.oid = d.refobjid
                    JOIN pg_catalog.pg_proc fn
                      ON fn.oid = CASE WHEN d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass THEN d.refobjid
                                       ELSE o.oprcode::pg_catalog.oid END
                   WHERE d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid = l.polid
                     AND d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass, 'pg_catalog.pg_operator'::pg_catalog.regclass)
              ) f
        ),
        -- built-in functions whose every variant is volatile (random, nextval, clock_timestamp, ...)
        builtin_volatile AS (
            SELECT f.proname::pg_catalog.text AS proname
              FROM pg_catalog.pg_proc f
             WHERE f.pronamespace = 'pg_catalog'::pg_catalog.regnamespace
             GROUP BY f.proname
            HAVING pg_catalog.bool_and(f.provolatile = 'v')
        ),
        -- views and materialized views over protected tables (computed above)
        rv AS (SELECT u.v AS viewid, u.t AS tabid FROM ROWS FROM (pg_catalog.unnest(rv_view), pg_catalog.unnest(rv_table)) AS u(v, t)),
        -- login roles and the roles they can SET ROLE to (PostgreSQL 15: every role they are a member of)
        memb(member, grp, direct) AS (
            SELECT m.member, m.roleid, true FROM pg_catalog.pg_auth_members m
            UNION
            SELECT mb.member, m.roleid, false FROM pg_catalog.pg_auth_members m JOIN memb mb ON m.member = mb.grp
        ),
        findings(severity, code, object, message, fix) AS (
            ----------------------------------------------------------------------------------------
            -- The guard itself
            ----------------------------------------------------------------------------------------
            SELECT 'error', 'guard_not_preloaded', 'shared_preload_libraries',
                   'tenant_guard is NOT in shared_preload_libraries: the guard is not active in every backend. '
                   'Superusers, BYPASSRLS roles and owners of tables without FORCE are not refused and read every '
                   'tenant''s rows; refusals, broad reads and the row cap are off, and only protect/unprotect/exempt '
                   'reach the audit trail. The tenant policies alone still fail closed for filtered roles. Add the '
                   'library and restart the server.',
                   CASE WHEN pr.spl IS NULL THEN
                            'ALTER SYSTEM SET shared_preload_libraries = ''tenant_guard''; -- add the libraries already listed (SHOW shared_preload_libraries), then restart the server'
                        ELSE 'ALTER SYSTEM SET shared_preload_libraries = '
                             || coalesce((SELECT pg_catalog.string_agg(pg_catalog.quote_literal(x), ', ')
                                            FROM pg_catalog.unnest(pr.spl_list) x
                                           WHERE x !~ '(^|/)tenant_guard(\.so)?$') || ', ', '')
                             || '''tenant_guard''; -- then restart the server'
                   END
              FROM preload pr
             WHERE NOT pr.preloaded
            UNION ALL
            SELECT CASE WHEN pr.enforce = 'off' THEN 'error' ELSE 'warning' END, 'enforce_not_on', 'tenant_guard.enforce',
                   pg_catalog.format(
                       'tenant_guard.enforce is %s in this session: %s',
                       pr.enforce,
                       CASE WHEN pr.enforce = 'off'
                            THEN 'the guard refuses nothing (no claim, roles that skip the policies, tampering) and audits nothing; only the policies apply.'
                            ELSE 'what the guard would refuse runs, with a WARNING and a would_deny event. Fine for a rollout, not for production.' END),
                   'ALTER SYSTEM SET tenant_guard.enforce = ''on''; SELECT pg_catalog.pg_reload_conf(); -- and remove any ALTER DATABASE/ROLE ... SET of it'
              FROM preload pr
             WHERE pr.preloaded AND pr.enforce IN ('off', 'shadow')
            ----------------------------------------------------------------------------------------
            -- The registry and drift of protected tables
            ----------------------------------------------------------------------------------------
            UNION ALL
            SELECT 'warning', 'registry_stale_entry', r.relid::pg_catalog.text,
                   pg_catalog.format('tenant_guard.protected_tables lists a table that no longer exists (oid %s): it was dropped while the extension''s event triggers did not run.', r.relid),
                   pg_catalog.format('DELETE FROM tenant_guard.protected_tables WHERE relid::pg_catalog.oid = %s; -- as a superuser', r.relid)
              FROM reg r
             WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = r.relid)
            UNION ALL
            SELECT 'warning', 'registry_stale_entry', e.relid::pg_catalog.oid::pg_catalog.text,
                   pg_catalog.format('tenant_guard.exempt_tables lists a table that no longer exists (oid %s).', e.relid::pg_catalog.oid),
                   pg_catalog.format('DELETE FROM tenant_guard.exempt_tables WHERE relid::pg_catalog.oid = %s; -- as a superuser', e.relid::pg_catalog.oid)
              FROM tenant_guard.exempt_tables e
             WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = e.relid::pg_catalog.oid)
            UNION ALL
            SELECT 'error', 'rls_disabled', p.qname,
                   pg_catalog.format('Row level security is disabled on protected table %s: its tenant policies are not applied. With the guard every statement that touches it is refused; without the preload every role reads every tenant''s rows.', p.qname),
                   p.protect_sql
              FROM prot p
             WHERE NOT p.rls
            UNION ALL
            SELECT 'error', 'rls_not_forced', p.qname,
                   pg_catalog.format('Row level security is not forced on protected table %s: its owner skips the tenant policies. With the guard the owner is refused; without the preload the owner reads every tenant''s rows.', p.qname),
                   p.protect_sql
              FROM prot p
             WHERE NOT p.forced
            UNION ALL
            SELECT 'error', 'tenant_column_drifted', p.qname,
                   CASE WHEN p.tatt IS NULL
                        THEN pg_catalog.format('Protected table %s has no column %I any more (dropped or renamed), but it is registered on it. The guard and the policies no longer agree on the tenant column.', p.qname, p.tcol)
                        ELSE pg_catalog.format('The tenant column %I of protected table %s is of type %s, but it was protected as %s.', p.tcol, p.qname, p.tatttype::pg_catalog.regtype, p.ttype::pg_catalog.regtype)
                   END,
                   NULL
              FROM prot p
             WHERE p.tatt IS NULL OR p.tatttype <> p.ttype
            UNION ALL
            SELECT 'error', 'tenant_policy_missing', p.qname,
                   pg_catalog.format('Protected table %s lacks the generated %s %s (for %s): %s no rows, or, when other permissive policies exist, only what they allow.',
                       p.qname,
                       CASE WHEN pg_catalog.count(*) = 1 THEN 'policy' ELSE 'policies' END,
                       pg_catalog.string_agg(w.polname, ', ' ORDER BY w.polname),
                       pg_catalog.string_agg(pg_catalog.upper(pg_catalog.split_part(w.polname, '_', 3)), ', ' ORDER BY w.polname),
                       CASE WHEN pg_catalog.count(*) = 1 THEN 'that command reaches' ELSE 'those commands reach' END),
                   p.protect_sql
              FROM prot p
              CROSS JOIN (VALUES ('tenant_guard_select'), ('tenant_guard_insert'), ('tenant_guard_update'), ('tenant_guard_delete')) w(polname)
             WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy po WHERE po.polrelid = p.relid AND po.polname = w.polname)
             GROUP BY p.relid, p.qname, p.protect_sql
            UNION ALL
            SELECT 'error', 'tenant_policy_altered', l.pobj,
                   pg_catalog.format('Policy %s is not the one protect() generated: %s. Expected %s %s TO PUBLIC with %s.',
                       l.pobj,
                       pg_catalog.concat_ws('; ',
                           CASE WHEN l.polcmd <> w.polcmd THEN 'it applies to another command' END,
                           CASE WHEN NOT l.polpermissive THEN 'it is RESTRICTIVE' END,
                           CASE WHEN l.polroles <> '{0}' THEN 'it does not apply to PUBLIC' END,
                           CASE WHEN l.q IS DISTINCT FROM (CASE WHEN w.has_q THEN l.expected END)
                                THEN pg_catalog.format('USING is %s', coalesce(l.q, 'missing')) END,
                           CASE WHEN l.wc IS DISTINCT FROM (CASE WHEN w.has_wc THEN l.expected END)
                                THEN pg_catalog.format('WITH CHECK is %s', coalesce(l.wc, 'missing')) END),
                       'PERMISSIVE FOR', pg_catalog.upper(pg_catalog.split_part(l.polname, '_', 3)),
                       pg_catalog.concat_ws(' and ',
                           CASE WHEN w.has_q THEN 'USING ' || l.expected END,
                           CASE WHEN w.has_wc THEN 'WITH CHECK ' || l.expected END)),
                   l.fix
              FROM odd l
              CROSS JOIN LATERAL (
                  SELECT CASE l.polname WHEN 'tenant_guard_select' THEN 'r' WHEN 'tenant_guard_insert' THEN 'a'
                                        WHEN 'tenant_guard_update' THEN 'w' ELSE 'd' END::pg_catalog."char" AS polcmd,
                         l.polname <> 'tenant_guard_insert' AS has_q,
                         l.polname IN ('tenant_guard_insert', 'tenant_guard_update') AS has_wc) w
             WHERE l.generated AND l.tatt IS NOT NULL
            UNION ALL
            SELECT 'error', 'unprotected_child', pg_catalog.format('%I.%I', ns.nspname, c.relname),
                   pg_catalog.format('%s inherits from protected table %s but is not protected itself: queried directly it has no tenant policies (the guard refuses that; without the preload it returns every tenant''s rows).',
                       pg_catalog.format('%I.%I', ns.nspname, c.relname), u.ancestor),
                   CASE WHEN u.tcol = 'tenant_id'
                        THEN pg_catalog.format('SELECT tenant_guard.protect(%L);', pg_catalog.format('%I.%I', ns.nspname, c.relname))
                        ELSE pg_catalog.format('SELECT tenant_guard.protect(%L, %L);', pg_catalog.format('%I.%I', ns.nspname, c.relname), u.tcol) END
              FROM (SELECT DISTINCT ON (uc.relid) uc.relid, uc.tcol, uc.ancestor FROM unreg_child uc ORDER BY uc.relid) u
              JOIN pg_catalog.pg_class c ON c.oid = u.relid
              JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p')
            ----------------------------------------------------------------------------------------
            -- Tables that look tenant-scoped but are not protected
            ----------------------------------------------------------------------------------------
            UNION ALL
            SELECT 'error', 'unprotected_tenant_table', t.qname,
                   pg_catalog.format('%s has tenant column %I but is neither protected nor exempt: every role that may read it sees every tenant''s rows. Protect it, or, if every tenant shares it on purpose, exempt it: SELECT tenant_guard.exempt(%L, ''<why>'');%s',
                       t.qname, t.tcol, t.qname,
                       CASE WHEN t.atttypid NOT IN ('pg_catalog.uuid'::pg_catalog.regtype, 'pg_catalog.text'::pg_catalog.regtype,
                                                    'pg_catalog.varchar'::pg_catalog.regtype, 'pg_catalog.int8'::pg_catalog.regtype,
                                                    'pg_catalog.int4'::pg_catalog.regtype)
                            THEN pg_catalog.format(' Its type %s cannot be compared with the claim: change it to uuid, text, varchar, bigint or integer first.', t.atttypid::pg_catalog.regtype)
                            WHEN NOT t.attnotnull THEN ' The column is nullable: protect() needs it NOT NULL (see null_tenant_rows).'
                            ELSE '' END),
                   CASE WHEN t.atttypid NOT IN ('pg_catalog.uuid'::pg_catalog.regtype, 'pg_catalog.text'::pg_catalog.regtype,
                                                'pg_catalog.varchar'::pg_catalog.regtype, 'pg_catalog.int8'::pg_catalog.regtype,
                                                'pg_catalog.int4'::pg_catalog.regtype) THEN NULL
                        ELSE CASE WHEN t.attnotnull THEN '' ELSE pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET NOT NULL; ', t.qname, t.tcol) END
                             || CASE WHEN t.tcol = 'tenant_id' THEN pg_catalog.format('SELECT tenant_guard.protect(%L);', t.qname)
                                     ELSE pg_catalog.format('SELECT tenant_guard.protect(%L, %L);', t.qname, t.tcol) END
                   END
              FROM tenantish t
             -- a partition or child whose parent is reported is covered by the parent's protect()
             WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i JOIN tenantish tp ON tp.relid = i.inhparent
                                WHERE i.inhrelid = t.relid)
            UNION ALL
            SELECT 'warning', 'tenant_column_nullable', pg_catalog.format('%s.%I', k.qname, k.tcol),
                   CASE WHEN k.is_protected
                        THEN pg_catalog.format('Tenant column %I of protected table %s is nullable (NOT NULL was dropped after protect()). A row with a NULL tenant matches no claim: no tenant can see or correct it.', k.tcol, k.qname)
                        ELSE pg_catalog.format('Tenant column %I of %s is nullable: protect() refuses it, and a row with a NULL tenant belongs to no tenant.', k.tcol, k.qname)
                   END,
                   pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I SET NOT NULL;', k.qname, k.tcol)
              FROM (SELECT p.relid, p.qname, p.tcol, true AS is_protected FROM prot p WHERE p.tatt IS NOT NULL AND NOT p.tnotnull
                    UNION ALL
                    SELECT t.relid, t.qname, t.tcol, false FROM tenantish t WHERE NOT t.attnotnull) k
             WHERE NOT EXISTS (
                       SELECT 1 FROM pg_catalog.pg_inherits i
                         JOIN pg_catalog.pg_attribute a ON a.attrelid = i.inhparent AND a.attname = k.tcol AND NOT a.attnotnull
                        WHERE i.inhrelid = k.relid
                          AND (i.inhparent IN (SELECT relid FROM reg) OR i.inhparent IN (SELECT relid FROM tenantish)))
            ----------------------------------------------------------------------------------------
            -- Indexes, foreign keys and unique keys of protected tables
            ----------------------------------------------------------------------------------------
            UNION ALL
            SELECT 'warning', 'tenant_index_missing', p.qname,
                   pg_catalog.format('No valid, non-partial index of protected table %s leads with its tenant column %I. Every tenant query filters on that column; without such an index each one scans the whole table.', p.qname, p.tcol),
                   pg_catalog.format('CREATE INDEX ON %s (%I);', p.qname, p.tcol)
              FROM prot p
             WHERE p.tatt IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index x
                                WHERE x.indrelid = p.relid AND x.indkey[0] = p.tatt AND x.indisvalid AND x.indpred IS NULL)
               -- a partition whose partitioned parent lacks one too is covered by the parent's index
               AND NOT (p.relispartition AND EXISTS (
                       SELECT 1 FROM pg_catalog.pg_inherits i JOIN prot pp ON pp.relid = i.inhparent
                        WHERE i.inhrelid = p.relid AND pp.tatt IS NOT NULL
                          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index x
                                           WHERE x.indrelid = pp.relid AND x.indkey[0] = pp.tatt AND x.indisvalid AND x.indpred IS NULL)))
            UNION ALL
            SELECT 'error', 'foreign_key_without_tenant', pg_catalog.format('%I on %s', f.conname, pc.qname),
                   pg_catalog.format('Foreign key %I from protected table %s to protected table %s leaves out the tenant column (it does not match %s.%I with %s.%I). Foreign-key checks ignore row level security, so a tenant can point its rows at another tenant''s row (a cross-tenant reference), and a failed insert tells it whether a key exists in any tenant (an existence oracle). Make the tenant column part of the key.',
                       f.conname, pc.qname, pr.qname, pc.qname, pc.tcol, pr.qname, pr.tcol),
                   CASE WHEN pc.tatt = ANY (f.conkey) OR pr.tatt = ANY (f.confkey) THEN NULL
                        ELSE
                            CASE WHEN EXISTS (
                                     SELECT 1 FROM pg_catalog.pg_index x
                                      WHERE x.indrelid = f.confrelid AND x.indisunique AND x.indisvalid
                                        AND x.indpred IS NULL AND x.indexprs IS NULL
                                        AND x.indnkeyatts = pg_catalog.cardinality(f.confkey) + 1
                                        AND (SELECT pg_catalog.array_agg(k ORDER BY k)
                                               FROM pg_catalog.unnest(x.indkey::pg_catalog.int2[]) WITH ORDINALITY u(k, o)
                                              WHERE u.o <= x.indnkeyatts)
                                            = (SELECT pg_catalog.array_agg(k ORDER BY k)
                                                 FROM pg_catalog.unnest(f.confkey || pr.tatt) k))
                                 THEN ''
                                 ELSE pg_catalog.format('ALTER TABLE %s ADD UNIQUE (%I, %s); ', pr.qname, pr.tcol,
                                          (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY u.o)
                                             FROM pg_catalog.unnest(f.confkey) WITH ORDINALITY u(k, o)
                                             JOIN pg_catalog.pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = u.k))
                            END
                            || pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s;', pc.qname, f.conname, f.conname,
                                   pg_catalog.regexp_replace(
                                       pg_catalog.regexp_replace(pg_catalog.pg_get_constraintdef(f.oid), '^FOREIGN KEY \(', 'FOREIGN KEY (' || pg_catalog.quote_ident(pc.tcol) || ', '),
                                       ' REFERENCES (.*?)\(', ' REFERENCES \1(' || pg_catalog.replace(pg_catalog.quote_ident(pr.tcol), '\', '\\') || ', '))
                   END
              FROM pg_catalog.pg_constraint f
              JOIN prot pr ON pr.relid = f.confrelid
              JOIN prot pc ON pc.relid = f.conrelid
             WHERE f.contype = 'f' AND f.conparentid = 0
               AND pc.tatt IS NOT NULL AND pr.tatt IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM ROWS FROM (pg_catalog.unnest(f.conkey), pg_catalog.unnest(f.confkey)) k(a, b) WHERE k.a = pc.tatt AND k.b = pr.tatt)
            UNION ALL
            SELECT 'warning', 'foreign_key_from_unprotected', pg_catalog.format('%I on %s', f.conname, pg_catalog.format('%I.%I', ns.nspname, c.relname)),
                   pg_catalog.format('Foreign key %I of %s, which is not protected, references protected table %s. Foreign-key checks ignore row level security: whoever may write %s learns, from a failed insert or update, whether a key exists in any tenant of %s (an existence oracle).%s',
                       f.conname, pg_catalog.format('%I.%I', ns.nspname, c.relname), pr.qname, pg_catalog.format('%I.%I', ns.nspname, c.relname), pr.qname,
                       CASE WHEN t.relid IS NOT NULL THEN ' Protect the referencing table too.'
                            ELSE ' Protect the referencing table (it needs a tenant column) or drop the foreign key.' END),
                   CASE WHEN t.relid IS NOT NULL
                        THEN CASE WHEN t.tcol = 'tenant_id' THEN pg_catalog.format('SELECT tenant_guard.protect(%L);', t.qname)
                                  ELSE pg_catalog.format('SELECT tenant_guard.protect(%L, %L);', t.qname, t.tcol) END
                   END
              FROM pg_catalog.pg_constraint f
              JOIN prot pr ON pr.relid = f.confrelid
              JOIN pg_catalog.pg_class c ON c.oid = f.conrelid
              JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
              LEFT JOIN tenantish t ON t.relid = f.conrelid AND t.attnotnull
             WHERE f.contype = 'f' AND f.conparentid = 0
               AND f.conrelid NOT IN (SELECT relid FROM reg)
            UNION ALL
            SELECT CASE WHEN u.client_chosen THEN 'error' ELSE 'warning' END, 'unique_without_tenant', u.obj,
                   pg_catalog.format('%s %s of protected table %s is unique across all tenants (%s): it leaves out %I. An insert or update that collides with another tenant''s row fails with "duplicate key" and shows the key (ON CONFLICT DO NOTHING inserts nothing), so a tenant learns which values other tenants use (an existence oracle)%s. Make the key unique per tenant.',
                       CASE u.contype WHEN 'p' THEN 'Primary key' WHEN 'u' THEN 'Unique constraint' ELSE 'Unique index' END,
                       u.iname, u.qname, u.cols, u.tcol,
                       CASE WHEN u.client_chosen THEN ', and a value one tenant holds is refused to all others'
                            ELSE '; its columns have generated defaults, so only explicitly chosen values are exposed' END)
                   || CASE WHEN u.has_twin THEN ' A unique key on the same columns plus the tenant column exists already: this one can go (recreate foreign keys that use it on the tenant-scoped key first).' ELSE '' END,
                   CASE WHEN u.has_twin AND u.contype IN ('p', 'u')
                        THEN pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I;', u.qname, u.iname)
                        WHEN u.has_twin
                        THEN pg_catalog.format('DROP INDEX %s;', u.obj)
                        WHEN u.contype IN ('p', 'u')
                        THEN pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s;', u.qname, u.iname, u.iname,
                                 pg_catalog.regexp_replace(u.condef, '\(', '(' || pg_catalog.replace(pg_catalog.quote_ident(u.tcol), '\', '\\') || ', '))
                        ELSE pg_catalog.format('DROP INDEX %s; %s;', u.obj,
                                 pg_catalog.regexp_replace(u.idxdef, ' USING (\w+) \(', ' USING \1 (' || pg_catalog.replace(pg_catalog.quote_ident(u.tcol), '\', '\\') || ', '))
                   END
              FROM (
                  SELECT p.qname, p.tcol, ic.relname::pg_catalog.text AS iname, con.contype,
                         CASE WHEN con.oid IS NOT NULL THEN pg_catalog.format('%I on %s', con.conname, p.qname)
                              ELSE pg_catalog.format('%I.%I', p.nspname, ic.relname) END AS obj,
                         pg_catalog.pg_get_constraintdef(con.oid) AS condef,
                         pg_catalog.pg_get_indexdef(x.indexrelid) AS idxdef,
                         (SELECT pg_catalog.string_agg(CASE WHEN k.k = 0 THEN 'an expression' ELSE pg_catalog.quote_ident(a.attname) END, ', ' ORDER BY k.o)
                            FROM pg_catalog.unnest(x.indkey::pg_catalog.int2[]) WITH ORDINALITY k(k, o)
                            LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = p.relid AND a.attnum = k.k
                           WHERE k.o <= x.indnkeyatts) AS cols,
                         EXISTS (SELECT 1
                                   FROM pg_catalog.unnest(x.indkey::pg_catalog.int2[]) WITH ORDINALITY k(k, o)
                                   LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = p.relid AND a.attnum = k.k
                                  WHERE k.o <= x.indnkeyatts
                                    AND (k.k = 0 OR (NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''))) AS client_chosen,
                         -- another unique index on the same columns plus the tenant column already exists
                         x.indexprs IS NULL AND x.indpred IS NULL AND EXISTS (
                             SELECT 1 FROM pg_catalog.pg_index y
                              WHERE y.indrelid = p.relid AND y.indisunique AND y.indisvalid
                                AND y.indexprs IS NULL AND y.indpred IS NULL
                                AND y.indnkeyatts = x.indnkeyatts + 1
                                AND (SELECT pg_catalog.array_agg(k.k ORDER BY k.k)
                                       FROM pg_catalog.unnest(y.indkey::pg_catalog.int2[]) WITH ORDINALITY k(k, o)
                                      WHERE k.o <= y.indnkeyatts)
                                    = (SELECT pg_catalog.array_agg(k.k ORDER BY k.k)
                                         FROM (SELECT k.k FROM pg_catalog.unnest(x.indkey::pg_catalog.int2[]) WITH ORDINALITY k(k, o)
                                                WHERE k.o <= x.indnkeyatts
                                               UNION ALL SELECT p.tatt) k)) AS has_twin
                    FROM prot p
                    JOIN pg_catalog.pg_index x ON x.indrelid = p.relid AND x.indisunique
                    JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
                    LEFT JOIN pg_catalog.pg_constraint con
                           ON con.conindid = x.indexrelid AND con.conrelid = p.relid AND con.contype IN ('p', 'u')
                   WHERE p.tatt IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(x.indkey::pg_catalog.int2[]) WITH ORDINALITY k(k, o)
                                      WHERE k.o <= x.indnkeyatts AND k.k = p.tatt)
                     -- a partition's copy of its parent's index is reported on the parent
                     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = x.indexrelid)
              ) u
            ----------------------------------------------------------------------------------------
            -- Indirection: views, materialized views (security definer functions: above)
            ----------------------------------------------------------------------------------------
            UNION ALL
            SELECT CASE WHEN v.owner_bypasses THEN 'error' ELSE 'warning' END, 'view_not_security_invoker', v.qname,
                   pg_catalog.format('View %s reads protected %s with the privileges of its owner %s, not of the caller: anyone granted SELECT on the view reads through it without a grant on the tables%s.',
                       v.qname, v.tables, pg_catalog.quote_ident(v.rolname),
                       CASE WHEN v.owner_bypasses
                            THEN ', and since the owner skips row level security the tenant policies do not filter (the guard refuses the view; without the preload it returns every tenant''s rows)'
                            ELSE ' (the tenant policies still filter by the claim, since the owner is subject to them)' END),
                   pg_catalog.format('ALTER VIEW %s SET (security_invoker = on);', v.qname)
              FROM (
                  SELECT pg_catalog.format('%I.%I', ns.nspname, vc.relname) AS qname, o.rolname,
                         pg_catalog.string_agg(DISTINCT p.qname, ', ') AS tables,
                         pg_catalog.bool_or(o.rolsuper OR o.rolbypassrls OR (vc.relowner = p.relowner AND NOT p.forced)) AS owner_bypasses
                    FROM rv
                    JOIN prot p ON p.relid = rv.tabid
                    JOIN pg_catalog.pg_class vc ON vc.oid = rv.viewid AND vc.relkind = 'v'
                    JOIN pg_catalog.pg_namespace ns ON ns.oid = vc.relnamespace
                    JOIN pg_catalog.pg_roles o ON o.oid = vc.relowner
                   WHERE NOT coalesce((SELECT opt.option_value::pg_catalog.bool
                                         FROM pg_catalog.pg_options_to_table(vc.reloptions) opt
                                        WHERE opt.option_name = 'security_invoker'), false)
                   GROUP BY ns.nspname, vc.relname, o.rolname
              ) v
            UNION ALL
            SELECT 'error', 'materialized_view_over_protected', m.qname,
                   pg_catalog.format('Materialized view %s stores rows of protected %s. Its contents were copied when it was last refreshed, as its owner, and are not filtered by the tenant policies: whoever may read it reads the copied rows of every tenant (a materialized view cannot be protected). Replace it with a security_invoker view, or with a table the application fills per tenant and protects.',
                       m.qname, m.tables),
                   NULL
              FROM (
                  SELECT pg_catalog.format('%I.%I', ns.nspname, mc.relname) AS qname,
                         pg_catalog.string_agg(DISTINCT p.qname, ', ') AS tables
                    FROM rv
                    JOIN prot p ON p.relid = rv.tabid
                    JOIN pg_catalog.pg_class mc ON mc.oid = rv.viewid AND mc.relkind = 'm'
                    JOIN pg_catalog.pg_namespace ns ON ns.oid = mc.relnamespace
                   GROUP BY ns.nspname, mc.relname
              ) m
            ----------------------------------------------------------------------------------------
            -- Roles
            ----------------------------------------------------------------------------------------
            UNION ALL
            SELECT CASE WHEN r.oid = 10 THEN 'info' ELSE 'warning' END, 'login_role_bypasses_rls', pg_catalog.quote_ident(r.rolname),
                   pg_catalog.format('Login role %s %s, so row level security does not filter it: with the guard its statements on protected tables are refused (unless it is in tenant_guard.trusted_roles), without the preload it reads every tenant''s rows. %s',
                       pg_catalog.quote_ident(r.rolname),
                       CASE WHEN r.rolsuper THEN 'is a superuser' ELSE 'has BYPASSRLS' END,
                       CASE WHEN r.oid = 10 THEN 'It is the bootstrap superuser, which keeps its rights: use it for maintenance only and never let the application connect as it.'
                            ELSE 'Connect applications and people with a filtered role; keep this one for maintenance, or take the attribute away.' END),
                   CASE WHEN r.oid = 10 THEN NULL
                        WHEN r.rolsuper THEN pg_catalog.format('ALTER ROLE %I NOSUPERUSER%s;', r.rolname, CASE WHEN r.rolbypassrls THEN ' NOBYPASSRLS' ELSE '' END)
                        ELSE pg_catalog.format('ALTER ROLE %I NOBYPASSRLS;', r.rolname) END
              FROM pg_catalog.pg_roles r
             WHERE r.rolcanlogin AND (r.rolsuper OR r.rolbypassrls)
            UNION ALL
            SELECT 'warning', 'login_role_can_become_bypass_role', pg_catalog.quote_ident(l.rolname),
                   pg_catalog.format('Login role %s is a member of %s, which %s: with SET ROLE %s it is no longer filtered by row level security. %s',
                       pg_catalog.quote_ident(l.rolname), pg_catalog.quote_ident(g.rolname),
                       CASE WHEN g.rolsuper THEN 'is a superuser' ELSE 'has BYPASSRLS' END,
                       pg_catalog.quote_ident(g.rolname),
                       CASE WHEN m.direct THEN '' ELSE 'The membership is indirect: revoke the role that leads there.' END),
                   CASE WHEN m.direct THEN pg_catalog.format('REVOKE %I FROM %I;', g.rolname, l.rolname) END
              FROM (SELECT mb.member, mb.grp, pg_catalog.bool_or(mb.direct) AS direct FROM memb mb GROUP BY mb.member, mb.grp) m
              JOIN pg_catalog.pg_roles l ON l.oid = m.member
              JOIN pg_catalog.pg_roles g ON g.oid = m.grp
             WHERE l.rolcanlogin AND NOT (l.rolsuper OR l.rolbypassrls)
               AND (g.rolsuper OR g.rolbypassrls)
            ----------------------------------------------------------------------------------------
            -- Policies on protected tables
            ----------------------------------------------------------------------------------------
            UNION ALL
            SELECT 'error', 'extra_permissive_policy', l.pobj,
                   pg_catalog.format('Protected table %s has permissive policy %I besides the generated ones. Permissive policies are ORed together, so it widens what a tenant sees or writes past its own rows%s. Drop it, or recreate it AS RESTRICTIVE if it should only narrow access.',
                       l.qname, l.polname,
                       CASE WHEN l.polroles <> '{0}' THEN ' (for the roles it names)' ELSE '' END),
                   l.fix
              FROM odd l
             WHERE l.polpermissive AND NOT l.generated
            UNION ALL
            SELECT 'error', 'policy_always_true', t.pobj,
                   pg_catalog.format('Permissive policy %s has %s: it admits every row of every tenant to the commands and roles it covers.',
                       t.pobj, pg_catalog.concat_ws(' and ',
                           CASE WHEN t.q_true THEN 'USING (' || t.q || ')' END,
                           CASE WHEN t.wc_true THEN 'WITH CHECK (' || t.wc || ')' END)),
                   t.fix
              FROM (SELECT l.*,
                           pg_catalog.regexp_replace(pg_catalog.lower(coalesce(l.q, '')), '\s', '', 'g') IN ('true', '(true)', '1=1', '(1=1)') AS q_true,
                           pg_catalog.regexp_replace(pg_catalog.lower(coalesce(l.wc, '')), '\s', '', 'g') IN ('true', '(true)', '1=1', '(1=1)') AS wc_true
                      FROM odd l
                     WHERE l.polpermissive) t
             WHERE t.q_true OR t.wc_true
            UNION ALL
            SELECT 'error', 'policy_fails_open', o.pobj,
                   pg_catalog.format('Permissive policy %s fails open: %s. Found in %s. Compare the tenant column with (SELECT tenant_guard.require_tenant()) or its typed variant, which raises an error when there is no claim.',
                       o.pobj, pg_catalog.concat_ws('; ',
                           CASE WHEN o.null_or THEN 'an IS NULL test in an OR admits every row whenever the tested value (typically the claim) is NULL' END,
                           CASE WHEN o.coalesce_claim THEN 'COALESCE around the claim substitutes something that matches when the claim is unset' END,
                           CASE WHEN o.raw_claim THEN 'current_setting(''tenant_guard.tenant_id'', true) returns '''' once the setting was touched, so an unset claim matches the rows whose tenant is '''', and a stale session-level claim is honoured' END),
                       pg_catalog.concat_ws(' / ', 'USING ' || o.q, 'WITH CHECK ' || o.wc)),
                   o.fix
              FROM (SELECT l.*,
                           (l.x ~ ' IS NULL' AND l.x ~ ' OR ') AS null_or,
                           (l.x ~ 'COALESCE\(' AND l.x ~ '(current_setting\(|[[:alnum:]_]\(\))') AS coalesce_claim,
                           (l.x ~ 'current_setting\(''tenant_guard\.tenant_id''::text, true\)'
                            AND l.x !~ 'NULLIF\(current_setting\(''tenant_guard\.tenant_id''::text, true\)') AS raw_claim
                      FROM odd l
                     WHERE l.polpermissive) o
             WHERE o.null_or OR o.coalesce_claim OR o.raw_claim
            UNION ALL
            SELECT 'warning', 'policy_volatile_function', v.pobj,
                   pg_catalog.format('Policy %s calls volatile function%s %s: a volatile function is evaluated for every row, cannot be an index condition, and keeps the planner from pushing the tenant filter down. Mark a function STABLE when it does not change the database (and returns the same result within a statement).',
                       v.pobj, CASE WHEN pg_catalog.cardinality(v.fnames) > 1 THEN 's' ELSE '' END, pg_catalog.array_to_string(v.fnames, ', ')),
                   CASE WHEN v.volatile_fns IS NOT NULL
                        THEN (SELECT pg_catalog.string_agg(pg_catalog.format('ALTER FUNCTION %s STABLE;', u), ' ' ORDER BY u)
                                FROM pg_catalog.unnest(v.volatile_fns) u) END
              FROM (SELECT l.pobj, l.volatile_fns,
                           coalesce(l.volatile_fns, '{}') || ARRAY(
                               SELECT DISTINCT 'pg_catalog.' || m[1] || '()'
                                 FROM pg_catalog.regexp_matches(l.x, '([[:alnum:]_]+)\(', 'g') m
                                WHERE m[1] IN (SELECT b.proname FROM builtin_volatile b)
                                ORDER BY 1) AS fnames
                      FROM odd l) v
             WHERE pg_catalog.cardinality(v.fnames) > 0
            UNION ALL
            SELECT 'warning', 'policy_not_initplan', i.pobj,
                   pg_catalog.format('Policy %s calls %s directly instead of through an init-plan: it is evaluated for every row, and the tenant column cannot be compared through an index. Wrap each call in a sub-select, as protect() does: tenant_id = (SELECT tenant_guard.require_tenant()).',
                       i.pobj, (SELECT pg_catalog.string_agg(DISTINCT m[1] || '()', ', ')
                                  FROM pg_catalog.regexp_matches(i.unwrapped, i.calls, 'g') m)),
                   i.fix
              FROM (SELECT l.pobj, CASE WHEN l.generated THEN l.fix END AS fix,
                           -- mark the calls that are the first thing of a sub-select, then look for others
                           pg_catalog.regexp_replace(l.x, '\( SELECT (\(*)([[:alnum:]_"]+\.)?([[:alnum:]_]+)\(', '( SELECT \1\2\3 (', 'g') AS unwrapped,
                           '\m(' || pg_catalog.array_to_string(l.claim_fns, '|') || ')\(' AS calls
                      FROM odd l) i
             WHERE i.unwrapped ~ i.calls
            ----------------------------------------------------------------------------------------
            -- Other tables
            ----------------------------------------------------------------------------------------
            UNION ALL
            SELECT 'warning', 'policy_exists_rls_disabled', pg_catalog.format('%I.%I', ns.nspname, c.relname),
                   pg_catalog.format('Table %s has row-security policies (%s) but row level security is disabled, so none of them applies.',
                       pg_catalog.format('%I.%I', ns.nspname, c.relname),
                       (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(po.polname), ', ' ORDER BY po.polname) FROM pg_catalog.pg_policy po WHERE po.polrelid = c.oid)),
                   pg_catalog.format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY;', ns.nspname, c.relname)
              FROM pg_catalog.pg_class c
              JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND NOT c.relrowsecurity
               AND c.oid NOT IN (SELECT relid FROM reg)
               AND ns.nspname NOT IN ('pg_catalog', 'information_schema', 'tenant_guard')
               AND EXISTS (SELECT 1 FROM pg_catalog.pg_policy po WHERE po.polrelid = c.oid)
            ----------------------------------------------------------------------------------------
            -- Gathered above: security definer functions, NULL tenants, what was not inspected
            ----------------------------------------------------------------------------------------
            UNION ALL
            SELECT e.severity, e.code, e.object, e.message, e.fix
              FROM pg_catalog.jsonb_to_recordset(early) AS e(severity pg_catalog.text, code pg_catalog.text, object pg_catalog.text, message pg_catalog.text, fix pg_catalog.text)
        )
        SELECT f.severity, f.code, f.object, f.message, f.fix
          FROM findings f
         ORDER BY CASE f.severity WHEN 'error' THEN 1 WHEN 'warning' THEN 2 ELSE 3 END,
                  f.code COLLATE "C", f.object COLLATE "C", f.message COLLATE "C";
    EXCEPTION WHEN insufficient_privilege OR lock_not_available THEN
        -- nothing was returned yet (the rows are sorted first): return what was found before
        RETURN QUERY
        SELECT e.severity, e.code, e.object, e.message, e.fix
          FROM pg_catalog.jsonb_to_recordset(early || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                   'severity', 'warning', 'code', 'lint_incomplete', 'object', 'tenant_guard.lint()',
                   'message', pg_catalog.format('The catalog checks (everything but SECURITY DEFINER functions and NULL tenants) did not run: %s (SQLSTATE %s). Run lint() again, or as a role that may read the catalogs.', SQLERRM, SQLSTATE),
                   'fix', NULL)))
               AS e(severity pg_catalog.text, code pg_catalog.text, object pg_catalog.text, message pg_catalog.text, fix pg_catalog.text)
         ORDER BY CASE e.severity WHEN 'error' THEN 1 WHEN 'warning' THEN 2 ELSE 3 END,
                  e.code COLLATE "C", e.object COLLATE "C", e.message COLLATE "C";
    END;
END
$lint$;

COMMENT ON FUNCTION tenant_guard.lint() IS
    'Findings about tenant isolation in this database: (severity, code, object, message, fix). The codes are documented in docs/lint.md.';

