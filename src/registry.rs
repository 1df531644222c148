//! The per-backend cache of protected relations.
//!
//! The executor guard asks `lookup(relid)` for every relation of every statement, so the hot path
//! is one thread-local read and, when anything is protected, one hash probe per relation: no
//! catalog access, no SPI, no allocation.
//!
//! The cache is rebuilt lazily, inside a transaction, after a relcache invalidation of the
//! registry table (sent by protect()/unprotect()), of any cached relation (ALTER, DROP, new
//! partitions of a cached parent), or of everything. PostgreSQL backends are single-threaded
//! processes, so thread-locals need no lock.

use std::cell::{Cell, RefCell};

use pgrx::pg_sys;
use pgrx::prelude::*;
use rustc_hash::FxHashMap;

use crate::catalog;

/// What the cache holds for one relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// In `tenant_guard.protected_tables` (false: only a descendant of a registered table).
    pub registered: bool,
    /// Per-table overrides of `tenant_guard.broad_read_rows` and `tenant_guard.max_rows`.
    pub broad_read_rows: Option<i32>,
    pub max_rows: Option<i32>,
    /// No protected ancestor: dropping it needs unprotect() first (a partition of a protected
    /// table may be dropped; its parent keeps the protection).
    pub root: bool,
}

struct Cache {
    registry_oid: pg_sys::Oid,
    entries: FxHashMap<pg_sys::Oid, Entry>,
    /// The tenant column of each registered table, by name: its attribute number is looked up
    /// only by the DDL checks that need it (`tenant_attnum`), so that loading the cache touches
    /// no per-table catalog entry (10,000 protected tables: 30 ms and 6 MB per backend otherwise).
    tenant_columns: FxHashMap<pg_sys::Oid, std::ffi::CString>,
    exempt: rustc_hash::FxHashSet<pg_sys::Oid>,
}

thread_local! {
    static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
    static STALE: Cell<bool> = const { Cell::new(true) };
    static EMPTY: Cell<bool> = const { Cell::new(true) };
}

/// Registers the relcache callback. Called once, from `_PG_init` under preload.
pub fn init() {
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0usize));
    }
}

/// Relcache invalidation callback: only marks the cache stale (it must not touch catalogs).
#[pg_guard]
unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let _ = CACHE.try_with(|c| {
        let stale = match c.try_borrow() {
            Ok(c) => match c.as_ref() {
                None => true,
                Some(cache) => {
                    relid == pg_sys::InvalidOid
                        || relid == cache.registry_oid
                        || cache.entries.contains_key(&relid)
                }
            },
            Err(_) => true,
        };
        if stale {
            STALE.with(|s| s.set(true));
        }
    });
}

/// Makes sure the cache reflects the registry. Cheap when nothing changed.
pub fn refresh() {
    if !STALE.with(|s| s.get()) {
        return;
    }
    // Invalidations that arrive while we read are kept: they set STALE again.
    STALE.with(|s| s.set(false));
    let cache = load();
    EMPTY.with(|e| e.set(cache.entries.is_empty()));
    CACHE.with(|c| *c.borrow_mut() = Some(cache));
}

/// True when nothing is protected in this database (the guard then does nothing).
#[inline]
pub fn is_empty() -> bool {
    EMPTY.with(|e| e.get())
}

#[inline]
pub fn lookup(relid: pg_sys::Oid) -> Option<Entry> {
    CACHE.with(|c| {
        c.borrow()
            .as_ref()
            .and_then(|c| c.entries.get(&relid).copied())
    })
}

/// Attribute number of a registered table's tenant column (0 when unknown). A catalog look-up:
/// for DDL checks, not for the statement path.
pub fn tenant_attnum(relid: pg_sys::Oid) -> i16 {
    CACHE.with(|c| {
        c.borrow()
            .as_ref()
            .and_then(|c| c.tenant_columns.get(&relid))
            .map_or(0, |column| unsafe {
                pg_sys::get_attnum(relid, column.as_ptr())
            })
    })
}

/// Is the relation in `tenant_guard.exempt_tables`?
pub fn is_exempt(relid: pg_sys::Oid) -> bool {
    CACHE.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|c| c.exempt.contains(&relid))
    })
}

/// Forces a rebuild at the next statement (after protect()/unprotect() in this backend).
pub fn mark_stale() {
    STALE.with(|s| s.set(true));
}

/// Reads the registry and every descendant of a registered table.
///
/// A direct heap scan with the latest snapshot, not SPI: the cache must reflect what is committed
/// now even inside a REPEATABLE READ transaction whose snapshot predates a protect(), and no
/// operator or function is looked up through the session's search_path.
fn load() -> Cache {
    let Some(registry_oid) = catalog::registry_oid() else {
        return Cache {
            registry_oid: pg_sys::InvalidOid,
            entries: FxHashMap::default(),
            tenant_columns: FxHashMap::default(),
            exempt: Default::default(),
        };
    };
    let mut entries = FxHashMap::default();
    let mut tenant_columns = FxHashMap::default();
    let mut exempt = rustc_hash::FxHashSet::default();
    unsafe {
        // A parallel worker may not take a new snapshot; it reads with its leader's.
        let snapshot = if pg_sys::ParallelWorkerNumber >= 0 {
            pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot())
        } else {
            pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot())
        };
        let broad_attnum = pg_sys::get_attnum(registry_oid, c"broad_read_rows".as_ptr()) as i32;
        let cap_attnum = pg_sys::get_attnum(registry_oid, c"max_rows".as_ptr()) as i32;
        scan(registry_oid, snapshot, |tuple, desc| {
            let mut null = false;
            let relid = pg_sys::heap_getattr(tuple, 1, desc, &mut null);
            if null {
                return;
            }
            let relid_oid = pg_sys::Oid::from(relid.value() as u32);
            let column = pg_sys::heap_getattr(tuple, 2, desc, &mut null);
            if !null {
                let name = std::ffi::CStr::from_ptr(column.cast_mut_ptr::<std::ffi::c_char>());
                tenant_columns.insert(relid_oid, name.to_owned());
            }
            let int = |attnum: i32| {
                let mut null = false;
                let d = pg_sys::heap_getattr(tuple, attnum, desc, &mut null);
                (!null && attnum > 0).then(|| d.value() as i32)
            };
            entries.insert(
                relid_oid,
                Entry {
                    registered: true,
                    broad_read_rows: int(broad_attnum),
                    max_rows: int(cap_attnum),
                    root: true,
                },
            );
        });
        // Descendants (partitions and inheritance children) of registered tables.
        let mut children: FxHashMap<pg_sys::Oid, Vec<pg_sys::Oid>> = FxHashMap::default();
        scan(
            pg_sys::Oid::from(INHERITS_RELATION_ID),
            snapshot,
            |tuple, desc| {
                let (mut n1, mut n2) = (false, false);
                let child = pg_sys::heap_getattr(tuple, 1, desc, &mut n1);
                let parent = pg_sys::heap_getattr(tuple, 2, desc, &mut n2);
                if !n1 && !n2 {
                    children
                        .entry(pg_sys::Oid::from(parent.value() as u32))
                        .or_default()
                        .push(pg_sys::Oid::from(child.value() as u32));
                }
            },
        );
        let nsp = pg_sys::get_rel_namespace(registry_oid);
        let exempt_oid = pg_sys::get_relname_relid(c"exempt_tables".as_ptr(), nsp);
        if exempt_oid != pg_sys::InvalidOid {
            scan(exempt_oid, snapshot, |tuple, desc| {
                let mut null = false;
                let relid = pg_sys::heap_getattr(tuple, 1, desc, &mut null);
                if !null {
                    exempt.insert(pg_sys::Oid::from(relid.value() as u32));
                }
            });
        }
        pg_sys::UnregisterSnapshot(snapshot);
        let mut pending: Vec<pg_sys::Oid> = entries.keys().copied().collect();
        let mut visited: rustc_hash::FxHashSet<pg_sys::Oid> = pending.iter().copied().collect();
        while let Some(parent) = pending.pop() {
            for child in children.get(&parent).into_iter().flatten() {
                match entries.get_mut(child) {
                    Some(e) if e.registered => e.root = false,
                    Some(_) => {}
                    None => {
                        entries.insert(
                            *child,
                            Entry {
                                registered: false,
                                broad_read_rows: None,
                                max_rows: None,
                                root: false,
                            },
                        );
                    }
                }
                if visited.insert(*child) {
                    pending.push(*child);
                }
            }
        }
    }
    Cache {
        registry_oid,
        entries,
        tenant_columns,
        exempt,
    }
}

/// pg_inherits
const INHERITS_RELATION_ID: u32 = 2611;

/// Calls `f` for every tuple of a table visible to `snapshot`.
unsafe fn scan(
    relid: pg_sys::Oid,
    snapshot: pg_sys::Snapshot,
    mut f: impl FnMut(pg_sys::HeapTuple, pg_sys::TupleDesc),
) {
    let rel = pg_sys::table_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    let desc = (*rel).rd_att;
    let scan = pg_sys::systable_beginscan(
        rel,
        pg_sys::InvalidOid,
        false,
        snapshot,
        0,
        std::ptr::null_mut(),
    );
    loop {
        let tuple = pg_sys::systable_getnext(scan);
        if tuple.is_null() {
            break;
        }
        f(tuple, desc);
    }
    pg_sys::systable_endscan(scan);
    pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
}
