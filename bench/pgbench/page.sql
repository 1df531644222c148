-- A tenant's newest 50 rows. The tenant is drawn through a random row, so on items_skew one
-- transaction in ten reads the big tenant.
\set id random(1, :nrows)
\set tid {{tid_expr}}
BEGIN;
SELECT set_config('{{claim}}', :tid::text, true);
SELECT id, tenant_id, created_at, amount, note FROM {{table}} {{tenant_where}}ORDER BY created_at DESC LIMIT 50;
END;
