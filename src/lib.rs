//! tenant_guard: deny-by-default tenant isolation for PostgreSQL.
//!
//! This file only wires the modules together:
//!
//! | module        | concern                                                            |
//! |---------------|--------------------------------------------------------------------|
//! | `settings`    | every `tenant_guard.*` setting                                     |
//! | `claim`       | the tenant claim, its hygiene, and the claim SQL functions         |
//! | `guard`       | the executor guard's decisions (plain Rust)                        |
//! | `hooks`       | the FFI hooks that gather facts and apply the decisions            |
//! | `registry`    | the per-backend cache of protected tables                          |
//! | `policy`      | the SQL of the generated row-security policies                     |
//! | `protection`  | protect(), unprotect(), exempt()                                   |
//! | `catalog`     | read-only catalog and role questions (thin FFI)                    |
//! | `refusal`     | the one shape of every error and warning                           |
//! | `status`      | status()                                                           |

use pgrx::prelude::*;

mod catalog;
mod claim;
mod guard;
mod hooks;
mod policy;
mod protection;
mod refusal;
mod registry;
mod settings;
mod status;

pgrx::pg_module_magic!();

extension_sql_file!("../sql/registry.sql", name = "registry", bootstrap);
extension_sql_file!(
    "../sql/helpers.sql",
    name = "helpers",
    requires = ["registry", protection::protect_impl, protection::unprotect_impl, protection::exempt_impl]
);
extension_sql_file!("../sql/new_partitions.sql", name = "new_partitions", requires = ["helpers"]);


#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    claim::set_defining(true);
    settings::init();
    claim::set_defining(false);
    if unsafe { !pg_sys::process_shared_preload_libraries_in_progress } {
        // Loaded by CREATE EXTENSION or a function call only: the functions and the policies work,
        // the hooks cannot be active in every backend, so none are installed (status() says so).
        return;
    }
    status::set_preloaded();
    registry::init();
    hooks::init();
}

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

/// Settings for the `#[pg_test]` cluster.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'tenant_guard'"]
    }
}
