//! Small, read-only questions to PostgreSQL's catalogs and role system (thin FFI).
//! Used off the hot path: on cache rebuilds, refusals and in the policy helpers.

use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::guard::Posture;
use crate::settings;

/// The oid of `tenant_guard.protected_tables` when the extension is installed in this database.
pub fn registry_oid() -> Option<pg_sys::Oid> {
    unsafe {
        let ext = pg_sys::get_extension_oid(c"tenant_guard".as_ptr(), true);
        if ext == pg_sys::InvalidOid {
            return None;
        }
        let nsp = pg_sys::get_namespace_oid(c"tenant_guard".as_ptr(), true);
        if nsp == pg_sys::InvalidOid {
            return None;
        }
        let rel = pg_sys::get_relname_relid(c"protected_tables".as_ptr(), nsp);
        (rel != pg_sys::InvalidOid).then_some(rel)
    }
}

/// Is the relation in the `tenant_guard` schema?
pub fn in_extension_schema(relid: pg_sys::Oid) -> bool {
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"tenant_guard".as_ptr(), true);
        nsp != pg_sys::InvalidOid && pg_sys::get_rel_namespace(relid) == nsp
    }
}

/// Runs `f` as the bootstrap superuser with `search_path = pg_catalog, pg_temp`, so that the
/// extension's own bookkeeping neither depends on the caller's grants nor resolves any name
/// through the caller's search_path. User and search_path are restored on return and on error.
pub fn as_superuser<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(pg_sys::Oid, i32, i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            unsafe {
                pg_sys::AtEOXact_GUC(true, self.2);
                pg_sys::SetUserIdAndSecContext(self.0, self.1);
            }
        }
    }
    let mut user = pg_sys::InvalidOid;
    let mut sec = 0;
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut sec);
        pg_sys::SetUserIdAndSecContext(
            pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID),
            sec | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    let nest = unsafe { pg_sys::NewGUCNestLevel() };
    let _restore = Restore(user, sec, nest);
    pin_search_path(pg_sys::GucAction::GUC_ACTION_SAVE);
    f()
}

/// Sets `search_path = pg_catalog, pg_temp` (saved: undone with its GUC nest level; or for the
/// whole session in the audit writer).
pub fn pin_search_path(action: pg_sys::GucAction::Type) {
    unsafe {
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            0,
            false,
        );
    }
}

unsafe fn quoted(ident: *const std::ffi::c_char) -> String {
    if ident.is_null() {
        return "???".to_string();
    }
    CStr::from_ptr(pg_sys::quote_identifier(ident))
        .to_string_lossy()
        .into_owned()
}

/// `schema.table`, each part quoted as needed; `"oid 123"` for a relation that no longer exists.
pub fn qualified_name(relid: pg_sys::Oid) -> String {
    unsafe {
        let name = pg_sys::get_rel_name(relid);
        if name.is_null() {
            return format!("with oid {}", u32::from(relid));
        }
        let nsp = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        format!("{}.{}", quoted(nsp), quoted(name))
    }
}

/// The role the executor checks for a range-table entry (`checkAsUser`, else the current user).
pub fn effective_user(check_as_user: pg_sys::Oid) -> pg_sys::Oid {
    if check_as_user != pg_sys::InvalidOid {
        check_as_user
    } else {
        unsafe { pg_sys::GetUserId() }
    }
}

pub fn role_name(role: pg_sys::Oid) -> String {
    unsafe {
        let p = pg_sys::GetUserNameFromId(role, true);
        if p.is_null() {
            format!("oid {}", u32::from(role))
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// How row security applies to `user` on `relid`.
pub fn posture(relid: pg_sys::Oid, user: pg_sys::Oid) -> Posture {
    let rc = unsafe { pg_sys::check_enable_rls(relid, user, true) } as u32;
    match rc {
        pg_sys::CheckEnableRlsResult::RLS_ENABLED => Posture::Filtered,
        pg_sys::CheckEnableRlsResult::RLS_NONE => Posture::TableRlsDisabled,
        _ => unsafe {
            if pg_sys::superuser_arg(user) {
                Posture::Superuser
            } else if pg_sys::has_bypassrls_privilege(user) {
                Posture::BypassRls
            } else {
                Posture::OwnerNotForced
            }
        },
    }
}

/// Is `user` a member of a role listed in `tenant_guard.trusted_roles`?
pub fn is_trusted(user: pg_sys::Oid) -> bool {
    settings::trusted_roles().iter().any(|name| {
        let Ok(c) = std::ffi::CString::new(name.as_str()) else {
            return false;
        };
        unsafe {
            let role = pg_sys::get_role_oid(c.as_ptr(), true);
            // _nosuper: a superuser is not a member of every role for this purpose
            role != pg_sys::InvalidOid && pg_sys::is_member_of_role_nosuper(user, role)
        }
    })
}

/// The first column of the first row of a read-only query, or None.
///
/// Unlike `Spi::get_one`, this never marks the transaction as writing (which would assign a
/// transaction id: wasteful in a read-only transaction, and an error in a parallel worker).
pub fn select_one<T: FromDatum + IntoDatum>(query: &str) -> Option<T> {
    Spi::connect(|c| {
        let rows = c.select(query, Some(1), &[]).ok()?;
        for row in rows {
            return row.get::<T>(1).ok().flatten();
        }
        None
    })
}
