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

/// `tenant_guard.new_table_action`
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum NewTableAction {
    #[name = c"error"]
    Error,
    #[name = c"warn"]
    Warn,
    #[name = c"protect"]
    Protect,
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
static BYPASS_ROLES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static WATCHED_SCHEMAS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"public"));
static TENANT_COLUMNS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"tenant_id"));
static NEW_TABLE_ACTION: GucSetting<NewTableAction> =
    GucSetting::<NewTableAction>::new(NewTableAction::Error);
static AUDIT_QUEUE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(4096);
static AUDIT_QUERY_MAX: GucSetting<i32> = GucSetting::<i32>::new(1024);
static BROAD_READ_ROWS: GucSetting<i32> = GucSetting::<i32>::new(1000);
static MAX_ROWS: GucSetting<i32> = GucSetting::<i32>::new(0);
static TOKEN_KEYS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static TOKEN_LEEWAY: GucSetting<i32> = GucSetting::<i32>::new(30);
static TOKEN_ISSUER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static TOKEN_AUDIENCE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static TOKEN_TENANT_CLAIM: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"tenant_id"));
static REQUIRE_TOKEN: GucSetting<bool> = GucSetting::<bool>::new(false);
static JWT_CLAIMS_PATH: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// Registers every setting, then reserves the `tenant_guard.` prefix so that a misspelt
/// setting is an error instead of a silently ignored placeholder.
pub fn init(preloaded: bool) {
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
    GucRegistry::define_string_guc(
        c"tenant_guard.bypass_roles",
        c"Comma-separated roles whose members may call tenant_guard.begin_bypass(reason).",
        c"Members also need BYPASSRLS to read across tenants. Only superusers may change it.",
        &BYPASS_ROLES,
        GucContext::Suset,
        GucFlags::default(),
    );
    crate::bypass::define_setting();
    GucRegistry::define_string_guc(
        c"tenant_guard.watched_schemas",
        c"Comma-separated schemas whose new tables with a tenant column must be protected or exempt.",
        c"Only superusers may change it.",
        &WATCHED_SCHEMAS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tenant_guard.tenant_columns",
        c"Comma-separated column names that make a table tenant-scoped.",
        c"Only superusers may change it.",
        &TENANT_COLUMNS,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"tenant_guard.new_table_action",
        c"What happens to a new tenant-scoped table that is neither protected nor exempt at commit: error, warn or protect.",
        c"error fails the migration's transaction; warn lets it commit with a WARNING; protect protects it on the spot. Only superusers may change it.",
        &NEW_TABLE_ACTION,
        GucContext::Suset,
        GucFlags::default(),
    );
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"tenant_guard.token_keys",
            c"Keys that sign tenant tokens: comma-separated kid:secret (or secret, or kid:base64:...).",
            c"Only superusers can set or see it; set it in postgresql.conf or with ALTER SYSTEM.",
            &TOKEN_KEYS,
            GucContext::Suset,
            GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL,
            Some(crate::claim::check_token_keys),
            None,
            None,
        );
    }
    GucRegistry::define_int_guc(
        c"tenant_guard.token_leeway",
        c"Seconds of clock skew tolerated on a token's exp and nbf.",
        c"Only superusers may change it.",
        &TOKEN_LEEWAY,
        0,
        3600,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_string_guc(
        c"tenant_guard.token_issuer",
        c"When set, a token's iss claim must equal it.",
        c"Only superusers may change it.",
        &TOKEN_ISSUER,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tenant_guard.token_audience",
        c"When set, a token's aud claim must be or contain it.",
        c"Only superusers may change it.",
        &TOKEN_AUDIENCE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tenant_guard.token_tenant_claim",
        c"Where the tenant is in a token: a claim name or a dotted path such as app_metadata.tenant_id.",
        c"Only superusers may change it.",
        &TOKEN_TENANT_CLAIM,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"tenant_guard.require_token",
        c"When on, the tenant claim can only be set with tenant_guard.set_tenant_token().",
        c"SET, SET LOCAL, set_config(), set_tenant() and function SET clauses are refused. Only superusers may change it.",
        &REQUIRE_TOKEN,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"tenant_guard.jwt_claims_path",
        c"When set, the tenant comes from PostgREST's request.jwt.claims at this path (e.g. app_metadata.tenant_id).",
        c"Used when tenant_guard.tenant_id is not set; the same scope rules apply. Only superusers may change it.",
        &JWT_CLAIMS_PATH,
        GucContext::Suset,
        GucFlags::default(),
    );
    // A server-start setting can only be defined while shared_preload_libraries is processed.
    if preloaded {
        define_audit_queue_size();
    }
    GucRegistry::define_int_guc(
        c"tenant_guard.audit_query_max",
        c"Bytes of query text kept in each audit event (0 = no query text).",
        c"Longer queries are cut at a character boundary. At most 2048.",
        &AUDIT_QUERY_MAX,
        0,
        crate::audit_event::QUERY_CAPACITY as i32,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tenant_guard.broad_read_rows",
        c"A read of protected tables returning at least this many rows is audited as broad_read (0 = never by count).",
        c"A per-table value set with tenant_guard.set_limits() overrides it. Only superusers may change it.",
        &BROAD_READ_ROWS,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tenant_guard.max_rows",
        c"Most rows a statement may return from protected tables (0 = no cap).",
        c"Past it the statement fails with SQLSTATE 54000. A per-table value set with \
          tenant_guard.set_limits() overrides it. Only superusers may change it.",
        &MAX_ROWS,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    unsafe { pg_sys::MarkGUCPrefixReserved(c"tenant_guard".as_ptr()) };
}

fn define_audit_queue_size() {
    GucRegistry::define_int_guc(
        c"tenant_guard.audit_queue_size",
        c"Audit events the shared-memory queue holds before it drops (and counts) new ones.",
        c"Set at server start. Each slot takes about 3.5 kB of shared memory.",
        &AUDIT_QUEUE_SIZE,
        16,
        1_000_000,
        GucContext::Postmaster,
        GucFlags::default(),
    );
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

pub fn audit_queue_size() -> i32 {
    AUDIT_QUEUE_SIZE.get()
}

pub fn audit_query_max() -> usize {
    AUDIT_QUERY_MAX.get().max(0) as usize
}

pub fn broad_read_rows() -> i32 {
    BROAD_READ_ROWS.get()
}

pub fn max_rows() -> i32 {
    MAX_ROWS.get()
}

/// The role names listed in `tenant_guard.trusted_roles` (empty when unset).
pub fn trusted_roles() -> Vec<String> {
    match TRUSTED_ROLES.get() {
        Some(s) => parse_role_list(&s.to_string_lossy()),
        None => Vec::new(),
    }
}

fn string(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting
        .get()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.trim().is_empty())
}

pub fn token_keys() -> Option<String> {
    string(&TOKEN_KEYS)
}

pub fn token_leeway() -> i64 {
    TOKEN_LEEWAY.get() as i64
}

pub fn token_issuer() -> Option<String> {
    string(&TOKEN_ISSUER)
}

pub fn token_audience() -> Option<String> {
    string(&TOKEN_AUDIENCE)
}

pub fn token_tenant_claim() -> String {
    string(&TOKEN_TENANT_CLAIM).unwrap_or_else(|| "tenant_id".to_string())
}

pub fn require_token() -> bool {
    REQUIRE_TOKEN.get()
}

/// The JSON path of the tenant in PostgREST's `request.jwt.claims`, when that source is on.
/// Read without allocating when it is off (every guarded statement asks).
pub fn jwt_claims_path() -> Option<String> {
    let raw = unsafe { *JWT_CLAIMS_PATH.as_ptr() };
    if raw.is_null() || unsafe { *raw } == 0 {
        return None;
    }
    string(&JWT_CLAIMS_PATH)
}

/// `tenant_guard.tenant_columns` as a list.
pub fn tenant_columns() -> Vec<String> {
    string(&TENANT_COLUMNS)
        .map(|s| parse_role_list(&s))
        .unwrap_or_default()
}

/// `tenant_guard.watched_schemas` as a list.
pub fn watched_schemas() -> Vec<String> {
    string(&WATCHED_SCHEMAS)
        .map(|s| parse_role_list(&s))
        .unwrap_or_default()
}

pub fn new_table_action() -> NewTableAction {
    NEW_TABLE_ACTION.get()
}

/// The role names listed in `tenant_guard.bypass_roles` (empty when unset).
pub fn bypass_roles() -> Vec<String> {
    match BYPASS_ROLES.get() {
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
