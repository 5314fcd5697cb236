//! A real `rolesh monitor` process (root), the session monitor every login goes through,
//! with its socket in a directory of the test's; it dies with the test process.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub struct MonitorProc {
    /// The rolesh binary it runs: the sessions' programs are started from it, so every
    /// account must be able to run it.
    binary: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    /// Started in a mount namespace without cgroup2 ([`MonitorProc::spawn_without_cgroup2`]).
    without_cgroup2: bool,
}

impl MonitorProc {
    /// Starts `binary monitor --socket DIR/monitor.sock` and waits until it listens.
    pub fn start(binary: &Path, dir: &Path) -> MonitorProc {
        let mut monitor = MonitorProc {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            child: None,
            without_cgroup2: false,
        };
        monitor.spawn();
        monitor
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("monitor.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("monitor.log")).unwrap_or_default()
    }

    /// Starts (or restarts) the monitor and waits until it answers. With a session keyring
    /// of its own, as systemd starts a service (`KeyringMode=private`).
    pub fn spawn(&mut self) {
        let mut cmd = super::daemon::command("setpriv");
        cmd.arg(format!("--bounding-set=-all,{}", unit_capabilities()))
            .args(["--", "keyctl", "session", "-"])
            .arg(&self.binary)
            .arg("monitor")
            .arg("--socket")
            .arg(self.socket());
        self.spawn_command(cmd, false);
    }

    /// Restarts the monitor in a mount namespace of its own where no cgroup2 is mounted:
    /// a host whose sessions cannot be confined.
    pub fn spawn_without_cgroup2(&mut self) {
        self.kill();
        let mut cmd = super::daemon::command("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                "awk '$3 == \"cgroup2\" { print $2 }' /proc/mounts | while read -r m; do \
                 umount -l \"$m\" || exit 1; done && exec \"$0\" monitor --socket \"$1\"",
            )
            .arg(&self.binary)
            .arg(self.socket());
        self.spawn_command(cmd, true);
    }

    fn spawn_command(&mut self, mut cmd: std::process::Command, without_cgroup2: bool) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("monitor.log"))
            .unwrap();
        let _ = std::fs::remove_file(self.socket());
        self.without_cgroup2 = without_cgroup2;
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(super::daemon::spawn(cmd).expect("start the monitor"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(self.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "the monitor did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Running, and as a host would run it (with cgroup2).
    pub fn is_usual(&mut self) -> bool {
        !self.without_cgroup2 && self.is_running()
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().is_ok_and(|status| status.is_none()))
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The capabilities the packaged unit leaves the monitor (its `CapabilityBoundingSet=`), as
/// setpriv takes them (`+setuid,+sys_admin,…`): the tests' monitor has no more than the
/// installed one.
fn unit_capabilities() -> String {
    let unit =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd/rolesh-monitor.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the monitor unit names its capabilities");
    line.split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

impl Drop for MonitorProc {
    fn drop(&mut self) {
        self.kill();
    }
}
