//! `tenant_guard.explain(rel)`: why the current session can or cannot see a table's rows, in
//! words and as JSON. The verdict comes from the same `guard::judge()` the executor guard uses.

use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::{json, Value};

use crate::catalog;
use crate::claim::{self, ClaimState};
use crate::guard::{self, Posture, RelationFacts};
use crate::hooks;
use crate::refusal;
use crate::registry;
use crate::settings::{self, ClaimScope, Enforce};
use crate::status;

fn rows(query: &str, args: &[pgrx::datum::DatumWithOid]) -> Vec<Value> {
    Spi::connect(|c| {
        let Ok(table) = c.select(query, None, args) else {
            return Vec::new();
        };
        table
            .filter_map(|row| row.get::<pgrx::JsonB>(1).ok().flatten().map(|j| j.0))
            .collect()
    })
}

#[allow(clippy::type_complexity)]
#[pg_extern(name = "_explain", stable, parallel_unsafe)]
pub fn explain(
    rel: Option<pg_sys::Oid>,
) -> TableIterator<'static, (name!(report, String), name!(document, pgrx::JsonB))> {
    let Some(relid) = rel else {
        refusal::bad_argument(
            "explain() needs a table, got NULL",
            "SELECT * FROM tenant_guard.explain('public.invoices');",
        )
    };
    let table = rows(
        "SELECT pg_catalog.jsonb_build_object(
                 'kind', c.relkind::text, 'rls_enabled', c.relrowsecurity, 'rls_forced', c.relforcerowsecurity,
                 'owner', pg_catalog.pg_get_userbyid(c.relowner))
           FROM pg_catalog.pg_class c WHERE c.oid = $1",
        &[relid.into()],
    );
    let Some(table) = table.into_iter().next() else {
        refusal::raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("relation with oid {} does not exist", u32::from(relid)),
            None,
            "Pass the table by name: 'schema.table'.".into(),
        )
    };
    let name = catalog::qualified_name(relid);
    if !matches!(table["kind"].as_str(), Some("r") | Some("p")) {
        refusal::bad_argument(
            &format!("{name} is not a table; explain() explains tables"),
            "For a view, explain each table it reads: row security is judged on the tables.",
        );
    }
    let registration = rows(
        "SELECT pg_catalog.jsonb_build_object('tenant_column', tenant_column, 'tenant_type', tenant_type::text,
                 'parent', parent::text, 'broad_read_rows', broad_read_rows, 'max_rows', max_rows)
           FROM tenant_guard.protected_tables WHERE relid = $1::pg_catalog.oid::pg_catalog.regclass",
        &[relid.into()],
    )
    .into_iter()
    .next();
    let exemption = rows(
        "SELECT pg_catalog.jsonb_build_object('reason', reason, 'by', exempted_by)
           FROM tenant_guard.exempt_tables WHERE relid = $1::pg_catalog.oid::pg_catalog.regclass",
        &[relid.into()],
    )
    .into_iter()
    .next();
    let policies: Vec<Value> = rows(
        "SELECT pg_catalog.jsonb_build_object('name', policyname, 'command', cmd, 'permissive', permissive,
                 'roles', roles, 'using', qual, 'with_check', with_check)
           FROM pg_catalog.pg_policies p
           JOIN pg_catalog.pg_class c ON c.relname = p.tablename
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = p.schemaname
          WHERE c.oid = $1 ORDER BY policyname",
        &[relid.into()],
    )
    .into_iter()
    .collect();

    let user = unsafe { pg_sys::GetUserId() };
    let role = catalog::role_name(user);
    let (superuser, bypassrls, owner) = unsafe {
        (
            pg_sys::superuser_arg(user),
            pg_sys::has_bypassrls_privilege(user),
            // the table's real owner (pg_class_ownercheck is true for every superuser)
            table["owner"].as_str() == Some(catalog::role_name(user).as_str()),
        )
    };
    let trusted = catalog::is_trusted(user);
    let bypass = crate::bypass::active_for(user).map(str::to_string);
    let claim_raw = settings::tenant_id_raw()
        .and_then(|c| c.to_str().ok())
        .unwrap_or("")
        .to_string();
    let claim = claim::state();
    let (claim_state, claim_valid) = match claim {
        ClaimState::Unset => ("unset", false),
        ClaimState::Stale => ("stale: set in an earlier transaction", false),
        ClaimState::Valid(_) => ("valid in this transaction", true),
    };
    let scope = match settings::claim_scope() {
        ClaimScope::Transaction => "transaction",
        ClaimScope::Session => "session",
    };
    let mode = match settings::enforce() {
        Enforce::On => "on",
        Enforce::Shadow => "shadow",
        Enforce::Off => "off",
    };
    let preloaded = status::preloaded();
    let posture = catalog::posture(relid, user);

    // The verdict the executor guard would give now, and what PostgreSQL's own rules add.
    registry::refresh();
    let entry = registry::lookup(relid);
    let guard_verdict = entry.map(|e| {
        let facts = RelationFacts {
            registered: e.registered,
            named_directly: true,
            hold_cursor_in_transaction_scope: false,
            copies_into_unprotected: None,
            in_bypass: bypass.is_some(),
            explain_analyze: false,
        };
        let earlier = hooks::tenant_of_transaction();
        guard::judge(facts, claim, earlier.as_deref(), || posture, || trusted)
    });
    let mut verdicts = serde_json::Map::new();
    let mut lines = Vec::new();
    lines.push(format!("table {name}"));
    match (&registration, &exemption) {
        (Some(r), _) => lines.push(format!(
            "  protected by tenant_guard on column {} ({})",
            r["tenant_column"].as_str().unwrap_or("?"),
            r["tenant_type"].as_str().unwrap_or("?")
        )),
        (None, Some(e)) => lines.push(format!(
            "  NOT protected: exempt (shared by all tenants): {}",
            e["reason"].as_str().unwrap_or("")
        )),
        (None, None) if entry.is_some() => {
            lines.push("  NOT protected itself, but it inherits from a protected table".to_string())
        }
        (None, None) => {
            lines.push("  NOT protected: tenant_guard does not restrict it".to_string())
        }
    }
    lines.push(format!(
        "  row level security: {}, force: {}; {} polic{}",
        if table["rls_enabled"].as_bool() == Some(true) {
            "enabled"
        } else {
            "DISABLED"
        },
        if table["rls_forced"].as_bool() == Some(true) {
            "on"
        } else {
            "OFF"
        },
        policies.len(),
        if policies.len() == 1 { "y" } else { "ies" }
    ));
    lines.push(format!(
        "  claim: {} ({}{}), claim_scope = {scope}",
        if claim_raw.is_empty() {
            "none".to_string()
        } else {
            format!("\"{claim_raw}\"")
        },
        claim_state,
        ""
    ));
    let posture_words = match posture {
        Posture::Superuser => "superuser (row security does not apply)",
        Posture::BypassRls => "BYPASSRLS (row security does not apply)",
        Posture::OwnerNotForced => "owner, and FORCE is off (row security does not apply)",
        Posture::TableRlsDisabled => "any role (row security is disabled on the table)",
        Posture::Filtered => "filtered by the table's policies",
    };
    lines.push(format!(
        "  role: \"{role}\" is {posture_words}{}{}{}",
        if owner { "; owns the table" } else { "" },
        if trusted {
            "; listed in tenant_guard.trusted_roles"
        } else {
            ""
        },
        bypass
            .as_ref()
            .map(|r| format!("; in a bypass: {r}"))
            .unwrap_or_default()
    ));
    lines.push(format!(
        "  guard: {} (enforce = {mode})",
        if preloaded {
            "active"
        } else {
            "NOT active (tenant_guard is not in shared_preload_libraries)"
        }
    ));
    for (command, privilege) in [
        ("SELECT", "SELECT"),
        ("INSERT", "INSERT"),
        ("UPDATE", "UPDATE"),
        ("DELETE", "DELETE"),
    ] {
        let has_privilege = Spi::connect(|c| {
            c.select(
                "SELECT pg_catalog.has_table_privilege($1, $2)",
                None,
                &[relid.into(), privilege.into()],
            )
            .ok()
            .and_then(|t| t.first().get_one::<bool>().ok().flatten())
            .unwrap_or(false)
        });
        let (allowed, why, fix): (bool, String, Option<String>) = if !has_privilege {
            (
                false,
                format!("the role has no {privilege} privilege on the table"),
                Some(format!("GRANT {privilege} ON {name} TO \"{role}\";")),
            )
        } else {
            let claim_type_error = registration.as_ref().and_then(|r| {
                let ty = r["tenant_type"].as_str().unwrap_or("");
                let ok = match ty {
                    "uuid" => claim::parse_uuid(&claim_raw).is_some(),
                    "bigint" => claim_raw.trim().parse::<i64>().is_ok(),
                    "integer" => claim_raw.trim().parse::<i32>().is_ok(),
                    _ => true,
                };
                (claim_valid && !ok).then(|| ty.to_string())
            });
            match &guard_verdict {
                Some(Err(refusal)) if preloaded && mode == "on" => {
                    let m = refusal::describe(refusal, &name, &role);
                    (
                        false,
                        m.message.trim_start_matches("tenant_guard: ").to_string(),
                        m.hint,
                    )
                }
                // the policies themselves refuse, whatever the guard's mode
                Some(_) if !claim_valid && posture == Posture::Filtered => (
                    false,
                    "the tenant policies raise an error without a claim".to_string(),
                    Some(refusal::SET_CLAIM_HINT.to_string()),
                ),
                Some(_) if claim_type_error.is_some() && posture == Posture::Filtered => (
                    false,
                    format!(
                        "the claim \"{claim_raw}\" is not a valid {} for this table's tenant column",
                        claim_type_error.clone().unwrap_or_default()
                    ),
                    Some(format!(
                        "Set tenant_guard.tenant_id to the tenant's {} identifier.",
                        claim_type_error.clone().unwrap_or_default()
                    )),
                ),
                Some(Err(refusal)) if preloaded && mode == "shadow" => {
                    let m = refusal::describe(refusal, &name, &role);
                    (
                        true,
                        format!(
                            "allowed in shadow mode, audited as would_deny: {}",
                            m.message.trim_start_matches("tenant_guard: ")
                        ),
                        m.hint,
                    )
                }
                Some(_) if posture == Posture::Filtered => {
                    let column = registration
                        .as_ref()
                        .and_then(|r| r["tenant_column"].as_str())
                        .unwrap_or("tenant column");
                    let scope_words = if command == "INSERT" {
                        format!("new rows must have {column} = '{claim_raw}'")
                    } else {
                        format!("only rows with {column} = '{claim_raw}' (an empty result means that tenant has none)")
                    };
                    (true, scope_words, None)
                }
                Some(_) => (
                    true,
                    if bypass.is_some() {
                        "across all tenants, in a bypass (every statement audited)".to_string()
                    } else if trusted {
                        "across all tenants as a trusted role (reads audited as broad reads)".to_string()
                    } else {
                        "across all tenants (policies do not apply to this role; the guard is not enforcing)".to_string()
                    },
                    None,
                ),
                None if posture == Posture::Filtered
                    && table["rls_enabled"].as_bool() == Some(true) =>
                {
                    (
                        true,
                        "the table's own row level security policies apply (not tenant_guard's)"
                            .to_string(),
                        None,
                    )
                }
                None => (
                    true,
                    "all rows: the table is not protected".to_string(),
                    None,
                ),
            }
        };
        lines.push(format!(
            "  {command}: {} — {why}{}",
            if allowed { "allowed" } else { "REFUSED" },
            fix.as_ref()
                .map(|f| format!("\n      fix: {f}"))
                .unwrap_or_default()
        ));
        verdicts.insert(
            command.to_lowercase(),
            json!({ "allowed": allowed, "why": why, "fix": fix }),
        );
    }
    let document = json!({
        "table": name,
        "protected": registration.is_some(),
        "inherits_protection": registration.is_none() && entry.is_some(),
        "registration": registration,
        "exempt": exemption,
        "row_level_security": { "enabled": table["rls_enabled"], "forced": table["rls_forced"], "owner": table["owner"] },
        "policies": policies,
        "claim": { "value": if claim_raw.is_empty() { Value::Null } else { Value::from(claim_raw.clone()) },
                   "state": claim_state, "valid_now": claim_valid, "scope": scope },
        "role": { "name": role, "superuser": superuser, "bypassrls": bypassrls, "owner": owner,
                  "trusted": trusted, "in_bypass": bypass.is_some(), "bypass_reason": bypass },
        "mode": { "enforce": mode, "preloaded": preloaded },
        "verdict": Value::Object(verdicts),
    });
    TableIterator::once((lines.join("\n"), pgrx::JsonB(document)))
}
