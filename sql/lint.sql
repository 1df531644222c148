-- tenant_guard.lint(): findings about tenant isolation in this database.
-- (placeholder: being written)
CREATE FUNCTION tenant_guard.lint()
RETURNS TABLE (severity text, code text, object text, message text, fix text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT NULL::text, NULL::text, NULL::text, NULL::text, NULL::text WHERE false $$;
