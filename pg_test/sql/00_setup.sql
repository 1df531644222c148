-- Fixture shared by the whole suite (pg_regress runs the files in schedule order in one database).
-- Roles of the threat model: tg_owner owns the tables, tg_app is the application (not owner,
-- NOBYPASSRLS), tg_admin has BYPASSRLS, postgres is the superuser.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION tenant_guard;
CREATE ROLE tg_owner;
CREATE ROLE tg_app LOGIN;
CREATE ROLE tg_admin LOGIN BYPASSRLS;
GRANT CREATE, USAGE ON SCHEMA public TO tg_owner;
-- The new-table guard (default: a new table with a tenant column must be protected or exempt by
-- commit) is tested on its own in 95_new_tables; the other files create tables and protect them
-- in separate statements, so they run with no watched schema.
ALTER DATABASE regression SET tenant_guard.watched_schemas = '';
RESET client_min_messages;
SELECT preloaded, guard_active, enforce, claim_scope, claim, protected_tables FROM tenant_guard.status();
