-- P: A1's hand-written row level security plus pgaudit object auditing of every read of the
-- tables (pgaudit preloaded in postgresql.conf with pgaudit.role = 'auditor', pgaudit.log = 'none':
-- no session logging, only object logging of what 'auditor' may SELECT).
\set ON_ERROR_STOP on
\ir arm_A1.sql
CREATE EXTENSION pgaudit;
CREATE ROLE auditor NOLOGIN;
GRANT SELECT ON items, items_skew TO auditor;
