//! Who is at the other end of a loopback TCP connection, as the kernel's socket table says
//! (netlink `sock_diag`, what `ss` reads): the uid that created the peer's socket and its
//! cgroup v2 id (`INET_DIAG_CGROUP_ID`, Linux 5.9: the cgroup of the process that called
//! `socket()`, kept when the process moves and after the cgroup is gone). No privilege is
//! needed, and nothing the client sends counts.
//!
//! One request a lookup, of one exact socket (not a dump). Written here rather than with
//! `netlink-packet-sock-diag`, whose current release pins an old netlink-packet-core and the
//! unmaintained `paste` (RUSTSEC-2024-0436), for one fixed-size request and one attribute.

use std::net::{IpAddr, SocketAddr};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, socket,
};

/// The peer's socket, as the kernel has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpPeer {
    pub(crate) uid: u32,
    /// `None` when the kernel reports none (built without socket cgroup data).
    pub(crate) cgroup_id: Option<u64>,
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const TCP_ESTABLISHED: u32 = 1;
const INET_DIAG_CGROUP_ID: u16 = 21;
/// `inet_diag_msg`: family, state, timer, retrans (4), `inet_diag_sockid` (48), expires,
/// rqueue, wqueue, uid, inode (20).
const INET_DIAG_MSG_LEN: usize = 72;
const UID_OFFSET: usize = 4 + 48 + 12;

/// The socket at `peer` connected to `local` (this process's end of an accepted loopback
/// connection).
pub(crate) fn tcp_peer(local: SocketAddr, peer: SocketAddr) -> Result<TcpPeer, String> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )
    .map_err(|e| format!("sock_diag socket: {e}"))?;
    let request = request(local, peer)?;
    sendto(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &request,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .map_err(|e| format!("sock_diag request: {e}"))?;
    let mut answer = [0u8; 8192];
    let n = recv(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &mut answer,
        MsgFlags::empty(),
    )
    .map_err(|e| format!("sock_diag answer: {e}"))?;
    parse(&answer[..n])
}

/// `nlmsghdr` + `inet_diag_req_v2` for the peer's socket: its source is `peer`, its
/// destination `local`; the cookie is "no cookie".
fn request(local: SocketAddr, peer: SocketAddr) -> Result<Vec<u8>, String> {
    let family = match (local.ip(), peer.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET as u8,
        (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6 as u8,
        _ => return Err("mixed address families".into()),
    };
    let len = NLMSG_HDRLEN + 56;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    m.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 0, 0]);
    m.extend_from_slice(&(1u32 << TCP_ESTABLISHED).to_ne_bytes());
    m.extend_from_slice(&peer.port().to_be_bytes());
    m.extend_from_slice(&local.port().to_be_bytes());
    m.extend_from_slice(&address(peer.ip()));
    m.extend_from_slice(&address(local.ip()));
    m.extend_from_slice(&0u32.to_ne_bytes()); // interface
    m.extend_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
    debug_assert_eq!(m.len(), len);
    Ok(m)
}

/// An address as `inet_diag_sockid` holds it: 16 bytes, network order, IPv4 in the first 4.
fn address(ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.copy_from_slice(&v6.octets()),
    }
    out
}

/// The kernel's answer: one `inet_diag_msg` and its attributes, or an error.
fn parse(answer: &[u8]) -> Result<TcpPeer, String> {
    let u16_at = |i: usize| {
        answer
            .get(i..i + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    let u32_at = |i: usize| {
        answer
            .get(i..i + 4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let len = u32_at(0).ok_or("sock_diag: short answer")? as usize;
    let kind = u16_at(4).ok_or("sock_diag: short answer")?;
    if kind == NLMSG_ERROR {
        let errno = u32_at(NLMSG_HDRLEN).map(|e| -(e as i32)).unwrap_or(0);
        return Err(format!(
            "sock_diag: no such connection ({})",
            nix::errno::Errno::from_raw(errno)
        ));
    }
    let body = NLMSG_HDRLEN;
    if kind != SOCK_DIAG_BY_FAMILY || len > answer.len() || len < body + INET_DIAG_MSG_LEN {
        return Err(format!(
            "sock_diag: unexpected answer (type {kind}, {len} bytes)"
        ));
    }
    let uid = u32_at(body + UID_OFFSET).ok_or("sock_diag: short answer")?;
    let mut cgroup_id = None;
    let mut at = body + INET_DIAG_MSG_LEN;
    while at + 4 <= len {
        let attr_len = u16_at(at).unwrap_or(0) as usize;
        let attr_type = u16_at(at + 2).unwrap_or(0);
        if attr_len < 4 || at + attr_len > len {
            break;
        }
        if attr_type == INET_DIAG_CGROUP_ID && attr_len >= 12 {
            let b = &answer[at + 4..at + 12];
            cgroup_id = Some(u64::from_ne_bytes([
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
            ]));
        }
        at += (attr_len + 3) & !3;
    }
    Ok(TcpPeer { uid, cgroup_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection of this process's own: the kernel says it is this uid's, in this
    /// process's cgroup (the id is the cgroup directory's inode).
    #[test]
    fn a_loopback_connection_is_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        let found = tcp_peer(server.local_addr().unwrap(), peer).unwrap();
        assert_eq!(found.uid, nix::unistd::getuid().as_raw());
        let cgroup = own_cgroup_dir();
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(cgroup).unwrap());
        assert_eq!(found.cgroup_id, Some(inode));
        drop(client);
    }

    #[test]
    fn a_connection_that_is_not_there_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let nobody: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let e = tcp_peer(listener.local_addr().unwrap(), nobody).unwrap_err();
        assert!(e.contains("no such connection"), "{e}");
    }

    #[test]
    fn kernel_errors_and_short_answers_are_errors() {
        let mut error = vec![0u8; 36];
        error[..4].copy_from_slice(&36u32.to_ne_bytes());
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error[16..20].copy_from_slice(&(-2i32).to_ne_bytes());
        assert!(parse(&error).unwrap_err().contains("ENOENT"));
        assert!(parse(&[1, 2, 3]).is_err());
    }

    fn own_cgroup_dir() -> std::path::PathBuf {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        let mount = mounts
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .find(|f| f[2] == "cgroup2")
            .map(|f| f[1].to_string())
            .unwrap();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let path = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        std::path::Path::new(&mount).join(path.trim_start_matches('/'))
    }
}
