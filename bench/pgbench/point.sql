-- Point lookup by id. The tenant is the one that owns the row, so exactly one row comes back.
\set id random(1, :nrows)
\set tid {{tid_expr}}
BEGIN;
SELECT set_config('{{claim}}', :tid::text, true);
SELECT id, tenant_id, created_at, amount, note FROM {{table}} WHERE {{tenant_and}}id = :id;
END;
