//! Every call into the operating system that is not plain `std` lives here, so that what
//! rolesh asks of the kernel and of NSS can be audited in one place (the sudo-rs rule).
//!
//! This is the only module with `unsafe` (each block says why it is sound in a `// SAFETY:`
//! comment); `nix` and `std` wrap the rest. SO_PEERCRED comes through tokio's
//! `UnixStream::peer_cred`.

mod sock_diag;
pub(crate) use sock_diag::{TcpPeer, tcp_peer};

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Gid, Group, Uid, User, getgrouplist};
use std::os::fd::FromRawFd;

/// A Unix account as NSS reports it, with the names of all its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    /// Primary group first, then supplementary groups (names; a gid without a name is
    /// kept as its number so that it can still never match a named rule by accident).
    pub groups: Vec<String>,
}

/// Looks up a user by name through NSS (`getpwnam_r`, `getgrouplist`).
pub(crate) fn account_by_name(name: &str) -> Result<Option<Account>, String> {
    let user = User::from_name(name).map_err(|e| format!("cannot look up user {name:?}: {e}"))?;
    user.map(account_from_user).transpose()
}

/// The members NSS lists for group `name` (`getgrnam_r`'s member list: users whose primary
/// group it is are not in it); none if there is no such group.
pub(crate) fn group_members(name: &str) -> Vec<String> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.mem)
        .unwrap_or_default()
}

/// Looks up a user by uid through NSS (`getpwuid_r`, `getgrouplist`).
pub(crate) fn account_by_uid(uid: u32) -> Result<Option<Account>, String> {
    let user =
        User::from_uid(Uid::from_raw(uid)).map_err(|e| format!("cannot look up uid {uid}: {e}"))?;
    user.map(account_from_user).transpose()
}

fn account_from_user(user: User) -> Result<Account, String> {
    let cname = CString::new(user.name.as_str())
        .map_err(|_| format!("user name {:?} contains a NUL byte", user.name))?;
    let gids = getgrouplist(&cname, user.gid)
        .map_err(|e| format!("cannot list the groups of {}: {e}", user.name))?;
    let mut groups = Vec::with_capacity(gids.len());
    for gid in std::iter::once(user.gid).chain(gids) {
        let name = group_name(gid)?;
        if !groups.contains(&name) {
            groups.push(name);
        }
    }
    Ok(Account {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        home: user.dir.to_string_lossy().into_owned(),
        groups,
    })
}

fn group_name(gid: Gid) -> Result<String, String> {
    let group = Group::from_gid(gid).map_err(|e| format!("cannot look up gid {gid}: {e}"))?;
    Ok(group.map_or_else(|| gid.to_string(), |g| g.name))
}

/// The uid this process runs as.
pub(crate) fn current_uid() -> u32 {
    Uid::current().as_raw()
}

// --- audit and recordings ----------------------------------------------------------------

/// `O_NOFOLLOW`, for `OpenOptionsExt::custom_flags`: the audit file and recordings are never
/// opened through a symlink someone put in their place.
pub(crate) fn no_follow_flag() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

/// The effective uid: who owns what the broker creates.
pub(crate) fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Bytes available to unprivileged users and the size of the file system holding `path`
/// (statvfs: `f_bavail` and `f_blocks` in fragments).
pub(crate) fn free_space(path: &Path) -> std::io::Result<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let fragment = st.fragment_size();
    Ok((
        st.blocks_available().saturating_mul(fragment),
        st.blocks().saturating_mul(fragment),
    ))
}

/// Whether stderr is the journal stream systemd connected (`JOURNAL_STREAM=DEV:INODE`).
pub(crate) fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    stream.to_string_lossy() == format!("{}:{}", stat.st_dev, stat.st_ino)
}

/// Blocks SIGPIPE in the calling thread only: a write to a broker that went away then
/// fails with EPIPE instead of killing the session (whose other threads keep the default
/// action, so `rolesh … | head` still ends quietly).
pub(crate) fn block_sigpipe_in_this_thread() {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
    let mut set = SigSet::empty();
    set.add(Signal::SIGPIPE);
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
}

/// The host name, for the `{hostname}` template (short form, as `hostname -s` prints).
pub(crate) fn hostname() -> String {
    let full = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    match full.split_once('.') {
        Some((short, _)) => short.to_string(),
        None => full,
    }
}

/// A file the broker trusts for what it holds (a cluster credential, a CA), as read.
pub(crate) struct TrustedFile {
    pub(crate) bytes: Vec<u8>,
}

/// Reads `path` if the broker may trust it: a regular file (not a symlink, FIFO or device),
/// owned by root, by `also_owner` (the broker's user) or by this process's user, that
/// no one else may write, and, if `secret`, no one else may read; in a directory chain no
/// one else may write (a sticky one such as /tmp excepted), so that it cannot be swapped.
/// The checks are made on the open file, then it is read (at most `max` bytes): what was
/// checked is what is read.
pub(crate) fn read_trusted_file(
    path: &Path,
    secret: bool,
    also_owner: Option<u32>,
    max: u64,
) -> Result<TrustedFile, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    trusted_directories(path, also_owner)?;
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == nix::libc::ELOOP => format!("{shown} is a symbolic link"),
            _ => format!("{shown}: {e}"),
        })?;
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    trusted_owner(&shown, meta.uid(), also_owner)?;
    let mode = meta.mode() & 0o7777;
    let (mask, what) = match secret {
        true => (
            0o077,
            "a cluster credential must be readable by its owner alone (chmod 600",
        ),
        false => (
            0o022,
            "a trusted file must be writable by its owner alone (chmod go-w",
        ),
    };
    if mode & mask != 0 {
        return Err(format!("{shown} has mode {mode:04o}: {what} {shown})"));
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{shown}: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("{shown} is larger than {max} bytes"));
    }
    Ok(TrustedFile { bytes })
}

fn trusted_owner(
    shown: &impl std::fmt::Display,
    uid: u32,
    also: Option<u32>,
) -> Result<(), String> {
    if uid == 0 || uid == effective_uid() || Some(uid) == also {
        return Ok(());
    }
    Err(format!(
        "{shown} is owned by uid {uid}: it must belong to root or the broker's user"
    ))
}

/// Every directory above `path`: owned as a trusted file is, and writable by no one else
/// unless sticky (where no one else may rename or remove what is not theirs).
fn trusted_directories(path: &Path, also_owner: Option<u32>) -> Result<(), String> {
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        let meta = std::fs::metadata(d).map_err(|e| format!("{}: {e}", d.display()))?;
        let sticky = meta.mode() & 0o1000 != 0;
        if !sticky {
            trusted_owner(&d.display(), meta.uid(), also_owner)?;
            if meta.mode() & 0o022 != 0 {
                return Err(format!(
                    "{} may be written by others: a trusted file must not be in it",
                    d.display()
                ));
            }
        }
        dir = d.parent();
    }
    Ok(())
}

/// Who owns a file and who may write it: what StrictModes-style checks need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileOwnership {
    pub uid: u32,
    pub mode: u32,
}

impl FileOwnership {
    pub(crate) fn writable_by_group_or_others(self) -> bool {
        self.mode & 0o022 != 0
    }
}

/// `stat` without following a final symlink's target ownership being trusted: the link
/// target is what is read, so its owner and mode are what count (like sshd).
pub(crate) fn ownership(path: &Path) -> std::io::Result<FileOwnership> {
    let meta = std::fs::metadata(path)?;
    Ok(FileOwnership {
        uid: meta.uid(),
        mode: meta.mode(),
    })
}

/// A pidfd for the process at the other end of a Unix socket (SO_PEERPIDFD, Linux 6.5):
/// it stays that process's even if the pid is later reused. `None` on older kernels.
pub(crate) fn peer_pidfd(socket: &impl std::os::fd::AsFd) -> Option<std::os::fd::OwnedFd> {
    nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::PeerPidfd).ok()
}

/// Whether the process behind `pidfd` is still running (a pidfd turns readable when its
/// process exits).
pub(crate) fn pidfd_alive(pidfd: &impl std::os::fd::AsFd) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
}

/// A child's end, awaitable: a pidfd (opened before the child is waited for, so the pid
/// is still its own) registered with tokio's reactor; it turns readable at the exit.
pub(crate) struct ChildExit(tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>);

impl ChildExit {
    /// Must be called on a tokio runtime.
    pub(crate) fn of(child: &std::process::Child) -> std::io::Result<ChildExit> {
        let pid = rustix::process::Pid::from_child(child);
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        // SAFETY: the AsyncFd takes ownership of the OwnedFd, so the descriptor stays open
        // and is the same one for as long as it is registered (it is closed only when the
        // AsyncFd, having deregistered it, drops it).
        let registered = unsafe { tokio::io::unix::AsyncFd::register(pidfd) };
        registered.map(ChildExit).map_err(std::io::Error::from)
    }

    /// Returns once the child has exited.
    pub(crate) async fn wait(&self) {
        let _ = self.0.readable().await;
    }
}

/// SIGKILL to the process behind `pidfd` (not to whatever now has its pid).
pub(crate) fn kill_by_pidfd(pidfd: &impl std::os::fd::AsFd) {
    let _ = rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL);
}

/// The listening Unix socket systemd passed (socket activation, `LISTEN_FDS`), if any.
pub(crate) fn systemd_socket() -> Result<Option<std::os::unix::net::UnixListener>, String> {
    use std::os::fd::FromRawFd;
    let mut fds =
        sd_notify::listen_fds().map_err(|e| format!("bad LISTEN_FDS from systemd: {e}"))?;
    let Some(fd) = fds.next() else {
        return Ok(None);
    };
    // SAFETY: sd_notify::listen_fds checked LISTEN_PID is this process and yields the fds
    // systemd passed (starting at 3), which nothing else in this process owns or closes;
    // ownership moves into the listener exactly once.
    let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot use the socket from systemd: {e}"))?;
    Ok(Some(listener))
}

/// Binds a Unix socket at `path` with `mode`, replacing a stale socket file left by a
/// previous run (but never another kind of file).
pub(crate) fn bind_socket(
    path: &Path,
    mode: u32,
) -> Result<std::os::unix::net::UnixListener, String> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another process is already listening on {}",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    Ok(listener)
}

/// Restores the default SIGPIPE action (Rust ignores it), so that `rolesh … | head` ends
/// quietly like any Unix tool instead of panicking on a closed stdout. Not for the broker,
/// which must survive clients that hang up.
pub(crate) fn default_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: installs SIG_DFL, not a Rust handler, so no async-signal-safety concern; done
    // on the main thread before any other thread is started.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// A sealed in-memory file holding `contents` (memfd, never on disk): whoever holds the
/// descriptor can read it; nobody can change it.
pub(crate) fn sealed_memfd(name: &str, contents: &[u8]) -> Result<std::os::fd::OwnedFd, String> {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    use std::io::Write;
    let fd = memfd_create(name, MFdFlags::MFD_ALLOW_SEALING | MFdFlags::MFD_CLOEXEC)
        .map_err(|e| format!("memfd_create: {e}"))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(contents)
        .map_err(|e| format!("writing the in-memory file {name}: {e}"))?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(&file, FcntlArg::F_ADD_SEALS(seals))
        .map_err(|e| format!("sealing the in-memory file {name}: {e}"))?;
    Ok(file.into())
}

/// `fd` again as descriptor `target`, inherited by the programs this process starts (no
/// close-on-exec).
pub(crate) fn inheritable_fd_at(
    fd: &std::os::fd::OwnedFd,
    target: std::os::fd::RawFd,
) -> Result<std::os::fd::OwnedFd, String> {
    // SAFETY: `target` is a descriptor number this process does not otherwise use (the
    // session's sealed kubeconfig slot); dup2 puts a copy of `fd` there, and the OwnedFd
    // made here is its only owner.
    let mut at = unsafe { std::os::fd::OwnedFd::from_raw_fd(target) };
    if let Err(e) = nix::unistd::dup2(fd, &mut at) {
        std::mem::forget(at);
        return Err(format!("dup2 to {target}: {e}"));
    }
    Ok(at)
}

/// Sends `fd` to the datagram socket at `path` with an empty payload (SCM_RIGHTS): how
/// journald's native protocol takes an entry too large for a datagram.
pub(crate) fn send_descriptor(
    socket: &std::os::unix::net::UnixDatagram,
    path: &Path,
    fd: &std::os::fd::OwnedFd,
) -> std::io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
    use std::os::fd::AsRawFd;
    let address = UnixAddr::new(path).map_err(std::io::Error::from)?;
    let fds = [fd.as_raw_fd()];
    let control = [ControlMessage::ScmRights(&fds)];
    sendmsg(
        socket.as_raw_fd(),
        &[],
        &control,
        MsgFlags::empty(),
        Some(&address),
    )
    .map(|_| ())
    .map_err(std::io::Error::from)
}

/// Sends `data` on a connected Unix socket with `fds` attached (SCM_RIGHTS).
pub(crate) fn send_with_descriptors(
    socket: std::os::fd::BorrowedFd<'_>,
    data: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> std::io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    let raw: Vec<std::os::fd::RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let control = [ControlMessage::ScmRights(&raw)];
    let iov = [std::io::IoSlice::new(data)];
    let sent = sendmsg::<()>(socket.as_raw_fd(), &iov, &control, MsgFlags::empty(), None)
        .map_err(std::io::Error::from)?;
    if sent != data.len() {
        return Err(std::io::Error::other("a short write with descriptors"));
    }
    Ok(())
}

/// Receives data and whatever descriptors came with it (SCM_RIGHTS, at most 8); each
/// descriptor is owned by the caller from here on (and closed on exec).
pub(crate) fn receive_with_descriptors(
    socket: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> std::io::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 8]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    let mut fds = Vec::new();
    for control in message.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = control {
            // SAFETY: the kernel just installed these descriptors in this process for this
            // message (SCM_RIGHTS); nothing else knows or owns them yet.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if message.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(std::io::Error::other("too many descriptors in one message"));
    }
    Ok((message.bytes, fds))
}

/// What the user's own `rolesh` (the login shell sshd starts) does first: no privilege
/// gain through exec, no core dumps, and not dumpable, so that no other process of the
/// user can read its memory or open its descriptors (the terminal it holds until the
/// monitor has it) through `/proc/PID/fd`. Keyboard signals are ignored: the terminal is
/// raw once the monitor has it, and until then a ^C must not end the hand-over halfway.
pub(crate) fn harden_login() -> Result<(), String> {
    use nix::sys::resource::{Resource, setrlimit};
    use nix::sys::signal::{SigHandler, Signal, signal};
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("PR_SET_DUMPABLE: {e}"))?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(|e| format!("RLIMIT_CORE: {e}"))?;
    for s in [Signal::SIGINT, Signal::SIGQUIT, Signal::SIGTSTP] {
        // SAFETY: installs SIG_IGN, not a handler; done on the main thread before any
        // other thread exists.
        let _ = unsafe { signal(s, SigHandler::SigIgn) };
    }
    Ok(())
}

/// The login shell lets go of the terminal or pipes it handed to the monitor: stdin,
/// stdout and stderr become /dev/null.
pub(crate) fn let_go_of_stdio() -> Result<(), String> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("cannot open /dev/null: {e}"))?;
    for target in [0, 1, 2] {
        // SAFETY: 0, 1 and 2 are this process's standard descriptors, which nothing in
        // it owns as an OwnedFd; dup2 replaces them atomically with /dev/null.
        let mut fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(target) };
        let replaced = nix::unistd::dup2(&null, &mut fd);
        std::mem::forget(fd);
        replaced.map_err(|e| format!("cannot let go of descriptor {target}: {e}"))?;
    }
    Ok(())
}

/// The ids a session's programs run with.
#[derive(Debug, Clone)]
pub(crate) struct SessionIds {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) groups: Vec<u32>,
}

/// The ids of `account`: its uid, primary gid and every group it is in (NSS).
pub(crate) fn session_ids(account: &Account) -> Result<SessionIds, String> {
    let cname = CString::new(account.name.as_str())
        .map_err(|_| format!("user name {:?} contains a NUL byte", account.name))?;
    let gid = Gid::from_raw(account.gid);
    let groups = getgrouplist(&cname, gid)
        .map_err(|e| format!("cannot list the groups of {}: {e}", account.name))?;
    Ok(SessionIds {
        uid: account.uid,
        gid: account.gid,
        groups: groups.into_iter().map(Gid::as_raw).collect(),
    })
}

/// What a session's program does between fork and exec, in the child: join the
/// session's cgroup (write `0` to its `cgroup.procs`, which `join` is open on), become the
/// user (supplementary groups, gid, uid — real, effective and saved), and never gain a
/// privilege again (`no_new_privs`: setuid binaries do not elevate), with no core dumps
/// and files private by default. Only async-signal-safe calls: everything it needs is
/// prepared before the fork.
fn become_user(
    join: &std::os::fd::OwnedFd,
    ids: &SessionIds,
    groups: &[Gid],
) -> std::io::Result<()> {
    use nix::sys::resource::{Resource, setrlimit};
    use nix::unistd::{Uid, setgroups, setresgid, setresuid};
    nix::unistd::write(join, b"0")?;
    setgroups(groups)?;
    let gid = Gid::from_raw(ids.gid);
    setresgid(gid, gid, gid)?;
    let uid = Uid::from_raw(ids.uid);
    setresuid(uid, uid, uid)?;
    new_session_keyring()?;
    nix::sys::prctl::set_no_new_privs()?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    Ok(())
}

/// A session keyring of the session's own, owned by the user (what pam_keyinit does at a
/// login): without it every session would share the monitor's, and one user could read
/// the keys another's session adds (a Kerberos cache kept in a keyring). A kernel without
/// keyrings, or a seccomp filter that refuses keyctl(2) to everything (a container), has
/// no keyring to share.
fn new_session_keyring() -> std::io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL) takes no pointer to read (a null
    // name means a new anonymous keyring) and is async-signal-safe, as a raw system call.
    let joined = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if joined >= 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EPERM) => Ok(()),
        _ => Err(error),
    }
}

/// `command` will start as the user `ids`, inside the cgroup `join` is open on.
pub(crate) fn start_as_user(
    command: &mut std::process::Command,
    join: std::os::fd::OwnedFd,
    ids: SessionIds,
) {
    use std::os::unix::process::CommandExt;
    let groups: Vec<Gid> = ids.groups.iter().copied().map(Gid::from_raw).collect();
    // SAFETY: the closure makes only async-signal-safe system calls (write, setgroups,
    // setresgid, setresuid, prctl, setrlimit, umask) on values prepared before the fork,
    // and allocates nothing.
    unsafe {
        command.pre_exec(move || become_user(&join, &ids, &groups));
    }
}

/// The same for a program on a pty (pty-process runs its own setsid and TIOCSCTTY first,
/// as root, then this).
pub(crate) fn start_on_pty_as_user(
    command: pty_process::blocking::Command,
    join: std::os::fd::OwnedFd,
    ids: SessionIds,
) -> pty_process::blocking::Command {
    let groups: Vec<Gid> = ids.groups.iter().copied().map(Gid::from_raw).collect();
    // SAFETY: as in `start_as_user`: only async-signal-safe calls on values prepared
    // before the fork.
    unsafe { command.pre_exec(move || become_user(&join, &ids, &groups)) }
}

/// The session's private `/tmp`, made by the monitor (root) for itself and everything it
/// starts: a mount namespace of its own whose mounts do not propagate back, and in it an
/// empty tmpfs on `/tmp` (256 MiB), root's until [`hand_tmp_to`] gives it to the user: the
/// monitor writes the session's files into it first, and it has no CAP_DAC_OVERRIDE to
/// write into a directory of the user's. Must run while the process has one thread
/// (`unshare` of a mount namespace requires it).
pub(crate) fn private_tmp() -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    // Slave, not private (as systemd's PrivateTmp): the session's /tmp stays its own, and
    // mounts the host makes later (an automounted NFS home) still reach the session.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| format!("making mounts private: {e}"))?;
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755,size=256m,uid=0,gid=0"),
    )
    .map_err(|e| format!("mounting a private /tmp: {e}"))
}

/// The private `/tmp` becomes the user's (0700), once the monitor's files are in it.
pub(crate) fn hand_tmp_to(ids: &SessionIds) -> Result<(), String> {
    let tmp = std::path::Path::new("/tmp");
    std::os::unix::fs::chown(tmp, Some(ids.uid), Some(ids.gid))
        .and_then(|()| {
            std::fs::set_permissions(tmp, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        })
        .map_err(|e| format!("giving the private /tmp to the user: {e}"))
}

/// The pty's terminal belongs to the user (as sshd does it: owner the user, group `tty`,
/// mode 0620), so that programs that check their terminal (screen, tmux) work.
pub(crate) fn give_terminal_to(pts: &impl std::os::fd::AsFd, uid: u32) -> Result<(), String> {
    let tty = Group::from_name("tty").ok().flatten().map(|g| g.gid);
    nix::unistd::fchown(pts, Some(Uid::from_raw(uid)), tty)
        .map_err(|e| format!("cannot give the terminal to uid {uid}: {e}"))?;
    nix::sys::stat::fchmod(pts, nix::sys::stat::Mode::from_bits_truncate(0o620))
        .map_err(|e| format!("cannot set the terminal's mode: {e}"))
}

/// Blocks until the reader of `fds` goes away: the client disconnected and sshd closed the
/// session's pipes (or hung up its terminal).
pub(crate) fn wait_for_hangup(fds: &[std::os::fd::BorrowedFd<'_>]) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let mut polled: Vec<PollFd<'_>> = fds
            .iter()
            .map(|fd| PollFd::new(*fd, PollFlags::empty()))
            .collect();
        match poll(&mut polled, PollTimeout::NONE) {
            Ok(_) => {
                let gone = |f: &PollFd| {
                    f.revents().is_some_and(|r| {
                        r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL)
                    })
                };
                if polled.iter().any(gone) {
                    return;
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => std::thread::park(),
        }
    }
}

/// Whether process `pid` is stopped (state `T` or `t` in `/proc/PID/stat`).
pub(crate) fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = &stat[stat.rfind(')')? + 2..];
            after.chars().next()
        })
        .is_some_and(|state| state == 'T' || state == 't')
}

/// When process `pid` started (`/proc/PID/stat` field 22, clock ticks after boot): with
/// the pid, it names one process even when pids are reused.
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(19)?.parse().ok()
}

/// The uid and pid at the other end of a Unix socket (SO_PEERCRED).
/// Whether the other end of a stream socket has closed it (a read would return end of
/// file), without taking anything from it or blocking.
pub(crate) fn peer_closed(socket: &impl std::os::fd::AsFd) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::AsRawFd;
    let mut byte = [0u8; 1];
    let fd = socket.as_fd().as_raw_fd();
    matches!(
        recv(fd, &mut byte, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT),
        Ok(0)
    )
}

pub(crate) fn peer_credentials(socket: &impl std::os::fd::AsFd) -> Result<(u32, u32), String> {
    let cred = nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("SO_PEERCRED: {e}"))?;
    Ok((cred.uid(), u32::try_from(cred.pid()).unwrap_or(0)))
}

/// Standard input as the Unix socket it is (the session monitor gets the login's
/// connection that way from the monitor daemon).
pub(crate) fn stdin_socket() -> Result<std::os::unix::net::UnixStream, String> {
    use std::os::fd::AsRawFd;
    let stdin = std::io::stdin();
    nix::sys::socket::getsockname::<nix::sys::socket::UnixAddr>(stdin.as_raw_fd())
        .map_err(|e| format!("standard input is not a Unix socket: {e}"))?;
    // SAFETY: fd 0 is this process's standard input, checked above to be a socket; it is
    // taken over exactly once (nothing else in the process reads stdin as such).
    Ok(unsafe { std::os::unix::net::UnixStream::from_raw_fd(0) })
}

/// Blocks until the reader of stdout or stderr goes away (see [`wait_for_hangup`]).
pub(crate) fn wait_for_output_hangup() {
    use std::os::fd::AsFd;
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    wait_for_hangup(&[stdout.as_fd(), stderr.as_fd()]);
}

/// Sends `signal` to a process group, or to one process when `group` is false.
pub(crate) fn signal_session(pid: u32, group: bool, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    let _ = if group {
        nix::sys::signal::killpg(pid, signal)
    } else {
        nix::sys::signal::kill(pid, signal)
    };
}

/// The size of the terminal on `fd`, if it is one.
pub(crate) fn window_size(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(fd).ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}
