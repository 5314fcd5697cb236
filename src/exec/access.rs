//! What the broker's `whoami` says this user may reach with `rolesh exec`: clusters, their
//! namespace allowlists and each namespace's selectors. rolesh checks a target against
//! this before any Kubernetes API call; the cluster's RBAC still decides on every call.

use serde_json::Value;

use crate::client;
use crate::error::Failure;

/// One allowlisted namespace and its label selectors (a pod is offered when it matches
/// ANY of them; no selectors: every pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceAccess {
    pub name: String,
    pub selectors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAccess {
    pub name: String,
    pub default_namespace: Option<String>,
    /// Empty: no allowlist, the cluster's RBAC alone decides.
    pub namespaces: Vec<NamespaceAccess>,
}

impl ClusterAccess {
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n.name == namespace)
    }

    /// The selectors of `namespace`; empty means every pod.
    pub fn selectors(&self, namespace: &str) -> &[String] {
        self.namespaces
            .iter()
            .find(|n| n.name == namespace)
            .map_or(&[], |n| n.selectors.as_slice())
    }

    fn allowed_list(&self) -> String {
        self.namespaces
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Refuses a namespace outside the allowlist (exit 77), naming what is allowed.
    pub fn check_namespace(&self, namespace: &str) -> Result<(), Failure> {
        if self.allows_namespace(namespace) {
            return Ok(());
        }
        Err(Failure::denied(format!(
            "namespace {namespace} on cluster {} is not allowlisted for you; allowed: {}",
            self.name,
            self.allowed_list()
        )))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub clusters: Vec<ClusterAccess>,
    /// `[session] exec_command`, if set.
    pub exec_command: Option<Vec<String>>,
}

impl Access {
    /// Asks the broker (`ROLESH_BROKER_SOCKET` is honoured: `rolesh exec` is never login mode).
    pub fn from_broker() -> Result<Access, Failure> {
        let who = client::request(&client::socket_path(false), "whoami", &[])?;
        Ok(Access::from_whoami(&who))
    }

    pub fn from_whoami(who: &Value) -> Access {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let strings =
            |v: &Value| -> Vec<String> { v.as_array().into_iter().flatten().map(text).collect() };
        let clusters = who["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| ClusterAccess {
                name: text(&c["name"]),
                default_namespace: c["default_namespace"].as_str().map(str::to_string),
                namespaces: c["namespaces"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| NamespaceAccess {
                        name: text(&n["name"]),
                        selectors: strings(&n["selectors"]),
                    })
                    .collect(),
            })
            .collect();
        let exec_command = who["session"]["exec_command"]
            .as_array()
            .map(|_| strings(&who["session"]["exec_command"]))
            .filter(|argv| !argv.is_empty());
        Access {
            clusters,
            exec_command,
        }
    }

    pub fn cluster_names(&self) -> Vec<&str> {
        self.clusters.iter().map(|c| c.name.as_str()).collect()
    }

    /// The cluster `name`, or a refusal (exit 77) naming the user's clusters.
    pub fn cluster(&self, name: &str) -> Result<&ClusterAccess, Failure> {
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
    pub fn cluster_for_namespace(&self, namespace: &str) -> Result<&ClusterAccess, Failure> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EXIT_DENIED;
    use serde_json::json;

    fn access() -> Access {
        Access::from_whoami(&json!({
            "clusters": [
                {"name": "demo", "default_namespace": "web", "namespaces": [
                    {"name": "web", "selectors": ["app=frontend", "tier in (web,edge)"]},
                    {"name": "jobs", "selectors": []},
                ]},
                {"name": "open", "default_namespace": null, "namespaces": []},
            ],
            "session": {"exec_command": ["/bin/sh"]},
        }))
    }

    #[test]
    fn whoami_becomes_the_allowlist() {
        let a = access();
        assert_eq!(a.cluster_names(), ["demo", "open"]);
        let demo = a.cluster("demo").unwrap();
        assert_eq!(
            demo.selectors("web"),
            ["app=frontend", "tier in (web,edge)"]
        );
        assert!(demo.selectors("jobs").is_empty());
        assert_eq!(a.exec_command, Some(vec!["/bin/sh".to_string()]));
    }

    #[test]
    fn namespaces_outside_the_allowlist_are_denied_naming_what_is_allowed() {
        let a = access();
        let err = a
            .cluster("demo")
            .unwrap()
            .check_namespace("kube-system")
            .unwrap_err();
        assert_eq!(err.code, EXIT_DENIED);
        assert!(
            err.message.contains("allowed: web, jobs"),
            "{}",
            err.message
        );
        assert!(
            a.cluster("open")
                .unwrap()
                .check_namespace("kube-system")
                .is_ok()
        );
        assert_eq!(a.cluster("prod").unwrap_err().code, EXIT_DENIED);
    }

    #[test]
    fn a_namespace_without_cluster_goes_to_the_first_cluster_allowing_it() {
        let a = access();
        assert_eq!(a.cluster_for_namespace("web").unwrap().name, "demo");
        assert_eq!(a.cluster_for_namespace("kube-system").unwrap().name, "open");
        let only_demo = Access {
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
