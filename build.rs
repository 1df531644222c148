//! Compiles the C trampolines of the executor and utility hooks (src/hooks.c) and the audit
//! writer's fast path into the audit table (src/audit_store.c).
//!
//! They exist so that PostgreSQL errors raised below a hook travel through C frames only
//! (PG_TRY/PG_FINALLY/PG_RE_THROW), keeping every field of the error (constraint and table names,
//! CONTEXT, ...). Calling back into PostgreSQL from Rust would turn the error into a Rust panic
//! and re-raise it with message, detail, hint and code only.

use std::path::PathBuf;
use std::process::Command;

fn pg_config() -> PathBuf {
    for var in ["PGRX_PG_CONFIG_PATH", "PG_CONFIG"] {
        if let Ok(p) = std::env::var(var) {
            if !p.is_empty() {
                return PathBuf::from(p);
            }
        }
    }
    if let Ok(home) =
        std::env::var("PGRX_HOME").or_else(|_| std::env::var("HOME").map(|h| format!("{h}/.pgrx")))
    {
        if let Ok(config) = std::fs::read_to_string(format!("{home}/config.toml")) {
            for line in config.lines() {
                if let Some(rest) = line.trim().strip_prefix("pg15") {
                    if let Some(path) = rest.split('"').nth(1) {
                        return PathBuf::from(path);
                    }
                }
            }
        }
    }
    PathBuf::from("/usr/lib/postgresql/15/bin/pg_config")
}

fn main() {
    println!("cargo:rerun-if-changed=src/hooks.c");
    println!("cargo:rerun-if-changed=src/audit_store.c");
    println!("cargo:rerun-if-env-changed=PGRX_PG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PG_CONFIG");
    let pg_config = pg_config();
    let out = Command::new(&pg_config)
        .arg("--includedir-server")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", pg_config.display()));
    let include = String::from_utf8(out.stdout)
        .expect("pg_config output")
        .trim()
        .to_string();
    cc::Build::new()
        .file("src/hooks.c")
        .file("src/audit_store.c")
        .include(include)
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-missing-field-initializers")
        .compile("tenant_guard_hooks");
}
