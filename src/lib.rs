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
//! | `explain`     | explain(rel): why this session can or cannot see a table's rows    |
//! | `tamper`      | the changes to protected tables the tamper guard refuses           |
//! | `new_tables`  | the new-table guard: protected or exempt by commit                 |
//! | `token`       | signed tenant tokens: JWS HS256/384/512 verification               |
//! | `bypass`      | begin_bypass() / end_bypass(): the audited admin bypass            |
//! | `audit`       | where audit events are raised (log line + queue or direct insert)  |
//! | `audit_event` | the fixed-size event record and its log line                      |
//! | `audit_queue` | the bounded shared-memory queue and the writers' bookkeeping       |
//! | `audit_writer`| the per-database background writer                                 |
//! | `audit_admin` | prune_audit() and the audit log's append-only rule                 |
//! | `leader_claims`| what a parallel worker may believe about its leader's claim        |
//! | `shared_memory`| asks for shared memory at server start                            |

use pgrx::prelude::*;

mod audit;
mod audit_admin;
mod audit_event;
mod audit_queue;
mod audit_writer;
mod bypass;
mod catalog;
mod claim;
mod explain;
mod guard;
mod hooks;
mod leader_claims;
mod new_tables;
mod policy;
mod protection;
mod refusal;
mod registry;
mod settings;
mod shared_memory;
mod status;
mod tamper;
mod token;

pgrx::pg_module_magic!();

extension_sql_file!("../sql/registry.sql", name = "registry", bootstrap);
extension_sql_file!(
    "../sql/helpers.sql",
    name = "helpers",
    requires = [
        "registry",
        protection::protect_impl,
        protection::unprotect_impl,
        protection::exempt_impl,
        protection::set_limits_impl,
        explain::explain
    ]
);
extension_sql_file!(
    "../sql/new_partitions.sql",
    name = "new_partitions",
    requires = ["helpers"]
);
extension_sql_file!("../sql/lint.sql", name = "lint", requires = ["registry"]);
extension_sql_file!(
    "../sql/new_tables.sql",
    name = "new_tables",
    requires = [
        "helpers",
        new_tables::defer_new_table_check,
        new_tables::in_this_transaction,
        new_tables::watched_schemas_sql,
        new_tables::tenant_columns_sql
    ]
);
extension_sql_file!(
    "../sql/audit.sql",
    name = "audit",
    requires = [
        "helpers",
        audit_admin::prune_audit_before,
        audit_admin::audit_log_pruning
    ]
);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    let preloaded = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    claim::set_defining(true);
    settings::init(preloaded);
    claim::set_defining(false);
    if !preloaded {
        // Loaded by CREATE EXTENSION or a function call only: the functions and the policies work,
        // the hooks cannot be active in every backend, so none are installed (status() says so).
        return;
    }
    status::set_preloaded();
    shared_memory::init();
    audit_writer::register_launcher();
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
