-- Insert one row for the claimed tenant.
\set tid random(1, :ntenants)
BEGIN;
SELECT set_config('{{claim}}', :tid::text, true);
INSERT INTO {{table}} (tenant_id, created_at, amount, note) VALUES (:tid, now(), 1.00, 'inserted by bench');
END;
