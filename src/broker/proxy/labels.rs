//! The labels of a pod a request names, which the policy's selectors decide on: read from
//! the cluster with the user's own token, and kept for [`FRESH`] for that user and pod.
//!
//! Why keep them at all: `kubectl exec`, `logs` and `port-forward` first GET the pod, then
//! make the request that matters; each needs the labels, and reading them twice put a
//! second round trip to the cluster in front of every exec. Why so briefly: a pod
//! relabelled out of the selectors must stop being reachable; for at most [`FRESH`] after
//! the change, the same user's requests to it may still pass the selectors (the cluster's
//! RBAC decides them as always).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::as_user::UpstreamAuth;
use super::forward::get_json;
use super::upstream::Upstream;

/// How long a pod's labels, once read, decide that user's requests to it.
pub(super) const FRESH: Duration = Duration::from_secs(2);
/// The largest pod read (a pod is a few KiB; its managed fields can make it tens).
pub(super) const MAX_POD: usize = 4 << 20;
/// The largest label set kept (names and values); larger ones are read every time.
const MAX_KEPT_BYTES: usize = 4 << 10;
/// Entries kept at most (those older than [`FRESH`] are dropped first).
const MAX_ENTRIES: usize = 4096;

type Labels = BTreeMap<String, String>;

/// Whose request, to which pod: uid, cluster, namespace, name.
type Key = (u32, String, String, String);

#[derive(Default)]
pub(super) struct PodLabels {
    read: Mutex<HashMap<Key, (Instant, Labels)>>,
}

impl PodLabels {
    /// The labels of pod `namespace/name` as `uid` may read them (`None`: there is no such
    /// pod, and the request will say so itself). A pod the user may not read is refused:
    /// its labels decide, and they are unknown.
    pub(super) async fn of(
        &self,
        upstream: &Upstream,
        token: &UpstreamAuth,
        uid: u32,
        cluster: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Labels>, String> {
        let key = (
            uid,
            cluster.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        if let Some(labels) = self.fresh(&key) {
            return Ok(Some(labels));
        }
        let labels = read(upstream, token, namespace, name).await?;
        if let Some(labels) = &labels {
            self.keep(key, labels.clone());
        }
        Ok(labels)
    }

    /// Keeps the labels of pod `namespace/name` that `(uid, cluster)` read in an answer.
    pub(super) fn remember(
        &self,
        (uid, cluster): (u32, &str),
        namespace: &str,
        name: &str,
        labels: Labels,
    ) {
        let key = (
            uid,
            cluster.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        self.keep(key, labels);
    }

    fn fresh(&self, key: &Key) -> Option<Labels> {
        let read = self.read.lock().expect("pod labels lock");
        read.get(key)
            .filter(|(at, _)| at.elapsed() < FRESH)
            .map(|(_, labels)| labels.clone())
    }

    fn keep(&self, key: Key, labels: Labels) {
        // Labels may be large (up to the object's size): only modest sets are kept.
        let size: usize = labels.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_KEPT_BYTES {
            return;
        }
        let mut read = self.read.lock().expect("pod labels lock");
        if read.len() >= MAX_ENTRIES {
            read.retain(|_, (at, _)| at.elapsed() < FRESH);
        }
        if read.len() >= MAX_ENTRIES {
            read.clear();
        }
        read.insert(key, (Instant::now(), labels));
    }
}

/// `GET` the pod with the user's token and take its labels.
async fn read(
    upstream: &Upstream,
    token: &UpstreamAuth,
    namespace: &str,
    name: &str,
) -> Result<Option<Labels>, String> {
    let path = format!("/api/v1/namespaces/{namespace}/pods/{name}");
    match get_json(upstream, token, &path).await? {
        None => Ok(None),
        Some(bytes) => of_pod(&bytes, namespace, name).map(Some),
    }
}

/// The labels of pod `namespace/name`, from its JSON; an answer that is not that pod is
/// refused.
pub(super) fn of_pod(json: &[u8], namespace: &str, name: &str) -> Result<Labels, String> {
    #[derive(Deserialize)]
    struct Pod {
        kind: Option<String>,
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    }
    let cannot = |why: &dyn std::fmt::Display| {
        format!("cannot read the labels of pod {namespace}/{name}: {why}")
    };
    let pod = serde_json::from_slice::<Pod>(json).map_err(|e| cannot(&e))?;
    let meta = &pod.metadata;
    if pod.kind.as_deref().is_some_and(|k| k != "Pod")
        || meta.name.as_deref() != Some(name)
        || meta.namespace.as_deref() != Some(namespace)
    {
        return Err(cannot(&"the cluster's answer is not that pod"));
    }
    Ok(pod.metadata.labels.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uid: u32, name: &str) -> Key {
        (uid, "demo".into(), "web".into(), name.into())
    }

    fn app(value: &str) -> Labels {
        BTreeMap::from([("app".to_string(), value.to_string())])
    }

    #[test]
    fn labels_read_for_one_user_do_not_answer_for_another() {
        let cache = PodLabels::default();
        cache.keep(key(1000, "p"), app("frontend"));
        assert_eq!(cache.fresh(&key(1000, "p")), Some(app("frontend")));
        assert_eq!(cache.fresh(&key(1001, "p")), None);
        assert_eq!(cache.fresh(&key(1000, "q")), None);
    }

    #[test]
    fn labels_older_than_fresh_are_read_again() {
        let cache = PodLabels::default();
        let old = Instant::now()
            .checked_sub(FRESH)
            .expect("a clock past FRESH");
        cache
            .read
            .lock()
            .unwrap()
            .insert(key(1000, "p"), (old, app("frontend")));
        assert_eq!(cache.fresh(&key(1000, "p")), None);
    }

    #[test]
    fn a_large_label_set_is_not_kept() {
        let cache = PodLabels::default();
        cache.keep(key(1000, "p"), app(&"x".repeat(MAX_KEPT_BYTES)));
        assert_eq!(cache.fresh(&key(1000, "p")), None);
    }

    #[test]
    fn an_answer_that_is_not_the_pod_asked_for_is_refused() {
        let pod = |kind: &str, ns: &str, name: &str| {
            format!(
                r#"{{"kind":"{kind}","metadata":{{"namespace":"{ns}","name":"{name}","labels":{{"app":"frontend"}}}}}}"#
            )
        };
        assert_eq!(
            of_pod(pod("Pod", "web", "p").as_bytes(), "web", "p"),
            Ok(app("frontend"))
        );
        for other in [
            pod("Pod", "web", "q"),
            pod("Pod", "jobs", "p"),
            pod("Status", "web", "p"),
            r#"{"type":"ADDED","object":{}}"#.to_string(),
        ] {
            assert!(of_pod(other.as_bytes(), "web", "p").is_err(), "{other}");
        }
    }

    #[test]
    fn a_full_cache_drops_stale_entries_and_stays_bounded() {
        let cache = PodLabels::default();
        for n in 0..(MAX_ENTRIES + 10) {
            cache.keep(key(1000, &format!("p{n}")), app("x"));
        }
        assert!(cache.read.lock().unwrap().len() <= MAX_ENTRIES);
        // The newest is always kept.
        let newest = format!("p{}", MAX_ENTRIES + 9);
        assert_eq!(cache.fresh(&key(1000, &newest)), Some(app("x")));
    }
}
