//! One shape for every error tenant_guard raises: `tenant_guard:` prefix, the object named,
//! DETAIL for facts, HINT for the fix, SQLSTATE from the contract.
//!
//! `Message` is plain data (unit-tested); `raise()`/`warn()` hand it to PostgreSQL.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::guard::{Posture, Refusal};

/// A fully worded report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl Message {
    fn new(code: PgSqlErrorCode, message: String) -> Self {
        Message {
            code,
            message: format!("tenant_guard: {message}"),
            detail: None,
            hint: None,
        }
    }
    /// A complete refusal: `tenant_guard:` + message, DETAIL, HINT.
    pub fn refusal(code: PgSqlErrorCode, message: String, detail: String, hint: String) -> Self {
        Message::new(code, message).detail(detail).hint(hint)
    }

    fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
    fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }

    fn report(&self) -> ErrorReport {
        let mut r = ErrorReport::new(self.code, self.message.clone(), "tenant_guard");
        if let Some(d) = &self.detail {
            r = r.set_detail(d.clone());
        }
        if let Some(h) = &self.hint {
            r = r.set_hint(h.clone());
        }
        r
    }

    /// Raises the message as an ERROR; never returns.
    pub fn raise(&self) -> ! {
        self.report().report(PgLogLevel::ERROR);
        unreachable!("ereport(ERROR) returned")
    }

    /// Emits the message as a WARNING.
    pub fn warn(&self) {
        self.report().report(PgLogLevel::WARNING);
    }

    /// A WARNING with a hint, for things that work but should be fixed.
    pub fn warning(message: String, detail: &str, hint: String) {
        Message::new(PgSqlErrorCode::ERRCODE_WARNING, message)
            .detail(detail)
            .hint(hint)
            .warn()
    }

    /// A NOTICE.
    pub fn notice(message: String) {
        Message::new(PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION, message)
            .report()
            .report(PgLogLevel::NOTICE)
    }
}

pub const SET_CLAIM_HINT: &str = "Set the tenant at the start of the transaction: \
     SET LOCAL tenant_guard.tenant_id = '<tenant>' or SELECT tenant_guard.set_tenant('<tenant>').";

/// Words for a refusal of the executor guard on relation `rel` (schema-qualified name).
pub fn describe(refusal: &Refusal, rel: &str, role: &str) -> Message {
    let code = PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE;
    match refusal {
        Refusal::Tamper(t) => t.describe(rel),
        Refusal::ExplainAnalyze => Message::new(
            code,
            format!("EXPLAIN ANALYZE of protected table {rel} is not allowed"),
        )
        .detail(
            "Its row counts (\"Rows Removed by Filter\") count the rows the tenant policy filtered out, \
             that is, other tenants' rows.",
        )
        .hint("Use EXPLAIN without ANALYZE, or run it inside SELECT tenant_guard.begin_bypass('<reason>');"),
        Refusal::NoClaim { stale: false } => {
            Message::new(code, format!("no tenant claim is set for protected table {rel}"))
                .detail("Statements that touch a protected table need a tenant claim, for every role.")
                .hint(SET_CLAIM_HINT)
        }
        Refusal::NoClaim { stale: true } => Message::new(
            code,
            format!("no tenant claim is set in this transaction for protected table {rel}"),
        )
        .detail(
            "tenant_guard.tenant_id was set in an earlier transaction; with \
             tenant_guard.claim_scope = transaction it does not count, so that a pooled \
             connection never hands one client's tenant to the next.",
        )
        .hint(SET_CLAIM_HINT),
        Refusal::UnprotectedChild => Message::new(
            code,
            format!("table {rel} inherits from a protected table but is not protected itself"),
        )
        .detail("Its rows would be read without the tenant policies of its parent.")
        .hint(format!("SELECT tenant_guard.protect('{}');", rel.replace('\'', "''"))),
        Refusal::HoldCursor => Message::new(
            code,
            format!("a WITH HOLD cursor over protected table {rel} is not allowed"),
        )
        .detail(
            "With tenant_guard.claim_scope = transaction a claim ends with its transaction, \
             but a WITH HOLD cursor's rows would outlive it.",
        )
        .hint("Use a cursor without WITH HOLD inside the transaction, or paginate with LIMIT."),
        Refusal::TenantSwitch { from, to } => Message::new(
            code,
            format!("the tenant claim changed inside a transaction that already touched protected table {rel}"),
        )
        .detail(if from == crate::guard::UNKNOWN_EARLIER_TENANT {
            format!("The transaction used another tenant and now claims \"{to}\".")
        } else {
            format!("The transaction used tenant \"{from}\" and now claims \"{to}\".")
        })
        .hint("Commit or roll back, then set the new tenant in a new transaction."),
        Refusal::PolicyVoidingRole(Posture::TableRlsDisabled) => Message::new(
            code,
            format!("row level security is disabled on protected table {rel}"),
        )
        .detail("Without row level security its policies do not filter any role.")
        .hint(format!(
            "Restore the protection: SELECT tenant_guard.protect('{}');",
            rel.replace('\'', "''")
        )),
        Refusal::PolicyVoidingRole(posture) => {
            let why = match posture {
                Posture::Superuser => "is a superuser",
                Posture::BypassRls => "has BYPASSRLS",
                _ => "owns the table and FORCE ROW LEVEL SECURITY is off",
            };
            Message::new(
                code,
                format!("role \"{role}\" bypasses row level security and may not touch protected table {rel}"),
            )
            .detail(format!("The role {why}, so the tenant policies would not filter its rows."))
            .hint(
                "Connect as a role without SUPERUSER and BYPASSRLS, or add the role to \
                 tenant_guard.trusted_roles to allow (and audit) its cross-tenant reads.",
            )
        }
    }
}

/// `22023`: a helper got an argument it cannot use. Never returns.
pub fn bad_argument(message: &str, hint: &str) -> ! {
    Message::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        message.to_string(),
    )
    .hint(hint)
    .raise()
}

/// `42501` from a generated policy when no claim is in force (the guard may not be loaded).
pub fn no_claim_in_policy(stale: bool) -> ! {
    let m = Message::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        "no tenant claim is set for a protected table".to_string(),
    )
    .hint(SET_CLAIM_HINT);
    let m = if stale {
        m.detail("tenant_guard.tenant_id was set in an earlier transaction and does not count in this one.")
    } else {
        m.detail("The table's tenant policies compare every row with the claim.")
    };
    m.raise()
}

/// `42501` from a generated policy when the claim changed after the guard admitted the transaction.
pub fn tenant_switched_in_policy(from: &str, to: &str) -> ! {
    let from = if from == crate::guard::UNKNOWN_EARLIER_TENANT {
        "another tenant".to_string()
    } else {
        format!("tenant \"{from}\"")
    };
    Message::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        "the tenant claim changed inside a transaction that already touched a protected table"
            .to_string(),
    )
    .detail(format!(
        "The transaction used {from} and the claim is now \"{to}\"."
    ))
    .hint("Commit or roll back, then set the new tenant in a new transaction.")
    .raise()
}

/// `22023` from a generated policy when the claim cannot be read as the tenant column's type.
pub fn claim_type_mismatch(claim: &str, type_name: &str) -> ! {
    let shown: String = claim.chars().take(64).collect();
    Message::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("the tenant claim \"{shown}\" is not a valid {type_name}"),
    )
    .detail(format!(
        "This table's tenant column is of type {type_name}."
    ))
    .hint(format!(
        "Set tenant_guard.tenant_id to the tenant's {type_name} identifier."
    ))
    .raise()
}

/// `42501` for a caller who may not change a table's protection.
pub fn not_owner(rel: &str, what: &str) -> ! {
    Message::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("must be owner of table {rel} to {what} it"),
    )
    .hint("Run the migration as the role that owns the table.")
    .raise()
}

/// A generic refusal with explicit words.
pub fn raise(code: PgSqlErrorCode, message: String, detail: Option<String>, hint: String) -> ! {
    let mut m = Message::new(code, message).hint(hint);
    m.detail = detail;
    m.raise()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_prefix_table_hint_and_42501() {
        let cases = [
            Refusal::NoClaim { stale: false },
            Refusal::NoClaim { stale: true },
            Refusal::UnprotectedChild,
            Refusal::HoldCursor,
            Refusal::TenantSwitch {
                from: "a".into(),
                to: "b".into(),
            },
            Refusal::PolicyVoidingRole(Posture::Superuser),
            Refusal::PolicyVoidingRole(Posture::BypassRls),
            Refusal::PolicyVoidingRole(Posture::OwnerNotForced),
            Refusal::PolicyVoidingRole(Posture::TableRlsDisabled),
            Refusal::ExplainAnalyze,
        ];
        for r in cases {
            let m = describe(&r, "public.invoices", "app");
            assert!(m.message.starts_with("tenant_guard: "), "{m:?}");
            assert!(m.message.contains("public.invoices"), "{m:?}");
            assert!(m.hint.is_some(), "{m:?}");
            assert_eq!(m.code, PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE);
            assert!(!m.message.ends_with('.'), "no trailing period: {m:?}");
        }
    }

    #[test]
    fn hints_quote_table_names_for_sql() {
        let m = describe(&Refusal::UnprotectedChild, "public.\"o'k\"", "app");
        assert!(m.hint.unwrap().contains("'public.\"o''k\"'"));
    }
}
