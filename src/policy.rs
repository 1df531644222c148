//! The row-security policies protect() installs, as plain SQL text.
//!
//! Every policy compares the tenant column with the claim through an init-plan,
//! `tenant_id = (SELECT tenant_guard.require_tenant_uuid())`: the claim is read once per
//! statement, at execution time (so prepared statements and generic plans always see the claim of
//! the execution), and the comparison is an index condition on the tenant column.

use pgrx::pg_sys;

/// The tenant column types protect() accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantType {
    Uuid,
    Text,
    Varchar,
    Bigint,
    Integer,
}

pub const SUPPORTED_TYPES: &str = "uuid, text, varchar, bigint, integer";

impl TenantType {
    pub fn from_type_oid(oid: pg_sys::Oid) -> Option<Self> {
        match u32::from(oid) {
            2950 => Some(TenantType::Uuid),
            25 => Some(TenantType::Text),
            1043 => Some(TenantType::Varchar),
            20 => Some(TenantType::Bigint),
            23 => Some(TenantType::Integer),
            _ => None,
        }
    }

    /// The type's SQL name.
    pub fn sql_name(self) -> &'static str {
        match self {
            TenantType::Uuid => "uuid",
            TenantType::Text => "text",
            TenantType::Varchar => "varchar",
            TenantType::Bigint => "bigint",
            TenantType::Integer => "integer",
        }
    }

    /// The init-plan that yields the claim as this type (or raises a clear error).
    pub fn claim_expression(self) -> &'static str {
        match self {
            TenantType::Uuid => "(SELECT tenant_guard.require_tenant_uuid())",
            TenantType::Text | TenantType::Varchar => "(SELECT tenant_guard.require_tenant())",
            TenantType::Bigint => "(SELECT tenant_guard.require_tenant_bigint())",
            TenantType::Integer => "(SELECT tenant_guard.require_tenant_integer())",
        }
    }
}

/// Names of the policies protect() owns on a table.
pub const POLICY_NAMES: [&str; 4] = [
    "tenant_guard_select",
    "tenant_guard_insert",
    "tenant_guard_update",
    "tenant_guard_delete",
];

/// Quotes an identifier for SQL (always quoted, so keywords and mixed case are safe).
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `CREATE POLICY` statements, by policy name, for `table` (already a quoted, qualified name).
pub fn policy_statements(table: &str, column: &str, ty: TenantType) -> Vec<(&'static str, String)> {
    let cond = format!("{} = {}", quote_ident(column), ty.claim_expression());
    let head = |name: &str, cmd: &str| {
        format!("CREATE POLICY {name} ON {table} AS PERMISSIVE FOR {cmd} TO PUBLIC")
    };
    vec![
        (
            "tenant_guard_select",
            format!("{} USING ({cond})", head("tenant_guard_select", "SELECT")),
        ),
        (
            "tenant_guard_insert",
            format!(
                "{} WITH CHECK ({cond})",
                head("tenant_guard_insert", "INSERT")
            ),
        ),
        (
            "tenant_guard_update",
            format!(
                "{} USING ({cond}) WITH CHECK ({cond})",
                head("tenant_guard_update", "UPDATE")
            ),
        ),
        (
            "tenant_guard_delete",
            format!("{} USING ({cond})", head("tenant_guard_delete", "DELETE")),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_cover_every_command_with_the_init_plan_form() {
        let p = policy_statements("\"public\".\"invoices\"", "tenant_id", TenantType::Uuid);
        assert_eq!(p.len(), 4);
        for (name, sql) in &p {
            assert!(POLICY_NAMES.contains(name));
            assert!(sql.starts_with(&format!("CREATE POLICY {name} ON \"public\".\"invoices\"")));
            assert!(
                sql.contains("\"tenant_id\" = (SELECT tenant_guard.require_tenant_uuid())"),
                "{sql}"
            );
        }
        assert!(p[1].1.contains("FOR INSERT TO PUBLIC WITH CHECK"));
        assert!(
            p[2].1.contains("USING (") && p[2].1.contains("WITH CHECK ("),
            "updates cannot move rows"
        );
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("Org\"Id"), "\"Org\"\"Id\"");
    }

    #[test]
    fn only_comparable_types_are_supported() {
        assert_eq!(
            TenantType::from_type_oid(pg_sys::Oid::from(2950u32)),
            Some(TenantType::Uuid)
        );
        assert_eq!(
            TenantType::from_type_oid(pg_sys::Oid::from(1043u32)),
            Some(TenantType::Varchar)
        );
        assert_eq!(TenantType::from_type_oid(pg_sys::Oid::from(700u32)), None); // float4
        assert_eq!(
            TenantType::Varchar.claim_expression(),
            TenantType::Text.claim_expression(),
            "varchar compares as text so its text_ops index is used"
        );
    }
}
