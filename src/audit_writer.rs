//! The audit writer: a background worker per database that moves that database's events from the
//! shared-memory queue into `tenant_guard.audit_log`, in its own transactions, so that the event
//! of a refused (and rolled back) statement lands all the same.
//!
//! It polls every 100 ms (producers wake it sooner when events pile up), writes in batches, drains everything on SIGTERM (clean shutdown), and
//! leaves after two idle seconds so that it never keeps DROP DATABASE waiting. If it dies with an
//! error the postmaster restarts it after a second; a backend that enqueues starts one if none runs.

use std::time::Duration;

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::audit_event::AuditEvent;
use crate::audit_queue;

/// Most events stored per transaction. The writer commits synchronously, and a WAL flush can
/// take tens of milliseconds on a slow disk: with 512 events per commit, a 30 ms flush capped the
/// writer at about 16,000 events a second (the 100,000-event burst then dropped events). Batches
/// grow with the backlog, up to this (about 1 MB of WAL), so a burst is drained in few commits.
const BATCH: usize = 4096;

thread_local! {
    static IS_AUDIT_WRITER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Is this process an audit writer? (Its own inserts are not guarded. Other background workers,
/// parallel workers included, are.)
pub fn is_audit_writer() -> bool {
    IS_AUDIT_WRITER.with(|w| w.get())
}
const IDLE_ROUNDS_BEFORE_LEAVING: u32 = 20;
const MAX_CONNECT_ATTEMPTS: u32 = 3;

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn tenant_guard_audit_writer_main(arg: pg_sys::Datum) {
    let database = pg_sys::Oid::from(arg.value() as u32);
    IS_AUDIT_WRITER.with(|w| w.set(true));
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // A writer whose database cannot be connected to (it was dropped) fails with FATAL and is
    // restarted by the postmaster; after a few such attempts its events are dropped (counted)
    // and it exits for good.
    if audit_queue::writer_connecting(database) > MAX_CONNECT_ATTEMPTS {
        let n = audit_queue::discard_database(database);
        pgrx::log!("tenant_guard: audit writer for database {} cannot connect; {n} queued event(s) dropped", u32::from(database));
        return;
    }
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(database), None);
    // The writer's own session settings, whatever the database's defaults (ALTER DATABASE ... SET
    // default_transaction_read_only, statement_timeout, ...): it must be able to write.
    crate::catalog::pin_search_path(pg_sys::GucAction::GUC_ACTION_SET);
    for (name, value) in [
        (c"default_transaction_read_only", c"off"),
        (c"statement_timeout", c"0"),
        (c"lock_timeout", c"0"),
        (c"idle_in_transaction_session_timeout", c"0"),
        (c"synchronous_commit", c"on"),
    ] {
        unsafe {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_SUSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SET,
                true,
                0,
                false,
            );
        }
    }
    audit_queue::writer_started(database, unsafe { pg_sys::MyProcPid });

    let mut idle = 0;
    loop {
        let running = BackgroundWorker::wait_latch(Some(Duration::from_millis(100)));
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        // On shutdown: drain everything, then go.
        let leave_if_idle = !running || idle >= IDLE_ROUNDS_BEFORE_LEAVING;
        let mut wrote_any = false;
        loop {
            let batch = audit_queue::take(database, BATCH, leave_if_idle);
            if batch.is_empty() {
                break;
            }
            wrote_any = true;
            let full = batch.len() == BATCH;
            write(&batch.events());
            drop(batch); // frees the slots
            if !full {
                break;
            }
        }
        if wrote_any {
            idle = 0;
            continue;
        }
        if leave_if_idle {
            return; // exit code 0: not restarted; the next event starts a new writer
        }
        idle += 1;
    }
}

fn write(batch: &[&AuditEvent]) {
    let n = batch.len();
    // The events left the queue when they were taken: whatever happens now, they are counted as
    // written or as dropped (they are in the server log either way).
    let stored = PgTryBuilder::new(|| {
        BackgroundWorker::transaction(|| match store_fast(batch) {
            Store::Stored => true,
            Store::NoTable => false,
            Store::Declined => {
                insert_events(batch);
                true
            }
        })
    })
    .catch_others(|e| {
        unsafe { pg_sys::AbortCurrentTransaction() };
        pgrx::log!(
            "tenant_guard: audit writer could not store {n} event(s), counted as dropped: {e:?}"
        );
        false
    })
    .execute();
    if stored {
        audit_queue::mark_written(n);
    } else {
        audit_queue::mark_dropped(n);
    }
}

/// The launcher: one background worker for the whole server (no database connection) that
/// starts a writer for every database with queued events and none running, retrying until it
/// can (a writer may fail to start when every background-worker slot is taken).
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn tenant_guard_audit_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    while BackgroundWorker::wait_latch(Some(Duration::from_millis(250))) {
        for database in audit_queue::claim_orphaned_databases() {
            audit_queue::launch_writer(database);
        }
    }
}

/// Registers the launcher (from `_PG_init`, under shared_preload_libraries).
pub fn register_launcher() {
    BackgroundWorkerBuilder::new("tenant_guard audit launcher")
        .set_type("tenant_guard audit launcher")
        .set_library("tenant_guard")
        .set_function("tenant_guard_audit_launcher_main")
        .enable_shmem_access(None)
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(1)))
        .load();
}

/// A string handed to src/audit_store.c (not NUL-terminated; empty means NULL).
#[repr(C)]
struct TgText {
    ptr: *const std::ffi::c_char,
    len: i32,
}

impl TgText {
    fn of(s: &str) -> Self {
        TgText {
            ptr: s.as_ptr().cast(),
            len: s.len() as i32,
        }
    }
}

/// One event for src/audit_store.c (the same layout as its `TgAuditRow`).
#[repr(C)]
struct TgAuditRow {
    at: i64,
    rows: i64,
    backend_pid: i32,
    event: TgText,
    reason: TgText,
    relations: TgText,
    command: TgText,
    tenant: TgText,
    role: TgText,
    session_role: TgText,
    application_name: TgText,
    client_addr: TgText,
    query: TgText,
}

unsafe extern "C" {
    fn tenant_guard_store_audit_rows(rows: *const TgAuditRow, n: i32) -> i32;
}

enum Store {
    Stored,
    /// The table is not the plain one the extension created (a user added an INSERT trigger,
    /// partitioned it, ...): store through SQL so that all of that applies.
    Declined,
    /// The extension is not installed in this database (any more).
    NoTable,
}

/// Stores the batch the way COPY does (src/audit_store.c): no parsing or planning per batch.
fn store_fast(batch: &[&AuditEvent]) -> Store {
    let rows: Vec<TgAuditRow> = batch
        .iter()
        .map(|ev| TgAuditRow {
            at: ev.at,
            rows: ev.rows,
            backend_pid: ev.backend_pid,
            event: TgText::of(ev.kind().map_or("unknown", |k| k.name())),
            reason: TgText::of(ev.reason.as_str()),
            relations: TgText::of(ev.relations.as_str()),
            command: TgText::of(ev.command.as_str()),
            tenant: TgText::of(ev.tenant.as_str()),
            role: TgText::of(ev.role.as_str()),
            session_role: TgText::of(ev.session_role.as_str()),
            application_name: TgText::of(ev.application_name.as_str()),
            client_addr: TgText::of(ev.client_addr.as_str()),
            query: TgText::of(ev.query.as_str()),
        })
        .collect();
    let rc = unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| {
            tenant_guard_store_audit_rows(rows.as_ptr(), rows.len() as i32)
        })
    };
    match rc {
        1 => Store::Stored,
        0 => Store::Declined,
        _ => Store::NoTable,
    }
}

/// Inserts events into `tenant_guard.audit_log` in the current transaction (one statement).
pub fn insert_events(batch: &[&AuditEvent]) {
    let n = batch.len();
    let mut at = Vec::with_capacity(n);
    let mut event = Vec::with_capacity(n);
    let mut reason = Vec::with_capacity(n);
    let mut relations = Vec::with_capacity(n);
    let mut command = Vec::with_capacity(n);
    let mut rows = Vec::with_capacity(n);
    let mut tenant = Vec::with_capacity(n);
    let mut role = Vec::with_capacity(n);
    let mut session_role = Vec::with_capacity(n);
    let mut application_name = Vec::with_capacity(n);
    let mut client_addr = Vec::with_capacity(n);
    let mut pid = Vec::with_capacity(n);
    let mut query = Vec::with_capacity(n);
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    for ev in batch {
        at.push(ev.at);
        event.push(ev.kind().map_or("unknown", |k| k.name()).to_string());
        reason.push(opt(ev.reason.as_str()));
        relations.push(ev.relation_list().join("\n"));
        command.push(opt(ev.command.as_str()));
        rows.push((ev.rows >= 0).then_some(ev.rows));
        tenant.push(opt(ev.tenant.as_str()));
        role.push(opt(ev.role.as_str()));
        session_role.push(opt(ev.session_role.as_str()));
        application_name.push(opt(ev.application_name.as_str()));
        client_addr.push(opt(ev.client_addr.as_str()));
        pid.push(ev.backend_pid);
        query.push(opt(ev.query.as_str()));
    }
    Spi::run_with_args(
        "INSERT INTO tenant_guard.audit_log
             (at, event, reason, relations, command, rows, tenant, role, session_role,
              application_name, client_addr, backend_pid, query)
         SELECT TIMESTAMPTZ '2000-01-01 00:00:00+00' + u.at * INTERVAL '1 microsecond',
                u.event, u.reason,
                CASE WHEN u.relations = '' THEN '{}'::pg_catalog.text[]
                     ELSE pg_catalog.string_to_array(u.relations, E'\\n') END,
                u.command, u.rows, u.tenant, u.role, u.session_role, u.application_name,
                CASE WHEN u.client_addr ~ '^[0-9A-Fa-f:.]+$' THEN u.client_addr::pg_catalog.inet END,
                u.pid, u.query
           FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::text[]),
                           pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]),
                           pg_catalog.unnest($5::text[]), pg_catalog.unnest($6::int8[]),
                           pg_catalog.unnest($7::text[]), pg_catalog.unnest($8::text[]),
                           pg_catalog.unnest($9::text[]), pg_catalog.unnest($10::text[]),
                           pg_catalog.unnest($11::text[]), pg_catalog.unnest($12::int4[]),
                           pg_catalog.unnest($13::text[]))
                AS u(at, event, reason, relations, command, rows, tenant, role, session_role,
                     application_name, client_addr, pid, query)",
        &[
            at.into(),
            event.into(),
            reason.into(),
            relations.into(),
            command.into(),
            rows.into(),
            tenant.into(),
            role.into(),
            session_role.into(),
            application_name.into(),
            client_addr.into(),
            pid.into(),
            query.into(),
        ],
    )
    .unwrap_or_else(|e| panic!("tenant_guard: could not insert audit events: {e}"));
}
