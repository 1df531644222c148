//! The FFI entry points: where PostgreSQL calls tenant_guard. Each hook gathers facts, asks
//! `guard::judge()`, and chains to the previous hook. Decisions do not live here.
//!
//! Installed only when the library is loaded through `shared_preload_libraries`, so that every
//! backend has them.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void};

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;

use crate::catalog;
use crate::claim;
use crate::guard::{self, RelationFacts};
use crate::refusal;
use crate::registry;
use crate::settings::{self, ClaimScope, Enforce};

#[cfg(not(feature = "pg15"))]
compile_error!("tenant_guard's hooks are written against PostgreSQL 15 (ExecutorCheckPerms_hook changed in 16)");

static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_CHECK_PERMS: pg_sys::ExecutorCheckPerms_hook_type = None;
static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;

thread_local! {
    /// Set while tenant_guard runs its own queries (cache rebuild): they are not guarded.
    static OWN_QUERY: Cell<bool> = const { Cell::new(false) };
    /// Set while ExecutorStart runs for a plain EXPLAIN (no ANALYZE): nothing is read.
    static EXPLAIN_ONLY: Cell<bool> = const { Cell::new(false) };
    /// Set while DECLARE ... WITH HOLD opens its cursor in `claim_scope = transaction`.
    static HOLD_CURSOR: Cell<bool> = const { Cell::new(false) };
    /// The tenant under which this transaction first touched a protected table.
    static TENANT_OF_TRANSACTION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Sets a thread-local flag for the life of the value, restoring the old value on drop (also when
/// a PostgreSQL error unwinds through the frame).
struct FlagScope(&'static std::thread::LocalKey<Cell<bool>>, bool);
impl FlagScope {
    fn enter(key: &'static std::thread::LocalKey<Cell<bool>>, on: bool) -> Self {
        FlagScope(key, key.with(|f| f.replace(on)))
    }
}
impl Drop for FlagScope {
    fn drop(&mut self) {
        let old = self.1;
        self.0.with(|f| f.set(old));
    }
}

pub fn init() {
    unsafe {
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
        PREV_CHECK_PERMS = pg_sys::ExecutorCheckPerms_hook;
        pg_sys::ExecutorCheckPerms_hook = Some(executor_check_perms);
        PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
    }
}

/// ExecutorStart: called once per statement before execution (also for plain EXPLAIN, with
/// EXEC_FLAG_EXPLAIN_ONLY). We only note whether this start is explain-only; the decision is
/// taken in ExecutorCheckPerms, which InitPlan calls with the whole flattened range table.
#[pg_guard]
unsafe extern "C-unwind" fn executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: c_int) {
    let _explain = FlagScope::enter(&EXPLAIN_ONLY, eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as c_int != 0);
    match PREV_EXECUTOR_START {
        Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(query_desc, eflags)),
        None => pg_sys::standard_ExecutorStart(query_desc, eflags),
    }
}

/// ExecutorCheckPerms: called after the standard ACL checks of every range-table entry, by
/// InitPlan (every query, including those inside functions, views and CTEs), by COPY of a table,
/// and by the foreign-key initial check (with `ereport_on_violation = false`). Its result is final.
/// Must never be slow for statements that touch no protected table.
#[pg_guard]
unsafe extern "C-unwind" fn executor_check_perms(range_table: *mut pg_sys::List, ereport: bool) -> bool {
    let ok = match PREV_CHECK_PERMS {
        Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(range_table, ereport)),
        None => true,
    };
    ok && guard_range_table(range_table, ereport)
}

/// Internal work that the guard never blocks (contract, "The guard", item 8).
unsafe fn is_internal_work(ereport: bool) -> bool {
    OWN_QUERY.with(|f| f.get())
        || EXPLAIN_ONLY.with(|f| f.get())
        || !ereport // the foreign-key initial check of ALTER TABLE ... ADD FOREIGN KEY
        || pg_sys::ParallelWorkerNumber >= 0
        || !pg_sys::MyBgworkerEntry.is_null()
        || pg_sys::creating_extension
        || pg_sys::IsBinaryUpgrade
        || pg_sys::InNoForceRLSOperation() // foreign-key checks and cascades
}

unsafe fn guard_range_table(range_table: *mut pg_sys::List, ereport: bool) -> bool {
    let hold_cursor = HOLD_CURSOR.with(|f| f.replace(false));
    let mode = settings::enforce();
    if mode == Enforce::Off || is_internal_work(ereport) {
        return true;
    }
    {
        let _own = FlagScope::enter(&OWN_QUERY, true);
        registry::refresh();
    }
    if registry::is_empty() {
        return true;
    }
    let rtable = PgList::<pg_sys::RangeTblEntry>::from_pg(range_table);
    let mut claim_used = None;
    for rte in rtable.iter_ptr() {
        if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
            continue;
        }
        let relid = (*rte).relid;
        let Some(entry) = registry::lookup(relid) else { continue };
        let facts = RelationFacts {
            registered: entry.registered,
            named_directly: (*rte).requiredPerms != 0,
            hold_cursor_in_transaction_scope: hold_cursor && settings::claim_scope() == ClaimScope::Transaction,
        };
        let user = catalog::effective_user((*rte).checkAsUser);
        let claim = claim::state();
        let verdict = TENANT_OF_TRANSACTION.with(|t| {
            guard::judge(
                facts,
                claim,
                t.borrow().as_deref(),
                || catalog::posture(relid, user),
                || catalog::is_trusted(user),
            )
        });
        match verdict {
            Ok(()) => claim_used = Some(claim),
            Err(refusal) => {
                let message = refusal::describe(&refusal, &catalog::qualified_name(relid), &catalog::role_name(user));
                match mode {
                    Enforce::Shadow => message.warn(),
                    _ => message.raise(),
                }
            }
        }
    }
    if let Some(claim::ClaimState::Valid(tenant)) = claim_used {
        TENANT_OF_TRANSACTION.with(|t| {
            let mut t = t.borrow_mut();
            if t.is_none() {
                *t = Some(tenant.to_string());
            }
        });
    }
    true
}

/// ProcessUtility: called for every utility statement. Here it only notes that a
/// `DECLARE ... WITH HOLD` cursor is being opened, for the check above.
#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    let stmt = (*pstmt).utilityStmt;
    let holdable = !stmt.is_null()
        && (*stmt).type_ == pg_sys::NodeTag::T_DeclareCursorStmt
        && (*(stmt as *mut pg_sys::DeclareCursorStmt)).options & pg_sys::CURSOR_OPT_HOLD as c_int != 0;
    let _hold = FlagScope::enter(&HOLD_CURSOR, holdable);
    match PREV_PROCESS_UTILITY {
        Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| {
            prev(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc)
        }),
        None => pg_sys::standard_ProcessUtility(
            pstmt,
            query_string,
            read_only_tree,
            context,
            params,
            query_env,
            dest,
            qc,
        ),
    }
}

/// End of every top-level transaction: forget its tenant. Must not raise an error.
#[pg_guard]
unsafe extern "C-unwind" fn xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_COMMIT | XACT_EVENT_PARALLEL_ABORT | XACT_EVENT_PREPARE
    ) {
        let _ = TENANT_OF_TRANSACTION.try_with(|t| {
            if let Ok(mut t) = t.try_borrow_mut() {
                *t = None;
            }
        });
        let _ = HOLD_CURSOR.try_with(|f| f.set(false));
    }
}
