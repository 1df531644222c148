//! The executor guard's decisions, in plain Rust over plain data.
//!
//! `hooks.rs` gathers the facts about each protected relation a statement touches and asks
//! `judge()`; nothing here touches PostgreSQL, so every rule is unit-tested without a server.

use crate::claim::ClaimState;
use crate::tamper::Tamper;

/// How row security applies to the role that the executor checks for one relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posture {
    /// Policies filter this role's access.
    Filtered,
    /// The table's row level security is disabled (the protection drifted).
    TableRlsDisabled,
    /// The role is a superuser: policies do not apply.
    Superuser,
    /// The role has BYPASSRLS: policies do not apply.
    BypassRls,
    /// The role owns the table and FORCE ROW LEVEL SECURITY was removed.
    OwnerNotForced,
}

/// What the guard knows about one protected relation in a statement.
#[derive(Debug, Clone, Copy)]
pub struct RelationFacts {
    /// The relation is in the registry (false: a partition or child of a protected table that was
    /// not protected itself).
    pub registered: bool,
    /// The statement names this relation itself (false: reached by inheritance expansion of a
    /// parent, whose policies then apply).
    pub named_directly: bool,
    /// The statement opens a `WITH HOLD` cursor while `claim_scope = transaction`.
    pub hold_cursor_in_transaction_scope: bool,
    /// The statement copies what it reads into a new, unprotected relation (CREATE TABLE AS, ...).
    pub copies_into_unprotected: Option<&'static str>,
    /// The role runs inside an audited admin bypass.
    pub in_bypass: bool,
    /// The statement runs under EXPLAIN ANALYZE, whose row counts ("Rows Removed by Filter")
    /// would count other tenants' rows.
    pub explain_analyze: bool,
}

/// Why a statement is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoClaim { stale: bool },
    UnprotectedChild,
    HoldCursor,
    TenantSwitch { from: String, to: String },
    PolicyVoidingRole(Posture),
    Tamper(Tamper),
    ExplainAnalyze,
}

impl Refusal {
    /// The stable reason code recorded in the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NoClaim { stale: false } => "no_claim",
            Refusal::NoClaim { stale: true } => "stale_claim",
            Refusal::UnprotectedChild => "unprotected_child",
            Refusal::HoldCursor => "hold_cursor",
            Refusal::TenantSwitch { .. } => "tenant_switch",
            Refusal::PolicyVoidingRole(Posture::Superuser) => "superuser",
            Refusal::PolicyVoidingRole(Posture::BypassRls) => "bypassrls",
            Refusal::PolicyVoidingRole(Posture::OwnerNotForced) => "owner_not_forced",
            Refusal::PolicyVoidingRole(Posture::TableRlsDisabled) => "rls_disabled",
            Refusal::PolicyVoidingRole(Posture::Filtered) => "policy",
            Refusal::Tamper(t) => t.code(),
            Refusal::ExplainAnalyze => "explain_analyze",
        }
    }
}

/// A row limit for a statement: each table it reads has its own override or else the setting
/// (0 = no limit for that table); the statement gets the tightest. `None`: no limit.
pub fn row_limit(setting: i32, overrides: impl IntoIterator<Item = Option<i32>>) -> Option<u64> {
    overrides
        .into_iter()
        .map(|o| o.unwrap_or(setting))
        .filter(|v| *v > 0)
        .map(|v| v as u64)
        .min()
}

/// Is a completed read broad? (`rows` returned, `threshold` from `row_limit`, trusted role used.)
pub fn is_broad_read(rows: u64, threshold: Option<u64>, via_trusted_role: bool) -> bool {
    via_trusted_role || threshold.is_some_and(|t| rows >= t)
}

/// Stands for the earlier tenant of the transaction when only the fact that it differs is known
/// (in a parallel worker). A claim never contains a NUL byte, so it never equals this.
pub const UNKNOWN_EARLIER_TENANT: &str = "\0another tenant";

/// Decides one relation. `posture` and `trusted` are asked for lazily: they cost catalog
/// look-ups and matter only once everything else passed.
pub fn judge(
    facts: RelationFacts,
    claim: ClaimState<'_>,
    tenant_of_transaction: Option<&str>,
    posture: impl FnOnce() -> Posture,
    trusted: impl FnOnce() -> bool,
) -> Result<(), Refusal> {
    if facts.hold_cursor_in_transaction_scope {
        // Not even in a bypass: the rows would outlive it.
        return Err(Refusal::HoldCursor);
    }
    if facts.in_bypass {
        return Ok(()); // audited by the caller, statement by statement
    }
    if let Some(command) = facts.copies_into_unprotected {
        return Err(Refusal::Tamper(Tamper::CopyIntoUnprotected(command)));
    }
    if facts.explain_analyze {
        return Err(Refusal::ExplainAnalyze);
    }
    if !facts.registered && facts.named_directly {
        return Err(Refusal::UnprotectedChild);
    }
    if facts.hold_cursor_in_transaction_scope {
        return Err(Refusal::HoldCursor);
    }
    let tenant = match claim {
        ClaimState::Valid(t) => t,
        ClaimState::Unset => return Err(Refusal::NoClaim { stale: false }),
        ClaimState::Stale => return Err(Refusal::NoClaim { stale: true }),
    };
    if let Some(earlier) = tenant_of_transaction {
        if earlier != tenant {
            return Err(Refusal::TenantSwitch {
                from: earlier.to_string(),
                to: tenant.to_string(),
            });
        }
    }
    match posture() {
        Posture::Filtered => Ok(()),
        Posture::TableRlsDisabled => Err(Refusal::PolicyVoidingRole(Posture::TableRlsDisabled)),
        other => {
            if trusted() {
                Ok(())
            } else {
                Err(Refusal::PolicyVoidingRole(other))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIRECT: RelationFacts = RelationFacts {
        registered: true,
        named_directly: true,
        hold_cursor_in_transaction_scope: false,
        copies_into_unprotected: None,
        in_bypass: false,
        explain_analyze: false,
    };

    fn never<T>() -> T {
        panic!("must not be evaluated")
    }

    #[test]
    fn no_claim_no_access_for_every_role() {
        assert_eq!(
            judge(DIRECT, ClaimState::Unset, None, never, never),
            Err(Refusal::NoClaim { stale: false })
        );
        assert_eq!(
            judge(DIRECT, ClaimState::Stale, None, never, never),
            Err(Refusal::NoClaim { stale: true })
        );
    }

    #[test]
    fn filtered_role_with_claim_is_allowed() {
        assert_eq!(
            judge(
                DIRECT,
                ClaimState::Valid("a"),
                None,
                || Posture::Filtered,
                never
            ),
            Ok(())
        );
        assert_eq!(
            judge(
                DIRECT,
                ClaimState::Valid("a"),
                Some("a"),
                || Posture::Filtered,
                never
            ),
            Ok(())
        );
    }

    #[test]
    fn switching_tenant_inside_a_transaction_is_refused() {
        assert_eq!(
            judge(
                DIRECT,
                ClaimState::Valid("b"),
                Some("a"),
                || Posture::Filtered,
                never
            ),
            Err(Refusal::TenantSwitch {
                from: "a".into(),
                to: "b".into()
            })
        );
    }

    #[test]
    fn policy_voiding_roles_are_refused_unless_trusted() {
        for p in [
            Posture::Superuser,
            Posture::BypassRls,
            Posture::OwnerNotForced,
        ] {
            assert_eq!(
                judge(DIRECT, ClaimState::Valid("a"), None, || p, || false),
                Err(Refusal::PolicyVoidingRole(p))
            );
            assert_eq!(
                judge(DIRECT, ClaimState::Valid("a"), None, || p, || true),
                Ok(())
            );
        }
    }

    #[test]
    fn disabled_row_security_is_refused_even_for_trusted_roles() {
        assert_eq!(
            judge(
                DIRECT,
                ClaimState::Valid("a"),
                None,
                || Posture::TableRlsDisabled,
                || true
            ),
            Err(Refusal::PolicyVoidingRole(Posture::TableRlsDisabled))
        );
    }

    #[test]
    fn unprotected_children_are_refused_only_when_named() {
        let child = RelationFacts {
            registered: false,
            ..DIRECT
        };
        assert_eq!(
            judge(child, ClaimState::Valid("a"), None, never, never),
            Err(Refusal::UnprotectedChild)
        );
        let expanded = RelationFacts {
            registered: false,
            named_directly: false,
            ..DIRECT
        };
        assert_eq!(
            judge(
                expanded,
                ClaimState::Valid("a"),
                None,
                || Posture::Filtered,
                never
            ),
            Ok(())
        );
    }

    #[test]
    fn row_limits_take_the_tightest_table_override_else_the_setting() {
        assert_eq!(row_limit(1000, [None, None]), Some(1000));
        assert_eq!(row_limit(1000, [Some(50), None, Some(10)]), Some(10));
        assert_eq!(row_limit(0, [None]), None);
        assert_eq!(
            row_limit(1000, [Some(0)]),
            None,
            "a table override of 0 turns the limit off"
        );
        assert_eq!(
            row_limit(1000, [Some(0), None]),
            Some(1000),
            "only for that table"
        );
        assert_eq!(row_limit(0, [Some(5), None]), Some(5));
    }

    #[test]
    fn broad_reads_are_counted_from_the_threshold_on() {
        assert!(!is_broad_read(999, Some(1000), false));
        assert!(is_broad_read(1000, Some(1000), false));
        assert!(!is_broad_read(5000, None, false));
        assert!(
            is_broad_read(0, None, true),
            "every read of a trusted role is broad"
        );
    }

    #[test]
    fn a_bypass_admits_everything_the_guard_would_refuse_but_hold_cursors() {
        let facts = RelationFacts {
            in_bypass: true,
            copies_into_unprotected: Some("CREATE TABLE AS"),
            ..DIRECT
        };
        assert_eq!(
            judge(facts, ClaimState::Unset, Some("a"), never, never),
            Ok(())
        );
        let hold = RelationFacts {
            in_bypass: true,
            hold_cursor_in_transaction_scope: true,
            ..DIRECT
        };
        assert_eq!(
            judge(hold, ClaimState::Unset, None, never, never),
            Err(Refusal::HoldCursor),
            "a WITH HOLD cursor would keep the bypass's rows after it ends"
        );
    }

    #[test]
    fn copying_protected_rows_into_a_new_relation_is_tampering() {
        let facts = RelationFacts {
            copies_into_unprotected: Some("SELECT INTO"),
            ..DIRECT
        };
        assert_eq!(
            judge(facts, ClaimState::Valid("a"), None, never, never),
            Err(Refusal::Tamper(Tamper::CopyIntoUnprotected("SELECT INTO")))
        );
    }

    #[test]
    fn explain_analyze_is_refused_outside_a_bypass() {
        let facts = RelationFacts {
            explain_analyze: true,
            ..DIRECT
        };
        assert_eq!(
            judge(facts, ClaimState::Valid("a"), None, never, never),
            Err(Refusal::ExplainAnalyze)
        );
        let bypass = RelationFacts {
            explain_analyze: true,
            in_bypass: true,
            ..DIRECT
        };
        assert_eq!(judge(bypass, ClaimState::Unset, None, never, never), Ok(()));
    }

    #[test]
    fn hold_cursors_are_refused_before_anything_else() {
        let hold = RelationFacts {
            hold_cursor_in_transaction_scope: true,
            ..DIRECT
        };
        assert_eq!(
            judge(hold, ClaimState::Valid("a"), None, never, never),
            Err(Refusal::HoldCursor)
        );
    }
}
