//! What the broker's `whoami` says this user may reach with `rolesh exec`: clusters, their
//! namespace allowlists and each namespace's selectors. rolesh checks a target against
//! this before any Kubernetes API call; the cluster's RBAC still decides on every call.

use crate::client;
use crate::config::Selector;
use crate::error::Failure;
use crate::protocol::{ClusterView, Request, Whoami};

/// The user's clusters and allowlists, and `[session] exec_command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Allowlist {
    pub(crate) clusters: Vec<ClusterView>,
    pub(crate) exec_command: Option<Vec<String>>,
}

impl Allowlist {
    /// Asks the broker (`ROLESH_BROKER_SOCKET` is honoured: `rolesh exec` is never login
    /// mode).
    pub(crate) fn from_broker() -> Result<Allowlist, Failure> {
        let who: Whoami = client::call(&client::socket_path(false), &Request::Whoami {})?;
        Ok(Allowlist::from(who))
    }

    pub(crate) fn cluster_names(&self) -> Vec<&str> {
        self.clusters.iter().map(|c| c.name.as_str()).collect()
    }

    /// The cluster `name`, or a refusal (exit 77) naming the user's clusters.
    pub(crate) fn cluster(&self, name: &str) -> Result<&ClusterView, Failure> {
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                Failure::denied(format!(
                    "cluster {name} is not one of yours; you may use: {}",
                    self.describe_clusters()
                ))
            })
    }

    /// The first of the user's clusters that allows `namespace` (the order of the config,
    /// as the session kubeconfig's current context is the first cluster), or a refusal.
    pub(crate) fn cluster_for_namespace(&self, namespace: &str) -> Result<&ClusterView, Failure> {
        self.clusters
            .iter()
            .find(|c| c.allows_namespace(namespace))
            .ok_or_else(|| {
                Failure::denied(format!(
                    "namespace {namespace} is not allowlisted for you on any cluster; allowed: {}",
                    self.describe_allowlists()
                ))
            })
    }

    fn describe_clusters(&self) -> String {
        if self.clusters.is_empty() {
            return "none".into();
        }
        self.cluster_names().join(", ")
    }

    fn describe_allowlists(&self) -> String {
        if self.clusters.is_empty() {
            return "no cluster".into();
        }
        self.clusters
            .iter()
            .map(|c| {
                if c.namespaces.is_empty() {
                    format!("{}/* (RBAC decides)", c.name)
                } else {
                    c.namespaces
                        .iter()
                        .map(|n| format!("{}/{}", c.name, n.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl From<Whoami> for Allowlist {
    fn from(who: Whoami) -> Allowlist {
        Allowlist {
            clusters: who.grant.clusters,
            exec_command: who.grant.session.exec_command,
        }
    }
}

/// The selectors of `namespace` on `cluster`; empty means every pod.
pub(crate) fn selectors<'a>(cluster: &'a ClusterView, namespace: &str) -> &'a [Selector] {
    cluster
        .namespaces
        .iter()
        .find(|n| n.name == namespace)
        .map_or(&[], |n| n.selectors.as_slice())
}

/// Refuses a namespace outside `cluster`'s allowlist (exit 77), naming what is allowed.
pub(crate) fn check_namespace(cluster: &ClusterView, namespace: &str) -> Result<(), Failure> {
    if cluster.allows_namespace(namespace) {
        return Ok(());
    }
    let allowed: Vec<&str> = cluster.namespaces.iter().map(|n| n.name.as_str()).collect();
    Err(Failure::denied(format!(
        "namespace {namespace} on cluster {} is not allowlisted for you; allowed: {}",
        cluster.name,
        allowed.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NamespaceSettings;
    use crate::error::EXIT_DENIED;

    fn allowlist() -> Allowlist {
        let ns = |name: &str, selectors: &[&str]| NamespaceSettings {
            name: name.into(),
            selectors: selectors
                .iter()
                .map(|s| Selector::parse(s).unwrap())
                .collect(),
        };
        Allowlist {
            clusters: vec![
                ClusterView {
                    name: "demo".into(),
                    region: "us-east-1".into(),
                    default_namespace: Some("web".into()),
                    namespaces: vec![
                        ns("web", &["app=frontend", "tier in (web,edge)"]),
                        ns("jobs", &[]),
                    ],
                    access: crate::config::ClusterRoute::Direct,
                    discovered: None,
                },
                ClusterView {
                    name: "open".into(),
                    region: "us-east-1".into(),
                    default_namespace: None,
                    namespaces: vec![],
                    access: crate::config::ClusterRoute::Direct,
                    discovered: None,
                },
            ],
            exec_command: Some(vec!["/bin/sh".into()]),
        }
    }

    #[test]
    fn the_allowlist_gives_each_namespace_its_selectors() {
        let a = allowlist();
        assert_eq!(a.cluster_names(), ["demo", "open"]);
        let demo = a.cluster("demo").unwrap();
        let shown: Vec<String> = selectors(demo, "web")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["app=frontend", "tier in (web,edge)"]);
        assert!(selectors(demo, "jobs").is_empty());
    }

    #[test]
    fn namespaces_outside_the_allowlist_are_denied_naming_what_is_allowed() {
        let a = allowlist();
        let err = check_namespace(a.cluster("demo").unwrap(), "kube-system").unwrap_err();
        assert_eq!(err.code, EXIT_DENIED);
        assert!(
            err.message.contains("allowed: web, jobs"),
            "{}",
            err.message
        );
        assert!(check_namespace(a.cluster("open").unwrap(), "kube-system").is_ok());
        assert_eq!(a.cluster("prod").unwrap_err().code, EXIT_DENIED);
    }

    #[test]
    fn a_namespace_without_cluster_goes_to_the_first_cluster_allowing_it() {
        let a = allowlist();
        assert_eq!(a.cluster_for_namespace("web").unwrap().name, "demo");
        assert_eq!(a.cluster_for_namespace("kube-system").unwrap().name, "open");
        let only_demo = Allowlist {
            clusters: vec![a.clusters[0].clone()],
            exec_command: None,
        };
        let err = only_demo.cluster_for_namespace("kube-system").unwrap_err();
        assert_eq!(err.code, EXIT_DENIED);
        assert!(
            err.message.contains("demo/web, demo/jobs"),
            "{}",
            err.message
        );
    }
}
