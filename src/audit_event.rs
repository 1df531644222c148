//! What one audit event holds, as plain fixed-size data that can be copied into shared memory,
//! and its one-line server-log form. No PostgreSQL calls here except in `capture()`.

use std::ffi::CStr;

use pgrx::pg_sys;

/// The kinds of event of the contract that exist so far.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Denied = 1,
    WouldDeny = 2,
    BroadRead = 3,
    RowCap = 4,
    Protect = 5,
    Unprotect = 6,
    Exempt = 7,
    Bypass = 8,
    Tamper = 9,
    TokenRejected = 10,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Denied => "denied",
            EventKind::WouldDeny => "would_deny",
            EventKind::BroadRead => "broad_read",
            EventKind::RowCap => "row_cap",
            EventKind::Protect => "protect",
            EventKind::Unprotect => "unprotect",
            EventKind::Exempt => "exempt",
            EventKind::Bypass => "bypass",
            EventKind::Tamper => "tamper",
            EventKind::TokenRejected => "token_rejected",
        }
    }

    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => EventKind::Denied,
            2 => EventKind::WouldDeny,
            3 => EventKind::BroadRead,
            4 => EventKind::RowCap,
            5 => EventKind::Protect,
            6 => EventKind::Unprotect,
            7 => EventKind::Exempt,
            8 => EventKind::Bypass,
            9 => EventKind::Tamper,
            10 => EventKind::TokenRejected,
            _ => return None,
        })
    }
}

/// A string of at most `N` bytes, stored inline. Longer input is cut at a character boundary.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FixedText<const N: usize> {
    len: u16,
    bytes: [u8; N],
}

impl<const N: usize> FixedText<N> {
    pub const EMPTY: Self = FixedText {
        len: 0,
        bytes: [0; N],
    };

    pub fn set(&mut self, s: &str, max: usize) {
        let limit = max.min(N);
        let mut end = s.len().min(limit);
        while end > 0 && !s.is_char_boundary(end) {
            end -= 1;
        }
        self.bytes[..end].copy_from_slice(&s.as_bytes()[..end]);
        self.len = end as u16;
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

/// Bytes of query text an event can hold (tenant_guard.audit_query_max is capped at this).
pub const QUERY_CAPACITY: usize = 2048;
/// Separator of relation names inside `relations` (ASCII unit separator).
pub const RELATION_SEPARATOR: char = '\u{1f}';

#[repr(C)]
#[derive(Clone, Copy)]
pub struct AuditEvent {
    pub database: pg_sys::Oid,
    pub backend_pid: i32,
    /// PostgreSQL timestamp (microseconds since 2000-01-01 UTC).
    pub at: i64,
    pub kind: u8,
    /// Row count, or -1 when it does not apply.
    pub rows: i64,
    pub role: FixedText<64>,
    pub session_role: FixedText<64>,
    pub tenant: FixedText<256>,
    pub application_name: FixedText<64>,
    pub client_addr: FixedText<64>,
    pub command: FixedText<32>,
    pub relations: FixedText<512>,
    pub reason: FixedText<256>,
    pub query: FixedText<QUERY_CAPACITY>,
}

impl AuditEvent {
    pub const EMPTY: Self = AuditEvent {
        database: pg_sys::InvalidOid,
        backend_pid: 0,
        at: 0,
        kind: 0,
        rows: -1,
        role: FixedText::EMPTY,
        session_role: FixedText::EMPTY,
        tenant: FixedText::EMPTY,
        application_name: FixedText::EMPTY,
        client_addr: FixedText::EMPTY,
        command: FixedText::EMPTY,
        relations: FixedText::EMPTY,
        reason: FixedText::EMPTY,
        query: FixedText::EMPTY,
    };

    pub fn kind(&self) -> Option<EventKind> {
        EventKind::from_u8(self.kind)
    }

    pub fn relation_list(&self) -> Vec<String> {
        let r = self.relations.as_str();
        if r.is_empty() {
            Vec::new()
        } else {
            r.split(RELATION_SEPARATOR).map(str::to_string).collect()
        }
    }

    /// The server-log line: `tenant_guard: event=denied reason=... key=value ...`; values that
    /// are empty are left out, others are quoted when they contain blanks or quotes.
    pub fn log_line(&self) -> String {
        let kind = self.kind().map_or("unknown", EventKind::name);
        let mut out = format!("event={kind}");
        let relations = self.relation_list().join(",");
        let rows = if self.rows >= 0 {
            self.rows.to_string()
        } else {
            String::new()
        };
        let pid = self.backend_pid.to_string();
        for (key, value) in [
            ("reason", self.reason.as_str()),
            ("relations", relations.as_str()),
            ("command", self.command.as_str()),
            ("rows", rows.as_str()),
            ("tenant", self.tenant.as_str()),
            ("role", self.role.as_str()),
            ("session_role", self.session_role.as_str()),
            ("application_name", self.application_name.as_str()),
            ("client_addr", self.client_addr.as_str()),
            ("backend_pid", pid.as_str()),
            ("query", self.query.as_str()),
        ] {
            if !value.is_empty() {
                out.push(' ');
                out.push_str(key);
                out.push('=');
                out.push_str(&log_value(value));
            }
        }
        out
    }
}

/// Quotes a log value when it needs it: `"..."` with `\"`, `\\` and `\n` escaped.
pub fn log_value(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| !c.is_whitespace() && c != '"' && c != '\\' && c != '=')
    {
        return v.to_string();
    }
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Everything about the current backend that an event records. Called on the event path only.
pub fn capture(
    kind: EventKind,
    reason: &str,
    relations: &[String],
    command: &str,
    rows: Option<i64>,
    tenant: Option<&str>,
    query_max: usize,
) -> AuditEvent {
    let mut ev = AuditEvent::EMPTY;
    unsafe {
        ev.database = pg_sys::MyDatabaseId;
        ev.backend_pid = pg_sys::MyProcPid;
        ev.at = pg_sys::GetCurrentTimestamp();
        ev.role
            .set(&crate::catalog::role_name(pg_sys::GetUserId()), 64);
        ev.session_role
            .set(&crate::catalog::role_name(pg_sys::GetSessionUserId()), 64);
        if !pg_sys::application_name.is_null() {
            ev.application_name.set(
                &CStr::from_ptr(pg_sys::application_name).to_string_lossy(),
                64,
            );
        }
        if query_max > 0 && !pg_sys::debug_query_string.is_null() {
            ev.query.set(
                &CStr::from_ptr(pg_sys::debug_query_string).to_string_lossy(),
                query_max,
            );
        }
    }
    ev.client_addr.set(&crate::audit_queue::client_addr(), 64);
    ev.kind = kind as u8;
    ev.rows = rows.unwrap_or(-1);
    ev.tenant.set(tenant.unwrap_or(""), 256);
    ev.command.set(command, 32);
    let sep = RELATION_SEPARATOR.to_string();
    ev.relations.set(&relations.join(&sep), 512);
    ev.reason.set(reason, 256);
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_text_truncates_on_character_boundaries() {
        let mut t = FixedText::<8>::EMPTY;
        t.set("ünïcødé", 8);
        assert_eq!(t.as_str(), "ünïcø"); // 2+1+2+1+2 bytes
        t.set("ünïcødé", 7);
        assert_eq!(t.as_str(), "ünïc", "never half a character");
        t.set("abc", 2);
        assert_eq!(t.as_str(), "ab");
        t.set("", 8);
        assert_eq!(t.as_str(), "");
    }

    #[test]
    fn log_lines_are_key_value_and_quote_what_needs_it() {
        let mut ev = AuditEvent::EMPTY;
        ev.kind = EventKind::Denied as u8;
        ev.reason.set("no_claim", 100);
        ev.relations
            .set("public.invoices\u{1f}public.\"we ird\"", 100);
        ev.query.set("SELECT \"x\" FROM t", 100);
        ev.backend_pid = 42;
        assert_eq!(
            ev.log_line(),
            "event=denied reason=no_claim relations=\"public.invoices,public.\\\"we ird\\\"\" \
             backend_pid=42 query=\"SELECT \\\"x\\\" FROM t\""
        );
    }

    #[test]
    fn every_kind_round_trips() {
        for k in 1..=10u8 {
            assert_eq!(EventKind::from_u8(k).map(|e| e as u8), Some(k));
        }
        assert_eq!(EventKind::from_u8(0), None);
    }
}
