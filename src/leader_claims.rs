//! How a parallel worker learns whether its leader's claim is in force.
//!
//! A worker gets a copy of the leader's settings, but not the leader's transaction stamp of the
//! claim, so it cannot tell a claim set in this transaction from a stale one. Before every
//! statement the leader publishes, in its own slot of a shared array (indexed by backend id), the
//! local transaction id in which its claim is valid, a hash of that claim, and a hash of the
//! tenant its transaction first used. A worker trusts its claim only when its leader's slot says
//! the leader's current transaction holds exactly that claim.
//!
//! Only the owning backend writes its slot, and never during parallel execution (settings cannot
//! change then), so readers need no lock.

use std::hash::{Hash, Hasher};

use pgrx::pg_sys;

#[repr(C)]
#[derive(Clone, Copy)]
struct Slot {
    lxid: u32,
    claim_hash: u64,
    tenant_of_transaction_hash: u64,
    /// The role in an admin bypass (0: none), valid for `bypass_lxid`, and its reason.
    bypass_user: u32,
    bypass_lxid: u32,
    bypass_reason_len: u16,
    bypass_reason: [u8; 200],
}

static mut SLOTS: *mut Slot = std::ptr::null_mut();

pub fn shmem_size() -> usize {
    unsafe { (pg_sys::MaxBackends as usize + 1) * std::mem::size_of::<Slot>() }
}

pub unsafe fn attach() {
    let mut found = false;
    let size = shmem_size();
    let ptr = pg_sys::ShmemInitStruct(c"tenant_guard leader claims".as_ptr(), size, &mut found)
        as *mut Slot;
    if !found {
        std::ptr::write_bytes(ptr as *mut u8, 0, size);
    }
    SLOTS = ptr;
}

pub fn hash(s: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    s.hash(&mut h);
    h.finish() | 1 // never 0, which means "none"
}

unsafe fn slot_of(proc_: *mut pg_sys::PGPROC) -> Option<*mut Slot> {
    if SLOTS.is_null() || proc_.is_null() {
        return None;
    }
    let id = (*proc_).backendId;
    (id > 0 && id <= pg_sys::MaxBackends).then(|| SLOTS.add(id as usize))
}

/// Leader side: publish the claim in force now (None: no valid claim), the transaction's tenant
/// and the role in bypass, if any.
pub fn publish(
    valid_claim: Option<&str>,
    tenant_of_transaction: Option<&str>,
    bypass: Option<(pg_sys::Oid, &str)>,
) {
    unsafe {
        if pg_sys::ParallelWorkerNumber >= 0 {
            return;
        }
        let Some(slot) = slot_of(pg_sys::MyProc) else {
            return;
        };
        let mut reason = [0u8; 200];
        let text = bypass.map_or("", |(_, r)| r);
        let mut len = text.len().min(200);
        while len > 0 && !text.is_char_boundary(len) {
            len -= 1;
        }
        reason[..len].copy_from_slice(&text.as_bytes()[..len]);
        *slot = Slot {
            lxid: if valid_claim.is_some() {
                (*pg_sys::MyProc).lxid
            } else {
                0
            },
            claim_hash: valid_claim.map_or(0, hash),
            tenant_of_transaction_hash: tenant_of_transaction.map_or(0, hash),
            bypass_user: bypass.map_or(0, |(u, _)| u32::from(u)),
            bypass_lxid: (*pg_sys::MyProc).lxid,
            bypass_reason_len: len as u16,
            bypass_reason: reason,
        };
    }
}

/// What a parallel worker may believe about its (copied) claim.
pub struct LeaderView {
    /// The leader's current transaction holds exactly this claim.
    pub claim_valid: bool,
    /// The leader's transaction first touched a protected table under another tenant.
    pub switched_tenant: bool,
}

/// Worker side. `None` when this process is not a parallel worker or no table is shared.
pub fn leader_view(claim: &str) -> Option<LeaderView> {
    unsafe {
        if pg_sys::ParallelWorkerNumber < 0 {
            return None;
        }
        let leader = (*pg_sys::MyProc).lockGroupLeader;
        let Some(slot) = slot_of(leader) else {
            return Some(LeaderView {
                claim_valid: false,
                switched_tenant: false,
            });
        };
        let s = *slot;
        let h = hash(claim);
        Some(LeaderView {
            claim_valid: s.lxid != 0 && s.lxid == (*leader).lxid && s.claim_hash == h,
            switched_tenant: s.tenant_of_transaction_hash != 0 && s.tenant_of_transaction_hash != h,
        })
    }
}

/// Worker side: the role its leader's current transaction runs a bypass for, and its reason.
pub fn leader_bypass() -> Option<(pg_sys::Oid, String)> {
    unsafe {
        if pg_sys::ParallelWorkerNumber < 0 {
            return None;
        }
        let leader = (*pg_sys::MyProc).lockGroupLeader;
        let slot = slot_of(leader)?;
        let s = &*slot;
        if s.bypass_user == 0 || s.bypass_lxid != (*leader).lxid {
            return None;
        }
        let reason =
            String::from_utf8_lossy(&s.bypass_reason[..s.bypass_reason_len as usize]).into_owned();
        Some((pg_sys::Oid::from(s.bypass_user), reason))
    }
}
