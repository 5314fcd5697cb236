//! Whether a client is a process of a live session (`[broker] require_session`): only the
//! kernel is asked. Its cgroup (`/proc/PID/cgroup`, for the pid SO_PEERCRED gave) must be a
//! session's, the monitor's record of that session must say it is live and whose it is,
//! and the pidfd taken when the client connected must still be that process (so a pid
//! reused by another process cannot pass for it).

use std::time::SystemTime;

use super::server::Peer;
use crate::live;
use crate::session_id::SessionId;

/// Why a client is refused, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    /// `not_in_session` or `session_ended`.
    pub(super) reason: &'static str,
    pub(super) session: Option<SessionId>,
}

/// The live session `peer` belongs to.
pub(super) fn check(peer: &Peer) -> Result<SessionId, Refusal> {
    let outside = Refusal {
        reason: "not_in_session",
        session: None,
    };
    let pid = peer
        .pid
        .and_then(|p| u32::try_from(p).ok())
        .ok_or(outside.clone())?;
    let (id, cgroup) = live::session_of(pid).ok_or(outside.clone())?;
    let ended = Refusal {
        reason: "session_ended",
        session: Some(id.clone()),
    };
    let record = live::read(&id);
    // What was read belongs to the process that connected only if it is still alive. A
    // process gone since (killed as its session ended) is refused either way; the audit
    // trail says the session ended when the cgroup read names one that did.
    if let Some(pidfd) = &peer.pidfd
        && !crate::system::pidfd_alive(pidfd)
    {
        let over = record
            .as_ref()
            .is_none_or(|r| r.over(SystemTime::now()).is_some());
        return Err(if over { ended } else { outside });
    }
    let record = record.ok_or(ended.clone())?;
    let own = record.cgroup == cgroup && record.uid == peer.uid;
    if !own || record.over(SystemTime::now()).is_some() {
        return Err(ended);
    }
    Ok(id)
}
