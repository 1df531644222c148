//! `tenant_guard.status()`: is the guard active in this backend, in which mode, with what claim.

use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::prelude::*;

use crate::audit_queue;
use crate::claim::{self, ClaimState};
use crate::refusal::Message;
use crate::settings::{self, ClaimScope, Enforce};

static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Called by `_PG_init` when loaded through `shared_preload_libraries`.
pub fn set_preloaded() {
    PRELOADED.store(true, Ordering::Relaxed);
}

pub fn preloaded() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}

#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_unsafe)]
fn status() -> TableIterator<
    'static,
    (
        name!(preloaded, bool),
        name!(guard_active, bool),
        name!(version, String),
        name!(enforce, String),
        name!(claim_scope, String),
        name!(claim, String),
        name!(protected_tables, i64),
        name!(audit_writer_pid, Option<i32>),
        name!(audit_queue_size, Option<i64>),
        name!(audit_queue_depth, Option<i64>),
        name!(events_enqueued, Option<i64>),
        name!(events_written, Option<i64>),
        name!(events_dropped, Option<i64>),
        name!(denials, Option<pgrx::JsonB>),
    ),
> {
    let preloaded = preloaded();
    if !preloaded {
        Message::warning(
            "the guard is NOT active: tenant_guard is not in shared_preload_libraries".to_string(),
            "Only the row security policies protect the tables; superusers, BYPASSRLS roles and \
             table owners without FORCE are not refused.",
            "Add tenant_guard to shared_preload_libraries in postgresql.conf and restart the server.".to_string(),
        );
    }
    let enforce = match settings::enforce() {
        Enforce::On => "on",
        Enforce::Shadow => "shadow",
        Enforce::Off => "off",
    };
    let scope = match settings::claim_scope() {
        ClaimScope::Transaction => "transaction",
        ClaimScope::Session => "session",
    };
    let claim = match claim::state() {
        ClaimState::Unset => "unset",
        ClaimState::Stale => "stale (set in an earlier transaction)",
        ClaimState::Valid(_) => "set",
    };
    let protected = crate::catalog::select_one::<i64>(
        "SELECT pg_catalog.count(*) FROM tenant_guard.protected_tables",
    )
    .unwrap_or(0);
    let stats = audit_queue::stats(unsafe { pgrx::pg_sys::MyDatabaseId });
    let denials = stats.as_ref().map(|s| {
        let map: serde_json::Map<String, serde_json::Value> = audit_queue::DENIAL_NAMES
            .iter()
            .zip(s.denials.iter())
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        pgrx::JsonB(serde_json::Value::Object(map))
    });
    TableIterator::once((
        preloaded,
        preloaded && settings::enforce() != Enforce::Off,
        env!("CARGO_PKG_VERSION").to_string(),
        enforce.to_string(),
        scope.to_string(),
        claim.to_string(),
        protected,
        stats.as_ref().and_then(|s| s.writer_pid),
        stats.as_ref().map(|s| s.capacity as i64),
        stats.as_ref().map(|s| s.depth as i64),
        stats.as_ref().map(|s| s.enqueued as i64),
        stats.as_ref().map(|s| s.written as i64),
        stats.as_ref().map(|s| s.dropped as i64),
        denials,
    ))
}
