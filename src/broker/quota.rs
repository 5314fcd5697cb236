//! What one user may make the broker write to the recordings disk, checked before a
//! recording starts:
//!
//! - `[audit] recording_quota`: bytes of recordings per user per day (UTC), shared by all
//!   of the user's recordings. Counted as the broker writes (header, events, markers), and
//!   at start-up (or a user's first recording of the broker's life) from the sizes of the
//!   user's recordings modified that day. A recording that crosses the quota is not cut
//!   (that would leave the rest of its session unrecorded): it gets a marker, the trail an
//!   `error` event, and the user's next recording that day is refused.
//! - `[audit] min_free`: below it on the recordings file system, new recordings are
//!   refused for everyone but `[audit] exempt_groups`, and the trail gets a warning at most
//!   once a minute.
//!
//! A refusal is the user's `denied` event (written by the caller).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tracing::warn;

use crate::config::AuditSettings;
use crate::config::values::human_bytes;
use crate::system::Account;

const DAY_SECS: u64 = 86_400;

/// How often the trail is told that the disk is below `min_free`.
const DISK_WARNING_EVERY: Duration = Duration::from_secs(60);

/// The UTC day `at` falls on (days since 1970-01-01).
fn day_of(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() / DAY_SECS)
        .unwrap_or(0)
}

/// Bytes written per user today.
#[derive(Default, Clone)]
pub(super) struct Quotas {
    used: Arc<Mutex<HashMap<String, Usage>>>,
}

#[derive(Debug, Clone, Copy)]
struct Usage {
    day: u64,
    bytes: u64,
}

impl Quotas {
    /// Whether `user` may start a recording under `quota`; `user_dir` (their recordings)
    /// is read when the broker has not counted this user yet.
    pub(super) fn admit(&self, user_dir: &Path, user: &str, quota: u64) -> Result<(), String> {
        let today = day_of(SystemTime::now());
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let usage = used.entry(user.to_string()).or_insert_with(|| Usage {
            day: today,
            bytes: written_on(user_dir, today),
        });
        if usage.day != today {
            *usage = Usage {
                day: today,
                bytes: 0,
            };
        }
        if usage.bytes < quota {
            return Ok(());
        }
        Err(format!(
            "your recording quota is used up: {} recorded today of {} a day, 0 B left; recording starts again at 00:00 UTC",
            human_bytes(usage.bytes),
            human_bytes(quota)
        ))
    }

    /// Counts `bytes` written for `user`; true when they took the user past `quota`.
    pub(super) fn add(&self, user: &str, bytes: u64, quota: u64) -> bool {
        let today = day_of(SystemTime::now());
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let usage = used.entry(user.to_string()).or_insert(Usage {
            day: today,
            bytes: 0,
        });
        if usage.day != today {
            *usage = Usage {
                day: today,
                bytes: 0,
            };
        }
        let before = usage.bytes;
        usage.bytes = before.saturating_add(bytes);
        before < quota && usage.bytes >= quota
    }
}

/// The size of the recordings in `user_dir` last modified on `day`.
fn written_on(user_dir: &Path, day: u64) -> u64 {
    let Ok(entries) = std::fs::read_dir(user_dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file() && m.modified().is_ok_and(|t| day_of(t) == day))
        .map(|m| m.len())
        .sum()
}

/// The recordings file system against `min_free`.
#[derive(Default)]
pub(super) struct DiskSpace {
    warned: Mutex<Option<Instant>>,
}

impl DiskSpace {
    /// Whether a recording of `account` may start with the space left.
    pub(super) fn admit(&self, audit: &AuditSettings, account: &Account) -> Result<(), String> {
        let dir = &audit.recordings_dir;
        // The directory is made with the first recording: until then, ask its parent's.
        let existing = dir.ancestors().find(|p| p.exists()).unwrap_or(dir);
        let (available, total) = crate::system::free_space(existing).map_err(|e| {
            format!(
                "cannot tell the free space of {}: {e}; not recording",
                dir.display()
            )
        })?;
        if !audit.min_free.is_below(available, total) {
            return Ok(());
        }
        let free = human_bytes(available);
        self.warn_once_a_minute(dir, &free, audit);
        if account
            .groups
            .iter()
            .any(|g| audit.exempt_groups.contains(g))
        {
            return Ok(());
        }
        Err(format!(
            "the recordings disk is almost full ({free} free, below [audit] min_free {}); ask the administrator",
            audit.min_free
        ))
    }

    fn warn_once_a_minute(&self, dir: &Path, free: &str, audit: &AuditSettings) {
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.is_some_and(|at| at.elapsed() < DISK_WARNING_EVERY) {
            return;
        }
        *warned = Some(Instant::now());
        warn!(
            target: "rolesh::audit",
            event = "error",
            reason = %format!(
                "the recordings file system of {} has {free} free, below [audit] min_free {}: new recordings are refused except for [audit] exempt_groups",
                dir.display(),
                audit.min_free
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_is_per_user_and_counts_every_recording() {
        let dir = tempfile::tempdir().unwrap();
        let quotas = Quotas::default();
        assert!(quotas.admit(dir.path(), "alice", 100).is_ok());
        assert!(!quotas.add("alice", 60, 100));
        assert!(quotas.add("alice", 60, 100), "this one crossed it");
        assert!(!quotas.add("alice", 60, 100), "crossed once");
        let refused = quotas.admit(dir.path(), "alice", 100).unwrap_err();
        assert_eq!(
            refused,
            "your recording quota is used up: 180 B recorded today of 100 B a day, 0 B left; recording starts again at 00:00 UTC"
        );
        assert!(quotas.admit(dir.path(), "bob", 100).is_ok(), "per user");
    }

    #[test]
    fn a_broker_that_restarts_counts_todays_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.cast"), vec![b'x'; 150]).unwrap();
        let quotas = Quotas::default();
        assert!(quotas.admit(dir.path(), "alice", 100).is_err());
        assert!(quotas.admit(dir.path(), "alice", 200).is_ok());
    }
}
