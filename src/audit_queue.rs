//! The bounded shared-memory queue between the backends that raise audit events and the audit
//! writers that store them.
//!
//! A refusing backend copies its event into a free slot *before* it raises its error: the slot
//! survives the statement's abort, and a writer stores it in its own transaction. Enqueueing is
//! one LWLock-protected copy of a fixed-size record: no I/O, no SPI, no waiting for the writer.
//! When no slot is free the event is counted as dropped (it is in the server log all the same).
//!
//! Layout: a small directory (state, database, sequence number per slot) that writers and the
//! launcher scan, next to the large event slots they only touch for the events they take. A writer
//! reserves its batch under the lock, reads the events *outside* it (producers never wait for
//! that), then frees the slots. Producers wake their database's writer whenever the depth reaches
//! another multiple of `WAKE_EVERY`, so a busy queue is drained without waiting for a poll.
//!
//! One writer runs per database that has events (a background worker connects to one database
//! for life). The backend that enqueues starts its database's writer when none runs; a writer
//! that finds nothing to do for a while leaves, so that it never holds up DROP DATABASE.

use pgrx::bgworkers::{BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::audit_event::{AuditEvent, EventKind};
use crate::settings;

pub const MAX_WRITERS: usize = 32;
const DENIAL_KINDS: usize = 10;
/// A producer sets its writer's latch each time the queue depth reaches a multiple of this (the
/// writer then takes everything waiting, up to its batch size).
pub const WAKE_EVERY: u32 = 512;

const FREE: u32 = 0;
const READY: u32 = 1;
const TAKEN: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy)]
struct WriterSlot {
    database: pg_sys::Oid,
    /// 0 free, 1 starting, 2 running.
    state: u32,
    pid: i32,
    since: i64,
    /// Start attempts that did not reach a database connection.
    attempts: u32,
    /// The running writer's process latch (in shared memory), to wake it early.
    latch: *mut pg_sys::Latch,
}

#[repr(C)]
struct Header {
    lock: *mut pg_sys::LWLock,
    capacity: u32,
    free_top: u32,
    next_seq: u64,
    enqueued: u64,
    written: u64,
    dropped: u64,
    denials: [u64; DENIAL_KINDS],
    writers: [WriterSlot; MAX_WRITERS],
}

/// One directory entry per slot: what the scans read, without touching the 3.5 kB events.
#[repr(C)]
#[derive(Clone, Copy)]
struct Entry {
    state: u32,
    database: pg_sys::Oid,
    seq: u64,
}

static mut HEADER: *mut Header = std::ptr::null_mut();
static mut CAPACITY: usize = 0;

const SHMEM_NAME: &std::ffi::CStr = c"tenant_guard audit queue";
pub const TRANCHE: &std::ffi::CStr = c"tenant_guard";

/// Bytes of shared memory the queue needs (called at server start, from shared_memory.rs).
pub fn shmem_size() -> usize {
    unsafe { CAPACITY = settings::audit_queue_size() as usize };
    let capacity = unsafe { CAPACITY };
    std::mem::size_of::<Header>()
        + capacity * std::mem::size_of::<Entry>()
        + capacity * std::mem::size_of::<AuditEvent>()
        + capacity * std::mem::size_of::<u32>()
}

unsafe fn entries() -> *mut Entry {
    (HEADER as *mut u8).add(std::mem::size_of::<Header>()) as *mut Entry
}

unsafe fn events() -> *mut AuditEvent {
    (entries() as *mut u8).add((*HEADER).capacity as usize * std::mem::size_of::<Entry>())
        as *mut AuditEvent
}

unsafe fn free_stack() -> *mut u32 {
    (events() as *mut u8).add((*HEADER).capacity as usize * std::mem::size_of::<AuditEvent>())
        as *mut u32
}

/// Under the lock: puts slot `idx` back on the free stack.
unsafe fn free_slot(h: &mut Header, idx: usize) {
    (*entries().add(idx)).state = FREE;
    *free_stack().add(h.free_top as usize) = idx as u32;
    h.free_top += 1;
}

/// Creates (postmaster) or attaches to the queue; called under AddinShmemInitLock.
pub unsafe fn attach() {
    let mut found = false;
    let size = shmem_size();
    let ptr = pg_sys::ShmemInitStruct(SHMEM_NAME.as_ptr(), size, &mut found) as *mut Header;
    HEADER = ptr;
    if !found {
        std::ptr::write_bytes(ptr as *mut u8, 0, size);
        (*ptr).lock = &raw mut (*pg_sys::GetNamedLWLockTranche(TRANCHE.as_ptr())).lock;
        (*ptr).capacity = CAPACITY as u32;
        let stack = free_stack();
        for i in 0..CAPACITY {
            *stack.add(i) = (CAPACITY - 1 - i) as u32;
        }
        (*ptr).free_top = CAPACITY as u32;
    }
}

/// Holds the queue lock; released on drop (also when an error unwinds; PostgreSQL's abort path
/// releases all LWLocks as well).
struct Locked;
impl Locked {
    unsafe fn acquire() -> Self {
        pg_sys::LWLockAcquire((*HEADER).lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        Locked
    }
}
impl Drop for Locked {
    fn drop(&mut self) {
        unsafe { pg_sys::LWLockRelease((*HEADER).lock) };
    }
}

pub fn available() -> bool {
    unsafe { !HEADER.is_null() }
}

/// Index of a refusal reason in the per-kind denial counters.
pub fn denial_index(kind: Option<EventKind>, reason: &str) -> usize {
    match (kind, reason) {
        (Some(EventKind::Tamper), _) => 8,
        (_, "no_claim") => 0,
        (_, "stale_claim") => 1,
        (_, "superuser" | "bypassrls" | "owner_not_forced") => 2,
        (_, "rls_disabled") => 3,
        (_, "tenant_switch") => 4,
        (_, "hold_cursor") => 5,
        (_, "unprotected_child") => 6,
        (_, "bypass_not_allowed" | "bypass_without_bypassrls") => 7,
        (_, "new_table_unprotected") => 9,
        _ => 8, // tamper refusals in shadow mode (would_deny)
    }
}

pub const DENIAL_NAMES: [&str; DENIAL_KINDS] = [
    "no_claim",
    "stale_claim",
    "policy_voiding_role",
    "rls_disabled",
    "tenant_switch",
    "hold_cursor",
    "unprotected_child",
    "bypass_not_allowed",
    "tamper",
    "new_table_unprotected",
];

/// Puts an event in the queue (and starts the database's writer if none runs). Returns false
/// when the event was dropped because the queue was full or does not exist.
pub fn enqueue(ev: &AuditEvent) -> bool {
    if !available() {
        return false;
    }
    let start_writer;
    let mut wake: *mut pg_sys::Latch = std::ptr::null_mut();
    unsafe {
        let _lock = Locked::acquire();
        let h = &mut *HEADER;
        if matches!(
            ev.kind(),
            Some(EventKind::Denied) | Some(EventKind::WouldDeny) | Some(EventKind::Tamper)
        ) {
            h.denials[denial_index(ev.kind(), ev.reason.as_str())] += 1;
        }
        if h.free_top == 0 {
            h.dropped += 1;
            return false;
        }
        h.free_top -= 1;
        let idx = *free_stack().add(h.free_top as usize) as usize;
        *entries().add(idx) = Entry {
            state: READY,
            database: ev.database,
            seq: h.next_seq,
        };
        std::ptr::copy_nonoverlapping(ev, events().add(idx), 1);
        h.next_seq += 1;
        h.enqueued += 1;
        start_writer = claim_writer_start(h, ev.database);
        if !start_writer && (h.capacity - h.free_top) % WAKE_EVERY == 0 {
            if let Some(w) = h
                .writers
                .iter()
                .find(|w| w.state == 2 && w.database == ev.database)
            {
                wake = w.latch;
            }
        }
    }
    if start_writer {
        launch_writer(ev.database);
    } else if !wake.is_null() {
        // A stale latch (the writer just left) only causes a spurious wake-up of its new owner.
        unsafe { pg_sys::SetLatch(wake) };
    }
    true
}

/// Under the lock: is a writer for `database` running or starting? If not, reserve a slot in
/// state "starting" and tell the caller to launch it.
unsafe fn claim_writer_start(h: &mut Header, database: pg_sys::Oid) -> bool {
    let now = pg_sys::GetCurrentTimestamp();
    let mut free = None;
    for (i, w) in h.writers.iter_mut().enumerate() {
        // A start that never reported in within 10 s failed (whatever its database).
        if w.state == 1 && now - w.since > 10_000_000 {
            w.state = 0;
        }
        if w.state != 0 && w.database == database {
            return false;
        }
        if w.state == 0 && free.is_none() {
            free = Some(i);
        }
    }
    match free {
        Some(i) => {
            h.writers[i] = WriterSlot {
                database,
                state: 1,
                pid: 0,
                since: now,
                attempts: 0,
                latch: std::ptr::null_mut(),
            };
            true
        }
        None => false, // every writer slot is busy; the events wait for one
    }
}

/// Starts a writer for `database` (its slot was claimed as "starting"). On failure (no free
/// background-worker slot) the claim is released: the launcher tries again shortly.
pub fn launch_writer(database: pg_sys::Oid) {
    let started = BackgroundWorkerBuilder::new("tenant_guard audit writer")
        .set_type("tenant_guard audit writer")
        .set_library("tenant_guard")
        .set_function("tenant_guard_audit_writer_main")
        .set_argument(Some(pg_sys::Datum::from(u32::from(database))))
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(std::time::Duration::from_secs(1)))
        .load_dynamic()
        .is_ok();
    if !started {
        unsafe {
            let _lock = Locked::acquire();
            for w in (*HEADER).writers.iter_mut() {
                if w.state == 1 && w.database == database {
                    w.state = 0;
                }
            }
        }
        // Server log only: the refused client has nothing to do about it.
        pgrx::log!(
            "tenant_guard: could not start an audit writer for database {}; its events wait in the queue (raise max_worker_processes)",
            u32::from(database)
        );
    }
}

/// For the launcher: the databases that have queued events but no writer running or starting;
/// each returned database's writer slot is claimed, and the caller must launch it.
pub fn claim_orphaned_databases() -> Vec<pg_sys::Oid> {
    if !available() {
        return Vec::new();
    }
    let mut out = Vec::new();
    unsafe {
        let _lock = Locked::acquire();
        let h = &mut *HEADER;
        for i in 0..h.capacity as usize {
            let e = &*entries().add(i);
            if e.state == READY && !out.contains(&e.database) {
                out.push(e.database);
            }
        }
        out.retain(|db| claim_writer_start(h, *db));
    }
    out
}

/// Called by a writer once connected: marks the database's writer as running.
pub fn writer_started(database: pg_sys::Oid, pid: i32) {
    unsafe {
        let _lock = Locked::acquire();
        let h = &mut *HEADER;
        let running = WriterSlot {
            database,
            state: 2,
            pid,
            since: pg_sys::GetCurrentTimestamp(),
            attempts: 0,
            latch: &raw mut (*pg_sys::MyProc).procLatch,
        };
        if let Some(w) = h
            .writers
            .iter_mut()
            .find(|w| w.state != 0 && w.database == database)
        {
            *w = running;
        } else if let Some(w) = h.writers.iter_mut().find(|w| w.state == 0) {
            *w = running;
        }
        pg_sys::before_shmem_exit(
            Some(writer_exit_callback),
            pg_sys::Datum::from(u32::from(database)),
        );
    }
}

/// Called by a writer before it connects: counts the attempt and returns how many were made.
pub fn writer_connecting(database: pg_sys::Oid) -> u32 {
    unsafe {
        let _lock = Locked::acquire();
        let h = &mut *HEADER;
        let now = pg_sys::GetCurrentTimestamp();
        match h
            .writers
            .iter_mut()
            .find(|w| w.state != 0 && w.database == database)
        {
            Some(w) => {
                w.attempts += 1;
                w.since = now;
                w.attempts
            }
            None => match h.writers.iter_mut().find(|w| w.state == 0) {
                Some(w) => {
                    *w = WriterSlot {
                        database,
                        state: 1,
                        pid: 0,
                        since: now,
                        attempts: 1,
                        latch: std::ptr::null_mut(),
                    };
                    1
                }
                None => 1,
            },
        }
    }
}

/// Drops (and counts) every queued event of `database`, and frees its writer slot.
pub fn discard_database(database: pg_sys::Oid) -> usize {
    unsafe {
        let _lock = Locked::acquire();
        let h = &mut *HEADER;
        let mut n = 0;
        for i in 0..h.capacity as usize {
            let e = &*entries().add(i);
            if e.state == READY && e.database == database {
                free_slot(h, i);
                n += 1;
            }
        }
        h.dropped += n as u64;
        for w in h.writers.iter_mut() {
            if w.database == database {
                w.state = 0;
            }
        }
        n
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn writer_exit_callback(_code: i32, arg: pg_sys::Datum) {
    if HEADER.is_null() {
        return;
    }
    let database = pg_sys::Oid::from(arg.value() as u32);
    let _lock = Locked::acquire();
    let h = &mut *HEADER;
    for w in h.writers.iter_mut() {
        if w.database == database && w.pid == pg_sys::MyProcPid {
            w.state = 0;
        }
    }
    // A writer that dies in the middle of a batch (FATAL) never drops its Batch: free its slots
    // here (only this database's one writer takes its events) and count them as dropped.
    for i in 0..h.capacity as usize {
        let e = &*entries().add(i);
        if e.state == TAKEN && e.database == database {
            free_slot(h, i);
            h.dropped += 1;
        }
    }
}

/// A writer's batch: slots reserved (state TAKEN) under the lock, read without it, and freed
/// when the batch is dropped, whatever happened in between (an error while storing included).
pub struct Batch {
    slots: Vec<u32>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The events, oldest first. Nobody else reads or writes a TAKEN slot.
    pub fn events(&self) -> Vec<&AuditEvent> {
        self.slots
            .iter()
            .map(|&i| unsafe { &*events().add(i as usize) })
            .collect()
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if self.slots.is_empty() || !available() {
            return;
        }
        unsafe {
            let _lock = Locked::acquire();
            let h = &mut *HEADER;
            for &i in &self.slots {
                free_slot(h, i as usize);
            }
        }
    }
}

/// Reserves up to `max` events of `database`, oldest first. When there are none and
/// `leave_if_idle` is set, the writer's slot is released in the same critical section, so that no
/// event can be enqueued in between without starting a new writer.
pub fn take(database: pg_sys::Oid, max: usize, leave_if_idle: bool) -> Batch {
    let mut found: Vec<(u64, u32)> = Vec::new();
    unsafe {
        let _lock = Locked::acquire();
        let h = &mut *HEADER;
        for i in 0..h.capacity as usize {
            let e = &*entries().add(i);
            if e.state == READY && e.database == database {
                found.push((e.seq, i as u32));
            }
        }
        if found.len() > max {
            found.select_nth_unstable(max);
            found.truncate(max);
        }
        for &(_, i) in &found {
            (*entries().add(i as usize)).state = TAKEN;
        }
        if found.is_empty() && leave_if_idle {
            for w in h.writers.iter_mut() {
                if w.database == database && w.pid == pg_sys::MyProcPid {
                    w.state = 0;
                }
            }
        }
    }
    found.sort_unstable();
    Batch {
        slots: found.into_iter().map(|(_, i)| i).collect(),
    }
}

pub fn mark_written(n: usize) {
    unsafe {
        let _lock = Locked::acquire();
        (*HEADER).written += n as u64;
    }
}

/// Counts events that a writer could not store (for example the extension was dropped).
pub fn mark_dropped(n: usize) {
    unsafe {
        let _lock = Locked::acquire();
        (*HEADER).dropped += n as u64;
    }
}

pub struct Stats {
    pub capacity: u64,
    pub depth: u64,
    pub enqueued: u64,
    pub written: u64,
    pub dropped: u64,
    pub denials: [u64; DENIAL_KINDS],
    pub writer_pid: Option<i32>,
}

/// Counters, and the writer of `database` if one runs.
pub fn stats(database: pg_sys::Oid) -> Option<Stats> {
    if !available() {
        return None;
    }
    unsafe {
        let _lock = Locked::acquire();
        let h = &*HEADER;
        Some(Stats {
            capacity: h.capacity as u64,
            depth: (h.capacity - h.free_top) as u64,
            enqueued: h.enqueued,
            written: h.written,
            dropped: h.dropped,
            denials: h.denials,
            writer_pid: h
                .writers
                .iter()
                .find(|w| w.state == 2 && w.database == database)
                .map(|w| w.pid),
        })
    }
}

unsafe extern "C" {
    fn tenant_guard_client_addr() -> *const std::ffi::c_char;
}

/// The client address of this backend (from its connection, without SQL).
pub fn client_addr() -> String {
    unsafe {
        let p = tenant_guard_client_addr();
        if p.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}
