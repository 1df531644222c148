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

use crate::audit;
use crate::audit_event::EventKind;
use crate::catalog;
use crate::claim;
use crate::guard::{self, RelationFacts};
use crate::leader_claims;
use crate::refusal;
use crate::registry;
use crate::settings::{self, ClaimScope, Enforce};

#[cfg(not(feature = "pg15"))]
compile_error!("tenant_guard's hooks are written against PostgreSQL 15 (ExecutorCheckPerms_hook changed in 16)");

static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_CHECK_PERMS: pg_sys::ExecutorCheckPerms_hook_type = None;
static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;
static mut PREV_EXECUTOR_RUN: pg_sys::ExecutorRun_hook_type = None;
static mut PREV_EXECUTOR_END: pg_sys::ExecutorEnd_hook_type = None;

/// What the guard admitted for one query (keyed by its QueryDesc), for broad reads and row caps.
pub struct Admitted {
    pub relids: Vec<pg_sys::Oid>,
    pub tenant: String,
    pub via_trusted_role: bool,
    pub max_rows: Option<u64>,
    pub broad_read_rows: Option<u64>,
}

thread_local! {
    /// Set while tenant_guard runs its own queries (cache rebuild): they are not guarded.
    static OWN_QUERY: Cell<bool> = const { Cell::new(false) };
    /// Set while ExecutorStart runs for a plain EXPLAIN (no ANALYZE): nothing is read.
    static EXPLAIN_ONLY: Cell<bool> = const { Cell::new(false) };
    /// Set while DECLARE ... WITH HOLD opens its cursor in `claim_scope = transaction`.
    static HOLD_CURSOR: Cell<bool> = const { Cell::new(false) };
    /// The tenant under which this transaction first touched a protected table.
    static TENANT_OF_TRANSACTION: RefCell<Option<String>> = const { RefCell::new(None) };
    /// The command being started (for audit events): "SELECT", "INSERT", "COPY", ...
    static COMMAND: Cell<&'static str> = const { Cell::new("") };
    /// What the last range-table check admitted (taken by ExecutorStart right after).
    static LAST_ADMITTED: RefCell<Option<Admitted>> = const { RefCell::new(None) };
    /// Admitted queries that read protected tables, by QueryDesc address.
    static QUERIES: RefCell<Vec<(usize, Admitted)>> = const { RefCell::new(Vec::new()) };
}

/// Sets the command name for the life of the value.
struct CommandScope(&'static str);
impl CommandScope {
    fn enter(name: &'static str) -> Self {
        CommandScope(COMMAND.with(|c| c.replace(name)))
    }
}
impl Drop for CommandScope {
    fn drop(&mut self) {
        let old = self.0;
        COMMAND.with(|c| c.set(old));
    }
}

fn command_of(operation: pg_sys::CmdType::Type) -> &'static str {
    use pg_sys::CmdType::*;
    match operation {
        CMD_SELECT => "SELECT",
        CMD_INSERT => "INSERT",
        CMD_UPDATE => "UPDATE",
        CMD_DELETE => "DELETE",
        CMD_MERGE => "MERGE",
        _ => "OTHER",
    }
}

/// The admitted-query record of a QueryDesc, if any.
pub fn with_admitted<R>(query_desc: *mut pg_sys::QueryDesc, f: impl FnOnce(&Admitted) -> R) -> Option<R> {
    QUERIES.with(|q| q.borrow().iter().find(|(k, _)| *k == query_desc as usize).map(|(_, a)| f(a)))
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
        PREV_EXECUTOR_RUN = pg_sys::ExecutorRun_hook;
        pg_sys::ExecutorRun_hook = Some(executor_run);
        PREV_EXECUTOR_END = pg_sys::ExecutorEnd_hook;
        pg_sys::ExecutorEnd_hook = Some(executor_end);
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
    }
}

/// ExecutorStart: called once per statement before execution (also for plain EXPLAIN, with
/// EXEC_FLAG_EXPLAIN_ONLY). We only note whether this start is explain-only; the decision is
/// taken in ExecutorCheckPerms, which InitPlan calls with the whole flattened range table.
#[pg_guard]
unsafe extern "C-unwind" fn executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: c_int) {
    let explain_only = eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as c_int != 0;
    let _explain = FlagScope::enter(&EXPLAIN_ONLY, explain_only);
    let _command = CommandScope::enter(command_of((*query_desc).operation));
    LAST_ADMITTED.with(|a| a.borrow_mut().take());
    match PREV_EXECUTOR_START {
        Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(query_desc, eflags)),
        None => pg_sys::standard_ExecutorStart(query_desc, eflags),
    }
    // Tell this statement's parallel workers (if any) what claim this transaction holds.
    let claim = claim::state();
    TENANT_OF_TRANSACTION.with(|t| {
        let valid = if let claim::ClaimState::Valid(v) = claim { Some(v) } else { None };
        leader_claims::publish(valid, t.borrow().as_deref());
    });
    if let Some(admitted) = LAST_ADMITTED.with(|a| a.borrow_mut().take()) {
        if !explain_only && pg_sys::ParallelWorkerNumber < 0 && (*query_desc).operation == pg_sys::CmdType::CMD_SELECT {
            QUERIES.with(|q| q.borrow_mut().push((query_desc as usize, admitted)));
        }
    }
}

/// ExecutorRun: called to produce rows (once per statement, once per FETCH of a cursor). For a
/// SELECT of protected tables under a row cap, the destination is wrapped so that the row past
/// the cap raises an error before it is sent.
#[pg_guard]
unsafe extern "C-unwind" fn executor_run(
    query_desc: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
    execute_once: bool,
) {
    let cap = with_admitted(query_desc, |a| a.max_rows).flatten();
    let _wrapped = cap.map(|cap| crate::row_cap::wrap(query_desc, cap));
    match PREV_EXECUTOR_RUN {
        Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(query_desc, direction, count, execute_once)),
        None => pg_sys::standard_ExecutorRun(query_desc, direction, count, execute_once),
    }
}

/// ExecutorEnd: called once when a query completes normally (not on error). Audits broad reads.
#[pg_guard]
unsafe extern "C-unwind" fn executor_end(query_desc: *mut pg_sys::QueryDesc) {
    let admitted = QUERIES.with(|q| {
        let mut q = q.borrow_mut();
        q.iter().position(|(k, _)| *k == query_desc as usize).map(|i| q.swap_remove(i).1)
    });
    if let Some(a) = admitted {
        let estate = (*query_desc).estate;
        let rows = if estate.is_null() { 0 } else { (*estate).es_processed };
        if guard::is_broad_read(rows, a.broad_read_rows, a.via_trusted_role) {
            let reason = if a.via_trusted_role {
                "trusted_role".to_string()
            } else {
                format!("rows>={}", a.broad_read_rows.unwrap_or(0))
            };
            let names: Vec<String> = a.relids.iter().map(|r| catalog::qualified_name(*r)).collect();
            audit::guard_event(EventKind::BroadRead, &reason, &names, "SELECT", Some(rows as i64), Some(&a.tenant));
        }
    }
    match PREV_EXECUTOR_END {
        Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(query_desc)),
        None => pg_sys::standard_ExecutorEnd(query_desc),
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
        || crate::audit_writer::is_audit_writer()
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
    let mut admitted: Vec<pg_sys::Oid> = Vec::new();
    let mut via_trusted_role = false;
    let (mut broad_overrides, mut cap_overrides) = (Vec::new(), Vec::new());
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
        let mut trusted_used = false;
        // A parallel worker knows its transaction's first tenant only through its leader.
        let switched_in_leader = match claim {
            claim::ClaimState::Valid(v) => leader_claims::leader_view(v).is_some_and(|l| l.switched_tenant),
            _ => false,
        };
        let verdict = TENANT_OF_TRANSACTION.with(|t| {
            let own = t.borrow();
            let earlier = if switched_in_leader { Some(guard::UNKNOWN_EARLIER_TENANT) } else { own.as_deref() };
            guard::judge(
                facts,
                claim,
                earlier,
                || catalog::posture(relid, user),
                || {
                    trusted_used = catalog::is_trusted(user);
                    trusted_used
                },
            )
        });
        match verdict {
            Ok(()) => {
                claim_used = Some(claim);
                via_trusted_role |= trusted_used;
                if !admitted.contains(&relid) {
                    admitted.push(relid);
                    broad_overrides.push(entry.broad_read_rows);
                    cap_overrides.push(entry.max_rows);
                }
            }
            Err(refusal) => {
                let name = catalog::qualified_name(relid);
                let message = refusal::describe(&refusal, &name, &catalog::role_name(user));
                let kind = if mode == Enforce::Shadow { EventKind::WouldDeny } else { EventKind::Denied };
                let tenant = settings::tenant_id_raw().and_then(|c| c.to_str().ok()).filter(|t| !t.is_empty());
                // The event is queued before the error is raised: it outlives the abort.
                audit::guard_event(kind, refusal.code(), &[name], COMMAND.with(|c| c.get()), None, tenant);
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
        LAST_ADMITTED.with(|a| {
            *a.borrow_mut() = Some(Admitted {
                relids: admitted,
                tenant: tenant.to_string(),
                via_trusted_role,
                max_rows: guard::row_limit(settings::max_rows(), cap_overrides),
                broad_read_rows: guard::row_limit(settings::broad_read_rows(), broad_overrides),
            })
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
    let tag = if stmt.is_null() { std::ptr::null() } else { pg_sys::CreateCommandName(stmt) };
    let _command = CommandScope::enter(if tag.is_null() {
        "UTILITY"
    } else {
        std::ffi::CStr::from_ptr(tag).to_str().unwrap_or("UTILITY")
    });
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
        let _ = QUERIES.try_with(|q| {
            if let Ok(mut q) = q.try_borrow_mut() {
                q.clear();
            }
        });
        let _ = LAST_ADMITTED.try_with(|a| {
            if let Ok(mut a) = a.try_borrow_mut() {
                *a = None;
            }
        });
    }
}
