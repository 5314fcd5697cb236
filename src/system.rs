//! Every call into the operating system that is not plain `std` lives here, so that what
//! rolesh asks of the kernel and of NSS can be audited in one place (the sudo-rs rule).
//!
//! This is the only module with `unsafe` (each block says why it is sound in a `// SAFETY:`
//! comment); `nix` and `std` wrap the rest. SO_PEERCRED comes through tokio's
//! `UnixStream::peer_cred`.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Gid, Group, Uid, User, getgrouplist};

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
                "another broker is already listening on {}",
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

/// `fd` again at a high number (at least 200), inherited by the programs this process
/// starts. Far from the low numbers: an interactive login bash (5.2) does not pass its
/// inherited descriptors 3 and 10 on to the programs it starts, but keeps 200.
pub(crate) fn inheritable_high_fd(
    fd: &std::os::fd::OwnedFd,
) -> Result<std::os::fd::OwnedFd, String> {
    use nix::fcntl::{FcntlArg, fcntl};
    let high = fcntl(fd, FcntlArg::F_DUPFD(HIGH_FD)).map_err(|e| format!("F_DUPFD: {e}"))?;
    // SAFETY: F_DUPFD just returned `high` as a new descriptor (without FD_CLOEXEC) that
    // nothing else owns.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(high) })
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

/// Receives data and whatever descriptors came with it (SCM_RIGHTS, at most 8); each
/// descriptor is owned by the caller from here on (and closed on exec).
#[cfg(test)]
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

/// Where inherited session descriptors live.
const HIGH_FD: std::os::fd::RawFd = 200;

/// What a session supervisor does to itself before starting anything: no privilege gain
/// through exec (setuid binaries), no core dumps, not dumpable or ptrace-able by the user,
/// files private by default.
pub(crate) fn harden_supervisor() -> Result<(), String> {
    use nix::sys::resource::{Resource, setrlimit};
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("PR_SET_DUMPABLE: {e}"))?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(|e| format!("RLIMIT_CORE: {e}"))?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    Ok(())
}

/// Blocks until the reader of stdout or stderr goes away: sshd closed the session's pipes
/// because the client disconnected (on a terminal, the hangup shows the same way).
pub(crate) fn wait_for_output_hangup() {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    loop {
        let mut fds = [
            PollFd::new(stdout.as_fd(), PollFlags::empty()),
            PollFd::new(stderr.as_fd(), PollFlags::empty()),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {
                let gone = |f: &PollFd| {
                    f.revents().is_some_and(|r| {
                        r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL)
                    })
                };
                if fds.iter().any(gone) {
                    return;
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => std::thread::park(),
        }
    }
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

/// Gives this process (and all it starts) a private, empty `/tmp`: a new user namespace
/// that maps only the caller's own uid and gid, and in it a new mount namespace with a
/// tmpfs on `/tmp`. Unprivileged user namespaces are what make this possible without
/// setuid; where the kernel refuses them (sysctl, container policy) the caller carries on
/// with the shared `/tmp` and says so in the audit trail.
///
/// Must run while the process has a single thread (the kernel refuses `CLONE_NEWUSER`
/// otherwise) and before `harden_supervisor`: a non-dumpable process cannot write its own
/// `/proc/self/uid_map`.
pub(crate) fn private_tmp() -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare(CLONE_NEWUSER|CLONE_NEWNS): {e}"))?;
    // The same ids inside as outside: the user stays who they are, files keep their owners.
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))
        .and_then(|_| std::fs::write("/proc/self/setgroups", "deny"))
        .and_then(|_| std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1")))
        .map_err(|e| format!("mapping the user namespace: {e}"))?;
    // Nothing mounted in here propagates back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making mounts private: {e}"))?;
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0700,size=256m"),
    )
    .map_err(|e| format!("mounting a private /tmp: {e}"))?;
    if let Ok(ns) = std::fs::read_link("/proc/self/ns/user") {
        let _ = SESSION_USER_NAMESPACE.set(ns);
    }
    Ok(())
}

/// The user namespace this login session made for itself (see `private_tmp`): every process
/// of the session lives in it, including those that left its terminal session with setsid.
static SESSION_USER_NAMESPACE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// The size of the terminal on `fd`, if it is one.
pub(crate) fn window_size(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(fd).ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Sends `signal` to every process in the session `sid` (a session's leader has
/// pid == sid): what is left of a login session when it ends, including jobs the shell put
/// in their own process groups and daemons that ignored the hangup.
pub(crate) fn signal_whole_session(sid: u32, signal: nix::sys::signal::Signal) -> usize {
    let mut signalled = 0;
    for pid in session_members(sid) {
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).is_ok() {
            signalled += 1;
        }
    }
    signalled
}

/// Pids whose session id is `sid` (from /proc/PID/stat, field 6, after the parenthesised
/// command name, which may itself contain spaces and parentheses), and, when this login
/// session has a user namespace of its own, every other process in it: what escaped the
/// terminal session with setsid or a double fork is still in the namespace.
fn session_members(sid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    let in_namespace = |pid: u32| {
        SESSION_USER_NAMESPACE.get().is_some_and(|ns| {
            std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|theirs| theirs == *ns)
        })
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = &stat[stat.rfind(')')? + 2..];
                    after.split(' ').nth(3)?.parse::<u32>().ok()
                })
                == Some(sid)
                || in_namespace(pid)
        })
        .collect()
}
