//! One cgroup (v2) per session: every process of the session is put in it at its start,
//! the user cannot take a process out of it (the directory is root's), and at the end the
//! kernel ends everything in it (`cgroup.kill`) — nested user namespaces, `setsid`, double
//! forks and `nohup` make no difference.
//!
//! The cgroup2 mount is found in `/proc/mounts` (on a hybrid host it is not
//! `/sys/fs/cgroup`); session cgroups live under the monitor's own cgroup, in
//! `rolesh-sessions/ID` (under systemd that is the monitor's delegated subtree,
//! `Delegate=yes`). No controller is enabled: membership and `cgroup.kill` need none.

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::live::{CGROUP_PARENT, cgroup2_mount};
use crate::session_id::SessionId;

/// Where session cgroups are made.
#[derive(Debug, Clone)]
pub(super) struct Cgroups {
    /// The cgroup2 mount point.
    mount: PathBuf,
    /// `rolesh-sessions` under the monitor's cgroup, as `/proc/PID/cgroup` writes it.
    parent: String,
}

impl Cgroups {
    /// The cgroup2 hierarchy and this process's place in it; an error says why sessions
    /// cannot be confined on this host.
    pub(super) fn find() -> Result<Cgroups, String> {
        let mounts = std::fs::read_to_string("/proc/mounts")
            .map_err(|e| format!("cannot read /proc/mounts: {e}"))?;
        let mount = cgroup2_mount(&mounts).ok_or(
            "no cgroup2 file system is mounted (a cgroup v2 hierarchy is needed to end sessions)",
        )?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let own = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or("this process has no cgroup v2 membership (/proc/self/cgroup)")?
            .trim_end()
            .trim_end_matches('/');
        let cgroups = Cgroups {
            mount: PathBuf::from(mount),
            parent: format!("{own}/{CGROUP_PARENT}"),
        };
        let dir = cgroups.dir(&cgroups.parent);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
        if !dir.join("cgroup.kill").exists() {
            return Err(format!(
                "{} has no cgroup.kill (Linux 5.14 or later is needed)",
                dir.display()
            ));
        }
        Ok(cgroups)
    }

    fn dir(&self, path: &str) -> PathBuf {
        self.mount.join(path.trim_start_matches('/'))
    }

    /// A new, empty cgroup for session `id`.
    pub(super) fn create(&self, id: &SessionId) -> Result<SessionCgroup, String> {
        let path = format!("{}/{id}", self.parent);
        let dir = self.dir(&path);
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cannot create the session's cgroup {}: {e}", dir.display()))?;
        Ok(SessionCgroup { dir, path })
    }

    /// The cgroup of a session that exists already (a record whose monitor died).
    pub(super) fn existing(&self, path: &str) -> Option<SessionCgroup> {
        let dir = self.dir(path);
        path.starts_with(&format!("{}/", self.parent))
            .then_some(())?;
        dir.is_dir().then(|| SessionCgroup {
            dir,
            path: path.to_string(),
        })
    }
}

/// The mount point of the cgroup2 file system in `/proc/mounts` text.
/// One session's cgroup.
#[derive(Debug)]
pub(super) struct SessionCgroup {
    dir: PathBuf,
    /// As `/proc/PID/cgroup` shows it.
    pub(super) path: String,
}

impl SessionCgroup {
    /// `cgroup.procs`, open for writing: a process that writes `0` to it joins the session
    /// (the session's programs do, between fork and exec).
    pub(super) fn procs_for_joining(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_CLOEXEC.bits())
            .open(self.dir.join("cgroup.procs"))
            .map(Into::into)
    }

    /// The pids in it now.
    pub(super) fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Whether any process is left (`cgroup.events`: `populated 0`).
    pub(super) fn populated(&self) -> bool {
        let events = std::fs::read_to_string(self.dir.join("cgroup.events")).unwrap_or_default();
        !events.lines().any(|l| l.trim() == "populated 0")
    }

    fn signal_all(&self, signal: Signal) {
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
        }
    }

    /// Ends the session's processes: a hangup (and SIGCONT, so stopped ones see it), up to
    /// `grace` for them to go, then `cgroup.kill` for whatever is left, waiting until the
    /// cgroup is empty. Returns how many were still there for the kill.
    pub(super) fn end(&self, grace: Duration) -> usize {
        self.signal_all(Signal::SIGHUP);
        self.signal_all(Signal::SIGCONT);
        let deadline = Instant::now() + grace;
        while self.populated() && Instant::now() < deadline {
            // (Short: a process that exits on the hangup is gone within milliseconds.)
            std::thread::sleep(Duration::from_millis(2));
        }
        let left = self.pids().len();
        self.kill();
        left
    }

    /// `cgroup.kill`, then wait (bounded) until the kernel has emptied the cgroup.
    pub(super) fn kill(&self) {
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.populated() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Removes the (empty) cgroup.
    pub(super) fn remove(&self) -> std::io::Result<()> {
        std::fs::remove_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_wherever_it_is() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(cgroup2_mount(hybrid), Some("/sys/fs/cgroup/unified"));
        let unified = "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";
        assert_eq!(cgroup2_mount(unified), Some("/sys/fs/cgroup"));
        assert_eq!(
            cgroup2_mount("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n"),
            None
        );
    }
}
