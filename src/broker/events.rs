//! `[audit] event_rate_per_uid`: how many session events (op `event`) one uid may have the
//! broker write per second, so that a user cannot flood the audit file and journald
//! through the broker. A token bucket per uid (bursts of twice the rate); the excess is
//! refused, dropped and counted, and the count goes to the trail as one `error` event per
//! uid per minute at most: at the first drop, then for drops since, once a minute has
//! passed (on the next drop or the broker's periodic check, whichever comes first).
//!
//! Only events a session reports for itself count: those the session monitor (root)
//! reports for a user (login, command, logout) are one per session step, bounded by
//! sshd's logins, and must not be lost to a user's flood.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one report of dropped events per uid this often.
pub(super) const REPORT_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(super) struct EventLimits {
    per_uid: Mutex<HashMap<u32, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    user: String,
    dropped: u64,
    reported: Option<Instant>,
}

/// What to do with one event.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Accept,
    /// Dropped; `report`: the drops to put in the trail now (this one included).
    Drop {
        report: Option<u64>,
    },
}

/// Drops to report: whose, and how many.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Dropped {
    pub(super) uid: u32,
    pub(super) user: String,
    pub(super) count: u64,
}

impl EventLimits {
    /// One event of `uid` (`user`) at `rate` per second.
    pub(super) fn admit(&self, uid: u32, user: &str, rate: u32) -> Verdict {
        let now = Instant::now();
        let capacity = 2.0 * f64::from(rate);
        let mut map = self.per_uid.lock().unwrap_or_else(|p| p.into_inner());
        let b = map.entry(uid).or_insert_with(|| Bucket {
            tokens: capacity,
            at: now,
            user: user.to_string(),
            dropped: 0,
            reported: None,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * f64::from(rate);
        b.tokens = (b.tokens + refill).min(capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Verdict::Accept;
        }
        b.dropped += 1;
        Verdict::Drop {
            report: take_if_due(b, now),
        }
    }

    /// Drops not yet reported whose minute has passed (the broker's periodic check).
    pub(super) fn overdue(&self) -> Vec<Dropped> {
        let now = Instant::now();
        let mut map = self.per_uid.lock().unwrap_or_else(|p| p.into_inner());
        map.iter_mut()
            .filter_map(|(uid, b)| {
                take_if_due(b, now).map(|count| Dropped {
                    uid: *uid,
                    user: b.user.clone(),
                    count,
                })
            })
            .collect()
    }
}

/// The bucket's unreported drops, if there are any and the last report is a minute old.
fn take_if_due(b: &mut Bucket, now: Instant) -> Option<u64> {
    let due = b
        .reported
        .is_none_or(|at| now.duration_since(at) >= REPORT_EVERY);
    if b.dropped == 0 || !due {
        return None;
    }
    b.reported = Some(now);
    Some(std::mem::take(&mut b.dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_drops_reported_once() {
        let limits = EventLimits::default();
        let verdicts: Vec<Verdict> = (0..30).map(|_| limits.admit(7, "eve", 5)).collect();
        let accepted = verdicts.iter().filter(|v| **v == Verdict::Accept).count();
        assert_eq!(accepted, 10, "a burst of 2 × rate");
        let reports: Vec<u64> = verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Drop { report } => *report,
                Verdict::Accept => None,
            })
            .collect();
        assert_eq!(reports, [1], "the first drop is reported at once, alone");
        assert!(
            limits.overdue().is_empty(),
            "the next report waits a minute"
        );
        assert_eq!(limits.admit(8, "bob", 5), Verdict::Accept, "per uid");
    }
}
