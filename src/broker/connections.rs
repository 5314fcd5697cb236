//! Bounds that keep one client from stalling the others: connections in total and per uid,
//! and a per-uid request rate (token bucket).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Default, Debug)]
struct State {
    total: u32,
    per_uid: HashMap<u32, u32>,
    buckets: HashMap<u32, Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default, Clone)]
pub(super) struct Connections {
    state: Arc<Mutex<State>>,
}

/// A connection slot; given back when dropped.
#[derive(Debug)]
pub(super) struct Admission {
    state: Arc<Mutex<State>>,
    uid: u32,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut s = self.state.lock().expect("limits lock");
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                s.per_uid.remove(&self.uid);
            }
        }
    }
}

impl Connections {
    /// A slot for a new connection of `uid`, or why there is none.
    pub(super) fn admit(
        &self,
        uid: u32,
        max_total: u32,
        max_per_uid: u32,
    ) -> Result<Admission, String> {
        let mut s = self.state.lock().expect("limits lock");
        if s.total >= max_total {
            return Err(format!(
                "the broker is at its limit of {max_total} connections; try again"
            ));
        }
        let mine = s.per_uid.get(&uid).copied().unwrap_or(0);
        if mine >= max_per_uid {
            return Err(format!(
                "too many connections from uid {uid} (limit {max_per_uid})"
            ));
        }
        s.total += 1;
        s.per_uid.insert(uid, mine + 1);
        Ok(Admission {
            state: Arc::clone(&self.state),
            uid,
        })
    }

    /// Whether `uid` may make one more request now: `rate` per second, bursts of `2 × rate`.
    pub(super) fn allow_request(&self, uid: u32, rate: u32) -> bool {
        let capacity = 2.0 * f64::from(rate);
        let now = Instant::now();
        let mut s = self.state.lock().expect("limits lock");
        let bucket = s.buckets.entry(uid).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * f64::from(rate);
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_uid_and_total_limits_and_release() {
        let limits = Connections::default();
        let a = limits.admit(1, 3, 2).unwrap();
        let _b = limits.admit(1, 3, 2).unwrap();
        assert!(limits.admit(1, 3, 2).unwrap_err().contains("uid 1"));
        let _c = limits.admit(2, 3, 2).unwrap();
        assert!(limits.admit(3, 3, 2).unwrap_err().contains("limit of 3"));
        drop(a);
        assert!(limits.admit(1, 3, 2).is_ok());
    }

    #[test]
    fn rate_allows_a_burst_then_refuses() {
        let limits = Connections::default();
        let allowed = (0..100).filter(|_| limits.allow_request(7, 10)).count();
        assert_eq!(allowed, 20, "a burst of 2 × rate");
        assert!(limits.allow_request(8, 10), "other uids are not affected");
    }
}
