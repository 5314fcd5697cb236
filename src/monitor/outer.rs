//! The session's outer end: the terminal sshd allocated, or sshd's pipes, handed over by
//! the user's `rolesh` (SCM_RIGHTS). From then on it is the monitor's alone:
//!
//! - No process of the session holds it: the user's programs get a pty of the monitor's
//!   (or pipes of the monitor's when recorded), and the user's `rolesh` lets go of its
//!   copies once the session starts (it is not dumpable either, so its `/proc/PID/fd` is
//!   root's).
//! - Nobody can open the terminal again while the session runs, by any path (`/dev/pts/N`,
//!   `/proc/PID/root/dev/pts/N` of another process, a bind mount): its owner becomes root
//!   and its mode 0600, on the inode itself. At the end the owner and mode sshd gave it are
//!   put back (sshd resets them at logout anyway). Why this and not a devpts instance of
//!   the session's own: the terminal is sshd's, on the host's devpts; a new instance
//!   would not hide it, and revoking open descriptors (TIOCVHANGUP) would hang sshd's
//!   side up too.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sys::stat::{Mode, fchmod, fstat};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use nix::unistd::{Gid, Uid, fchown};

/// What the login shell handed over.
pub(super) struct Outer {
    pub(super) stdin: OwnedFd,
    pub(super) stdout: OwnedFd,
    pub(super) stderr: OwnedFd,
    held: Option<Held>,
}

/// A terminal taken over: what to put back.
struct Held {
    uid: u32,
    gid: u32,
    mode: u32,
    termios: Termios,
}

impl Outer {
    /// The three descriptors of an `open` request, in order.
    pub(super) fn from_descriptors(fds: Vec<OwnedFd>) -> Result<Outer, String> {
        let [stdin, stdout, stderr]: [OwnedFd; 3] = fds
            .try_into()
            .map_err(|fds: Vec<OwnedFd>| format!("expected 3 descriptors, got {}", fds.len()))?;
        Ok(Outer {
            stdin,
            stdout,
            stderr,
            held: None,
        })
    }

    /// Whether the login came with a terminal (stdin is one).
    pub(super) fn is_terminal(&self) -> bool {
        nix::unistd::isatty(&self.stdin).unwrap_or(false)
    }

    /// The terminal's size (columns, rows), if it is one.
    pub(super) fn window_size(&self) -> Option<(u16, u16)> {
        crate::system::window_size(self.stdin.as_fd())
    }

    pub(super) fn terminal(&self) -> BorrowedFd<'_> {
        self.stdin.as_fd()
    }

    /// Makes the terminal the monitor's alone (owner root, mode 0600) and raw, so that every
    /// key reaches the session's pty as a byte.
    pub(super) fn take_terminal(&mut self) -> Result<(), String> {
        let stat = fstat(&self.stdin).map_err(|e| format!("cannot inspect the terminal: {e}"))?;
        let termios = tcgetattr(&self.stdin)
            .map_err(|e| format!("cannot read the terminal settings: {e}"))?;
        fchown(&self.stdin, Some(Uid::from_raw(0)), Some(Gid::from_raw(0)))
            .map_err(|e| format!("cannot take the terminal over: {e}"))?;
        fchmod(&self.stdin, Mode::from_bits_truncate(0o600))
            .map_err(|e| format!("cannot take the terminal over: {e}"))?;
        self.held = Some(Held {
            uid: stat.st_uid,
            gid: stat.st_gid,
            mode: stat.st_mode & 0o7777,
            termios: termios.clone(),
        });
        let mut raw = termios;
        cfmakeraw(&mut raw);
        tcsetattr(&self.stdin, SetArg::TCSADRAIN, &raw)
            .map_err(|e| format!("cannot put the terminal in raw mode: {e}"))
    }

    /// Gives the terminal back as it was (settings, owner, mode). Safe to call twice.
    pub(super) fn give_back(&mut self) {
        if let Some(held) = self.held.take() {
            // TCSANOW: a terminal whose client is gone would never drain.
            let _ = tcsetattr(&self.stdin, SetArg::TCSANOW, &held.termios);
            let _ = fchown(
                &self.stdin,
                Some(Uid::from_raw(held.uid)),
                Some(Gid::from_raw(held.gid)),
            );
            let _ = fchmod(&self.stdin, Mode::from_bits_truncate(held.mode));
        }
    }
}

impl Drop for Outer {
    fn drop(&mut self) {
        self.give_back();
    }
}
