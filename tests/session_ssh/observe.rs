//! What a session test looks at once a session ran: its processes, its live-session
//! record, its audit events and its recording.

// Shared by session_ssh and session_attacks, which use different parts.
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixture::Fixture;

/// Waits (10 s at most) for a recording of `user` that was not there `before` and has
/// `needle`, and returns it.
pub(crate) fn new_recording(
    fx: &Fixture,
    user: &str,
    before: &[(std::path::PathBuf, String)],
    needle: &str,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let new: Vec<String> = fx
            .recordings(user)
            .into_iter()
            .filter(|(path, _)| !before.iter().any(|(p, _)| p == path))
            .map(|(_, text)| text)
            .collect();
        if let Some(found) = new.iter().find(|r| r.contains(needle)) {
            assert_eq!(new.len(), 1, "one session, one recording: {new:?}");
            return found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no new recording of {user} with {needle:?}: {new:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The audit events of `user` whose `event` is `event`.
pub(crate) fn events_of(audit: &[Value], user: &str, event: &str) -> Vec<Value> {
    audit
        .iter()
        .filter(|e| e["user"] == user && e["event"] == event)
        .cloned()
        .collect()
}

/// Every process of `user` is gone within a few seconds (sshd's own per-session process,
/// which runs as the user, takes a moment after the client sees the end).
pub(crate) fn assert_no_processes_left(user: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("pgrep")
            .args(["-a", "-u", user])
            .output()
            .unwrap();
        let left = String::from_utf8_lossy(&out.stdout).into_owned();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes of {user} survived its session:\n{left}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Pids `pgrep ARGS` lists.
pub(crate) fn pgrep(args: &[&str]) -> Vec<u32> {
    let out = Command::new("pgrep").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// `kill SIGNAL PID`, as root.
pub(crate) fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// The live-session record (/run/rolesh/sessions/ID) of the session `pid` is in, by its
/// cgroup.
pub(crate) fn live_session_of(pid: u32) -> Value {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let id = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .and_then(|path| path.split("/rolesh-sessions/").nth(1))
        .unwrap_or_else(|| panic!("{pid} is in no session's cgroup: {cgroup}"));
    let record = std::fs::read_to_string(format!("/run/rolesh/sessions/{}", id.trim())).unwrap();
    serde_json::from_str(&record).unwrap()
}

/// The first pid `pgrep ARGS` lists within 30 s.
pub(crate) fn wait_for_pid(args: &[&str]) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = pgrep(args).into_iter().next() {
            return Some(pid);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `kill SIGNAL PID` as `user`: what a hostile user can do to the processes of its
/// session (the kernel decides, by uid).
pub(crate) fn kill_as(user: &str, signal: &str, pid: u32) -> crate::common::Run {
    crate::common::run(Command::new("runuser").args([
        "-u",
        user,
        "--",
        "kill",
        signal,
        &pid.to_string(),
    ]))
}

/// The one pid `pgrep ARGS` lists (the test fails if it lists none or several).
pub(crate) fn only_pid(args: &[&str]) -> u32 {
    let pids = pgrep(args);
    assert_eq!(pids.len(), 1, "pgrep {args:?}: {pids:?}");
    pids[0]
}

/// Where cgroup2 is mounted (from /proc/mounts).
pub(crate) fn cgroup2_mount() -> std::path::PathBuf {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    mounts
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == "cgroup2")
        .map(|f| std::path::PathBuf::from(f[1]))
        .expect("cgroup2 is mounted")
}

/// A session, as the test sees it from outside: its live-session record (`record`), its
/// cgroup's directory.
pub(crate) struct SessionSeen {
    pub(crate) record: Value,
}

impl SessionSeen {
    /// The session `pid` is in.
    pub(crate) fn of(pid: u32) -> SessionSeen {
        SessionSeen {
            record: live_session_of(pid),
        }
    }

    pub(crate) fn id(&self) -> &str {
        self.record["session_id"].as_str().unwrap()
    }

    pub(crate) fn monitor_pid(&self) -> u32 {
        self.record["monitor_pid"].as_u64().unwrap() as u32
    }

    pub(crate) fn cgroup_dir(&self) -> std::path::PathBuf {
        let path = self.record["cgroup"].as_str().unwrap();
        cgroup2_mount().join(path.trim_start_matches("0::").trim_start_matches('/'))
    }

    /// Every process in the session's cgroup, now.
    pub(crate) fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.cgroup_dir().join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    }

    /// Its record and its cgroup are gone (within 10 s).
    pub(crate) fn assert_gone(&self) {
        let record = format!("/run/rolesh/sessions/{}", self.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&record).exists() || self.cgroup_dir().exists() {
            assert!(
                Instant::now() < deadline,
                "session {} is still recorded or has its cgroup ({})",
                self.id(),
                self.cgroup_dir().display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The `logout` of session `id` among `audit`'s events.
pub(crate) fn logout_of(audit: &[Value], id: &str) -> Option<Value> {
    audit
        .iter()
        .find(|e| e["event"] == "logout" && e["session_id"] == id)
        .cloned()
}
