"""The guard's own work in a session must not become a door for that session's role.

The per-backend registry cache is rebuilt (in whatever session runs the next statement after an
invalidation) by a query run as the bootstrap superuser. A role with CREATE on some schema puts an
operator there and that schema first in its search_path: the rebuild must not run it.
"""

from harness import check, run


def test_registry_rebuild_does_not_run_the_sessions_operators_as_superuser(fx):
    owner = fx.owner()
    run(owner, "CREATE TABLE probe (who name, is_superuser boolean)")
    run(owner, "GRANT INSERT ON probe TO PUBLIC")
    run(owner, """CREATE FUNCTION public.oid_eq_probe(oid, oid) RETURNS boolean LANGUAGE plpgsql AS $$
                  BEGIN
                      INSERT INTO public.probe
                      SELECT current_user, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user;
                      RETURN $1 OPERATOR(pg_catalog.=) $2;
                  END $$""")
    run(owner, "CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.oid_eq_probe)")
    # Partitions give pg_inherits rows for the registry query's join to compare.
    run(owner, "CREATE TABLE parted (tenant_id text NOT NULL, n int) PARTITION BY LIST (tenant_id)")
    run(owner, "CREATE TABLE parted_a PARTITION OF parted FOR VALUES IN ('acme')")
    run(owner, "CREATE INDEX ON parted (tenant_id)")
    run(owner, "SET search_path = public, pg_catalog")
    run(owner, "SELECT tenant_guard.protect('parted')")         # invalidates the registry cache
    run(owner, "CREATE TABLE parted_g PARTITION OF parted FOR VALUES IN ('globex')")
    run(owner, "SELECT count(*) FROM pg_catalog.pg_class")       # any statement rebuilds the cache
    run(owner, "RESET search_path")
    rows = run(owner, "SELECT who, is_superuser FROM probe WHERE is_superuser")
    su = fx.su()
    escalated = run(su, "SELECT rolsuper FROM pg_roles WHERE rolname = 'tg_owner'")[0][0]
    if escalated:
        run(su, "ALTER ROLE tg_owner NOSUPERUSER")
    check(rows == [], f"PRIVILEGE ESCALATION: tg_owner's operator ran as {rows[:1]!r} "
                      f"({len(rows)} call(s)) during the guard's registry rebuild")


def test_policy_helpers_do_not_run_the_sessions_operators_as_superuser(fx):
    """protect()'s audit row is inserted as the bootstrap superuser. The SQL wrapper pins its
    search_path, but the implementation function behind it must not be a way around that.
    (The probe reports through NOTICEs, which survive the rollback of each attempt.)"""
    fx.new_owned_table("orders", [("acme", 1)])
    owner = fx.owner()
    seen = []
    owner.add_notice_handler(lambda d: seen.append(d.message_primary or ""))
    run(owner, """CREATE FUNCTION public.text_match_probe(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
                  BEGIN
                      IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
                          RAISE NOTICE 'probe ran as superuser %', current_user;
                      END IF;
                      RETURN $1 OPERATOR(pg_catalog.~) $2;
                  END $$""")
    run(owner, "CREATE OPERATOR public.~ (LEFTARG = text, RIGHTARG = text, FUNCTION = public.text_match_probe)")
    run(owner, "SET search_path = public, pg_catalog")
    outcomes = []
    for sql in ("SELECT tenant_guard.protect('orders')",
                "SELECT tenant_guard._protect('orders'::regclass::oid, 'tenant_id')"):
        before = len(seen)
        run(owner, "BEGIN")
        try:
            run(owner, sql)
            outcome = "ran"
        except Exception as e:
            # Refusing the direct call is a fine answer (42501: no EXECUTE on the internal function).
            check(getattr(e, "sqlstate", None) == "42501", f"{sql}: {e!r}")
            outcome = "refused"
        run(owner, "ROLLBACK")
        hits = [m for m in seen[before:] if m.startswith("probe ran as superuser")]
        outcomes.append((sql, outcome, len(hits)))
    run(owner, "RESET search_path")
    bad = [o for o in outcomes if o[2]]
    check(bad == [], "PRIVILEGE ESCALATION: tg_owner's operator ran as a superuser while a policy helper "
                     "wrote its audit row: " + "; ".join(f"{s} ({n} call(s))" for s, _, n in bad))
