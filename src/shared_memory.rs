//! Shared memory at server start: the audit queue and the leaders' claim table. Thin FFI: it
//! only asks PostgreSQL for the space and lets each owner lay out its part.

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::{audit_queue, leader_claims};

static mut PREV_SHMEM_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREV_SHMEM_STARTUP: pg_sys::shmem_startup_hook_type = None;

/// Called from `_PG_init` under preload.
pub fn init() {
    unsafe {
        PREV_SHMEM_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(shmem_request);
        PREV_SHMEM_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(shmem_startup);
    }
}

/// shmem_request_hook (PostgreSQL 15): the only place where add-in shared memory may be
/// requested; MaxBackends is known by now.
#[pg_guard]
unsafe extern "C-unwind" fn shmem_request() {
    if let Some(prev) = PREV_SHMEM_REQUEST {
        pg_sys::ffi::pg_guard_ffi_boundary(|| prev());
    }
    pg_sys::RequestAddinShmemSpace(audit_queue::shmem_size());
    pg_sys::RequestAddinShmemSpace(leader_claims::shmem_size());
    pg_sys::RequestNamedLWLockTranche(audit_queue::TRANCHE.as_ptr(), 1);
}

/// shmem_startup_hook: creates (postmaster) or attaches to (EXEC_BACKEND) the structures.
#[pg_guard]
unsafe extern "C-unwind" fn shmem_startup() {
    if let Some(prev) = PREV_SHMEM_STARTUP {
        pg_sys::ffi::pg_guard_ffi_boundary(|| prev());
    }
    // AddinShmemInitLock is MainLWLockArray[21] (lwlocknames.txt), as pgrx's own shmem code uses.
    let init_lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
    pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
    audit_queue::attach();
    leader_claims::attach();
    pg_sys::LWLockRelease(init_lock);
}
