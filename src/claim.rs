//! The tenant claim: `tenant_guard.tenant_id` and the functions around it.
//!
//! Claim hygiene lives here. The claim is an ordinary string setting, but every value carries a
//! small "extra" record (PostgreSQL's GUC `extra` mechanism) stamped with the local transaction id
//! in which the value was set. PostgreSQL keeps a value and its extra together through `SET`,
//! `SET LOCAL`, savepoint rollback, function `SET` clauses and `RESET`, so when an older value is
//! restored its old stamp comes back with it. In `claim_scope = transaction` a claim counts only
//! when its stamp is the current transaction: a session-level value left behind on a pooled
//! connection, or an old value restored by a function exit, is treated as unset.
//!
//! The check hook also refuses claims from places that are not the application's own session:
//! postgresql.conf, `ALTER ROLE/DATABASE ... SET` (validated with source "test"), connection
//! options, and function `SET` clauses (validated the same way when the function is created).

use std::ffi::{c_char, c_void, CStr};

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::refusal;
use crate::settings::{self, ClaimScope};

/// Longest accepted claim, in bytes.
pub const MAX_CLAIM_BYTES: usize = 256;

/// What PostgreSQL keeps beside each value of `tenant_guard.tenant_id`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ClaimStamp {
    /// Local transaction id current when the value was set (0 = none or unknown).
    lxid: u32,
}

thread_local! {
    /// Set while set_tenant_token() sets the claim (the one route allowed by require_token).
    static TOKEN_SETTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The tenant last derived from PostgREST's request.jwt.claims: (claims text, tenant).
    static JWT_TENANT: std::cell::RefCell<(String, Option<String>)> = const { std::cell::RefCell::new((String::new(), None)) };
}

/// The stamp of the value currently in force (owned by the GUC machinery).
static mut CURRENT_STAMP: *const ClaimStamp = std::ptr::null();

/// While `_PG_init` defines the setting, PostgreSQL re-applies any value that was set before the
/// library was loaded (a placeholder). Such a value counts as set in the current transaction only
/// when the placeholder has a transaction stack entry, i.e. it was changed in this transaction;
/// otherwise it is stamped stale (0).
static mut DEFINING: Option<u32> = None;

/// The claim as the guard sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState<'a> {
    /// Not set, or set to the empty string.
    Unset,
    /// Set in an earlier transaction while `claim_scope = transaction`.
    Stale,
    /// Set and in force for this statement.
    Valid(&'a str),
}

/// Pure decision: is a claim value in force? (In a parallel worker the caller passes the
/// leader's verdict as the stamp.)
pub fn evaluate<'a>(
    value: Option<&'a str>,
    scope: ClaimScope,
    stamp_lxid: u32,
    current_lxid: u32,
) -> ClaimState<'a> {
    let value = match value {
        None | Some("") => return ClaimState::Unset,
        Some(v) => v,
    };
    if scope == ClaimScope::Session {
        return ClaimState::Valid(value);
    }
    if stamp_lxid != 0 && stamp_lxid == current_lxid {
        ClaimState::Valid(value)
    } else {
        ClaimState::Stale
    }
}

/// Why a claim value may not be accepted, judged from its text and where it came from.
#[derive(Debug, PartialEq, Eq)]
pub enum ClaimRejection {
    TooLong(usize),
    ForbiddenSource(&'static str),
}

pub fn judge_new_value(value: &str, source: pg_sys::GucSource::Type) -> Result<(), ClaimRejection> {
    if value.is_empty() {
        return Ok(()); // clearing the claim is always allowed
    }
    if value.len() > MAX_CLAIM_BYTES {
        return Err(ClaimRejection::TooLong(value.len()));
    }
    use pg_sys::GucSource::*;
    match source {
        PGC_S_SESSION | PGC_S_DEFAULT => Ok(()),
        PGC_S_FILE | PGC_S_DYNAMIC_DEFAULT | PGC_S_ENV_VAR | PGC_S_ARGV | PGC_S_GLOBAL => {
            Err(ClaimRejection::ForbiddenSource("the server configuration"))
        }
        PGC_S_DATABASE | PGC_S_USER | PGC_S_DATABASE_USER => Err(ClaimRejection::ForbiddenSource(
            "a role or database default",
        )),
        PGC_S_CLIENT => Err(ClaimRejection::ForbiddenSource("connection options")),
        PGC_S_TEST => Err(ClaimRejection::ForbiddenSource(
            "a stored setting (ALTER ROLE/DATABASE ... SET, ALTER SYSTEM or a function SET clause)",
        )),
        _ => Err(ClaimRejection::ForbiddenSource("this source")),
    }
}

fn current_lxid() -> u32 {
    // SAFETY: MyProc is either NULL (postmaster, early start-up) or this backend's PGPROC.
    unsafe {
        if pg_sys::MyProc.is_null() {
            0
        } else {
            (*pg_sys::MyProc).lxid
        }
    }
}

fn in_parallel_worker() -> bool {
    unsafe { pg_sys::ParallelWorkerNumber >= 0 }
}

/// The claim now, without allocating.
pub fn state<'a>() -> ClaimState<'a> {
    let raw = settings::tenant_id_raw().map(|c| c.to_str().unwrap_or(""));
    // request.jwt.claims is trusted only without require_token: any SQL client can set it.
    if raw.is_none_or(str::is_empty) && !settings::require_token() {
        if let Some(path) = settings::jwt_claims_path() {
            return jwt_state(&path);
        }
    }
    // SAFETY: CURRENT_STAMP is set by the assign hook to the extra of the value in force.
    let stamp = unsafe {
        let p = CURRENT_STAMP;
        if p.is_null() {
            0
        } else {
            (*p).lxid
        }
    };
    let lxid = current_lxid();
    if in_parallel_worker() {
        // Trust the copied claim only if the leader's current transaction holds exactly it.
        let valid = raw.filter(|v| !v.is_empty()).is_some_and(|v| {
            crate::leader_claims::leader_view(v).is_some_and(|view| view.claim_valid)
        });
        return evaluate(
            raw,
            settings::claim_scope(),
            if valid { lxid } else { 0 },
            lxid,
        );
    }
    evaluate(raw, settings::claim_scope(), stamp, lxid)
}

/// The claim from PostgREST's `request.jwt.claims` (JSON), at `path`. It counts, in transaction
/// scope, only when that setting was changed in the current transaction (PostgREST sets it with
/// set_config(..., true) for every request): a value left from an earlier transaction is stale.
fn jwt_state<'a>(path: &str) -> ClaimState<'a> {
    let Some((claims, changed_in_transaction)) = jwt_claims_setting() else {
        return ClaimState::Unset;
    };
    if claims.is_empty() {
        return ClaimState::Unset;
    }
    let tenant = JWT_TENANT.with(|cache| {
        let mut cache = cache.borrow_mut();
        // Keyed by path and claims: a changed path must not reuse the old answer.
        let key = format!("{path}\u{1f}{claims}");
        if cache.0 != key {
            let parsed: Option<serde_json::Value> = serde_json::from_str(&claims).ok();
            let tenant = parsed
                .as_ref()
                .and_then(|v| crate::token::tenant_of(crate::token::lookup_path(v, path)));
            *cache = (key, tenant.filter(|t| t.len() <= MAX_CLAIM_BYTES));
        }
        cache.1.clone()
    });
    if tenant.is_none() {
        return ClaimState::Unset;
    }
    let valid = settings::claim_scope() == ClaimScope::Session
        || changed_in_transaction
        || in_parallel_worker();
    if !valid {
        return ClaimState::Stale;
    }
    // The string lives in the thread-local cache until the claims change (like a GUC value).
    let leaked: &'a str = JWT_TENANT.with(|cache| {
        let cache = cache.borrow();
        let s: &str = cache.1.as_deref().unwrap_or("");
        unsafe { std::mem::transmute::<&str, &'a str>(s) }
    });
    ClaimState::Valid(leaked)
}

/// The value of `request.jwt.claims` and whether it was changed in this transaction.
fn jwt_claims_setting() -> Option<(String, bool)> {
    unsafe {
        let vars = pg_sys::get_guc_variables();
        if vars.is_null() {
            return None;
        }
        for i in 0..pg_sys::GetNumConfigOptions() as usize {
            let var = *vars.add(i);
            if var.is_null()
                || (*var).name.is_null()
                || CStr::from_ptr((*var).name) != c"request.jwt.claims"
            {
                continue;
            }
            if (*var).vartype != pg_sys::config_type::PGC_STRING {
                return None;
            }
            let value = *(*(var as *mut pg_sys::config_string)).variable;
            let text = if value.is_null() {
                String::new()
            } else {
                CStr::from_ptr(value).to_string_lossy().into_owned()
            };
            return Some((text, !(*var).stack.is_null()));
        }
        None
    }
}

/// GUC check hook of `tenant_guard.token_keys`: valid keys, and never from a place where other
/// roles could read them (role and database defaults live in a catalog every role can read).
#[pg_guard]
pub unsafe extern "C-unwind" fn check_token_keys(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    let value = if newval.is_null() || (*newval).is_null() {
        String::new()
    } else {
        CStr::from_ptr(*newval).to_string_lossy().into_owned()
    };
    if value.is_empty() {
        return true;
    }
    use pg_sys::GucSource::*;
    if matches!(
        source,
        PGC_S_DATABASE | PGC_S_USER | PGC_S_DATABASE_USER | PGC_S_TEST | PGC_S_CLIENT
    ) {
        set_check_error(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "tenant_guard: token keys cannot be stored as role or database settings or passed as connection options",
            "Set them in postgresql.conf or with ALTER SYSTEM SET tenant_guard.token_keys = '...' (readable only by superusers).",
        );
        return false;
    }
    if let Err(why) = crate::token::parse_keys(&value) {
        set_check_error(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            &format!("tenant_guard: invalid tenant_guard.token_keys: {why}"),
            "Write comma-separated kid:secret entries; secrets of at least 16 bytes, or kid:base64:... for binary ones.",
        );
        return false;
    }
    true
}

/// `tenant_guard.set_tenant_token(token text)`: verifies a signed tenant token (compact JWS,
/// HS256/384/512) and sets its tenant as the claim for the current transaction.
#[pg_extern(volatile, parallel_unsafe)]
fn set_tenant_token(token: Option<&str>) -> String {
    let reject = |r: crate::token::Rejection| -> ! {
        // Neither the token nor a key reaches the audit trail or the server log: no query text.
        let ev = crate::audit_event::capture(
            crate::audit_event::EventKind::TokenRejected,
            r.code(),
            &[],
            "set_tenant_token",
            None,
            None,
            0,
        );
        crate::audit::log_event(&ev);
        crate::audit_queue::enqueue(&ev);
        refusal::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("tenant token rejected: {}", r.words()),
            None,
            "Sign a fresh token with a configured key (tenant_guard.token_keys) and pass it as a parameter.".into(),
        )
    };
    let Some(token) = token else {
        reject(crate::token::Rejection::Malformed("NULL"))
    };
    let keys = settings::token_keys()
        .map(|k| crate::token::parse_keys(&k).unwrap_or_default())
        .unwrap_or_default();
    let issuer = settings::token_issuer();
    let audience = settings::token_audience();
    let path = settings::token_tenant_claim();
    let now = unsafe { (pg_sys::GetCurrentTimestamp() / 1_000_000) + 946_684_800 };
    let rules = crate::token::Rules {
        keys: &keys,
        leeway: settings::token_leeway(),
        issuer: issuer.as_deref(),
        audience: audience.as_deref(),
        tenant_path: &path,
        now,
    };
    match crate::token::verify(token, &rules) {
        Ok(tenant) => {
            struct Reset;
            impl Drop for Reset {
                fn drop(&mut self) {
                    TOKEN_SETTING.with(|t| t.set(false));
                }
            }
            TOKEN_SETTING.with(|t| t.set(true));
            let _reset = Reset;
            set_claim(&tenant, true);
            tenant
        }
        Err(r) => reject(r),
    }
}

/// Marks the start and end of the setting's definition in `_PG_init`.
pub fn set_defining(on: bool) {
    unsafe {
        DEFINING = if on {
            Some(if placeholder_changed_in_this_transaction() {
                current_lxid()
            } else {
                0
            })
        } else {
            None
        }
    };
}

/// Does a placeholder `tenant_guard.tenant_id` exist with a change made in this transaction?
fn placeholder_changed_in_this_transaction() -> bool {
    unsafe {
        let vars = pg_sys::get_guc_variables();
        if vars.is_null() {
            return false;
        }
        for i in 0..pg_sys::GetNumConfigOptions() as usize {
            let var = *vars.add(i);
            if !var.is_null()
                && !(*var).name.is_null()
                && CStr::from_ptr((*var).name) == c"tenant_guard.tenant_id"
            {
                return !(*var).stack.is_null();
            }
        }
        false
    }
}

/// GUC check hook of `tenant_guard.tenant_id`: refuses forbidden sources and oversized values,
/// and stamps accepted values with the current local transaction id.
#[pg_guard]
pub unsafe extern "C-unwind" fn check_tenant_id(
    newval: *mut *mut c_char,
    extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    let value = if newval.is_null() || (*newval).is_null() {
        ""
    } else {
        match CStr::from_ptr(*newval).to_str() {
            Ok(v) => v,
            Err(_) => {
                set_check_error(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    "tenant_guard: the tenant claim is not valid text",
                    "Use a tenant identifier made of valid characters.",
                );
                return false;
            }
        }
    };
    if !value.is_empty()
        && settings::require_token()
        && !TOKEN_SETTING.with(|t| t.get())
        && source == pg_sys::GucSource::PGC_S_SESSION
    {
        set_check_error(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "tenant_guard: the tenant claim can only be set with tenant_guard.set_tenant_token() (tenant_guard.require_token = on)",
            "Sign the tenant on the server and pass the token: SELECT tenant_guard.set_tenant_token($1);",
        );
        return false;
    }
    match judge_new_value(value, source) {
        Ok(()) => {}
        Err(ClaimRejection::TooLong(n)) => {
            set_check_error(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                &format!(
                    "tenant_guard: the tenant claim is {n} bytes long; at most {MAX_CLAIM_BYTES} are allowed"
                ),
                "Set tenant_guard.tenant_id to the tenant's identifier, not to a document or token.",
            );
            return false;
        }
        Err(ClaimRejection::ForbiddenSource(what)) => {
            set_check_error(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                &format!("tenant_guard: the tenant claim cannot come from {what}"),
                "Set it per transaction from the application's verified session: \
                 SET LOCAL tenant_guard.tenant_id = '...' or SELECT tenant_guard.set_tenant('...').",
            );
            return false;
        }
    }
    let stamp = libc::malloc(std::mem::size_of::<ClaimStamp>()) as *mut ClaimStamp;
    if stamp.is_null() {
        return false; // PostgreSQL reports "out of memory" for a check hook that fails this way
    }
    let lxid = DEFINING.unwrap_or_else(current_lxid);
    stamp.write(ClaimStamp { lxid });
    *extra = stamp as *mut c_void;
    true
}

/// GUC assign hook of `tenant_guard.tenant_id`: remembers the stamp of the value in force.
#[pg_guard]
pub unsafe extern "C-unwind" fn assign_tenant_id(_newval: *const c_char, extra: *mut c_void) {
    CURRENT_STAMP = extra as *const ClaimStamp;
}

unsafe fn set_check_error(code: PgSqlErrorCode, msg: &str, hint: &str) {
    let msg = std::ffi::CString::new(msg).unwrap_or_default();
    let hint = std::ffi::CString::new(hint).unwrap_or_default();
    pg_sys::GUC_check_errcode(code as i32);
    pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(msg.as_ptr());
    pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(hint.as_ptr());
}

fn set_claim(value: &str, local: bool) {
    let value = std::ffi::CString::new(value).unwrap_or_else(|_| {
        refusal::bad_argument(
            "the tenant must not contain NUL bytes",
            "Pass the tenant's identifier.",
        )
    });
    let action = if local {
        pg_sys::GucAction::GUC_ACTION_LOCAL
    } else {
        pg_sys::GucAction::GUC_ACTION_SET
    };
    unsafe {
        pg_sys::set_config_option(
            c"tenant_guard.tenant_id".as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            0,
            false,
        );
    }
}

/// `tenant_guard.set_tenant(tenant text)`: sets the claim for the current transaction.
#[pg_extern(volatile, parallel_unsafe)]
fn set_tenant(tenant: Option<&str>) -> String {
    let tenant = match tenant {
        None => refusal::bad_argument(
            "set_tenant() needs a tenant, got NULL",
            "To drop the claim, call tenant_guard.clear_tenant().",
        ),
        Some(t) if t.trim().is_empty() => refusal::bad_argument(
            "set_tenant() needs a tenant, got an empty string",
            "To drop the claim, call tenant_guard.clear_tenant().",
        ),
        Some(t) => t,
    };
    if tenant.len() > MAX_CLAIM_BYTES {
        refusal::bad_argument(
            &format!(
                "the tenant is {} bytes long; at most {MAX_CLAIM_BYTES} are allowed",
                tenant.len()
            ),
            "Pass the tenant's identifier, not a document or token.",
        );
    }
    set_claim(tenant, true);
    tenant.to_string()
}

/// `tenant_guard.clear_tenant()`: drops the claim (session-wide, so nothing comes back at commit).
#[pg_extern(volatile, parallel_unsafe)]
fn clear_tenant() {
    set_claim("", false);
}

/// `tenant_guard.current_tenant()`: the claim in force, or NULL.
#[pg_extern(stable, parallel_safe)]
fn current_tenant() -> Option<String> {
    match state() {
        ClaimState::Valid(v) => Some(v.to_string()),
        _ => None,
    }
}

/// The claim in force, or a `42501` error: what the generated policies compare against, so that
/// the policies fail closed with an error even where the executor guard is not loaded.
fn required() -> &'static str {
    match state() {
        ClaimState::Valid(v) => {
            // The guard admitted this transaction's statements under one tenant; a claim changed
            // since (even inside the statement, e.g. by set_config() in a WHERE clause evaluated
            // before the policy) must not read another tenant's rows.
            if let Some(earlier) = crate::hooks::switched_from(v) {
                refusal::tenant_switched_in_policy(&earlier, v);
            }
            v
        }
        ClaimState::Unset => refusal::no_claim_in_policy(false),
        ClaimState::Stale => refusal::no_claim_in_policy(true),
    }
}

#[pg_extern(stable, parallel_safe)]
fn require_tenant() -> String {
    required().to_string()
}

#[pg_extern(stable, parallel_safe)]
fn require_tenant_uuid() -> pgrx::Uuid {
    let claim = required();
    parse_uuid(claim)
        .map(pgrx::Uuid::from_bytes)
        .unwrap_or_else(|| refusal::claim_type_mismatch(claim, "uuid"))
}

#[pg_extern(stable, parallel_safe)]
fn require_tenant_bigint() -> i64 {
    let claim = required();
    claim
        .trim()
        .parse::<i64>()
        .unwrap_or_else(|_| refusal::claim_type_mismatch(claim, "bigint"))
}

#[pg_extern(stable, parallel_safe)]
fn require_tenant_integer() -> i32 {
    let claim = required();
    claim
        .trim()
        .parse::<i32>()
        .unwrap_or_else(|_| refusal::claim_type_mismatch(claim, "integer"))
}

/// Parses the textual forms of a uuid that PostgreSQL accepts: 32 hex digits, optionally in
/// braces, with an optional hyphen after any group of four digits.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let s = s.trim();
    let s = s
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(s);
    let mut digits = Vec::with_capacity(32);
    let mut last_was_hyphen = false;
    for c in s.chars() {
        if c == '-' {
            if digits.is_empty() || digits.len() % 4 != 0 || last_was_hyphen || digits.len() >= 32 {
                return None;
            }
            last_was_hyphen = true;
        } else {
            digits.push(c.to_digit(16)? as u8);
            last_was_hyphen = false;
        }
    }
    if digits.len() != 32 || last_was_hyphen {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks(2).enumerate() {
        out[i] = pair[0] * 16 + pair[1];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_missing_claims_are_unset() {
        assert_eq!(
            evaluate(None, ClaimScope::Transaction, 5, 5),
            ClaimState::Unset
        );
        assert_eq!(
            evaluate(Some(""), ClaimScope::Session, 5, 5),
            ClaimState::Unset
        );
    }

    #[test]
    fn transaction_scope_needs_the_current_transaction_stamp() {
        assert_eq!(
            evaluate(Some("a"), ClaimScope::Transaction, 5, 5),
            ClaimState::Valid("a")
        );
        assert_eq!(
            evaluate(Some("a"), ClaimScope::Transaction, 4, 5),
            ClaimState::Stale
        );
        assert_eq!(
            evaluate(Some("a"), ClaimScope::Transaction, 0, 0),
            ClaimState::Stale
        );
        assert_eq!(
            evaluate(Some("a"), ClaimScope::Session, 4, 5),
            ClaimState::Valid("a")
        );
    }

    #[test]
    fn parallel_workers_follow_what_the_leader_vouches_for() {
        assert_eq!(
            evaluate(Some("a"), ClaimScope::Transaction, 9, 9),
            ClaimState::Valid("a")
        );
        assert_eq!(
            evaluate(Some("a"), ClaimScope::Transaction, 0, 9),
            ClaimState::Stale
        );
        assert_eq!(
            evaluate(Some(""), ClaimScope::Transaction, 9, 9),
            ClaimState::Unset
        );
    }

    #[test]
    fn claims_from_outside_the_session_are_refused() {
        use pg_sys::GucSource::*;
        assert!(judge_new_value("acme", PGC_S_SESSION).is_ok());
        assert!(judge_new_value("", PGC_S_FILE).is_ok());
        for src in [
            PGC_S_FILE,
            PGC_S_DATABASE,
            PGC_S_USER,
            PGC_S_DATABASE_USER,
            PGC_S_CLIENT,
            PGC_S_TEST,
        ] {
            assert!(matches!(
                judge_new_value("acme", src),
                Err(ClaimRejection::ForbiddenSource(_))
            ));
        }
        assert_eq!(
            judge_new_value(&"x".repeat(257), PGC_S_SESSION),
            Err(ClaimRejection::TooLong(257))
        );
        assert!(judge_new_value(&"x".repeat(256), PGC_S_SESSION).is_ok());
    }

    #[test]
    fn uuids_parse_like_postgres() {
        assert!(parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").is_some());
        assert!(parse_uuid("{a0eebc999c0b4ef8bb6d6bb9bd380a11}").is_some());
        assert!(parse_uuid("a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11").is_some());
        assert!(parse_uuid("a0eebc999c0b4ef8bb6d6bb9bd380a11").is_some());
        assert!(parse_uuid("-a0eebc999c0b4ef8bb6d6bb9bd380a11").is_none());
        assert!(parse_uuid("a0eebc999c0b4ef8bb6d6bb9bd380a11-").is_none());
        assert!(parse_uuid("a0e-ebc999c0b4ef8bb6d6bb9bd380a11").is_none());
        assert!(parse_uuid("a0ee--bc999c0b4ef8bb6d6bb9bd380a11").is_none());
        assert!(parse_uuid("acme").is_none());
        assert!(parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1z").is_none());
        assert_eq!(
            parse_uuid("00000000-0000-0000-0000-000000000001").unwrap()[15],
            1
        );
    }
}
