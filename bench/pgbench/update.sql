-- Update one row of the claimed tenant, by id.
\set id random(1, :nrows)
\set tid {{tid_expr}}
BEGIN;
SELECT set_config('{{claim}}', :tid::text, true);
UPDATE {{table}} SET amount = amount + 1 WHERE {{tenant_and}}id = :id;
END;
