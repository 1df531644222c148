//! Retention of the audit trail: `tenant_guard.prune_audit(older_than)` is the only way rows
//! leave `tenant_guard.audit_log`. The table's trigger refuses UPDATE, DELETE and TRUNCATE unless
//! this backend is inside prune_audit() (a flag no SQL statement can set).

use std::cell::Cell;

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

use crate::catalog::as_superuser;

thread_local! {
    static PRUNING: Cell<bool> = const { Cell::new(false) };
}

/// Is this backend inside prune_audit()? Read by the audit log's append-only trigger.
#[pg_extern(name = "_audit_log_pruning", stable, parallel_restricted)]
pub fn audit_log_pruning() -> bool {
    PRUNING.with(|p| p.get())
}

/// Deletes audit events older than `cutoff`; called by prune_audit(), which checks its argument.
#[pg_extern(name = "_prune_audit_before", volatile, parallel_unsafe)]
pub fn prune_audit_before(cutoff: Option<TimestampWithTimeZone>) -> i64 {
    let Some(cutoff) = cutoff else {
        crate::refusal::bad_argument(
            "prune_audit() needs a cutoff, got NULL",
            "SELECT tenant_guard.prune_audit(interval '90 days');",
        )
    };
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            PRUNING.with(|p| p.set(false));
        }
    }
    PRUNING.with(|p| p.set(true));
    let _reset = Reset;
    as_superuser(|| {
        Spi::get_one_with_args::<i64>(
            "WITH gone AS (DELETE FROM tenant_guard.audit_log WHERE at < $1 RETURNING 1)
             SELECT pg_catalog.count(*) FROM gone",
            &[cutoff.into()],
        )
        .unwrap_or_else(|e| panic!("tenant_guard: prune_audit failed: {e}"))
        .unwrap_or(0)
    })
}
