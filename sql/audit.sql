-- The audit trail: one row per event. Written by the audit writers (guard events, which survive
-- the refused statement's rollback) and by the policy helpers (in the migration's transaction).
-- Append-only for everyone; rows leave only through tenant_guard.prune_audit().

CREATE TABLE tenant_guard.audit_log (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at               timestamptz NOT NULL,
    event            text        NOT NULL CHECK (event IN ('denied', 'would_deny', 'bypass', 'broad_read',
                                                           'row_cap', 'tamper', 'protect', 'unprotect',
                                                           'exempt', 'token_rejected')),
    reason           text,
    relations        text[]      NOT NULL DEFAULT '{}',
    command          text,
    rows             bigint,
    tenant           text,
    role             text,
    session_role     text,
    application_name text,
    client_addr      inet,
    backend_pid      integer,
    query            text
);

-- Indexes sized for a log that may take tens of thousands of broad reads a second:
-- * `at` grows with the insertion order, so a BRIN index (a few pages for millions of rows) finds a
--   time range, and prune_audit()'s deletions, as well as a B-tree would;
-- * the security events (refusals, tampering, bypasses, protection changes) are the ones looked
--   up by kind; broad reads, the bulk of a busy log, are left out of that index.
CREATE INDEX audit_log_at_idx ON tenant_guard.audit_log USING brin (at);
CREATE INDEX audit_log_event_at_idx ON tenant_guard.audit_log (event, at) WHERE event <> 'broad_read';

COMMENT ON TABLE tenant_guard.audit_log IS
    'tenant_guard events: refusals, broad reads, row caps and protection changes. Append-only; prune with tenant_guard.prune_audit().';

-- Nobody but the extension's owner reads it by default; grant ops a read-only role:
--   GRANT SELECT ON tenant_guard.audit_log TO ops;
REVOKE ALL ON tenant_guard.audit_log FROM PUBLIC;

CREATE FUNCTION tenant_guard._audit_log_append_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF tenant_guard._audit_log_pruning() THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'tenant_guard: the audit log is append-only (% refused)', TG_OP
        USING ERRCODE = '42501',
              HINT = 'Remove old events with SELECT tenant_guard.prune_audit(interval ''90 days'');';
END
$$;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON tenant_guard.audit_log
    FOR EACH ROW EXECUTE FUNCTION tenant_guard._audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON tenant_guard.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_guard._audit_log_append_only();

-- ALWAYS: the triggers fire under session_replication_role = replica too.
ALTER TABLE tenant_guard.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
ALTER TABLE tenant_guard.audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;

CREATE FUNCTION tenant_guard.prune_audit(older_than interval)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF older_than IS NULL OR older_than <= interval '0' THEN
        RAISE EXCEPTION 'tenant_guard: prune_audit() needs a positive interval, got %', coalesce(older_than::text, 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'SELECT tenant_guard.prune_audit(interval ''90 days'');';
    END IF;
    RETURN tenant_guard._prune_audit_before(now() - older_than);
END
$$;

COMMENT ON FUNCTION tenant_guard.prune_audit(interval) IS
    'Deletes audit events older than the interval; returns how many. The only way rows leave the audit log.';

REVOKE ALL ON FUNCTION tenant_guard.prune_audit(interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenant_guard._prune_audit_before(timestamptz) FROM PUBLIC;
