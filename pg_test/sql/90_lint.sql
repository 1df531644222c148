-- 90_lint: tenant_guard.lint(), the findings about tenant isolation. Every code has a schema
-- that triggers it and one that does not (a clean protected table has no finding at all); lint()
-- is also run by the application role tg_app (not a superuser), which gets the same findings
-- except what it may not inspect, reported as info; some fixes are run to show they resolve
-- their finding. Codes are documented in docs/lint.md.
-- Contract: "Ops surface"; issue 5. Tables, views, functions and roles start with lt_.
--
-- The regression database holds the objects of the other files too: lt_findings() keeps the
-- findings about objects named lt_* (and roles), and findings about settings are asked for by code.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- The new-table check refuses at commit a table in a watched schema with a tenant column that is
-- neither protected nor exempt: tenant tables are created and protected in one transaction here,
-- and unprotected ones only inside transactions that are rolled back.
-- This file's objects live in schema lt, the watched schema here, and go at the end.
CREATE SCHEMA lt;
GRANT CREATE, USAGE ON SCHEMA lt TO tg_owner;
GRANT USAGE ON SCHEMA lt TO tg_app;
SET search_path = lt, public;
SET tenant_guard.new_table_action = 'error';
SET tenant_guard.watched_schemas = 'lt';
SET tenant_guard.tenant_columns = 'tenant_id';
SET tenant_guard.enforce = on;

-- findings about lt_* objects, without the message (lt_messages() shows one per code)
CREATE FUNCTION lt_findings(codes text[] DEFAULT NULL)
RETURNS TABLE (severity text, code text, object text, fix text)
LANGUAGE sql STABLE AS $$
    SELECT l.severity, l.code, l.object, l.fix
      FROM tenant_guard.lint() l
     WHERE l.object ~ '(^|[. ])lt_' AND (codes IS NULL OR l.code = ANY (codes))
$$;
-- one finding per code, with its message
CREATE FUNCTION lt_messages(codes text[])
RETURNS TABLE (code text, severity text, object text, message text)
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT ON (l.code) l.code, l.severity, l.object, l.message
      FROM tenant_guard.lint() l
     WHERE l.object ~ '(^|[. ])lt_' AND l.code = ANY (codes)
     ORDER BY l.code, l.object
$$;

-- ---------------------------------------------------------------------------------------------
-- Fixture: a clean protected schema (orders, their lines, a partitioned table, a view)
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
BEGIN;
CREATE TABLE lt_clean (
    tenant_id text   NOT NULL,
    id        bigint GENERATED ALWAYS AS IDENTITY,
    email     text   NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, email)
);
-- a restrictive policy only narrows access: fine (created before protect())
CREATE POLICY lt_clean_not_archived ON lt_clean AS RESTRICTIVE FOR DELETE USING (id > 0);
CREATE TABLE lt_clean_lines (
    tenant_id text   NOT NULL,
    id        bigint GENERATED ALWAYS AS IDENTITY,
    order_id  bigint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES lt_clean (tenant_id, id)
);
CREATE TABLE lt_clean_events (
    tenant_id uuid NOT NULL,
    at        date NOT NULL,
    body      text
) PARTITION BY RANGE (at);
CREATE TABLE lt_clean_events_2025 PARTITION OF lt_clean_events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE INDEX ON lt_clean_events (tenant_id, at);
SELECT tenant_guard.protect('lt_clean');
SELECT tenant_guard.protect('lt_clean_lines');
SELECT tenant_guard.protect('lt_clean_events');
COMMIT;
CREATE VIEW lt_clean_invoker WITH (security_invoker = on) AS SELECT tenant_id, id FROM lt_clean;
-- a shared price list in the watched schema, exempt on purpose, and a table without tenant column
BEGIN;
CREATE TABLE lt_price_list (tenant_id text, plan text NOT NULL, price numeric NOT NULL);
SELECT tenant_guard.exempt('lt_price_list', 'every tenant sees the same prices');
COMMIT;
CREATE TABLE lt_plain (id int PRIMARY KEY, note text);
GRANT SELECT ON lt_clean, lt_clean_lines, lt_clean_events, lt_clean_invoker TO tg_app;
RESET ROLE;
-- a SECURITY DEFINER function owned by a filtered role, and a superuser's function that is not
-- SECURITY DEFINER: neither is a finding
CREATE FUNCTION lt_owner_count() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = lt, pg_temp
    AS $$ SELECT count(*) FROM lt_clean $$;
ALTER FUNCTION lt_owner_count() OWNER TO tg_owner;
CREATE FUNCTION lt_invoker_count() RETURNS bigint
    LANGUAGE sql STABLE AS $$ SELECT count(*) FROM lt_clean $$;
-- a superuser's SECURITY DEFINER function that mentions a longer name only (not lt_clean)
CREATE TABLE lt_clean_archive (id int);
CREATE FUNCTION lt_archive_count() RETURNS bigint
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = lt, pg_temp
    AS $$ BEGIN RETURN (SELECT count(*) FROM lt_clean_archive); END $$;
-- login roles that are filtered: no finding
CREATE ROLE lt_app_login LOGIN;
CREATE ROLE lt_group NOLOGIN;
GRANT lt_group TO lt_app_login;

-- ---------------------------------------------------------------------------------------------
-- 1. A clean schema has no finding, for the superuser and for the application role
-- ---------------------------------------------------------------------------------------------
SELECT * FROM lt_findings();                       -- nothing about lt_* objects
SET ROLE tg_app;
SELECT * FROM lt_findings();                       -- nothing either, as a non-superuser
RESET ROLE;
-- the guard is preloaded and enforcing: no finding about it
SELECT code FROM tenant_guard.lint() WHERE code IN ('guard_not_preloaded', 'enforce_not_on');

-- ---------------------------------------------------------------------------------------------
-- 2. The guard's mode: enforce_not_on
-- ---------------------------------------------------------------------------------------------
SET tenant_guard.enforce = shadow;
SELECT severity, code, object, fix FROM tenant_guard.lint() WHERE code = 'enforce_not_on';   -- warning
SET tenant_guard.enforce = off;
SELECT severity, code, object, fix FROM tenant_guard.lint() WHERE code = 'enforce_not_on';   -- error
SET tenant_guard.enforce = on;
SELECT severity, code, object, fix FROM tenant_guard.lint() WHERE code = 'enforce_not_on';   -- none

-- ---------------------------------------------------------------------------------------------
-- 3. Drift of protected tables: rls_disabled, rls_not_forced, tenant_policy_missing,
--    tenant_policy_altered, tenant_column_drifted, tenant_column_nullable (protected),
--    unprotected_child, registry_stale_entry. The tamper guard refuses these changes, so the
--    superuser makes them with enforce = off (the way drift happens: a restore, a manual fix).
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
BEGIN;
CREATE TABLE lt_drift_rls      (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE lt_drift_force    (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE lt_drift_policy   (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE lt_drift_altered  (tenant_id bigint NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE lt_drift_renamed  (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE lt_drift_nullable (tenant_id text NOT NULL, id int NOT NULL, UNIQUE (tenant_id, id));
CREATE TABLE lt_drift_parent   (tenant_id text NOT NULL, id int NOT NULL);
CREATE INDEX ON lt_drift_parent (tenant_id);
CREATE TABLE lt_gone           (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE lt_dropped_ok     (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenant_guard.protect(t) FROM unnest(ARRAY['lt_drift_rls', 'lt_drift_force', 'lt_drift_policy',
    'lt_drift_altered', 'lt_drift_renamed', 'lt_drift_nullable', 'lt_drift_parent', 'lt_gone',
    'lt_dropped_ok']::regclass[]) t;
COMMIT;
RESET ROLE;
SELECT * FROM lt_findings() WHERE object LIKE '%lt\_drift%' OR object LIKE '%lt\_gone%';   -- none yet
SELECT 'lt_gone'::regclass::oid AS gone_oid \gset
BEGIN;
SET LOCAL tenant_guard.enforce = off;
ALTER TABLE lt_drift_rls DISABLE ROW LEVEL SECURITY;
ALTER TABLE lt_drift_force NO FORCE ROW LEVEL SECURITY;
DROP POLICY tenant_guard_delete ON lt_drift_policy;
DROP POLICY tenant_guard_insert ON lt_drift_policy;
ALTER POLICY tenant_guard_select ON lt_drift_altered USING (tenant_id = tenant_guard.require_tenant_bigint());
ALTER POLICY tenant_guard_update ON lt_drift_altered TO tg_app;
ALTER TABLE lt_drift_renamed RENAME COLUMN tenant_id TO org_id;
ALTER TABLE lt_drift_nullable ALTER COLUMN tenant_id DROP NOT NULL;
-- event triggers do not fire in replica mode: a child that is not protected, a registry row left behind
SET LOCAL session_replication_role = replica;
CREATE TABLE lt_drift_child () INHERITS (lt_drift_parent);
DROP TABLE lt_gone;
SET LOCAL session_replication_role = origin;
DROP TABLE lt_dropped_ok;                            -- dropped normally: the registry forgets it
COMMIT;
SELECT * FROM lt_findings() WHERE object LIKE '%lt\_drift%';
\x on
SELECT * FROM lt_messages(ARRAY['rls_disabled', 'rls_not_forced', 'tenant_policy_missing', 'tenant_policy_altered',
    'tenant_column_drifted', 'tenant_column_nullable', 'unprotected_child']);
SELECT severity, code, regexp_replace(message, '\d+', 'N') AS message FROM tenant_guard.lint() WHERE code = 'registry_stale_entry';
\x off
-- the registry row of the table dropped in replica mode (object: its oid)
SELECT severity, code, object = :'gone_oid' AS is_lt_gone, fix = format('DELETE FROM tenant_guard.protected_tables WHERE relid::pg_catalog.oid = %s; -- as a superuser', :'gone_oid') AS fix_ok
  FROM tenant_guard.lint() WHERE code = 'registry_stale_entry';
-- the fixes resolve them: protect() repairs row level security, FORCE and missing policies;
-- an altered policy is reinstalled by unprotect() + protect() in one transaction
SELECT tenant_guard.protect('lt.lt_drift_rls');
SELECT tenant_guard.protect('lt.lt_drift_force');
SELECT tenant_guard.protect('lt.lt_drift_policy');
SELECT tenant_guard.protect('lt.lt_drift_child');
SELECT fix FROM lt_findings(ARRAY['tenant_policy_altered']) LIMIT 1 \gset
:fix
DELETE FROM tenant_guard.protected_tables WHERE relid::oid = :gone_oid;
SELECT * FROM lt_findings() WHERE object LIKE '%lt\_drift%';   -- the renamed and the nullable column remain
SELECT count(*) FROM tenant_guard.lint() WHERE code = 'registry_stale_entry';

-- ---------------------------------------------------------------------------------------------
-- 4. Tenant-looking tables that are not protected: unprotected_tenant_table,
--    tenant_column_nullable, null_tenant_rows, null_tenant_rows_not_checked,
--    foreign_key_from_unprotected (with a tenant column). Not flagged: the exempt price list,
--    a table outside the watched schemas, a table without tenant column, the partitions of a
--    reported partitioned table. Inside a transaction that is rolled back (the new-table check
--    would refuse to commit it).
-- ---------------------------------------------------------------------------------------------
CREATE SCHEMA lt_elsewhere;
GRANT CREATE, USAGE ON SCHEMA lt_elsewhere TO tg_owner;
SET ROLE tg_owner;
BEGIN;
CREATE TABLE lt_unprotected (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE lt_unprotected_nullable (tenant_id uuid, id int NOT NULL);
INSERT INTO lt_unprotected_nullable VALUES
    ('6b3f2c1e-0000-4000-8000-000000000001', 1), (NULL, 2), (NULL, 3);
CREATE TABLE lt_unprotected_money (tenant_id numeric NOT NULL, id int NOT NULL);
CREATE TABLE lt_unprotected_rls (tenant_id text, id int NOT NULL);
INSERT INTO lt_unprotected_rls VALUES ('acme', 1), (NULL, 2);
ALTER TABLE lt_unprotected_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY lt_unprotected_rls_read ON lt_unprotected_rls FOR SELECT USING (true);
CREATE TABLE lt_unprotected_parted (tenant_id text NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE lt_unprotected_parted_2025 PARTITION OF lt_unprotected_parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE lt_unprotected_ref (tenant_id text NOT NULL, order_id bigint NOT NULL,
    FOREIGN KEY (tenant_id, order_id) REFERENCES lt_clean (tenant_id, id));
CREATE TABLE lt_elsewhere.lt_unwatched (tenant_id text NOT NULL, id int);
CREATE TABLE lt_unprotected_org ("OrgRef" bigint NOT NULL, id int);
INSERT INTO lt_price_list VALUES (NULL, 'basic', 10);
GRANT SELECT ON lt_unprotected_rls TO tg_app;
SELECT * FROM lt_findings(ARRAY['unprotected_tenant_table', 'tenant_column_nullable', 'null_tenant_rows',
                                'null_tenant_rows_not_checked', 'foreign_key_from_unprotected'])
 WHERE object NOT LIKE '%lt\_drift%';
SET LOCAL ROLE tg_app;
-- the application role may not read lt_unprotected_nullable, and row level security applies to it on
-- lt_unprotected_rls: neither is counted, and lint() says so
SELECT * FROM lt_findings(ARRAY['null_tenant_rows', 'null_tenant_rows_not_checked'])
 WHERE object NOT LIKE '%lt\_drift%';
RESET ROLE;
\x on
SELECT * FROM lt_messages(ARRAY['unprotected_tenant_table', 'null_tenant_rows', 'null_tenant_rows_not_checked']);
\x off
-- the settings decide what looks tenant-scoped: another schema, a second (quoted) column name
SET LOCAL tenant_guard.watched_schemas = 'lt, lt_elsewhere';
SET LOCAL tenant_guard.tenant_columns = 'tenant_id, "OrgRef"';
SELECT * FROM lt_findings(ARRAY['unprotected_tenant_table'])
 WHERE object LIKE '%unwatched' OR object LIKE '%\_org';
ROLLBACK;
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- 5. Indexes and keys of protected tables: tenant_index_missing, foreign_key_without_tenant,
--    foreign_key_from_unprotected, unique_without_tenant. Not flagged: lt_clean and its lines
--    (tenant-scoped keys, an index leading with tenant_id), the partitions of lt_noindex_parted.
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
BEGIN;
CREATE TABLE lt_noindex (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (id, tenant_id));
CREATE TABLE lt_partial_index (tenant_id text NOT NULL, id int NOT NULL, archived boolean NOT NULL);
CREATE INDEX ON lt_partial_index (tenant_id) WHERE NOT archived;
CREATE TABLE lt_noindex_parted (tenant_id text NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE lt_noindex_parted_2025 PARTITION OF lt_noindex_parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
-- a parent keyed per tenant, with a global unique id too (generated: a warning)
CREATE TABLE lt_fk_parent (
    tenant_id text   NOT NULL,
    id        bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (id)
);
CREATE TABLE lt_fk_child (
    tenant_id text   NOT NULL,
    parent_id bigint NOT NULL REFERENCES lt_fk_parent (id) ON DELETE CASCADE
);
CREATE INDEX ON lt_fk_child (tenant_id);
-- a parent keyed by id only: the fix adds the tenant-scoped unique key first
CREATE TABLE lt_fk_parent2 (tenant_id text NOT NULL, id bigint PRIMARY KEY);
CREATE INDEX ON lt_fk_parent2 (tenant_id);
CREATE TABLE lt_fk_child2 (tenant_id text NOT NULL, parent_id bigint NOT NULL REFERENCES lt_fk_parent2);
CREATE INDEX ON lt_fk_child2 (tenant_id);
-- unique across tenants on a value the client chooses: an error
CREATE TABLE lt_uniq (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    email     text NOT NULL UNIQUE,
    code      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX lt_uniq_code ON lt_uniq (lower(code));
SELECT tenant_guard.protect(t) FROM unnest(ARRAY['lt_noindex', 'lt_partial_index', 'lt_noindex_parted',
    'lt_fk_parent', 'lt_fk_child', 'lt_fk_parent2', 'lt_fk_child2', 'lt_uniq']::regclass[]) t;
COMMIT;
-- a probe table without tenant column that references a protected table
CREATE TABLE lt_probe (parent_id bigint REFERENCES lt_fk_parent (id));
RESET ROLE;
SELECT * FROM lt_findings(ARRAY['tenant_index_missing', 'foreign_key_without_tenant',
                                'foreign_key_from_unprotected', 'unique_without_tenant']);
\x on
SELECT * FROM lt_messages(ARRAY['tenant_index_missing', 'foreign_key_without_tenant',
                                'foreign_key_from_unprotected', 'unique_without_tenant']);
\x off
-- the fixes resolve them (run by the tables' owner, without a claim)
SET ROLE tg_owner;
SELECT fix FROM lt_findings(ARRAY['foreign_key_without_tenant']) WHERE object LIKE '%lt\_fk\_child2' \gset
:fix
SELECT fix FROM lt_findings(ARRAY['foreign_key_without_tenant']) WHERE object LIKE '%lt\_fk\_child' \gset
:fix
SELECT fix FROM lt_findings(ARRAY['unique_without_tenant']) WHERE object LIKE 'lt\_uniq\_email\_key%' \gset
:fix
SELECT fix FROM lt_findings(ARRAY['unique_without_tenant']) WHERE object = 'lt.lt_uniq_code' \gset
:fix
SELECT fix FROM lt_findings(ARRAY['tenant_index_missing']) WHERE object = 'lt.lt_noindex' \gset
:fix
RESET ROLE;
SELECT * FROM lt_findings(ARRAY['tenant_index_missing', 'foreign_key_without_tenant', 'unique_without_tenant']);

-- ---------------------------------------------------------------------------------------------
-- 6. Indirection: view_not_security_invoker, materialized_view_over_protected,
--    security_definer_reads_protected. Not flagged: lt_clean_invoker, lt_owner_count() (owned by a
--    filtered role), lt_invoker_count() (not SECURITY DEFINER), lt_archive_count() (reads another table).
-- ---------------------------------------------------------------------------------------------
SET ROLE tg_owner;
CREATE VIEW lt_view_owner AS SELECT tenant_id, id FROM lt_clean;                 -- owner is filtered: warning
CREATE VIEW lt_view_chain AS SELECT tenant_id, id FROM lt_clean_invoker;         -- through an invoker view
CREATE VIEW lt_view_over_view WITH (security_invoker = on) AS SELECT * FROM lt_view_owner;
RESET ROLE;
CREATE VIEW lt_view_superuser AS SELECT tenant_id, id FROM lt_clean_lines;       -- owner skips RLS: error
BEGIN;
SET LOCAL tenant_guard.enforce = off;                -- the guard refuses copying protected rows
CREATE MATERIALIZED VIEW lt_matview AS SELECT tenant_id, count(*) AS n FROM lt_clean GROUP BY tenant_id;
COMMIT;
CREATE FUNCTION lt_definer_plpgsql() RETURNS bigint
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = lt, pg_temp
    AS $$ BEGIN RETURN (SELECT count(*) FROM LT_CLEAN); END $$;
CREATE FUNCTION lt_definer_atomic() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = lt, pg_temp
    BEGIN ATOMIC SELECT count(*) FROM lt_clean_lines; END;
CREATE FUNCTION lt_definer_view(p int) RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = lt, pg_temp
    AS $$ SELECT count(*) FROM lt_clean_invoker WHERE id > p $$;
ALTER FUNCTION lt_definer_view(int) OWNER TO tg_admin;                             -- BYPASSRLS
SELECT * FROM lt_findings(ARRAY['view_not_security_invoker', 'materialized_view_over_protected',
                                'security_definer_reads_protected']);
\x on
SELECT * FROM lt_messages(ARRAY['view_not_security_invoker', 'materialized_view_over_protected',
                                'security_definer_reads_protected']);
\x off
-- the fixes resolve them
SELECT fix FROM lt_findings(ARRAY['view_not_security_invoker']) WHERE object = 'lt.lt_view_owner' \gset
:fix
SELECT fix FROM lt_findings(ARRAY['security_definer_reads_protected']) WHERE object = 'lt.lt_definer_plpgsql()' \gset
:fix
SELECT * FROM lt_findings(ARRAY['view_not_security_invoker', 'security_definer_reads_protected']);

-- ---------------------------------------------------------------------------------------------
-- 7. Roles: login_role_bypasses_rls, login_role_can_become_bypass_role. Not flagged:
--    lt_app_login (filtered, member of a filtered group), lt_ops (BYPASSRLS but cannot log in).
-- ---------------------------------------------------------------------------------------------
CREATE ROLE lt_login_bypass LOGIN BYPASSRLS;
CREATE ROLE lt_login_super LOGIN SUPERUSER;
CREATE ROLE lt_ops NOLOGIN BYPASSRLS;
CREATE ROLE lt_ops_member LOGIN;
GRANT lt_ops TO lt_ops_member;
CREATE ROLE lt_ops_team NOLOGIN;
GRANT lt_ops TO lt_ops_team;
CREATE ROLE lt_ops_indirect LOGIN;
GRANT lt_ops_team TO lt_ops_indirect;
SELECT * FROM lt_findings(ARRAY['login_role_bypasses_rls', 'login_role_can_become_bypass_role']);
\x on
SELECT * FROM lt_messages(ARRAY['login_role_bypasses_rls', 'login_role_can_become_bypass_role']);
\x off
SELECT fix FROM lt_findings(ARRAY['login_role_bypasses_rls']) WHERE object = 'lt_login_bypass' \gset
:fix
SELECT fix FROM lt_findings(ARRAY['login_role_can_become_bypass_role']) WHERE object = 'lt_ops_member' \gset
:fix
SELECT * FROM lt_findings(ARRAY['login_role_bypasses_rls', 'login_role_can_become_bypass_role']);
-- the bootstrap superuser is reported as info, without a fix (it cannot lose its rights)
SELECT severity, code, fix IS NULL AS no_fix FROM tenant_guard.lint()
 WHERE code = 'login_role_bypasses_rls' AND object = (SELECT quote_ident(rolname) FROM pg_roles WHERE oid = 10);

-- ---------------------------------------------------------------------------------------------
-- 8. Policies on protected tables: extra_permissive_policy, policy_always_true,
--    policy_fails_open, policy_volatile_function, policy_not_initplan. Not flagged: the generated
--    policies, lt_clean's restrictive policy. Another table's policies: policy_exists_rls_disabled.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION lt_volatile_check(t text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE AS $$ BEGIN RETURN t IS NOT NULL; END $$;
SET ROLE tg_owner;
BEGIN;
CREATE TABLE lt_pol_true     (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE lt_pol_null     (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE lt_pol_coalesce (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE lt_pol_volatile (tenant_id text NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenant_guard.protect(t) FROM unnest(ARRAY['lt_pol_true', 'lt_pol_null', 'lt_pol_coalesce',
    'lt_pol_volatile']::regclass[]) t;
COMMIT;
RESET ROLE;
BEGIN;
SET LOCAL tenant_guard.enforce = off;                -- the tamper guard refuses policy changes
CREATE POLICY lt_everyone ON lt_pol_true FOR SELECT USING (true);
CREATE POLICY lt_no_claim_sees_all ON lt_pol_null FOR SELECT
    USING (tenant_guard.current_tenant() IS NULL OR tenant_id = tenant_guard.current_tenant());
ALTER POLICY tenant_guard_select ON lt_pol_coalesce
    USING (tenant_id = COALESCE(current_setting('tenant_guard.tenant_id', true), tenant_id));
CREATE POLICY lt_checked ON lt_pol_volatile AS RESTRICTIVE FOR SELECT USING (lt_volatile_check(tenant_id));
CREATE POLICY lt_sampled ON lt_pol_volatile AS RESTRICTIVE FOR DELETE USING (random() >= 0);
CREATE POLICY lt_claim_wrapped ON lt_pol_volatile AS RESTRICTIVE FOR UPDATE
    USING ((SELECT tenant_guard.current_tenant()) IS NOT NULL);
COMMIT;
SET ROLE tg_owner;
CREATE TABLE lt_plain_policy (id int, owner name);
CREATE POLICY lt_own_rows ON lt_plain_policy USING (owner = current_user);
RESET ROLE;
SELECT * FROM lt_findings(ARRAY['extra_permissive_policy', 'policy_always_true', 'policy_fails_open',
                                'policy_volatile_function', 'policy_not_initplan', 'tenant_policy_altered',
                                'policy_exists_rls_disabled']);
\x on
SELECT * FROM lt_messages(ARRAY['extra_permissive_policy', 'policy_always_true', 'policy_fails_open',
                                'policy_volatile_function', 'policy_not_initplan', 'policy_exists_rls_disabled']);
SELECT object, message FROM tenant_guard.lint() WHERE code = 'policy_fails_open' AND object LIKE '%lt\_pol\_coalesce';
\x off
-- the fixes resolve them
SELECT fix FROM lt_findings(ARRAY['tenant_policy_altered']) WHERE object LIKE '%lt\_pol\_coalesce' \gset
:fix
SELECT fix FROM lt_findings(ARRAY['policy_exists_rls_disabled']) \gset
SET ROLE tg_owner;
:fix
RESET ROLE;
SELECT * FROM lt_findings(ARRAY['policy_fails_open', 'policy_not_initplan', 'tenant_policy_altered',
                                'policy_exists_rls_disabled']);

-- ---------------------------------------------------------------------------------------------
-- 9. The application role (not a superuser) gets the same findings; what it may not inspect is
--    reported as info instead of failing
-- ---------------------------------------------------------------------------------------------
CREATE TABLE lt_as_superuser AS SELECT * FROM lt_findings();
GRANT SELECT ON lt_as_superuser TO tg_app;
SELECT count(*) > 20 AS many_findings FROM lt_as_superuser;
SET ROLE tg_app;
(SELECT 'only as superuser' AS side, * FROM lt_as_superuser EXCEPT SELECT 'only as superuser', * FROM lt_findings())
UNION ALL
(SELECT 'only as tg_app', * FROM lt_findings() EXCEPT SELECT 'only as tg_app', * FROM lt_as_superuser)
ORDER BY 1, 3, 4;
RESET ROLE;

-- ---------------------------------------------------------------------------------------------
-- 10. A fresh database: nothing but the cluster's roles; a role that may not read function
--     bodies or a catalog is told so (function_bodies_not_inspected, lint_incomplete)
-- ---------------------------------------------------------------------------------------------
CREATE DATABASE lt_fresh;
\c lt_fresh
SET client_min_messages = warning;
CREATE EXTENSION tenant_guard;
RESET client_min_messages;
\set VERBOSITY default
\set SHOW_CONTEXT never
-- roles are cluster-wide (this suite's tg_admin and the others'): every other code is silent
SELECT code, count(*) FROM tenant_guard.lint()
 WHERE code NOT IN ('login_role_bypasses_rls', 'login_role_can_become_bypass_role') GROUP BY code;
BEGIN;
CREATE TABLE public.lt_fresh_orders (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenant_guard.protect('public.lt_fresh_orders');
COMMIT;
CREATE VIEW public.lt_fresh_view WITH (security_invoker = on) AS SELECT * FROM public.lt_fresh_orders;
CREATE FUNCTION public.lt_fresh_definer() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    AS $$ BEGIN RETURN (SELECT count(*) FROM lt_fresh_orders); END $$;
SELECT code, count(*) FROM tenant_guard.lint()
 WHERE code NOT IN ('login_role_bypasses_rls', 'login_role_can_become_bypass_role') GROUP BY code;
-- hide function bodies from everyone but superusers (in this database only)
REVOKE SELECT ON pg_catalog.pg_proc FROM PUBLIC;
GRANT SELECT (oid, proname, pronamespace, proowner, prolang, prosecdef, provolatile, pronargs)
    ON pg_catalog.pg_proc TO PUBLIC;
SET ROLE tg_app;
\x on
SELECT * FROM tenant_guard.lint()
 WHERE code NOT IN ('login_role_bypasses_rls', 'login_role_can_become_bypass_role');
\x off
RESET ROLE;
-- a catalog the role may not read at all: lint() returns what it found and says what it could not
-- check (lint_incomplete) instead of failing
REVOKE SELECT ON pg_catalog.pg_policy FROM PUBLIC;
SET ROLE tg_app;
\x on
SELECT * FROM tenant_guard.lint()
 WHERE code NOT IN ('login_role_bypasses_rls', 'login_role_can_become_bypass_role');
\x off
RESET ROLE;
\c regression
DROP DATABASE lt_fresh WITH (FORCE);
\set VERBOSITY default
\set SHOW_CONTEXT never

-- ---------------------------------------------------------------------------------------------
-- Cleanup: the roles (cluster-wide) and the schemas, protected tables included (the tamper guard
-- refuses DROP of a protected table, hence enforce = off); nothing of this file remains
-- ---------------------------------------------------------------------------------------------
DROP ROLE lt_login_bypass, lt_login_super, lt_ops_member, lt_ops_indirect, lt_ops_team, lt_ops,
          lt_app_login, lt_group;
BEGIN;
SET LOCAL tenant_guard.enforce = off;
SET LOCAL client_min_messages = warning;
DROP SCHEMA lt, lt_elsewhere CASCADE;
COMMIT;
RESET search_path;
SELECT count(*) FROM tenant_guard.protected_tables WHERE relid::text ~ '(^|[. ])lt_';
SELECT count(*) FROM tenant_guard.lint() WHERE object ~ '(^|[. ])lt_';

-- The lint_incomplete finding of a group of checks that could not run (lint() builds it with
-- this helper in three places; the group above that failed is the catalog checks).
SELECT tenant_guard._lint_incomplete('Views over protected tables', 'permission denied for table pg_depend', '42501');
