//! Live sessions, as the session monitor (root) records them in `/run/rolesh/sessions/ID`:
//! the one place the broker learns whether a process belongs to a live session. A process
//! is in a session when the kernel says so — its cgroup (`/proc/PID/cgroup`) is the
//! session's, which only the monitor can put processes in — and the record says the
//! session is live: not ended, not past its `max_duration`, and of the same uid.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::session_id::SessionId;

/// The parent of every session's cgroup (under the monitor's own cgroup).
pub(crate) const CGROUP_PARENT: &str = "rolesh-sessions";

/// One live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LiveSession {
    pub(crate) session_id: SessionId,
    pub(crate) uid: u32,
    pub(crate) user: String,
    /// The session's cgroup as `/proc/PID/cgroup` shows it (`0::PATH`).
    pub(crate) cgroup: String,
    /// When the monitor started the session (seconds since the epoch).
    pub(crate) started: u64,
    pub(crate) max_duration_secs: u64,
    /// The session's monitor: its pid and start time (`/proc/PID/stat`), so that a pid
    /// reused by another process is not taken for it.
    pub(crate) monitor_pid: u32,
    pub(crate) monitor_start: u64,
    /// Set when the session is ending (before its processes are ended): why.
    #[serde(default)]
    pub(crate) ended: Option<String>,
}

impl LiveSession {
    /// Why this session no longer counts as live at `now`, if it does not.
    pub(crate) fn over(&self, now: SystemTime) -> Option<String> {
        if let Some(why) = &self.ended {
            return Some(why.clone());
        }
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(self.started);
        let max = Duration::from_secs(self.max_duration_secs);
        (now.duration_since(start).unwrap_or_default() >= max).then(|| "max_duration".into())
    }
}

/// The cgroup2 mount point in `/proc/mounts`' text (on a hybrid host it is not
/// `/sys/fs/cgroup`).
pub(crate) fn cgroup2_mount(mounts: &str) -> Option<&str> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (kind == "cgroup2").then_some(point)
    })
}

/// The live session whose cgroup has the kernel's id `cgroup_id` (a cgroup v2 id is its
/// directory's inode number), of `uid`: how the API proxy learns the session of a
/// connection from its socket's cgroup (`system::tcp_peer`). `None` when no record's cgroup
/// has that id, or the record is another uid's or over.
pub(crate) fn session_with_cgroup_id(uid: u32, cgroup_id: u64) -> Option<LiveSession> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self/mounts: the broker's unit shows it /proc's pid directories only.
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mount = PathBuf::from(cgroup2_mount(&mounts)?);
    all().into_iter().find(|record| {
        let dir = mount.join(record.cgroup.trim_start_matches('/'));
        record.uid == uid
            && record.over(SystemTime::now()).is_none()
            && std::fs::metadata(dir).is_ok_and(|m| m.ino() == cgroup_id)
    })
}

/// `/run/rolesh/sessions`.
pub(crate) fn dir() -> PathBuf {
    crate::paths::run_dir().join("sessions")
}

fn path(id: &SessionId) -> PathBuf {
    dir().join(id.as_str())
}

/// Writes (or replaces) the record, whole or not at all (a temporary file renamed).
pub(crate) fn write(session: &LiveSession) -> std::io::Result<()> {
    let dir = dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(&dir)?;
    // The modes set whatever the umask (a unit's UMask=0077 would hide the records from
    // the broker, which would then refuse every session).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
    let tmp = dir.join(format!(".{}.tmp", session.session_id));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(crate::system::no_follow_flag())
        .open(&tmp)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.write_all(
        serde_json::to_string(session)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    std::fs::rename(&tmp, path(&session.session_id))
}

/// The record of session `id`, if there is one.
pub(crate) fn read(id: &SessionId) -> Option<LiveSession> {
    let text = std::fs::read(path(id)).ok()?;
    serde_json::from_slice(&text).ok()
}

pub(crate) fn remove(id: &SessionId) {
    let _ = std::fs::remove_file(path(id));
}

/// Every record there is (for the monitor's sweep of sessions whose monitor died).
pub(crate) fn all() -> Vec<LiveSession> {
    let Ok(entries) = std::fs::read_dir(dir()) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| SessionId::parse(e.ok()?.file_name().to_str()?))
        .filter_map(|id| read(&id))
        .collect()
}

/// The session `pid` is in, as its cgroup says: the id and the cgroup path, if the
/// process is in a session's cgroup (`…/rolesh-sessions/ID`).
pub(crate) fn session_of(pid: u32) -> Option<(SessionId, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    session_of_cgroup_file(&text)
}

/// The same, from the text of a `/proc/PID/cgroup` file (cgroup v2's `0::PATH` line).
pub(crate) fn session_of_cgroup_file(text: &str) -> Option<(SessionId, String)> {
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?.trim_end();
    let (parent, id) = path.rsplit_once('/')?;
    let parent_name = parent.rsplit('/').next()?;
    if parent_name != CGROUP_PARENT {
        return None;
    }
    Some((SessionId::parse(id)?, path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_cgroup_is_recognised_only_where_the_monitor_puts_it() {
        let id = "0123456789abcdef01234567";
        let file =
            format!("12:pids:/\n0::/system.slice/rolesh-monitor.service/rolesh-sessions/{id}\n");
        let (found, path) = session_of_cgroup_file(&file).unwrap();
        assert_eq!(found.as_str(), id);
        assert!(path.ends_with(id));
        for other in [
            "0::/user.slice/user-1000.slice/session-3.scope\n".to_string(),
            format!("0::/rolesh-sessions/{id}/nested\n"),
            "0::/rolesh-sessions/NOT-HEX\n".to_string(),
            format!("1:name=systemd:/rolesh-sessions/{id}\n"),
        ] {
            assert!(session_of_cgroup_file(&other).is_none(), "{other}");
        }
    }

    #[test]
    fn a_session_is_over_when_ended_or_past_its_maximum() {
        let s = LiveSession {
            session_id: SessionId::parse("0123456789abcdef").unwrap(),
            uid: 1000,
            user: "alice".into(),
            cgroup: "/rolesh-sessions/0123456789abcdef".into(),
            started: 1_000_000,
            max_duration_secs: 300,
            monitor_pid: 1,
            monitor_start: 1,
            ended: None,
        };
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(s.over(at(1_000_299)), None);
        assert_eq!(s.over(at(1_000_300)).as_deref(), Some("max_duration"));
        let ended = LiveSession {
            ended: Some("hangup".into()),
            ..s
        };
        assert_eq!(ended.over(at(1_000_001)).as_deref(), Some("hangup"));
    }
}
