//! Who a proxy connection comes from, as the kernel says: the uid and cgroup of the socket
//! at the other end (`sock_diag`, `system::tcp_peer`), and the live session whose cgroup
//! that is (`live::session_with_cgroup_id`). The client sends no credential at all: a
//! copied file, header or token counts for nothing, and a process of another uid, or one
//! outside a live session, is refused.

use std::net::SocketAddr;

use crate::live::{self, LiveSession};
use crate::system::{self, Account};

/// The user and the session behind a connection.
#[derive(Debug, Clone)]
pub(super) struct Caller {
    pub(super) account: Account,
    /// `None` only where the broker does not require sessions (`require_session = false`).
    pub(super) session: Option<LiveSession>,
}

impl Caller {
    /// Whether the session (if any) is still live, now: checked for every request, since a
    /// connection may outlive its session. A request after the end is audited (`denied`,
    /// reason `session_ended`), as the broker's socket does.
    pub(super) fn still_live(&self) -> bool {
        let live = self.session_live();
        if !live && let Some(s) = &self.session {
            tracing::info!(target: "rolesh::audit", event = "denied", user = %self.account.name,
                uid = self.account.uid, reason = "session_ended",
                session_id = %s.session_id);
        }
        live
    }

    /// Returns when the session is no longer live (checked every 2 s).
    pub(super) async fn ended(&self) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tick.tick().await;
            if !self.still_live() {
                return;
            }
        }
    }

    fn session_live(&self) -> bool {
        match &self.session {
            None => true,
            Some(s) => live::read(&s.session_id).is_some_and(|now| {
                now.cgroup == s.cgroup
                    && now.uid == s.uid
                    && now.over(std::time::SystemTime::now()).is_none()
            }),
        }
    }
}

/// The uid at `peer` of the connection accepted on `local` (`None` if the kernel cannot
/// say), and the caller, or why there is none (a message for the client's Status).
pub(super) async fn identify(
    local: SocketAddr,
    peer: SocketAddr,
    require_session: bool,
) -> (Option<u32>, Result<Caller, String>) {
    tokio::task::spawn_blocking(move || {
        let socket = system::tcp_peer(local, peer);
        let uid = socket.as_ref().ok().map(|s| s.uid);
        let caller = socket
            .map_err(|e| format!("cannot tell who connected: {e}"))
            .and_then(|s| caller_of(s, require_session));
        (uid, caller)
    })
    .await
    .unwrap_or_else(|_| (None, Err("cannot tell who connected".into())))
}

fn caller_of(socket: system::TcpPeer, require_session: bool) -> Result<Caller, String> {
    let account = system::account_by_uid(socket.uid)
        .map_err(|e| format!("cannot look up uid {}: {e}", socket.uid))?
        .ok_or_else(|| format!("uid {} has no account on this bastion", socket.uid))?;
    let session = socket
        .cgroup_id
        .and_then(|id| live::session_with_cgroup_id(socket.uid, id));
    if session.is_none() && require_session {
        tracing::info!(target: "rolesh::audit", event = "denied", user = %account.name,
            uid = socket.uid, reason = "not_in_session");
        return Err("no live rolesh session for this connection".into());
    }
    Ok(Caller { account, session })
}
