//! The policy helpers migrations call: protect(), unprotect(), exempt().
//!
//! They run as the caller, so PostgreSQL's own ownership rules apply to the `ALTER TABLE` and
//! `CREATE POLICY` statements; only the registry rows are written as the extension's owner.
//! Validation happens first, then the registry is written, then the DDL, so a failure leaves
//! nothing half-done (the transaction rolls back as a whole).

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;

use crate::audit;
use crate::audit_event::EventKind;
use crate::catalog::{self, as_superuser};
use crate::policy::{self, quote_ident, TenantType};
use crate::refusal::{self, bad_argument};
use crate::registry;
use crate::tamper;

struct Relation {
    relid: pg_sys::Oid,
    name: String,
    kind: String,
    persistence: String,
    rls_enabled: bool,
    rls_forced: bool,
}

fn spi_err<T>(r: SpiResult<T>) -> T {
    r.unwrap_or_else(|e| panic!("tenant_guard: internal query failed: {e}"))
}

fn relation(relid: pg_sys::Oid) -> Option<Relation> {
    Spi::connect(|c| {
        let rows = spi_err(c.select(
            "SELECT relkind::text, relpersistence::text, relrowsecurity, relforcerowsecurity
               FROM pg_catalog.pg_class WHERE oid = $1",
            None,
            &[relid.into()],
        ));
        for row in rows {
            return Some(Relation {
                relid,
                name: catalog::qualified_name(relid),
                kind: spi_err(row.get::<String>(1)).unwrap_or_default(),
                persistence: spi_err(row.get::<String>(2)).unwrap_or_default(),
                rls_enabled: spi_err(row.get::<bool>(3)).unwrap_or(false),
                rls_forced: spi_err(row.get::<bool>(4)).unwrap_or(false),
            });
        }
        None
    })
}

/// The relation itself, checked to be a table the caller owns.
fn owned_table(rel: Option<pg_sys::Oid>, what: &str) -> Relation {
    let Some(relid) = rel else {
        bad_argument(
            &format!("{what}() needs a table, got NULL"),
            &format!("Pass the table: SELECT tenant_guard.{what}('public.invoices', ...);"),
        )
    };
    let Some(r) = relation(relid) else {
        refusal::raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("relation with oid {} does not exist", u32::from(relid)),
            None,
            "Pass the table by name: 'schema.table'.".into(),
        )
    };
    let kind = match r.kind.as_str() {
        "r" | "p" => None,
        "v" => Some("a view"),
        "m" => Some("a materialized view"),
        "f" => Some("a foreign table"),
        "i" | "I" => Some("an index"),
        "S" => Some("a sequence"),
        "c" => Some("a composite type"),
        "t" => Some("a TOAST table"),
        _ => Some("not a table"),
    };
    if let Some(kind) = kind {
        bad_argument(
            &format!("{} is {kind}; only tables can be given to {what}()", r.name),
            "Protect the tables a view reads; a view with security_invoker = on is then filtered too.",
        );
    }
    if catalog::in_extension_schema(relid) {
        bad_argument(
            &format!("{} belongs to tenant_guard itself; only application tables can be given to {what}()", r.name),
            "tenant_guard's own tables are already closed to the application role.",
        );
    }
    if r.persistence == "t" {
        bad_argument(
            &format!(
                "{} is a temporary table; only permanent tables can be given to {what}()",
                r.name
            ),
            "Temporary tables are private to one session; protect the permanent table instead.",
        );
    }
    if !unsafe { pg_sys::pg_class_ownercheck(relid, pg_sys::GetUserId()) } {
        refusal::not_owner(&r.name, what);
    }
    r
}

fn reason_text(reason: Option<&str>, what: &str) -> String {
    match reason.map(str::trim) {
        Some(r) if !r.is_empty() => {
            if r.len() > 1000 {
                bad_argument(
                    &format!("the reason given to {what}() is {} bytes long; at most 1000 are allowed", r.len()),
                    "Give a short reason and link to the ticket or document.",
                );
            }
            r.to_string()
        }
        _ => bad_argument(
            &format!("{what}() needs a reason"),
            &format!("Say why, for the audit trail: SELECT tenant_guard.{what}('public.t', 'shared lookup table');"),
        ),
    }
}

/// The relation and every inheritance/partition descendant, parents first.
fn tree(relid: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    Spi::connect(|c| {
        let rows = spi_err(c.select(
            "WITH RECURSIVE t(relid, depth) AS (
                 SELECT $1::pg_catalog.oid, 0
                 UNION
                 SELECT i.inhrelid, t.depth + 1 FROM pg_catalog.pg_inherits i JOIN t ON i.inhparent = t.relid)
             SELECT relid FROM t GROUP BY relid ORDER BY pg_catalog.min(depth), relid",
            None,
            &[relid.into()],
        ));
        rows.filter_map(|row| spi_err(row.get::<pg_sys::Oid>(1)))
            .collect()
    })
}

/// The nearest registered ancestor and its tenant column.
fn registered_ancestor(relid: pg_sys::Oid) -> Option<(pg_sys::Oid, String)> {
    Spi::connect(|c| {
        let rows = spi_err(c.select(
            "WITH RECURSIVE up(relid, depth) AS (
                 SELECT i.inhparent, 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = $1
                 UNION
                 SELECT i.inhparent, up.depth + 1 FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.relid)
             SELECT p.relid::pg_catalog.oid, p.tenant_column::text
               FROM up JOIN tenant_guard.protected_tables p ON p.relid = up.relid
              ORDER BY up.depth LIMIT 1",
            None,
            &[relid.into()],
        ));
        for row in rows {
            let oid = spi_err(row.get::<pg_sys::Oid>(1))?;
            let col = spi_err(row.get::<String>(2))?;
            return Some((oid, col));
        }
        None
    })
}

struct Registration {
    tenant_column: String,
    rls_was_enabled: bool,
    rls_was_forced: bool,
}

fn registration(relid: pg_sys::Oid) -> Option<Registration> {
    Spi::connect(|c| {
        let rows = spi_err(c.select(
            "SELECT tenant_column::text, rls_was_enabled, rls_was_forced
               FROM tenant_guard.protected_tables WHERE relid = $1::pg_catalog.oid::pg_catalog.regclass",
            None,
            &[relid.into()],
        ));
        for row in rows {
            return Some(Registration {
                tenant_column: spi_err(row.get::<String>(1)).unwrap_or_default(),
                rls_was_enabled: spi_err(row.get::<bool>(2)).unwrap_or(false),
                rls_was_forced: spi_err(row.get::<bool>(3)).unwrap_or(false),
            });
        }
        None
    })
}

fn is_exempt(relid: pg_sys::Oid) -> bool {
    spi_err(Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM tenant_guard.exempt_tables WHERE relid = $1::pg_catalog.oid::pg_catalog.regclass)",
        &[relid.into()],
    ))
    .unwrap_or(false)
}

/// The tenant column's type, checked to exist, be NOT NULL and be comparable.
fn tenant_column_type(rel: &Relation, column: &str) -> TenantType {
    let found = Spi::connect(|c| {
        let rows = spi_err(c.select(
            "SELECT atttypid, attnotnull, pg_catalog.format_type(atttypid, atttypmod)
               FROM pg_catalog.pg_attribute
              WHERE attrelid = $1 AND attname = $2::pg_catalog.name AND attnum > 0 AND NOT attisdropped",
            None,
            &[rel.relid.into(), column.into()],
        ));
        for row in rows {
            return Some((
                spi_err(row.get::<pg_sys::Oid>(1)).unwrap_or(pg_sys::InvalidOid),
                spi_err(row.get::<bool>(2)).unwrap_or(false),
                spi_err(row.get::<String>(3)).unwrap_or_default(),
            ));
        }
        None
    });
    let Some((type_oid, not_null, type_name)) = found else {
        bad_argument(
            &format!("table {} has no column {}", rel.name, quote_ident(column)),
            &format!(
                "Name the tenant column: SELECT tenant_guard.protect('{}', '<tenant column>');",
                rel.name.replace('\'', "''")
            ),
        )
    };
    let Some(ty) = TenantType::from_type_oid(type_oid) else {
        bad_argument(
            &format!(
                "column {} of table {} has type {type_name}, which cannot be compared with the tenant claim",
                quote_ident(column),
                rel.name
            ),
            &format!("Use a tenant column of type {}.", policy::SUPPORTED_TYPES),
        )
    };
    if !not_null {
        bad_argument(
            &format!(
                "tenant column {} of table {} is nullable",
                quote_ident(column),
                rel.name
            ),
            &format!(
                "A row without a tenant belongs to nobody and is visible to nobody: \
                 ALTER TABLE {} ALTER COLUMN {} SET NOT NULL;",
                rel.name,
                quote_ident(column)
            ),
        );
    }
    ty
}

/// Refuses tables that already have permissive policies of their own: PostgreSQL ORs permissive
/// policies together, so any of them would widen what the tenant policies allow.
fn refuse_widening_policies(rel: &Relation) {
    let found = spi_err(Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(polname::text), ', ' ORDER BY polname)
           FROM pg_catalog.pg_policy
          WHERE polrelid = $1 AND polpermissive AND polname::text NOT LIKE 'tenant\\_guard\\_%'",
        &[rel.relid.into()],
    ));
    if let Some(names) = found {
        bad_argument(
            &format!(
                "table {} already has permissive policies that would widen tenant access: {names}",
                rel.name
            ),
            "Permissive policies are ORed together. Drop them, or recreate them AS RESTRICTIVE so \
             they can only narrow access, then call protect() again.",
        );
    }
}

fn existing_policies(relid: pg_sys::Oid) -> Vec<String> {
    Spi::connect(|c| {
        let rows = spi_err(c.select(
            "SELECT polname::text FROM pg_catalog.pg_policy WHERE polrelid = $1",
            None,
            &[relid.into()],
        ));
        rows.filter_map(|row| spi_err(row.get::<String>(1)))
            .collect()
    })
}

fn has_leading_index(relid: pg_sys::Oid, column: &str) -> bool {
    spi_err(Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (
             SELECT 1 FROM pg_catalog.pg_index x
               JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
              WHERE x.indrelid = $1 AND a.attname = $2::pg_catalog.name)",
        &[relid.into(), column.into()],
    ))
    .unwrap_or(false)
}

fn invalidate_registry() {
    if let Some(oid) = catalog::registry_oid() {
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(oid) };
    }
    registry::mark_stale();
}

fn current_role_name() -> String {
    catalog::role_name(unsafe { pg_sys::GetUserId() })
}

#[pg_extern(name = "_protect", volatile, parallel_unsafe)]
pub fn protect_impl(rel: Option<pg_sys::Oid>, tenant_column: Option<&str>) -> String {
    let root = owned_table(rel, "protect");
    let column = match tenant_column {
        Some(c) if !c.trim().is_empty() => c,
        _ => bad_argument(
            "protect() needs the name of the tenant column",
            "Pass it, or rely on the default: SELECT tenant_guard.protect('public.invoices', 'tenant_id');",
        ),
    };
    if column.len() >= pg_sys::NAMEDATALEN as usize {
        bad_argument(
            &format!(
                "the column name given to protect() is {} bytes long, longer than any column name",
                column.len()
            ),
            "Pass the name of the table's tenant column.",
        );
    }
    let ty = tenant_column_type(&root, column);

    if let Some(existing) = registration(root.relid) {
        if existing.tenant_column != column {
            bad_argument(
                &format!(
                    "table {} is already protected on column {}",
                    root.name,
                    quote_ident(&existing.tenant_column)
                ),
                "To change the tenant column, unprotect() the table first, then protect() it again.",
            );
        }
    }
    let ancestor = registered_ancestor(root.relid);
    if let Some((anc, anc_column)) = &ancestor {
        if anc_column != column {
            bad_argument(
                &format!(
                    "table {} inherits from protected table {}, whose tenant column is {}",
                    root.name,
                    catalog::qualified_name(*anc),
                    quote_ident(anc_column)
                ),
                "Partitions and children are protected on their parent's tenant column.",
            );
        }
    }

    // Validate the whole tree before changing anything.
    let mut members = Vec::new();
    for relid in tree(root.relid) {
        let r = if relid == root.relid {
            relation(relid).expect("root exists")
        } else {
            owned_table(Some(relid), "protect")
        };
        tenant_column_type(&r, column);
        refuse_widening_policies(&r);
        members.push(r);
    }
    let exempt_removed = is_exempt(root.relid);

    // Register first (the new-partition trigger then sees the tree as protected), then the DDL.
    let by = current_role_name();
    let mut newly = 0;
    as_superuser(|| {
        if exempt_removed {
            spi_err(Spi::run_with_args(
                "DELETE FROM tenant_guard.exempt_tables WHERE relid = $1::pg_catalog.oid::pg_catalog.regclass",
                &[root.relid.into()],
            ));
        }
        for r in &members {
            let parent = if r.relid == root.relid {
                ancestor.as_ref().map(|a| a.0)
            } else {
                Some(root.relid)
            };
            let inserted = spi_err(Spi::get_one_with_args::<i64>(
                "WITH inserted AS (
                     INSERT INTO tenant_guard.protected_tables
                         (relid, tenant_column, tenant_type, parent, rls_was_enabled, rls_was_forced, protected_by)
                     VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2::pg_catalog.name,
                             $3::pg_catalog.text::pg_catalog.regtype, $4::pg_catalog.oid::pg_catalog.regclass,
                             $5, $6, $7::pg_catalog.name)
                     ON CONFLICT (relid) DO UPDATE SET parent = EXCLUDED.parent
                        WHERE protected_tables.parent IS DISTINCT FROM EXCLUDED.parent
                          AND EXCLUDED.parent IS NOT NULL
                     RETURNING 1)
                 SELECT pg_catalog.count(*) FROM inserted",
                &[
                    r.relid.into(),
                    column.into(),
                    ty.sql_name().into(),
                    parent.into(),
                    r.rls_enabled.into(),
                    r.rls_forced.into(),
                    by.as_str().into(),
                ],
            ));
            newly += inserted.unwrap_or(0);
        }
    });

    let mut changes = 0;
    tamper::as_helper(|| {
        for r in &members {
            if !r.rls_enabled {
                spi_err(Spi::run(&format!(
                    "ALTER TABLE {} ENABLE ROW LEVEL SECURITY",
                    r.name
                )));
                changes += 1;
            }
            if !r.rls_forced {
                spi_err(Spi::run(&format!(
                    "ALTER TABLE {} FORCE ROW LEVEL SECURITY",
                    r.name
                )));
                changes += 1;
            }
            let have = existing_policies(r.relid);
            for (name, sql) in policy::policy_statements(&r.name, column, ty) {
                if !have.iter().any(|h| h == name) {
                    spi_err(Spi::run(&sql));
                    changes += 1;
                }
            }
        }
    });
    if changes == 0 && newly == 0 {
        return format!(
            "{} is already protected on {}",
            root.name,
            quote_ident(column)
        );
    }
    invalidate_registry();
    for r in &members {
        audit::helper_event(
            EventKind::Protect,
            &r.name,
            &format!("tenant column {}", quote_ident(column)),
        );
    }
    if exempt_removed {
        refusal::Message::notice(format!(
            "table {} was exempt; protect() removed the exemption",
            root.name
        ));
    }
    if !has_leading_index(root.relid, column) {
        refusal::Message::warning(
            format!("no index of table {} leads with tenant column {}", root.name, quote_ident(column)),
            "Every tenant query filters on this column; without such an index each one scans the table.",
            format!("CREATE INDEX ON {} ({});", root.name, quote_ident(column)),
        );
    }
    let extra = members.len() - 1;
    if extra > 0 {
        format!(
            "protected {} and {extra} partition(s) or child table(s) on {} ({})",
            root.name,
            quote_ident(column),
            ty.sql_name()
        )
    } else {
        format!(
            "protected {} on {} ({})",
            root.name,
            quote_ident(column),
            ty.sql_name()
        )
    }
}

#[pg_extern(name = "_unprotect", volatile, parallel_unsafe)]
pub fn unprotect_impl(rel: Option<pg_sys::Oid>, reason: Option<&str>) -> String {
    let root = owned_table(rel, "unprotect");
    let reason = reason_text(reason, "unprotect");
    if registration(root.relid).is_none() {
        return format!("{} is not protected; nothing to do", root.name);
    }
    // Judged from the live inheritance tree: a detached partition can be unprotected on its own.
    if let Some((ancestor, _)) = registered_ancestor(root.relid) {
        bad_argument(
            &format!(
                "table {} is protected as part of {}",
                root.name,
                catalog::qualified_name(ancestor)
            ),
            "A partition or child stays protected while its parent is; unprotect() the parent.",
        );
    }
    let mut removed = Vec::new();
    for relid in tree(root.relid) {
        let Some(reg) = registration(relid) else {
            continue;
        };
        let r = if relid == root.relid {
            relation(relid).expect("root exists")
        } else {
            owned_table(Some(relid), "unprotect")
        };
        // The registry row goes first: from here on the table is no longer protected.
        as_superuser(|| {
            spi_err(Spi::run_with_args(
                "DELETE FROM tenant_guard.protected_tables WHERE relid = $1::pg_catalog.oid::pg_catalog.regclass",
                &[relid.into()],
            ))
        });
        tamper::as_helper(|| {
            for name in policy::POLICY_NAMES {
                spi_err(Spi::run(&format!(
                    "DROP POLICY IF EXISTS {name} ON {}",
                    r.name
                )));
            }
            if !reg.rls_was_forced && r.rls_forced {
                spi_err(Spi::run(&format!(
                    "ALTER TABLE {} NO FORCE ROW LEVEL SECURITY",
                    r.name
                )));
            }
            if !reg.rls_was_enabled && r.rls_enabled {
                spi_err(Spi::run(&format!(
                    "ALTER TABLE {} DISABLE ROW LEVEL SECURITY",
                    r.name
                )));
            }
        });
        removed.push(r.name);
    }
    invalidate_registry();
    for name in &removed {
        audit::helper_event(EventKind::Unprotect, name, &reason);
    }
    format!("unprotected {}", removed.join(", "))
}

#[pg_extern(name = "_exempt", volatile, parallel_unsafe)]
pub fn exempt_impl(rel: Option<pg_sys::Oid>, reason: Option<&str>) -> String {
    let r = owned_table(rel, "exempt");
    let reason = reason_text(reason, "exempt");
    if registration(r.relid).is_some() {
        bad_argument(
            &format!("table {} is protected; a protected table cannot be exempt", r.name),
            &format!(
                "If it really is shared by all tenants: SELECT tenant_guard.unprotect('{}', '<why>'); first.",
                r.name.replace('\'', "''")
            ),
        );
    }
    let by = current_role_name();
    as_superuser(|| {
        spi_err(Spi::run_with_args(
            "INSERT INTO tenant_guard.exempt_tables (relid, reason, exempted_by)
             VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2, $3::pg_catalog.name)
             ON CONFLICT (relid) DO UPDATE
                SET reason = EXCLUDED.reason, exempted_by = EXCLUDED.exempted_by, exempted_at = pg_catalog.now()",
            &[r.relid.into(), reason.as_str().into(), by.as_str().into()],
        ))
    });
    invalidate_registry();
    audit::helper_event(EventKind::Exempt, &r.name, &reason);
    format!("exempted {}", r.name)
}

/// `tenant_guard.set_limits(rel, broad_read_rows, max_rows)`: per-table overrides of
/// `tenant_guard.broad_read_rows` and `tenant_guard.max_rows` (NULL: use the setting; 0: off).
#[pg_extern(name = "_set_limits", volatile, parallel_unsafe)]
pub fn set_limits_impl(
    rel: Option<pg_sys::Oid>,
    broad_read_rows: Option<i32>,
    max_rows: Option<i32>,
) -> String {
    let r = owned_table(rel, "set_limits");
    for (name, v) in [("broad_read_rows", broad_read_rows), ("max_rows", max_rows)] {
        if v.is_some_and(|v| v < 0) {
            bad_argument(
                &format!("{name} must be 0 or more, got {}", v.unwrap_or_default()),
                "Pass NULL to use the setting, 0 to turn the limit off for this table.",
            );
        }
    }
    if registration(r.relid).is_none() {
        bad_argument(
            &format!("table {} is not protected", r.name),
            &format!(
                "Protect it first: SELECT tenant_guard.protect('{}');",
                r.name.replace('\'', "''")
            ),
        );
    }
    as_superuser(|| {
        spi_err(Spi::run_with_args(
            "UPDATE tenant_guard.protected_tables SET broad_read_rows = $2, max_rows = $3
              WHERE relid = $1::pg_catalog.oid::pg_catalog.regclass",
            &[r.relid.into(), broad_read_rows.into(), max_rows.into()],
        ))
    });
    invalidate_registry();
    let show = |v: Option<i32>| v.map_or("the setting".to_string(), |v| v.to_string());
    format!(
        "limits of {}: broad_read_rows = {}, max_rows = {}",
        r.name,
        show(broad_read_rows),
        show(max_rows)
    )
}
