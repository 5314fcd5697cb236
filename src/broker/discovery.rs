//! The broker's side of `[[discovery]]` (`crate::discovery` does the asking and choosing):
//! the last good answer of each region, whether the first refresh is done, and which
//! discovered clusters each user's own role may describe, asked once per user and refresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::discovery::{EksKey, Fetched, Seen};

/// How long requests wait for the first discovery after the first of them arrives.
pub(super) const FIRST_WAIT: Duration = Duration::from_secs(5);

/// A user's role: who asks DescribeCluster for the user's verdicts.
pub(super) type UserKey = (u32, String);

pub(super) struct Discovery {
    seen: Mutex<LastSeen>,
    first_done: watch::Sender<bool>,
    /// When requests stop waiting for the first discovery: five seconds after the first one.
    first_wait_until: OnceLock<Instant>,
    wake: Notify,
    users: Mutex<HashMap<UserKey, Arc<tokio::sync::Mutex<Verdicts>>>>,
}

/// What the refreshes saw: per region, the last answer it gave.
#[derive(Default)]
struct LastSeen {
    regions: Seen,
    /// Bumped by every refresh: a user's verdicts are asked again after it.
    generation: u64,
}

/// Which discovered clusters one user's role may describe, as of a refresh.
#[derive(Default)]
pub(super) struct Verdicts {
    pub(super) generation: u64,
    pub(super) visible: HashMap<EksKey, bool>,
}

impl Default for Discovery {
    fn default() -> Self {
        Discovery {
            seen: Mutex::default(),
            first_done: watch::Sender::new(false),
            first_wait_until: OnceLock::new(),
            wake: Notify::new(),
            users: Mutex::default(),
        }
    }
}

impl Discovery {
    /// The last good answer of each region.
    pub(super) fn seen(&self) -> Seen {
        self.seen.lock().expect("discovery lock").regions.clone()
    }

    pub(super) fn generation(&self) -> u64 {
        self.seen.lock().expect("discovery lock").generation
    }

    /// A refresh's answer: each region that answered replaces what was seen there, one that
    /// failed keeps its last good answer, one no block names any more is forgotten. Returns
    /// the failures, by region.
    pub(super) fn record(&self, config: &Config, fetched: Fetched) -> Vec<(String, String)> {
        let wanted = crate::discovery::regions(config);
        let mut seen = self.seen.lock().expect("discovery lock");
        seen.regions.retain(|region, _| wanted.contains(region));
        let (answered, failures) = crate::discovery::split(fetched);
        seen.regions.extend(answered);
        seen.generation += 1;
        failures
    }

    /// The first refresh is over (or there is nothing to discover): requests stop waiting.
    pub(super) fn mark_done(&self) {
        self.first_done.send_replace(true);
    }

    /// Waits for the first discovery, until five seconds after the first request at most.
    pub(super) async fn first_discovery(&self) {
        if *self.first_done.borrow() {
            return;
        }
        let until = *self
            .first_wait_until
            .get_or_init(|| Instant::now() + FIRST_WAIT);
        let mut done = self.first_done.subscribe();
        let _ = tokio::time::timeout_at(until.into(), done.wait_for(|d| *d)).await;
    }

    /// Asks for a refresh now (SIGHUP).
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Until [`wake`](Self::wake) is called.
    pub(super) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// A user's verdicts, to be locked while they are asked (one asking per user).
    pub(super) fn verdicts(&self, key: UserKey) -> Arc<tokio::sync::Mutex<Verdicts>> {
        let mut users = self.users.lock().expect("discovery users lock");
        Arc::clone(users.entry(key).or_default())
    }
}
