//! The new-table guard: a table created (or given a tenant column, or moved into a watched
//! schema) must be protected or exempt by the time its transaction commits.
//!
//! The `ddl_command_end` event trigger (sql/new_tables.sql) finds tables whose tenant column was
//! written by the current transaction and calls `_defer_new_table_check()`; the utility hook does
//! the same for `ALTER TABLE ... SET SCHEMA`. The check itself runs just before commit (or
//! PREPARE TRANSACTION), so a migration that creates a table and protects (or exempts) it a few
//! statements later in the same transaction passes. With `new_table_action = protect` the event
//! trigger protects the table on the spot instead.

use std::cell::RefCell;

use pgrx::callbacks::{register_xact_callback, PgXactCallbackEvent};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::audit;
use crate::audit_event::EventKind;
use crate::catalog;
use crate::refusal::{self, Message};
use crate::registry;
use crate::settings::{self, NewTableAction};

thread_local! {
    /// Tables to check at commit: (relid, tenant column, action).
    static PENDING: RefCell<Vec<(pg_sys::Oid, String, NewTableAction)>> = const { RefCell::new(Vec::new()) };
}

/// Was this transaction id written by the current transaction (or one of its subtransactions)?
#[pg_extern(name = "_in_this_transaction", volatile, parallel_unsafe)]
pub fn in_this_transaction(xid: Option<pg_sys::TransactionId>) -> bool {
    xid.is_some_and(|x| unsafe { pg_sys::TransactionIdIsCurrentTransactionId(x) })
}

/// `tenant_guard.watched_schemas`, parsed like everywhere else (for the event trigger).
#[pg_extern(name = "_watched_schemas", stable, parallel_safe)]
pub fn watched_schemas_sql() -> Vec<String> {
    settings::watched_schemas()
}

/// `tenant_guard.tenant_columns`, parsed like everywhere else, in priority order.
#[pg_extern(name = "_tenant_columns", stable, parallel_safe)]
pub fn tenant_columns_sql() -> Vec<String> {
    settings::tenant_columns()
}

/// The tenant column a relation has, if any (the first of `tenant_guard.tenant_columns`).
pub fn tenant_column_of(relid: pg_sys::Oid) -> Option<String> {
    settings::tenant_columns().into_iter().find(|name| {
        let Ok(c) = std::ffi::CString::new(name.as_str()) else {
            return false;
        };
        unsafe { pg_sys::get_attnum(relid, c.as_ptr()) > 0 }
    })
}

/// Is the relation in one of `tenant_guard.watched_schemas`?
fn in_watched_schema(relid: pg_sys::Oid) -> bool {
    let schema = unsafe {
        let p = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        if p.is_null() {
            return false;
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    };
    settings::watched_schemas().iter().any(|s| *s == schema)
}

/// ALTER TABLE ... SET SCHEMA (from the utility hook): a tenant-scoped table moved into a
/// watched schema is checked at commit like a new one.
pub fn table_moved(relid: pg_sys::Oid) {
    if let Some(column) = tenant_column_of(relid) {
        defer_new_table_check(Some(relid), Some(&column));
    }
}

/// Called by the event trigger for a new tenant-scoped table that is neither protected nor exempt.
#[pg_extern(name = "_defer_new_table_check", volatile, parallel_unsafe)]
pub fn defer_new_table_check(rel: Option<pg_sys::Oid>, tenant_column: Option<&str>) {
    let (Some(relid), Some(column)) = (rel, tenant_column) else {
        return;
    };
    let action = settings::new_table_action();
    let first = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let first = p.is_empty();
        if !p.iter().any(|(r, _, _)| *r == relid) {
            p.push((relid, column.to_string(), action));
        }
        first
    });
    if first {
        register_xact_callback(PgXactCallbackEvent::PreCommit, check_pending);
        register_xact_callback(PgXactCallbackEvent::PrePrepare, check_pending);
        register_xact_callback(PgXactCallbackEvent::Abort, || {
            PENDING.with(|p| p.borrow_mut().clear())
        });
    }
}

/// Just before commit: every pending table must be protected or exempt by now.
fn check_pending() {
    let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if pending.is_empty() {
        return;
    }
    registry::mark_stale();
    registry::refresh();
    for (relid, column, action) in pending {
        let exists = unsafe { !pg_sys::get_rel_name(relid).is_null() };
        if !exists
            || registry::lookup(relid).is_some()
            || registry::is_exempt(relid)
            || !in_watched_schema(relid)
            || tenant_column_of(relid).is_none()
        {
            continue;
        }
        let name = catalog::qualified_name(relid);
        let lit = name.replace('\'', "''");
        let message = format!(
            "new table {name} has tenant column \"{}\" but is neither protected nor exempt",
            column.replace('"', "\"\"")
        );
        let column_arg = if column == "tenant_id" {
            String::new()
        } else {
            format!(", '{}'", column.replace('\'', "''"))
        };
        let hint = format!(
            "In the same migration: SELECT tenant_guard.protect('{lit}'{column_arg}); or, if every tenant \
             shares it: SELECT tenant_guard.exempt('{lit}', '<why>');"
        );
        match action {
            NewTableAction::Warn => {
                audit::guard_event(
                    EventKind::WouldDeny,
                    "new_table_unprotected",
                    &[name],
                    "COMMIT",
                    None,
                    None,
                );
                Message::warning(
                    message,
                    "tenant_guard.new_table_action = warn lets the transaction commit.",
                    hint,
                );
            }
            _ => {
                audit::guard_event(
                    EventKind::Denied,
                    "new_table_unprotected",
                    &[name],
                    "COMMIT",
                    None,
                    None,
                );
                refusal::raise(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    message,
                    Some(
                        "tenant_guard.new_table_action = error: a tenant-scoped table must be protected or \
                         exempt before its transaction commits."
                            .into(),
                    ),
                    hint,
                );
            }
        }
    }
}
