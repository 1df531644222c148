//! Every `tenant_guard.*` setting: one static, one line in `init()`, one typed accessor.
//! The rest of the extension never touches a `GucSetting` directly.
//!
//! The tenant claim itself (`tenant_guard.tenant_id`) is defined here too, but its check and
//! assign hooks live in `claim.rs`, because what they decide is claim hygiene.

use std::ffi::{CStr, CString};

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::{pg_sys, PostgresGucEnum};

use crate::claim;

/// `tenant_guard.enforce`
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Enforce {
    #[name = c"on"]
    On,
    #[name = c"shadow"]
    Shadow,
    #[name = c"off"]
    Off,
}

/// `tenant_guard.claim_scope`
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ClaimScope {
    #[name = c"transaction"]
    Transaction,
    #[name = c"session"]
    Session,
}

static TENANT_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static ENFORCE: GucSetting<Enforce> = GucSetting::<Enforce>::new(Enforce::On);
static CLAIM_SCOPE: GucSetting<ClaimScope> = GucSetting::<ClaimScope>::new(ClaimScope::Transaction);
static TRUSTED_ROLES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Registers every setting, then reserves the `tenant_guard.` prefix so that a misspelt
/// setting is an error instead of a silently ignored placeholder.
pub fn init() {
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"tenant_guard.tenant_id",
            c"The tenant of the current transaction (empty = no tenant).",
            c"Set it per transaction with SET LOCAL or tenant_guard.set_tenant(). Values from \
              postgresql.conf, ALTER ROLE/DATABASE ... SET and connection options are refused.",
            &TENANT_ID,
            GucContext::Userset,
            GucFlags::DISALLOW_IN_FILE,
            Some(claim::check_tenant_id),
            Some(claim::assign_tenant_id),
            None,
        );
    }
    GucRegistry::define_enum_guc(
        c"tenant_guard.enforce",
        c"on: refuse what the guard forbids; shadow: allow it with a WARNING; off: no guard.",
        c"Only superusers may change it.",
        &ENFORCE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"tenant_guard.claim_scope",
        c"transaction: a claim counts only in the transaction that set it; session: it lasts.",
        c"Keep 'transaction' behind a transaction-mode connection pool. Only superusers may change it.",
        &CLAIM_SCOPE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tenant_guard.trusted_roles",
        c"Comma-separated roles that may read protected tables although they bypass row security.",
        c"Members of these roles still need a tenant claim. Only superusers may change it.",
        &TRUSTED_ROLES,
        GucContext::Suset,
        GucFlags::default(),
    );
    unsafe { pg_sys::MarkGUCPrefixReserved(c"tenant_guard".as_ptr()) };
}

/// The raw claim value, without allocating. Valid until the setting next changes.
pub fn tenant_id_raw<'a>() -> Option<&'a CStr> {
    // SAFETY: the slot holds NULL or a NUL-terminated string owned by the GUC machinery.
    unsafe {
        let p = *TENANT_ID.as_ptr();
        (!p.is_null()).then(|| CStr::from_ptr(p))
    }
}

pub fn enforce() -> Enforce {
    ENFORCE.get()
}

pub fn claim_scope() -> ClaimScope {
    CLAIM_SCOPE.get()
}

/// The role names listed in `tenant_guard.trusted_roles` (empty when unset).
pub fn trusted_roles() -> Vec<String> {
    match TRUSTED_ROLES.get() {
        Some(s) => parse_role_list(&s.to_string_lossy()),
        None => Vec::new(),
    }
}

/// Splits a comma-separated role list; surrounding blanks and double quotes are dropped.
pub fn parse_role_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|r| r.trim())
        .map(|r| {
            if r.len() >= 2 && r.starts_with('"') && r.ends_with('"') {
                r[1..r.len() - 1].replace("\"\"", "\"")
            } else {
                r.to_lowercase()
            }
        })
        .filter(|r| !r.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_role_list;

    #[test]
    fn role_lists_are_split_trimmed_and_case_folded_like_identifiers() {
        assert_eq!(parse_role_list(""), Vec::<String>::new());
        assert_eq!(parse_role_list(" Ops , auditor,,"), vec!["ops", "auditor"]);
        assert_eq!(parse_role_list("\"Mixed Case\""), vec!["Mixed Case"]);
    }
}
