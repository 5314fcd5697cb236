//! The session's kubeconfig (SPEC §6): clusters and users in a sealed memfd, contexts and
//! the current context in a small writable overlay listed first in `KUBECONFIG`, so that
//! `kubectl config use-context`, kubectx and kubens work (they write the overlay only). Nothing in it is secret: the user
//! entry is an exec plugin that asks the broker for a token.

use std::path::Path;

use serde_json::{Value, json};

/// A cluster the user may reach, with what the broker says about it.
#[derive(Debug, Clone)]
pub struct ClusterEntry {
    pub name: String,
    pub endpoint: String,
    pub ca_data: String,
    pub default_namespace: Option<String>,
    pub namespaces: Vec<String>,
}

/// `CLUSTER` (its default namespace) and `CLUSTER/NS` for each allowlisted namespace.
fn contexts(clusters: &[ClusterEntry]) -> Vec<Value> {
    let mut out = Vec::new();
    for c in clusters {
        let mut context = json!({"cluster": c.name, "user": user_name(&c.name)});
        if let Some(ns) = &c.default_namespace {
            context["namespace"] = json!(ns);
        }
        out.push(json!({"name": c.name, "context": context}));
        for ns in &c.namespaces {
            out.push(json!({
                "name": format!("{}/{ns}", c.name),
                "context": {"cluster": c.name, "user": user_name(&c.name), "namespace": ns},
            }));
        }
    }
    out
}

fn user_name(cluster: &str) -> String {
    format!("rolesh-{cluster}")
}

/// The sealed part: clusters and exec-plugin users.
pub fn sealed(clusters: &[ClusterEntry], rolesh: &Path) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters.iter().map(|c| json!({
            "name": c.name,
            "cluster": {"server": c.endpoint, "certificate-authority-data": c.ca_data},
        })).collect::<Vec<_>>(),
        "users": clusters.iter().map(|c| json!({
            "name": user_name(&c.name),
            "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": rolesh.display().to_string(),
                "args": ["token", "--cluster", c.name],
                "interactiveMode": "Never",
                "provideClusterInfo": false,
            }},
        })).collect::<Vec<_>>(),
    })
}

/// The writable part: contexts and the current one (the first cluster's default).
pub fn overlay(clusters: &[ClusterEntry]) -> Value {
    let mut v = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "contexts": contexts(clusters),
    });
    if let Some(first) = clusters.first() {
        v["current-context"] = json!(first.name);
    }
    v
}

/// Both parts as one kubeconfig (`rolesh kubeconfig`).
pub fn merged(clusters: &[ClusterEntry], rolesh: &Path) -> Value {
    let mut v = sealed(clusters, rolesh);
    let o = overlay(clusters);
    v["contexts"] = o["contexts"].clone();
    if let Some(current) = o.get("current-context") {
        v["current-context"] = current.clone();
    }
    v
}

pub fn to_yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prod() -> ClusterEntry {
        ClusterEntry {
            name: "prod".into(),
            endpoint: "https://k8s.example".into(),
            ca_data: "Q0E=".into(),
            default_namespace: Some("web".into()),
            namespaces: vec!["web".into(), "jobs".into()],
        }
    }

    #[test]
    fn contexts_for_the_cluster_and_each_namespace() {
        let v = merged(&[prod()], Path::new("/usr/bin/rolesh"));
        let names: Vec<&str> = v["contexts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["prod", "prod/web", "prod/jobs"]);
        assert_eq!(v["current-context"], "prod");
        assert_eq!(v["contexts"][0]["context"]["namespace"], "web");
        let exec = &v["users"][0]["user"]["exec"];
        assert_eq!(exec["command"], "/usr/bin/rolesh");
        assert_eq!(exec["args"], json!(["token", "--cluster", "prod"]));
        assert_eq!(exec["interactiveMode"], "Never");
        assert!(!to_yaml(&v).contains("token:"), "no secret in a kubeconfig");
    }
}
