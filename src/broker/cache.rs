//! What the broker remembers: role credentials per user (single flight: one STS call in
//! flight per role session however many ask), recently signed tokens (a burst of kubectl
//! calls costs one signature), and cluster endpoints from DescribeCluster.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::aws::{ClusterInfo, RoleCredentials};
use crate::mapping::Grant;
use crate::protocol::WireError;
use crate::session_id::SessionId;
use crate::token::SignedToken;

/// Credentials are handed out only while they have at least this long to live, so that a
/// token signed with them is usable.
const MIN_REMAINING: Duration = Duration::from_secs(60);
/// A signed token is reused for this long.
pub(super) const TOKEN_REUSE: Duration = Duration::from_secs(30);
/// DescribeCluster answers are refreshed after this long (and served stale on failure).
const CLUSTER_TTL: Duration = Duration::from_secs(15 * 60);

/// Everything that goes into one AssumeRole call: two users share credentials only if
/// STS would be asked the very same thing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct RoleKey {
    pub role_arn: String,
    pub session_name: String,
    pub source_identity: String,
    pub tags: Vec<(String, String)>,
    pub duration: Duration,
}

impl RoleKey {
    pub(super) fn new(grant: &Grant, duration: Duration) -> Self {
        RoleKey {
            role_arn: grant.role_arn.clone(),
            session_name: grant.session_name.clone(),
            source_identity: grant.source_identity.clone(),
            tags: grant.tags.clone(),
            duration,
        }
    }
}

#[derive(Default)]
struct Slot {
    current: Mutex<Option<RoleCredentials>>,
    /// Held by the one task calling STS for this key.
    refresh: tokio::sync::Mutex<()>,
}

impl Slot {
    fn current_if(&self, ok: impl Fn(&RoleCredentials) -> bool) -> Option<RoleCredentials> {
        self.current
            .lock()
            .expect("slot lock")
            .as_ref()
            .filter(|c| ok(c))
            .cloned()
    }
}

/// Where credentials came from, for the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Cache,
    Sts,
    /// STS failed; still-valid cached credentials were served.
    StaleAfterError,
}

#[derive(Default)]
pub(super) struct CredentialCache {
    slots: Mutex<HashMap<RoleKey, Arc<Slot>>>,
}

impl CredentialCache {
    fn slot(&self, key: &RoleKey) -> Arc<Slot> {
        let mut slots = self.slots.lock().expect("cache lock");
        Arc::clone(slots.entry(key.clone()).or_default())
    }

    /// Cached credentials if they are not due for refresh; else one caller fetches while
    /// the others wait (or, if they hold still-valid credentials, are served those).
    /// A failed fetch falls back to cached credentials until they expire.
    pub(super) async fn get<F, Fut>(
        &self,
        key: &RoleKey,
        refresh_before: Duration,
        fetch: F,
    ) -> Result<(RoleCredentials, Source), WireError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<RoleCredentials, WireError>>,
    {
        let slot = self.slot(key);
        let fresh = |c: &RoleCredentials| c.expiry > SystemTime::now() + refresh_before;
        let usable = |c: &RoleCredentials| c.expiry > SystemTime::now() + MIN_REMAINING;
        if let Some(c) = slot.current_if(fresh) {
            return Ok((c, Source::Cache));
        }
        let _refreshing = match slot.refresh.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                if let Some(c) = slot.current_if(usable) {
                    return Ok((c, Source::Cache));
                }
                slot.refresh.lock().await
            }
        };
        // Whoever held the lock before may have refreshed already.
        if let Some(c) = slot.current_if(fresh) {
            return Ok((c, Source::Cache));
        }
        match fetch().await {
            Ok(c) => {
                *slot.current.lock().expect("slot lock") = Some(c.clone());
                Ok((c, Source::Sts))
            }
            Err(e) => match slot.current_if(usable) {
                Some(c) => Ok((c, Source::StaleAfterError)),
                None => Err(e),
            },
        }
    }
}

struct Signed {
    token: SignedToken,
    signed_at: SystemTime,
    access_key: String,
}

/// What a signed token is reused for: role session, cluster and login session (so that a
/// session's tokens can be dropped when it ends).
type TokenKey = (RoleKey, String, Option<SessionId>);

/// Tokens signed in the last [`TOKEN_REUSE`].
#[derive(Default)]
pub(super) struct TokenCache {
    tokens: Mutex<HashMap<TokenKey, Signed>>,
}

impl TokenCache {
    pub(super) fn get_or_sign(
        &self,
        key: &RoleKey,
        cluster: &str,
        session: Option<&SessionId>,
        creds: &RoleCredentials,
        sign: impl FnOnce() -> Result<SignedToken, WireError>,
    ) -> Result<(SignedToken, bool), WireError> {
        let now = SystemTime::now();
        let map_key = (key.clone(), cluster.to_string(), session.cloned());
        let mut tokens = self.tokens.lock().expect("token cache lock");
        if let Some(s) = tokens.get(&map_key)
            && s.access_key == creds.credentials.access_key_id()
            && now
                .duration_since(s.signed_at)
                .is_ok_and(|age| age < TOKEN_REUSE)
        {
            return Ok((s.token.clone(), true));
        }
        let token = sign()?;
        if tokens.len() > 10_000 {
            tokens.retain(|_, s| {
                now.duration_since(s.signed_at)
                    .is_ok_and(|age| age < TOKEN_REUSE)
            });
        }
        tokens.insert(
            map_key,
            Signed {
                token: token.clone(),
                signed_at: now,
                access_key: creds.credentials.access_key_id().to_string(),
            },
        );
        Ok((token, false))
    }

    /// Forgets every token signed for `session`; how many there were.
    pub(super) fn drop_session(&self, session: &SessionId) -> usize {
        let mut tokens = self.tokens.lock().expect("token cache lock");
        let before = tokens.len();
        tokens.retain(|(_, _, s), _| s.as_ref() != Some(session));
        before - tokens.len()
    }
}

/// DescribeCluster answers per cluster name.
#[derive(Default)]
pub(super) struct ClusterCache {
    clusters: Mutex<HashMap<String, (ClusterInfo, SystemTime)>>,
}

impl ClusterCache {
    pub(super) fn fresh(&self, name: &str) -> Option<ClusterInfo> {
        let clusters = self.clusters.lock().expect("cluster cache lock");
        clusters
            .get(name)
            .filter(|(_, at)| at.elapsed().is_ok_and(|age| age < CLUSTER_TTL))
            .map(|(info, _)| info.clone())
    }

    pub(super) fn any(&self, name: &str) -> Option<ClusterInfo> {
        self.clusters
            .lock()
            .expect("cluster cache lock")
            .get(name)
            .map(|(i, _)| i.clone())
    }

    pub(super) fn store(&self, name: &str, info: ClusterInfo) {
        self.clusters
            .lock()
            .expect("cluster cache lock")
            .insert(name.to_string(), (info, SystemTime::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorCode;
    use aws_credential_types::Credentials;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key() -> RoleKey {
        RoleKey {
            role_arn: "arn:aws:iam::123456789012:role/a".into(),
            session_name: "alice".into(),
            source_identity: "alice".into(),
            tags: vec![],
            duration: Duration::from_secs(3600),
        }
    }

    fn creds(ttl: Duration) -> RoleCredentials {
        let expiry = SystemTime::now() + ttl;
        RoleCredentials {
            credentials: Credentials::new("ASIA1", "secret", Some("tok".into()), Some(expiry), "t"),
            expiry,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_fetch() {
        let cache = Arc::new(CredentialCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = vec![];
        for _ in 0..50 {
            let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
            tasks.push(tokio::spawn(async move {
                cache
                    .get(&key(), Duration::from_secs(600), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(creds(Duration::from_secs(3600)))
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn stale_but_valid_credentials_survive_an_sts_outage() {
        let cache = CredentialCache::default();
        let refresh_before = Duration::from_secs(600);
        // Due for refresh (5 min left < 10 min) but still valid.
        cache
            .get(&key(), refresh_before, || async {
                Ok(creds(Duration::from_secs(300)))
            })
            .await
            .unwrap();
        let (c, source) = cache
            .get(&key(), refresh_before, || async {
                Err(WireError::new(ErrorCode::Sts, "down"))
            })
            .await
            .unwrap();
        assert_eq!(source, Source::StaleAfterError);
        assert_eq!(c.credentials.access_key_id(), "ASIA1");
    }

    #[tokio::test]
    async fn expired_credentials_are_never_served() {
        let cache = CredentialCache::default();
        cache
            .get(&key(), Duration::from_secs(600), || async {
                Ok(creds(Duration::from_secs(30)))
            })
            .await
            .unwrap();
        let err = cache
            .get(&key(), Duration::from_secs(600), || async {
                Err(WireError::new(ErrorCode::Sts, "down"))
            })
            .await
            .err()
            .unwrap();
        assert_eq!(err.message, "down");
    }
}
