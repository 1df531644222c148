-- Cluster-wide roles of the example (idempotent). Run as a superuser.
--   invoices_owner: owns the tables and runs the migration; cannot log in.
--   invoices_app:   the role the Next.js server connects as: not the owner, not a superuser,
--                   NOBYPASSRLS, so row security filters everything it does.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'invoices_owner') THEN
        CREATE ROLE invoices_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'invoices_app') THEN
        CREATE ROLE invoices_app LOGIN;
    END IF;
END $$;
ALTER ROLE invoices_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
