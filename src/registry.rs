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
}

struct Cache {
    registry_oid: pg_sys::Oid,
    entries: FxHashMap<pg_sys::Oid, Entry>,
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
    CACHE.with(|c| c.borrow().as_ref().and_then(|c| c.entries.get(&relid).copied()))
}

/// Forces a rebuild at the next statement (after protect()/unprotect() in this backend).
pub fn mark_stale() {
    STALE.with(|s| s.set(true));
}

/// Reads the registry and every descendant of a registered table.
fn load() -> Cache {
    let Some(registry_oid) = catalog::registry_oid() else {
        return Cache { registry_oid: pg_sys::InvalidOid, entries: FxHashMap::default() };
    };
    let mut entries = FxHashMap::default();
    catalog::as_superuser(|| {
        Spi::connect(|client| {
            let rows = client
                .select(
                    "WITH RECURSIVE tree(relid, registered) AS (
                         SELECT p.relid::pg_catalog.oid, true FROM tenant_guard.protected_tables p
                         UNION
                         SELECT i.inhrelid, false
                           FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.relid)
                     SELECT t.relid, pg_catalog.bool_or(t.registered),
                            pg_catalog.min(p.broad_read_rows), pg_catalog.min(p.max_rows)
                       FROM tree t
                       LEFT JOIN tenant_guard.protected_tables p ON p.relid::pg_catalog.oid = t.relid
                      GROUP BY t.relid",
                    None,
                    &[],
                )
                .unwrap_or_else(|e| panic!("tenant_guard: cannot read the registry: {e}"));
            for row in rows {
                let relid: Option<pg_sys::Oid> = row.get(1).unwrap_or(None);
                let registered: Option<bool> = row.get(2).unwrap_or(None);
                let broad_read_rows: Option<i32> = row.get(3).unwrap_or(None);
                let max_rows: Option<i32> = row.get(4).unwrap_or(None);
                if let Some(relid) = relid {
                    entries.insert(
                        relid,
                        Entry { registered: registered.unwrap_or(false), broad_read_rows, max_rows },
                    );
                }
            }
        })
    });
    Cache { registry_oid, entries }
}
