//! The tamper guard's vocabulary: which changes to a protected table are refused, with what
//! words and what sanctioned way out. Plain data; `hooks.rs` finds the changes in utility
//! statements and object-access events, `guard.rs`/`hooks.rs` decide with the bypass in mind.

use std::cell::Cell;

use pgrx::prelude::*;

use crate::refusal::Message;

/// A change that would remove or weaken a protected table's tenant isolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    Truncate,
    DisableRowSecurity,
    NoForceRowSecurity,
    CreatePolicy,
    AlterPolicy,
    DropPolicy,
    DropTenantColumn,
    RenameTenantColumn,
    RetypeTenantColumn,
    NullableTenantColumn,
    ChangeOwner,
    DropTable,
    DetachUnprotectedPartition,
    AttachToUnprotectedParent,
    /// CREATE TABLE AS, SELECT INTO, CREATE/REFRESH MATERIALIZED VIEW reading protected rows.
    CopyIntoUnprotected(&'static str),
}

impl Tamper {
    /// The stable reason code recorded in the audit trail.
    pub fn code(self) -> &'static str {
        match self {
            Tamper::Truncate => "truncate",
            Tamper::DisableRowSecurity => "disable_row_security",
            Tamper::NoForceRowSecurity => "no_force_row_security",
            Tamper::CreatePolicy => "create_policy",
            Tamper::AlterPolicy => "alter_policy",
            Tamper::DropPolicy => "drop_policy",
            Tamper::DropTenantColumn => "drop_tenant_column",
            Tamper::RenameTenantColumn => "rename_tenant_column",
            Tamper::RetypeTenantColumn => "retype_tenant_column",
            Tamper::NullableTenantColumn => "nullable_tenant_column",
            Tamper::AttachToUnprotectedParent => "attach_to_unprotected_parent",
            Tamper::ChangeOwner => "change_owner",
            Tamper::DropTable => "drop_table",
            Tamper::DetachUnprotectedPartition => "detach_unprotected_partition",
            Tamper::CopyIntoUnprotected(_) => "copy_into_unprotected",
        }
    }

    /// The refusal's words for relation `rel` (schema-qualified).
    pub fn describe(self, rel: &str) -> Message {
        let lit = rel.replace('\'', "''");
        let bypass = "or, for an audited admin change, run it after SELECT tenant_guard.begin_bypass('<reason>')";
        let (what, detail, hint) = match self {
            Tamper::Truncate => (
                format!("TRUNCATE of protected table {rel} is not allowed"),
                "TRUNCATE ignores row level security: it would empty every tenant's rows at once.".to_string(),
                format!("Delete one tenant's rows with DELETE under its claim, {bypass}."),
            ),
            Tamper::DisableRowSecurity | Tamper::NoForceRowSecurity => (
                format!(
                    "{} ROW LEVEL SECURITY on protected table {rel} is not allowed",
                    if self == Tamper::DisableRowSecurity { "DISABLE" } else { "NO FORCE" }
                ),
                "Without it the tenant policies stop filtering (for the owner, or for everyone).".to_string(),
                format!("To remove the protection on purpose: SELECT tenant_guard.unprotect('{lit}', '<why>');"),
            ),
            Tamper::CreatePolicy | Tamper::AlterPolicy | Tamper::DropPolicy => (
                format!(
                    "{} POLICY on protected table {rel} is not allowed",
                    match self {
                        Tamper::CreatePolicy => "CREATE",
                        Tamper::AlterPolicy => "ALTER",
                        _ => "DROP",
                    }
                ),
                "The table's policies are tenant_guard's; another permissive policy would widen what a \
                 tenant sees, and changing or dropping one would open the table."
                    .to_string(),
                format!(
                    "Unprotect the table first if its isolation must change: SELECT tenant_guard.unprotect('{lit}', '<why>');"
                ),
            ),
            Tamper::DropTenantColumn | Tamper::RenameTenantColumn | Tamper::RetypeTenantColumn => (
                format!(
                    "{} the tenant column of protected table {rel} is not allowed",
                    match self {
                        Tamper::DropTenantColumn => "dropping",
                        Tamper::RenameTenantColumn => "renaming",
                        _ => "changing the type of",
                    }
                ),
                "The tenant policies compare every row through this column.".to_string(),
                format!("Unprotect the table first: SELECT tenant_guard.unprotect('{lit}', '<why>');"),
            ),
            Tamper::NullableTenantColumn => (
                format!("DROP NOT NULL on the tenant column of protected table {rel} is not allowed"),
                "A row without a tenant belongs to nobody; protect() requires the column to be NOT NULL.".to_string(),
                format!("Unprotect the table first: SELECT tenant_guard.unprotect('{lit}', '<why>');"),
            ),
            Tamper::AttachToUnprotectedParent => (
                format!("putting protected table {rel} under a parent that is not protected is not allowed"),
                "Queries on the parent read its children's rows with the parent's policies only, so this \
                 table's rows would be read without any tenant policy."
                    .to_string(),
                "Protect the parent first: SELECT tenant_guard.protect('<parent>');".to_string(),
            ),
            Tamper::ChangeOwner => (
                format!("changing the owner of protected table {rel} is not allowed"),
                "A new owner could switch the table's row level security off again.".to_string(),
                format!("Unprotect, change the owner, and protect again, {bypass}."),
            ),
            Tamper::DropTable => (
                format!("DROP of protected table {rel} is not allowed"),
                "Dropping a protected table without unprotect() leaves no record of why its tenants' \
                 rows went away."
                    .to_string(),
                format!("Unprotect it first, for the audit trail: SELECT tenant_guard.unprotect('{lit}', '<why>');"),
            ),
            Tamper::DetachUnprotectedPartition => (
                format!("detaching a partition that is not protected itself from protected table {rel} is not allowed"),
                "Once detached, its rows would be read without any tenant policy.".to_string(),
                "Protect the partition first: SELECT tenant_guard.protect('<partition>');".to_string(),
            ),
            Tamper::CopyIntoUnprotected(command) => (
                format!("{command} reading protected table {rel} is not allowed"),
                "It would copy tenant rows into a new relation that no tenant policy protects.".to_string(),
                format!(
                    "Create the table first, protect it with tenant_guard.protect(), then INSERT ... SELECT; {bypass}."
                ),
            ),
        };
        Message::refusal(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            what,
            detail,
            hint,
        )
    }
}

thread_local! {
    /// Set while protect()/unprotect() change a table's row security and policies themselves.
    static IN_HELPER: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` as one of the sanctioned policy helpers: its DDL is not tampering.
pub fn as_helper<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            let old = self.0;
            IN_HELPER.with(|h| h.set(old));
        }
    }
    let _reset = Reset(IN_HELPER.with(|h| h.replace(true)));
    f()
}

pub fn in_helper() -> bool {
    IN_HELPER.with(|h| h.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Tamper; 15] = [
        Tamper::Truncate,
        Tamper::DisableRowSecurity,
        Tamper::NoForceRowSecurity,
        Tamper::CreatePolicy,
        Tamper::AlterPolicy,
        Tamper::DropPolicy,
        Tamper::DropTenantColumn,
        Tamper::RenameTenantColumn,
        Tamper::RetypeTenantColumn,
        Tamper::NullableTenantColumn,
        Tamper::ChangeOwner,
        Tamper::DropTable,
        Tamper::DetachUnprotectedPartition,
        Tamper::AttachToUnprotectedParent,
        Tamper::CopyIntoUnprotected("CREATE TABLE AS"),
    ];

    #[test]
    fn every_tamper_refusal_names_the_table_and_shows_a_way_out() {
        for t in ALL {
            let m = t.describe("public.invoices");
            assert!(m.message.starts_with("tenant_guard: "), "{m:?}");
            assert!(m.message.contains("public.invoices"), "{m:?}");
            assert!(
                m.hint
                    .as_deref()
                    .is_some_and(|h| h.contains("tenant_guard.")),
                "{m:?}"
            );
            assert_eq!(m.code, PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE);
        }
    }

    #[test]
    fn codes_are_distinct() {
        let mut codes: Vec<_> = ALL.iter().map(|t| t.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), ALL.len());
    }

    #[test]
    fn the_helper_flag_is_scoped() {
        assert!(!in_helper());
        as_helper(|| assert!(in_helper()));
        assert!(!in_helper());
    }
}
