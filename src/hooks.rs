//! Where PostgreSQL calls tenant_guard. The hook trampolines are in C (`hooks.c`): they call the
//! previous hook or the standard function from C, so PostgreSQL's errors keep every field. The
//! functions here gather facts, ask `guard::judge()`, raise refusals and record audit events;
//! they never call back into the executor. Decisions do not live here.
//!
//! Installed only when the library is loaded through `shared_preload_libraries`, so that every
//! backend has them.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;

use crate::audit;
use crate::audit_event::EventKind;
use crate::catalog;
use crate::claim::{self, ClaimState};
use crate::guard::{self, Refusal, RelationFacts};
use crate::leader_claims;
use crate::refusal;
use crate::registry;
use crate::settings::{self, ClaimScope, Enforce};
use crate::tamper::{self, Tamper};

#[cfg(not(feature = "pg15"))]
compile_error!("tenant_guard's hooks are written against PostgreSQL 15 (ExecutorCheckPerms_hook changed in 16)");

unsafe extern "C" {
    fn tenant_guard_install_hooks();
}

/// What the guard admitted for one query (keyed by its QueryDesc), for broad reads and row caps.
pub struct Admitted {
    pub relids: Vec<pg_sys::Oid>,
    pub tenant: String,
    pub via_trusted_role: bool,
    pub max_rows: Option<u64>,
    pub broad_read_rows: Option<u64>,
    /// Rows sent by completed ExecutorRun calls (every FETCH of a cursor adds its own).
    pub rows_sent: u64,
    /// Admitted under an admin bypass with this reason: every statement is audited as `bypass`.
    pub bypass_reason: Option<String>,
    /// The bypass event, captured when the statement started.
    pub bypass_event: Option<Box<crate::audit_event::AuditEvent>>,
}

thread_local! {
    /// Set while tenant_guard runs its own queries (cache rebuild): they are not guarded.
    static OWN_QUERY: Cell<bool> = const { Cell::new(false) };
    /// Set while ExecutorStart runs for a plain EXPLAIN (no ANALYZE): nothing is read.
    static EXPLAIN_ONLY: Cell<bool> = const { Cell::new(false) };
    /// The tenant under which this transaction first touched a protected table.
    static TENANT_OF_TRANSACTION: RefCell<Option<String>> = const { RefCell::new(None) };
    /// The command being started (for audit events): "SELECT", "INSERT", "COPY", ...
    static COMMAND: Cell<&'static str> = const { Cell::new("") };
    /// The innermost utility statement in progress ("CREATE TABLE AS", ...), if any.
    static UTILITY_COMMAND: Cell<&'static str> = const { Cell::new("") };
    /// Set while ExecutorStart runs the query of an EXPLAIN ANALYZE itself (not queries nested
    /// in it): its row counts would count other tenants' rows.
    static EXPLAIN_ANALYZE: Cell<bool> = const { Cell::new(false) };
    /// Saved (EXPLAIN_ONLY, COMMAND, UTILITY_COMMAND, EXPLAIN_ANALYZE) of the enclosing
    /// ExecutorStart / ProcessUtility calls.
    static SAVED: RefCell<Vec<(bool, &'static str, &'static str, bool)>> = const { RefCell::new(Vec::new()) };
    /// What the last range-table check admitted (taken by ExecutorStart right after).
    static LAST_ADMITTED: RefCell<Option<Admitted>> = const { RefCell::new(None) };
    /// A COPY under a bypass, emitted with its row count when the COPY ends: (nesting depth, event).
    static PENDING_COPY: RefCell<Option<(usize, Box<crate::audit_event::AuditEvent>)>> = const { RefCell::new(None) };
    /// How many ExecutorRun calls are in progress (queries started inside one are nested).
    static RUN_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Admitted queries that read protected tables, by QueryDesc address.
    static QUERIES: RefCell<Vec<(usize, Admitted)>> = const { RefCell::new(Vec::new()) };
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

/// The tenant under which this transaction first touched a protected table (for explain()).
pub fn tenant_of_transaction() -> Option<String> {
    TENANT_OF_TRANSACTION.with(|t| t.borrow().clone())
}

/// If this transaction was admitted under another tenant than `claim`, that tenant (what the
/// policies' claim functions check on every evaluation).
pub fn switched_from(claim: &str) -> Option<String> {
    if settings::enforce() != Enforce::On {
        return None; // shadow mode reports the switch (would_deny) and lets it run
    }
    let own = TENANT_OF_TRANSACTION.with(|t| {
        t.borrow()
            .as_deref()
            .filter(|t| *t != claim)
            .map(str::to_string)
    });
    if own.is_some() {
        return own;
    }
    leader_claims::leader_view(claim)
        .filter(|l| l.switched_tenant)
        .map(|_| guard::UNKNOWN_EARLIER_TENANT.to_string())
}

/// The admitted-query record of a QueryDesc, if any.
pub fn with_admitted<R>(
    query_desc: *mut pg_sys::QueryDesc,
    f: impl FnOnce(&Admitted) -> R,
) -> Option<R> {
    QUERIES.with(|q| {
        q.borrow()
            .iter()
            .find(|(k, _)| *k == query_desc as usize)
            .map(|(_, a)| f(a))
    })
}

/// Sets a thread-local flag for the life of the value (used around our own queries).
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

fn push_state(
    explain_only: bool,
    command: &'static str,
    utility: Option<&'static str>,
    explain_analyze: bool,
) {
    let old = (
        EXPLAIN_ONLY.with(|f| f.replace(explain_only)),
        COMMAND.with(|c| c.replace(command)),
        UTILITY_COMMAND.with(|c| match utility {
            Some(u) => c.replace(u),
            None => c.get(),
        }),
        EXPLAIN_ANALYZE.with(|f| f.replace(explain_analyze)),
    );
    SAVED.with(|s| s.borrow_mut().push(old));
}

fn pop_state() {
    if let Some((explain_only, command, utility, explain_analyze)) =
        SAVED.with(|s| s.borrow_mut().pop())
    {
        EXPLAIN_ONLY.with(|f| f.set(explain_only));
        COMMAND.with(|c| c.set(command));
        UTILITY_COMMAND.with(|c| c.set(utility));
        EXPLAIN_ANALYZE.with(|f| f.set(explain_analyze));
    }
}

pub fn init() {
    unsafe {
        tenant_guard_install_hooks();
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
    }
}

/// ExecutorStart, before the standard work: notes whether this start is explain-only and which
/// command runs. The decision is taken in ExecutorCheckPerms, called from inside.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn tenant_guard_executor_start_enter(
    query_desc: *mut pg_sys::QueryDesc,
    eflags: c_int,
) {
    let explain_only = eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as c_int != 0;
    // Directly under an EXPLAIN utility statement (not nested in the explained query) and
    // not explain-only: this is EXPLAIN ANALYZE running its query.
    let explain_analyze = !explain_only
        && (*query_desc).instrument_options != 0
        && COMMAND.with(|c| c.get()) == "EXPLAIN";
    push_state(
        explain_only,
        command_of((*query_desc).operation),
        None,
        explain_analyze,
    );
    LAST_ADMITTED.with(|a| a.borrow_mut().take());
    // A query that failed inside a savepoint leaves its record behind; a new query may get the
    // same address.
    QUERIES.with(|q| q.borrow_mut().retain(|(k, _)| *k != query_desc as usize));
}

/// ExecutorStart, always after the standard work (also when it failed): restores the state.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn tenant_guard_executor_start_leave() {
    pop_state();
}

/// ExecutorStart, after success: publishes the claim for parallel workers and keeps what was
/// admitted for ExecutorRun (row cap, claim still the same) and ExecutorEnd (broad reads).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn tenant_guard_executor_start_done(
    query_desc: *mut pg_sys::QueryDesc,
    eflags: c_int,
) {
    if !registry::is_empty() {
        let claim = claim::state();
        TENANT_OF_TRANSACTION.with(|t| {
            let valid = if let ClaimState::Valid(v) = claim {
                Some(v)
            } else {
                None
            };
            let user = pg_sys::GetUserId();
            let bypass = crate::bypass::active_for(user).map(|r| (user, r));
            leader_claims::publish(valid, t.borrow().as_deref(), bypass);
        });
    }
    let explain_only = eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as c_int != 0;
    if let Some(mut admitted) = LAST_ADMITTED.with(|a| a.borrow_mut().take()) {
        // Reads that are audited whatever happens (a bypass, a trusted role) capture their event
        // now, so that a statement that fails, or a cursor whose transaction rolls back, is
        // still recorded (without catalog look-ups at that point).
        let always_audited = match (&admitted.bypass_reason, admitted.via_trusted_role) {
            (Some(reason), _) => Some((EventKind::Bypass, reason.clone())),
            (None, true) => Some((EventKind::BroadRead, "trusted_role".to_string())),
            _ => None,
        };
        if let Some((kind, reason)) = always_audited {
            let names: Vec<String> = admitted
                .relids
                .iter()
                .map(|r| catalog::qualified_name(*r))
                .collect();
            let command = command_of((*query_desc).operation);
            let mut ev = audit::capture_for_later(kind, &reason, &names, command);
            if kind == EventKind::BroadRead {
                ev.tenant.set(&admitted.tenant, 256);
            }
            admitted.bypass_event = Some(ev);
        }
        let keep = (*query_desc).operation == pg_sys::CmdType::CMD_SELECT
            || admitted.bypass_reason.is_some();
        // Parallel workers record only what is always audited (their leader cannot see the
        // queries they run inside functions); broad reads by row count are the leader's.
        let in_worker = pg_sys::ParallelWorkerNumber >= 0;
        // (A worker's outermost query is its share of the leader's plan: the leader audits that.)
        let nested = RUN_DEPTH.with(|d| d.get()) > 0;
        if !explain_only && keep && (!in_worker || (admitted.bypass_event.is_some() && nested)) {
            QUERIES.with(|q| q.borrow_mut().push((query_desc as usize, admitted)));
        }
    }
}

/// ExecutorCheckPerms (after the previous hook): the executor guard. See `guard_range_table`.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn tenant_guard_check_range_table(
    range_table: *mut pg_sys::List,
    ereport: bool,
) -> bool {
    guard_range_table(range_table, ereport)
}

/// ExecutorRun, before producing rows (each FETCH of a cursor too): a query admitted under one
/// tenant may only run while that tenant is still the claim. Returns the row cap (0 = none).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn tenant_guard_executor_run_cap(
    query_desc: *mut pg_sys::QueryDesc,
    already_sent: *mut u64,
) -> u64 {
    let Some((tenant, cap, relid, sent, bypass)) = with_admitted(query_desc, |a| {
        (
            a.tenant.clone(),
            a.max_rows,
            a.relids.first().copied(),
            a.rows_sent,
            a.bypass_reason.is_some(),
        )
    }) else {
        return 0;
    };
    if bypass {
        return 0;
    }
    *already_sent = sent;
    let refusal = match claim::state() {
        ClaimState::Valid(now) if now == tenant => None,
        ClaimState::Valid(now) => Some(Refusal::TenantSwitch {
            from: tenant.clone(),
            to: now.to_string(),
        }),
        ClaimState::Unset => Some(Refusal::NoClaim { stale: false }),
        ClaimState::Stale => Some(Refusal::NoClaim { stale: true }),
    };
    if let (Some(refusal), Some(relid)) = (refusal, relid) {
        report_refusal(&refusal, relid, &[], pg_sys::GetUserId(), "FETCH");
    }
    cap.unwrap_or(0)
}

/// ExecutorRun nesting, counted by the C trampoline around the standard work.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn tenant_guard_run_depth(delta: c_int) {
    RUN_DEPTH.with(|d| d.set((d.get() as i64 + delta as i64).max(0) as u32));
}

/// ExecutorRun, after success: adds this call's rows to the query's total.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn tenant_guard_executor_run_done(
    query_desc: *mut pg_sys::QueryDesc,
    rows: u64,
) {
    QUERIES.with(|q| {
        if let Some((_, a)) = q
            .borrow_mut()
            .iter_mut()
            .find(|(k, _)| *k == query_desc as usize)
        {
            a.rows_sent += rows;
        }
    });
}

/// ExecutorRun failed (called from C inside PG_CATCH, just before the error goes on): a statement
/// under a bypass is audited with the rows it produced. Only queue and log work here.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn tenant_guard_executor_run_failed(
    query_desc: *mut pg_sys::QueryDesc,
) {
    let admitted = QUERIES.with(|q| {
        let mut q = q.borrow_mut();
        q.iter()
            .position(|(k, _)| *k == query_desc as usize)
            .map(|i| q.swap_remove(i).1)
    });
    let Some(a) = admitted else { return };
    if let Some(mut ev) = a.bypass_event {
        let estate = (*query_desc).estate;
        let now = if estate.is_null() {
            0
        } else {
            (*estate).es_processed
        };
        ev.rows = (a.rows_sent + now) as i64;
        audit::emit(&ev);
    }
}

/// The row cap was reached: audit and refuse the row past it (54000).
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn tenant_guard_row_cap_exceeded(
    query_desc: *mut pg_sys::QueryDesc,
    cap: u64,
    sent: u64,
) {
    let (names, tenant) = with_admitted(query_desc, |a| {
        (
            a.relids
                .iter()
                .map(|r| catalog::qualified_name(*r))
                .collect::<Vec<_>>(),
            a.tenant.clone(),
        )
    })
    .unwrap_or_default();
    audit::guard_event(
        EventKind::RowCap,
        &format!("max_rows={cap}"),
        &names,
        "SELECT",
        Some(sent as i64 + 1),
        Some(&tenant),
    );
    refusal::raise(
        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        format!("statement returns more than {cap} rows from protected table {}", names.join(", ")),
        Some("tenant_guard.max_rows caps the rows one statement may return from protected tables.".into()),
        "Paginate: add ORDER BY and LIMIT (with a keyset or OFFSET) and fetch the rest in further statements.".into(),
    )
}

/// ExecutorEnd (before the standard work): audits broad reads.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn tenant_guard_executor_end(query_desc: *mut pg_sys::QueryDesc) {
    let admitted = QUERIES.with(|q| {
        let mut q = q.borrow_mut();
        q.iter()
            .position(|(k, _)| *k == query_desc as usize)
            .map(|i| q.swap_remove(i).1)
    });
    let Some(a) = admitted else { return };
    let rows = a.rows_sent;
    if let Some(mut ev) = a.bypass_event {
        ev.rows = rows as i64;
        audit::emit(&ev);
        return;
    }
    if guard::is_broad_read(rows, a.broad_read_rows, a.via_trusted_role) {
        let reason = if a.via_trusted_role {
            "trusted_role".to_string()
        } else {
            format!("rows>={}", a.broad_read_rows.unwrap_or(0))
        };
        let names: Vec<String> = a
            .relids
            .iter()
            .map(|r| catalog::qualified_name(*r))
            .collect();
        audit::guard_event(
            EventKind::BroadRead,
            &reason,
            &names,
            "SELECT",
            Some(rows as i64),
            Some(&a.tenant),
        );
    }
}

/// ProcessUtility, before the standard work: notes the command tag for audit events.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn tenant_guard_utility_enter(pstmt: *mut pg_sys::PlannedStmt) {
    let stmt = (*pstmt).utilityStmt;
    let tag = if stmt.is_null() {
        std::ptr::null()
    } else {
        pg_sys::CreateCommandName(stmt)
    };
    let command = if tag.is_null() {
        "UTILITY"
    } else {
        std::ffi::CStr::from_ptr(tag).to_str().unwrap_or("UTILITY")
    };
    push_state(
        EXPLAIN_ONLY.with(|f| f.get()),
        command,
        Some(command),
        false,
    );
    check_utility_tampering(stmt, command);
    // REASSIGN OWNED changes table owners without ALTER TABLE ... OWNER TO.
    if !stmt.is_null()
        && (*stmt).type_ == pg_sys::NodeTag::T_ReassignOwnedStmt
        && tamper_guard_applies()
    {
        let reassign = stmt as *mut pg_sys::ReassignOwnedStmt;
        let roles: Vec<pg_sys::Oid> = PgList::<pg_sys::RoleSpec>::from_pg((*reassign).roles)
            .iter_ptr()
            .map(|r| pg_sys::get_rolespec_oid(r, true))
            .filter(|r| *r != pg_sys::InvalidOid)
            .collect();
        if let Some(relid) = protected_table_owned_by(&roles) {
            judge_tampering(relid, Tamper::ChangeOwner, command);
        }
    }
    // ALTER TABLE ... SET SCHEMA may move a tenant-scoped table into a watched schema.
    if !stmt.is_null() && (*stmt).type_ == pg_sys::NodeTag::T_AlterObjectSchemaStmt {
        let moved = stmt as *mut pg_sys::AlterObjectSchemaStmt;
        if (*moved).objectType == pg_sys::ObjectType::OBJECT_TABLE {
            let relid = relid_of((*moved).relation);
            if relid != pg_sys::InvalidOid {
                crate::new_tables::table_moved(relid);
            }
        }
    }
}

/// ProcessUtility, always after the standard work (`qc` is NULL when it failed): emits a pending
/// COPY bypass event with its row count, and restores the state.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn tenant_guard_utility_leave(qc: *mut pg_sys::QueryCompletion) {
    let depth = SAVED.with(|s| s.borrow().len());
    let pending = PENDING_COPY.with(|p| {
        let mut p = p.borrow_mut();
        if p.as_ref().is_some_and(|(d, _)| *d == depth) {
            p.take()
        } else {
            None
        }
    });
    if let Some((_, mut ev)) = pending {
        ev.rows = if qc.is_null() {
            -1
        } else {
            (*qc).nprocessed as i64
        };
        audit::emit(&ev);
    }
    pop_state();
}

/// Is the tamper guard on for this statement? (Off for the helpers' own DDL, internal work, and
/// enforce = off.)
unsafe fn tamper_guard_applies() -> bool {
    settings::enforce() != Enforce::Off
        && !tamper::in_helper()
        && !crate::audit_writer::is_audit_writer()
        && !pg_sys::creating_extension
        && !pg_sys::IsBinaryUpgrade
        && pg_sys::IsTransactionState()
}

/// Refuses (or, under a bypass, audits) one tampering change to a protected table.
unsafe fn judge_tampering(relid: pg_sys::Oid, change: Tamper, command: &str) {
    let user = pg_sys::GetUserId();
    if let Some(reason) = current_bypass() {
        let name = catalog::qualified_name(relid);
        audit::guard_event(EventKind::Bypass, &reason, &[name], command, None, None);
        return;
    }
    report_refusal(&Refusal::Tamper(change), relid, &[], user, command);
}

unsafe fn relid_of(rv: *mut pg_sys::RangeVar) -> pg_sys::Oid {
    if rv.is_null() {
        return pg_sys::InvalidOid;
    }
    pg_sys::RangeVarGetRelidExtended(
        rv,
        pg_sys::NoLock as pg_sys::LOCKMODE,
        pg_sys::RVROption::RVR_MISSING_OK,
        None,
        std::ptr::null_mut(),
    )
}

unsafe fn is_tenant_column(
    relid: pg_sys::Oid,
    entry: &registry::Entry,
    column: *const std::ffi::c_char,
) -> bool {
    if column.is_null() || !entry.registered {
        return false;
    }
    let attnum = registry::tenant_attnum(relid);
    attnum > 0 && pg_sys::get_attnum(relid, column) == attnum
}

/// Finds, in one utility statement, the changes that would weaken a protected table:
/// ALTER TABLE (row security off, owner, tenant column type, detaching an unprotected
/// partition), renaming the tenant column, and creating, altering, renaming or dropping a policy.
/// TRUNCATE and DROP are judged in the object-access hook, which sees every route to them.
#[allow(non_upper_case_globals)]
unsafe fn check_utility_tampering(stmt: *mut pg_sys::Node, command: &'static str) {
    if stmt.is_null() {
        return;
    }
    // Only the statements that can tamper look at the registry (reading it takes a snapshot,
    // which must not happen before, say, SET TRANSACTION ISOLATION LEVEL).
    use pg_sys::NodeTag::*;
    if !matches!(
        (*stmt).type_,
        T_AlterTableStmt | T_RenameStmt | T_CreatePolicyStmt | T_AlterPolicyStmt | T_DropStmt
    ) || !tamper_guard_applies()
    {
        return;
    }
    registry::refresh();
    if registry::is_empty() {
        return;
    }
    let protected = |relid: pg_sys::Oid| registry::lookup(relid).filter(|e| e.registered);
    match (*stmt).type_ {
        pg_sys::NodeTag::T_AlterTableStmt => {
            let alter = stmt as *mut pg_sys::AlterTableStmt;
            let relid = relid_of((*alter).relation);
            // A protected table put under an unprotected parent: the parent's queries would read
            // its rows without its policies.
            for cmd in PgList::<pg_sys::AlterTableCmd>::from_pg((*alter).cmds).iter_ptr() {
                use pg_sys::AlterTableType::*;
                let (child, parent) = match (*cmd).subtype {
                    AT_AttachPartition => {
                        let part = (*cmd).def as *mut pg_sys::PartitionCmd;
                        (
                            if part.is_null() {
                                pg_sys::InvalidOid
                            } else {
                                relid_of((*part).name)
                            },
                            relid,
                        )
                    }
                    AT_AddInherit => (relid, relid_of((*cmd).def as *mut pg_sys::RangeVar)),
                    _ => continue,
                };
                if child != pg_sys::InvalidOid
                    && parent != pg_sys::InvalidOid
                    && protected(child).is_some()
                    && registry::lookup(parent).is_none()
                {
                    judge_tampering(child, Tamper::AttachToUnprotectedParent, command);
                }
            }
            let Some(entry) = protected(relid) else {
                return;
            };
            for cmd in PgList::<pg_sys::AlterTableCmd>::from_pg((*alter).cmds).iter_ptr() {
                use pg_sys::AlterTableType::*;
                let change = match (*cmd).subtype {
                    AT_DisableRowSecurity => Some(Tamper::DisableRowSecurity),
                    AT_NoForceRowSecurity => Some(Tamper::NoForceRowSecurity),
                    AT_ChangeOwner => Some(Tamper::ChangeOwner),
                    AT_AlterColumnType if is_tenant_column(relid, &entry, (*cmd).name) => {
                        Some(Tamper::RetypeTenantColumn)
                    }
                    AT_DropColumn if is_tenant_column(relid, &entry, (*cmd).name) => {
                        Some(Tamper::DropTenantColumn)
                    }
                    AT_DropNotNull if is_tenant_column(relid, &entry, (*cmd).name) => {
                        Some(Tamper::NullableTenantColumn)
                    }
                    AT_DetachPartition => {
                        let part = (*cmd).def as *mut pg_sys::PartitionCmd;
                        let child = if part.is_null() {
                            pg_sys::InvalidOid
                        } else {
                            relid_of((*part).name)
                        };
                        (child != pg_sys::InvalidOid && protected(child).is_none())
                            .then_some(Tamper::DetachUnprotectedPartition)
                    }
                    _ => None,
                };
                if let Some(change) = change {
                    judge_tampering(relid, change, command);
                }
            }
        }
        pg_sys::NodeTag::T_RenameStmt => {
            let rename = stmt as *mut pg_sys::RenameStmt;
            let relid = relid_of((*rename).relation);
            let Some(entry) = protected(relid) else {
                return;
            };
            match (*rename).renameType {
                pg_sys::ObjectType::OBJECT_COLUMN
                    if is_tenant_column(relid, &entry, (*rename).subname) =>
                {
                    judge_tampering(relid, Tamper::RenameTenantColumn, command)
                }
                pg_sys::ObjectType::OBJECT_POLICY => {
                    judge_tampering(relid, Tamper::AlterPolicy, command)
                }
                _ => {}
            }
        }
        pg_sys::NodeTag::T_CreatePolicyStmt => {
            let relid = relid_of((*(stmt as *mut pg_sys::CreatePolicyStmt)).table);
            if protected(relid).is_some() {
                judge_tampering(relid, Tamper::CreatePolicy, command);
            }
        }
        pg_sys::NodeTag::T_AlterPolicyStmt => {
            let relid = relid_of((*(stmt as *mut pg_sys::AlterPolicyStmt)).table);
            if protected(relid).is_some() {
                judge_tampering(relid, Tamper::AlterPolicy, command);
            }
        }
        pg_sys::NodeTag::T_DropStmt => {
            let drop = stmt as *mut pg_sys::DropStmt;
            if (*drop).removeType != pg_sys::ObjectType::OBJECT_POLICY {
                return;
            }
            // Each object is a name list: [schema.]table.policy
            for names in PgList::<pg_sys::List>::from_pg((*drop).objects).iter_ptr() {
                let len = PgList::<pg_sys::Node>::from_pg(names).len();
                if len < 2 {
                    continue;
                }
                let table = pg_sys::list_truncate(pg_sys::list_copy(names), (len - 1) as i32);
                let relid = relid_of(pg_sys::makeRangeVarFromNameList(table));
                if protected(relid).is_some() {
                    judge_tampering(relid, Tamper::DropPolicy, command);
                }
            }
        }
        _ => {}
    }
}

/// Object access (OAT_DROP, OAT_TRUNCATE of relations): called for every object PostgreSQL
/// drops or truncates, whatever the route (DROP ... CASCADE, DROP SCHEMA, DROP OWNED, TRUNCATE
/// ... CASCADE, partitions). Refuses dropping a protected root table or its tenant column, and
/// truncating any protected table.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn tenant_guard_object_access(
    truncate: bool,
    relid: pg_sys::Oid,
    sub_id: c_int,
    internal: bool,
) {
    if internal || !tamper_guard_applies() {
        return;
    }
    registry::refresh();
    let Some(entry) = registry::lookup(relid).filter(|e| e.registered) else {
        return;
    };
    let command = COMMAND.with(|c| c.get());
    if truncate {
        judge_tampering(relid, Tamper::Truncate, command);
    } else if sub_id == 0 && entry.root {
        judge_tampering(relid, Tamper::DropTable, command);
    } else if sub_id > 0 && sub_id as i16 == registry::tenant_attnum(relid) {
        judge_tampering(relid, Tamper::DropTenantColumn, command);
    }
}

/// A protected root table owned by one of `roles`, if any.
unsafe fn protected_table_owned_by(roles: &[pg_sys::Oid]) -> Option<pg_sys::Oid> {
    if roles.is_empty() {
        return None;
    }
    let owners: Vec<pg_sys::Oid> = roles.to_vec();
    Spi::connect(|c| {
        let rows = c
            .select(
                "SELECT c.oid FROM tenant_guard.protected_tables p
                   JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.relid::pg_catalog.oid
                  WHERE c.relowner OPERATOR(pg_catalog.=) ANY ($1) LIMIT 1",
                None,
                &[owners.into()],
            )
            .ok()?;
        for row in rows {
            return row.get::<pg_sys::Oid>(1).ok().flatten();
        }
        None
    })
}

/// Is a holdable cursor being opened or persisted right now? Its rows would outlive the claim.
unsafe fn in_holdable_cursor() -> bool {
    let portal = pg_sys::ActivePortal;
    !portal.is_null() && (*portal).cursorOptions & pg_sys::CURSOR_OPT_HOLD as c_int != 0
}

/// Audits and raises (or, in shadow mode, warns about) a refusal of the guard.
/// Raises (or, in shadow mode, warns about) a refusal concerning `relid`, after queueing its
/// audit event. `involved` are the other protected tables of the statement: the event names them
/// too (the message names the table refused).
unsafe fn report_refusal(
    refusal: &Refusal,
    relid: pg_sys::Oid,
    involved: &[pg_sys::Oid],
    user: pg_sys::Oid,
    command: &str,
) {
    let mode = settings::enforce();
    let name = catalog::qualified_name(relid);
    let mut names = vec![name.clone()];
    for other in involved {
        if *other != relid {
            let n = catalog::qualified_name(*other);
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    let message = refusal::describe(refusal, &name, &catalog::role_name(user));
    let kind = match (mode, refusal) {
        (Enforce::Shadow, _) => EventKind::WouldDeny,
        (_, Refusal::Tamper(_)) => EventKind::Tamper,
        _ => EventKind::Denied,
    };
    let tenant = settings::tenant_id_raw()
        .and_then(|c| c.to_str().ok())
        .filter(|t| !t.is_empty());
    // The event is queued before the error is raised: it outlives the abort.
    audit::guard_event(kind, refusal.code(), &names, command, None, tenant);
    match mode {
        Enforce::Shadow => message.warn(),
        _ => message.raise(),
    }
}

/// Internal work that the guard never blocks (contract, "The guard", item 8).
unsafe fn is_internal_work() -> bool {
    OWN_QUERY.with(|f| f.get())
        || EXPLAIN_ONLY.with(|f| f.get())
        || crate::audit_writer::is_audit_writer()
        || pg_sys::creating_extension
        || pg_sys::IsBinaryUpgrade
        || pg_sys::InNoForceRLSOperation() // foreign-key checks and cascades
}

unsafe fn guard_range_table(range_table: *mut pg_sys::List, ereport: bool) -> bool {
    let mode = settings::enforce();
    if mode == Enforce::Off || is_internal_work() {
        return true;
    }
    {
        let _own = FlagScope::enter(&OWN_QUERY, true);
        registry::refresh();
    }
    if !ereport {
        // The foreign-key initial check of ALTER TABLE ... ADD/VALIDATE FOREIGN KEY runs its
        // query as the owner with row security in force, so policies would hide rows from it.
        // Answering "no" makes PostgreSQL validate row by row through its foreign-key triggers,
        // which run without forced row security and are complete.
        let rtable = PgList::<pg_sys::RangeTblEntry>::from_pg(range_table);
        let touches_protected = rtable.iter_ptr().any(|rte| {
            (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                && registry::lookup((*rte).relid).is_some()
        });
        return !touches_protected;
    }
    if registry::is_empty() {
        return true;
    }
    let hold_cursor = in_holdable_cursor();
    let copies_into_unprotected = copying_utility();
    // EXPLAIN runs the query only with ANALYZE (plain EXPLAIN never reaches this check).
    let explain_analyze = EXPLAIN_ANALYZE.with(|f| f.get());
    let bypass_reason = current_bypass();
    let rtable = PgList::<pg_sys::RangeTblEntry>::from_pg(range_table);
    let mut claim_used = None;
    let mut admitted: Vec<pg_sys::Oid> = Vec::new();
    let mut via_trusted_role = false;
    let mut refused: Vec<pg_sys::Oid> = Vec::new();
    let mut reads = false;
    let (mut broad_overrides, mut cap_overrides) = (Vec::new(), Vec::new());
    for rte in rtable.iter_ptr() {
        if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
            continue;
        }
        let relid = (*rte).relid;
        let Some(entry) = registry::lookup(relid) else {
            continue;
        };
        let facts = RelationFacts {
            registered: entry.registered,
            named_directly: (*rte).requiredPerms != 0,
            // A holdable cursor's rows outlive the transaction's claim, and a bypass too.
            hold_cursor_in_transaction_scope: hold_cursor
                && (settings::claim_scope() == ClaimScope::Transaction || bypass_reason.is_some()),
            copies_into_unprotected,
            in_bypass: bypass_reason.is_some(),
            explain_analyze,
        };
        let user = catalog::effective_user((*rte).checkAsUser);
        let claim = claim::state();
        let mut trusted_used = false;
        // A parallel worker knows its transaction's first tenant only through its leader.
        let switched_in_leader = match claim {
            ClaimState::Valid(v) => {
                leader_claims::leader_view(v).is_some_and(|l| l.switched_tenant)
            }
            _ => false,
        };
        let verdict = TENANT_OF_TRANSACTION.with(|t| {
            let own = t.borrow();
            let earlier = if switched_in_leader {
                Some(guard::UNKNOWN_EARLIER_TENANT)
            } else {
                own.as_deref()
            };
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
                reads |= (*rte).requiredPerms & pg_sys::ACL_SELECT as pg_sys::AclMode != 0;
                if !admitted.contains(&relid) {
                    admitted.push(relid);
                    broad_overrides.push(entry.broad_read_rows);
                    cap_overrides.push(entry.max_rows);
                }
            }
            Err(refusal) => {
                // Shadow mode goes on after a refusal: one warning per table and statement.
                if !refused.contains(&relid) {
                    refused.push(relid);
                    let command = match refusal {
                        Refusal::Tamper(Tamper::CopyIntoUnprotected(utility)) => utility,
                        _ => COMMAND.with(|c| c.get()),
                    };
                    // In shadow mode every refused table gets its own event; a refusal
                    // names the refused table and every protected root table of the statement
                    // (not each partition the planner expanded).
                    let involved: Vec<pg_sys::Oid> = if settings::enforce() == Enforce::Shadow {
                        Vec::new()
                    } else {
                        rtable
                            .iter_ptr()
                            .filter(|rte| {
                                (**rte).rtekind == pg_sys::RTEKind::RTE_RELATION
                                    && registry::lookup((**rte).relid).is_some_and(|e| e.root)
                            })
                            .map(|rte| (*rte).relid)
                            .collect()
                    };
                    report_refusal(&refusal, relid, &involved, user, command);
                }
            }
        }
    }
    if admitted.is_empty() {
        return true;
    }
    let tenant = match claim_used {
        Some(ClaimState::Valid(t)) if bypass_reason.is_none() => Some(t),
        _ => None,
    };
    if let Some(tenant) = tenant {
        TENANT_OF_TRANSACTION.with(|t| {
            let mut t = t.borrow_mut();
            if t.is_none() {
                *t = Some(tenant.to_string());
            }
        });
    }
    let copy_audit = match (&bypass_reason, via_trusted_role) {
        (Some(reason), _) => Some((EventKind::Bypass, reason.clone())),
        // COPY ... FROM writes; only COPY ... TO is a read
        (None, true) if reads => Some((EventKind::BroadRead, "trusted_role".to_string())),
        _ => None,
    };
    if let Some((kind, reason)) = copy_audit {
        if COMMAND.with(|c| c.get()) == "COPY" {
            // COPY of a table reads it without the executor: audit it when the COPY ends, with
            // its row count.
            let names: Vec<String> = admitted
                .iter()
                .map(|r| catalog::qualified_name(*r))
                .collect();
            let mut ev = audit::capture_for_later(kind, &reason, &names, "COPY");
            if let Some(t) = tenant {
                ev.tenant.set(t, 256);
            }
            let depth = SAVED.with(|s| s.borrow().len());
            PENDING_COPY.with(|p| *p.borrow_mut() = Some((depth, ev)));
            return true;
        }
    }
    if tenant.is_some() || bypass_reason.is_some() {
        LAST_ADMITTED.with(|a| {
            *a.borrow_mut() = Some(Admitted {
                relids: admitted,
                tenant: tenant.unwrap_or_default().to_string(),
                via_trusted_role,
                max_rows: if bypass_reason.is_some() {
                    None
                } else {
                    guard::row_limit(settings::max_rows(), cap_overrides)
                },
                broad_read_rows: guard::row_limit(settings::broad_read_rows(), broad_overrides),
                rows_sent: 0,
                bypass_reason: bypass_reason.clone(),
                bypass_event: None,
            })
        });
    }
    true
}

/// The reason of the bypass the current role runs under, if any (a parallel worker asks its
/// leader, since the bypass setting is not passed to workers).
unsafe fn current_bypass() -> Option<String> {
    let user = pg_sys::GetUserId();
    if pg_sys::ParallelWorkerNumber >= 0 {
        return leader_claims::leader_bypass()
            .filter(|(u, _)| *u == user)
            .map(|(_, reason)| reason);
    }
    crate::bypass::active_for(user).map(str::to_string)
}

/// The utility statement in progress, when it copies what it reads into a new relation.
fn copying_utility() -> Option<&'static str> {
    match UTILITY_COMMAND.with(|c| c.get()) {
        c @ ("CREATE TABLE AS"
        | "SELECT INTO"
        | "CREATE MATERIALIZED VIEW"
        | "REFRESH MATERIALIZED VIEW") => Some(c),
        _ => None,
    }
}

/// End of every top-level transaction: forget its tenant. Must not raise an error.
#[pg_guard]
unsafe extern "C-unwind" fn xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_COMMIT
            | XACT_EVENT_ABORT
            | XACT_EVENT_PARALLEL_COMMIT
            | XACT_EVENT_PARALLEL_ABORT
            | XACT_EVENT_PREPARE
    ) {
        let _ = TENANT_OF_TRANSACTION.try_with(|t| {
            if let Ok(mut t) = t.try_borrow_mut() {
                *t = None;
            }
        });
        let _ = RUN_DEPTH.try_with(|d| d.set(0));
        let _ = QUERIES.try_with(|q| {
            if let Ok(mut q) = q.try_borrow_mut() {
                // Cursors of an aborted transaction never reach ExecutorEnd: their always-audited
                // reads are recorded now (queue and log only, no catalog access).
                if event == XACT_EVENT_ABORT {
                    for (_, a) in q.drain(..) {
                        if let Some(mut ev) = a.bypass_event {
                            ev.rows = a.rows_sent as i64;
                            audit::emit(&ev);
                        }
                    }
                }
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
