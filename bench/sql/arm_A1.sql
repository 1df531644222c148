-- A1: hand-written row level security, the best-practice form (init-plan, so it is evaluated
-- once per statement and the comparison is an index condition), FORCE, application role is not
-- the owner. No extension.
\set ON_ERROR_STOP on
ALTER TABLE items ENABLE ROW LEVEL SECURITY;
ALTER TABLE items FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON items
    USING (tenant_id = (SELECT current_setting('app.tenant_id')::bigint))
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id')::bigint));
ALTER TABLE items_skew ENABLE ROW LEVEL SECURITY;
ALTER TABLE items_skew FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON items_skew
    USING (tenant_id = (SELECT current_setting('app.tenant_id')::bigint))
    WITH CHECK (tenant_id = (SELECT current_setting('app.tenant_id')::bigint));
