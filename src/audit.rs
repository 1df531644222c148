//! Where every audit event is raised: one place that captures the backend's state, writes the
//! server-log line, and hands the event to the queue (guard events) or stores it in the caller's
//! transaction (policy-helper events, which must vanish if the migration rolls back).

use crate::audit_event::{self, AuditEvent, EventKind};
use crate::audit_queue;
use crate::audit_writer;
use crate::catalog::as_superuser;
use crate::settings;

unsafe extern "C" {
    fn tenant_guard_log_event(line: *const std::ffi::c_char);
}

/// The event's line in the server log (`tenant_guard: event=... key=value ...`).
pub fn log_event(ev: &AuditEvent) {
    let line = std::ffi::CString::new(ev.log_line().replace('\0', " ")).unwrap_or_default();
    unsafe {
        pgrx::pg_sys::ffi::pg_guard_ffi_boundary(|| tenant_guard_log_event(line.as_ptr()));
    }
}

/// An event of the executor guard: logged, then queued. Never blocks; a full queue counts a drop.
pub fn guard_event(
    kind: EventKind,
    reason: &str,
    relations: &[String],
    command: &str,
    rows: Option<i64>,
    tenant: Option<&str>,
) {
    let ev = audit_event::capture(
        kind,
        reason,
        relations,
        command,
        rows,
        tenant,
        settings::audit_query_max(),
    );
    log_event(&ev);
    audit_queue::enqueue(&ev);
}

/// An event of protect(), unprotect() or exempt(): logged and inserted in the current
/// transaction, so it exists exactly when the change it records was committed.
pub fn helper_event(kind: EventKind, relation: &str, reason: &str) {
    let ev = audit_event::capture(
        kind,
        reason,
        &[relation.to_string()],
        kind.name(),
        None,
        None,
        settings::audit_query_max(),
    );
    log_event(&ev);
    as_superuser(|| audit_writer::insert_events(&[&ev]));
}

/// Logs and queues an event captured earlier (bypass statements capture theirs when they start,
/// so that a failing one can still be recorded without catalog look-ups).
pub fn emit(ev: &AuditEvent) {
    log_event(ev);
    audit_queue::enqueue(ev);
}

/// Captures an event now, to be emitted later with `emit`.
pub fn capture_for_later(
    kind: EventKind,
    reason: &str,
    relations: &[String],
    command: &str,
) -> Box<AuditEvent> {
    Box::new(audit_event::capture(
        kind,
        reason,
        relations,
        command,
        None,
        None,
        settings::audit_query_max(),
    ))
}
