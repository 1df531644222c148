//! In-backend tests (`#[pg_test]`): each runs inside a transaction of a cluster started with
//! `shared_preload_libraries = 'tenant_guard'`, and is rolled back afterwards.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn fixture(table: &str, column_type: &str) {
        Spi::run(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, tenant_id {column_type} NOT NULL, note text);
             CREATE INDEX ON {table} (tenant_id)"
        ))
        .unwrap();
    }

    fn app_role(table: &str) {
        Spi::run(&format!(
            "CREATE ROLE pgt_app; GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO pgt_app"
        ))
        .unwrap();
    }

    #[pg_test]
    fn the_hooks_are_installed_under_preload() {
        let preloaded =
            Spi::get_one::<bool>("SELECT preloaded FROM tenant_guard.status()").unwrap();
        assert_eq!(preloaded, Some(true));
    }

    #[pg_test]
    fn set_tenant_is_visible_in_the_same_transaction() {
        assert_eq!(
            Spi::get_one::<String>("SELECT tenant_guard.current_tenant()").unwrap(),
            None
        );
        Spi::run("SELECT tenant_guard.set_tenant('acme')").unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT tenant_guard.current_tenant()").unwrap(),
            Some("acme".to_string())
        );
        Spi::run("SELECT tenant_guard.clear_tenant()").unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT tenant_guard.current_tenant()").unwrap(),
            None
        );
    }

    #[pg_test]
    fn an_empty_claim_is_unset() {
        Spi::run("SET LOCAL tenant_guard.tenant_id = ''").unwrap();
        assert_eq!(
            Spi::get_one::<String>("SELECT tenant_guard.current_tenant()").unwrap(),
            None
        );
    }

    #[pg_test(error = "tenant_guard: set_tenant() needs a tenant, got NULL")]
    fn set_tenant_refuses_null() {
        Spi::run("SELECT tenant_guard.set_tenant(NULL)").unwrap();
    }

    #[pg_test(error = "tenant_guard: the tenant claim is 257 bytes long; at most 256 are allowed")]
    fn set_config_refuses_oversized_claims() {
        Spi::run("SELECT set_config('tenant_guard.tenant_id', repeat('x', 257), true)").unwrap();
    }

    #[pg_test]
    fn protect_enables_forces_and_installs_four_policies() {
        fixture("pgt_inv", "uuid");
        let msg = Spi::get_one::<String>("SELECT tenant_guard.protect('pgt_inv')")
            .unwrap()
            .unwrap();
        assert!(msg.starts_with("protected public.pgt_inv"), "{msg}");
        let (rls, force) = Spi::get_two::<bool, bool>(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'pgt_inv'::regclass",
        )
        .unwrap();
        assert_eq!((rls, force), (Some(true), Some(true)));
        let policies = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_policies WHERE tablename = 'pgt_inv' AND policyname LIKE 'tenant_guard_%'",
        )
        .unwrap();
        assert_eq!(policies, Some(4));
        let again = Spi::get_one::<String>("SELECT tenant_guard.protect('pgt_inv')")
            .unwrap()
            .unwrap();
        assert!(again.contains("already protected"), "{again}");
    }

    #[pg_test(
        error = "tenant_guard: tenant column \"tenant_id\" of table public.pgt_nullable is nullable"
    )]
    fn protect_refuses_a_nullable_tenant_column() {
        Spi::run("CREATE TABLE pgt_nullable (id int, tenant_id text)").unwrap();
        Spi::run("SELECT tenant_guard.protect('pgt_nullable')").unwrap();
    }

    #[pg_test(
        error = "tenant_guard: no tenant claim is set for protected table public.pgt_guarded"
    )]
    fn the_application_role_needs_a_claim() {
        fixture("pgt_guarded", "text");
        Spi::run("SELECT tenant_guard.protect('pgt_guarded')").unwrap();
        app_role("pgt_guarded");
        Spi::run("SET LOCAL ROLE pgt_app").unwrap();
        Spi::run("SELECT count(*) FROM pgt_guarded").unwrap();
    }

    #[pg_test]
    fn the_application_role_sees_only_its_tenant() {
        fixture("pgt_rows", "bigint");
        Spi::run(
            "INSERT INTO pgt_rows VALUES (1, 7, 'mine'), (2, 8, 'theirs'), (3, 7, 'mine too')",
        )
        .unwrap();
        Spi::run("SELECT tenant_guard.protect('pgt_rows')").unwrap();
        app_role("pgt_rows");
        Spi::run("SET LOCAL ROLE pgt_app").unwrap();
        Spi::run("SELECT tenant_guard.set_tenant('7')").unwrap();
        let seen = Spi::get_one::<String>("SELECT string_agg(note, ',' ORDER BY id) FROM pgt_rows")
            .unwrap();
        assert_eq!(seen, Some("mine,mine too".to_string()));
        let moved = Spi::get_one::<i64>(
            "WITH u AS (UPDATE pgt_rows SET note = 'x' WHERE id = 2 RETURNING 1) SELECT count(*) FROM u",
        )
        .unwrap();
        assert_eq!(moved, Some(0), "another tenant's row must not be updatable");
    }

    #[pg_test(error = "tenant_guard: the tenant claim \"acme\" is not a valid bigint")]
    fn a_claim_of_the_wrong_type_is_a_clear_error() {
        fixture("pgt_typed", "bigint");
        Spi::run("INSERT INTO pgt_typed VALUES (1, 7, 'x')").unwrap();
        Spi::run("SELECT tenant_guard.protect('pgt_typed')").unwrap();
        app_role("pgt_typed");
        Spi::run("SET LOCAL ROLE pgt_app").unwrap();
        Spi::run("SELECT tenant_guard.set_tenant('acme')").unwrap();
        Spi::run("SELECT count(*) FROM pgt_typed").unwrap();
    }
}
