//! The audited admin bypass: `tenant_guard.begin_bypass(reason)` / `tenant_guard.end_bypass()`.
//!
//! A bypass is held in an internal setting, `tenant_guard.bypass`, set transaction-locally
//! (like SET LOCAL): PostgreSQL itself ends it at commit, at rollback, and when a savepoint that
//! contained it is rolled back. Being internal, no statement can set it (not SET, not
//! set_config(), not a function's SET clause, not a connection option), and RESET ALL /
//! DISCARD ALL leave it alone; only begin_bypass() starts one, for the role that called it.
//!
//! Cross-tenant access itself comes from PostgreSQL's BYPASSRLS: the policies stay exactly as
//! they are (so ordinary tenant queries keep their index-friendly plans), and a bypass only lifts
//! the guard's refusal of that role, audits every statement it runs on protected tables, and
//! allows the utility statements the tamper guard otherwise refuses.

use std::ffi::{CStr, CString};

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::audit;
use crate::audit_event::EventKind;
use crate::catalog;
use crate::refusal::{self, bad_argument, Message};
use crate::settings;

static BYPASS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Separates the role oid from the reason in the setting's value.
const SEPARATOR: char = '\u{1f}';

pub fn define_setting() {
    GucRegistry::define_string_guc(
        c"tenant_guard.bypass",
        c"The admin bypass in force in this transaction (set only by tenant_guard.begin_bypass()).",
        c"Internal: role oid and reason.",
        &BYPASS,
        GucContext::Internal,
        GucFlags::NO_RESET_ALL | GucFlags::NO_SHOW_ALL,
    );
}

fn set(value: &str) {
    let value = CString::new(value).unwrap_or_default();
    unsafe {
        pg_sys::set_config_option(
            c"tenant_guard.bypass".as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_INTERNAL,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            0,
            false,
        );
    }
}

/// Splits the setting's value into (role oid, reason).
pub fn parse(value: &str) -> Option<(u32, &str)> {
    let (role, reason) = value.split_once(SEPARATOR)?;
    let role: u32 = role.parse().ok()?;
    (role != 0 && !reason.is_empty()).then_some((role, reason))
}

/// The reason of the bypass in force for `user`, if any (a bypass belongs to the role that
/// began it: SET ROLE to another role does not carry it along).
pub fn active_for<'a>(user: pg_sys::Oid) -> Option<&'a str> {
    let raw = unsafe {
        let p = *BYPASS.as_ptr();
        if p.is_null() {
            return None;
        }
        CStr::from_ptr(p).to_str().ok()?
    };
    let (role, reason) = parse(raw)?;
    (role == u32::from(user)).then_some(reason)
}

/// `tenant_guard.begin_bypass(reason text)`: starts an audited bypass until the end of the
/// transaction, for members of `tenant_guard.bypass_roles` whose role has BYPASSRLS.
#[pg_extern(volatile, parallel_unsafe)]
fn begin_bypass(reason: Option<&str>) -> String {
    let reason = match reason.map(str::trim) {
        Some(r) if !r.is_empty() => r,
        _ => bad_argument(
            "begin_bypass() needs a reason",
            "Say why, for the audit trail: SELECT tenant_guard.begin_bypass('backfill of invoice totals, TICKET-123');",
        ),
    };
    if reason.len() > 200 {
        bad_argument(
            &format!(
                "the reason given to begin_bypass() is {} bytes long; at most 200 are allowed",
                reason.len()
            ),
            "Give a short reason and link to the ticket.",
        );
    }
    let user = unsafe { pg_sys::GetUserId() };
    let role = catalog::role_name(user);
    let listed = settings::bypass_roles().iter().any(|name| {
        let Ok(c) = CString::new(name.as_str()) else {
            return false;
        };
        unsafe {
            let r = pg_sys::get_role_oid(c.as_ptr(), true);
            r != pg_sys::InvalidOid && pg_sys::is_member_of_role_nosuper(user, r)
        }
    });
    if !listed {
        audit::guard_event(
            EventKind::Denied,
            "bypass_not_allowed",
            &[],
            "begin_bypass",
            None,
            None,
        );
        refusal::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("role \"{role}\" may not begin a bypass"),
            Some("Only members of the roles in tenant_guard.bypass_roles may.".into()),
            "A superuser grants it: ALTER SYSTEM SET tenant_guard.bypass_roles = 'ops'; SELECT pg_reload_conf(); \
             GRANT ops TO <role>;"
                .into(),
        );
    }
    let voids_rls = unsafe { pg_sys::superuser_arg(user) || pg_sys::has_bypassrls_privilege(user) };
    if !voids_rls {
        audit::guard_event(
            EventKind::Denied,
            "bypass_without_bypassrls",
            &[],
            "begin_bypass",
            None,
            None,
        );
        refusal::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("role \"{role}\" cannot read across tenants: it has no BYPASSRLS"),
            Some("A bypass lifts tenant_guard's refusal; row security itself still filters this role.".into()),
            format!("A superuser gives the role BYPASSRLS: ALTER ROLE \"{role}\" BYPASSRLS;"),
        );
    }
    set(&format!("{}{SEPARATOR}{reason}", u32::from(user)));
    audit::guard_event(EventKind::Bypass, reason, &[], "begin_bypass", None, None);
    Message::notice(format!(
        "bypass begun for role \"{role}\" until the end of the transaction; every statement on protected tables is audited"
    ));
    format!("bypass active for role \"{role}\": {reason}")
}

/// `tenant_guard.end_bypass()`: ends the bypass before the end of the transaction.
#[pg_extern(volatile, parallel_unsafe)]
fn end_bypass() -> bool {
    let had = active_for(unsafe { pg_sys::GetUserId() }).is_some();
    set("");
    had
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_into_role_and_reason() {
        assert_eq!(parse("16384\u{1f}backfill"), Some((16384, "backfill")));
        assert_eq!(parse(""), None);
        assert_eq!(parse("0\u{1f}x"), None);
        assert_eq!(parse("16384\u{1f}"), None);
        assert_eq!(parse("abc\u{1f}x"), None);
    }
}
