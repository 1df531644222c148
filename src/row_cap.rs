//! The row cap (`tenant_guard.max_rows`): a DestReceiver placed in front of the query's own, which
//! refuses the first row past the cap before it is sent, so the client never receives more.
//! Thin FFI; the limit itself is decided in `guard::row_limit`.

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::audit;
use crate::audit_event::EventKind;
use crate::catalog;
use crate::hooks;
use crate::refusal;

#[repr(C)]
struct CapReceiver {
    base: pg_sys::DestReceiver, // must be first: PostgreSQL sees a plain DestReceiver
    inner: *mut pg_sys::DestReceiver,
    query_desc: *mut pg_sys::QueryDesc,
    cap: u64,
}

/// Puts the cap in front of the query's destination until the value is dropped.
pub struct Wrapped {
    query_desc: *mut pg_sys::QueryDesc,
    inner: *mut pg_sys::DestReceiver,
}

impl Drop for Wrapped {
    fn drop(&mut self) {
        unsafe { (*self.query_desc).dest = self.inner };
    }
}

pub unsafe fn wrap(query_desc: *mut pg_sys::QueryDesc, cap: u64) -> Wrapped {
    let inner = (*query_desc).dest;
    let r = pg_sys::palloc0(std::mem::size_of::<CapReceiver>()) as *mut CapReceiver;
    (*r).base.receiveSlot = Some(receive_slot);
    (*r).base.rStartup = Some(startup);
    (*r).base.rShutdown = Some(shutdown);
    (*r).base.rDestroy = Some(destroy);
    (*r).base.mydest = (*inner).mydest;
    (*r).inner = inner;
    (*r).query_desc = query_desc;
    (*r).cap = cap;
    (*query_desc).dest = r as *mut pg_sys::DestReceiver;
    Wrapped { query_desc, inner }
}

#[pg_guard]
unsafe extern "C-unwind" fn receive_slot(slot: *mut pg_sys::TupleTableSlot, this: *mut pg_sys::DestReceiver) -> bool {
    let me = this as *mut CapReceiver;
    let estate = (*(*me).query_desc).estate;
    // es_processed counts the rows already sent by this query, over every FETCH of a cursor.
    let sent = if estate.is_null() { 0 } else { (*estate).es_processed };
    if sent >= (*me).cap {
        refuse(me, sent);
    }
    let inner = (*me).inner;
    match (*inner).receiveSlot {
        Some(f) => pg_sys::ffi::pg_guard_ffi_boundary(|| f(slot, inner)),
        None => true,
    }
}

unsafe fn refuse(me: *mut CapReceiver, sent: u64) -> ! {
    let cap = (*me).cap;
    let (names, tenant) = hooks::with_admitted((*me).query_desc, |a| {
        (a.relids.iter().map(|r| catalog::qualified_name(*r)).collect::<Vec<_>>(), a.tenant.clone())
    })
    .unwrap_or_default();
    audit::guard_event(EventKind::RowCap, &format!("max_rows={cap}"), &names, "SELECT", Some(sent as i64 + 1), Some(&tenant));
    refusal::raise(
        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        format!("statement returns more than {cap} rows from protected table {}", names.join(", ")),
        Some("tenant_guard.max_rows caps the rows one statement may return from protected tables.".into()),
        "Paginate: add ORDER BY and LIMIT (with a keyset or OFFSET) and fetch the rest in further statements.".into(),
    )
}

#[pg_guard]
unsafe extern "C-unwind" fn startup(this: *mut pg_sys::DestReceiver, operation: i32, typeinfo: pg_sys::TupleDesc) {
    let inner = (*(this as *mut CapReceiver)).inner;
    if let Some(f) = (*inner).rStartup {
        pg_sys::ffi::pg_guard_ffi_boundary(|| f(inner, operation, typeinfo));
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn shutdown(this: *mut pg_sys::DestReceiver) {
    let inner = (*(this as *mut CapReceiver)).inner;
    if let Some(f) = (*inner).rShutdown {
        pg_sys::ffi::pg_guard_ffi_boundary(|| f(inner));
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn destroy(_this: *mut pg_sys::DestReceiver) {
    // The inner receiver belongs to whoever created it; ours is freed with its memory context.
}
