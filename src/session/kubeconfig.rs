//! The session's kubeconfig (SPEC §6): clusters and users in a sealed memfd, contexts and
//! the current context in a small writable overlay listed first in `KUBECONFIG`, so that
//! `kubectl config use-context`, kubectx and kubens work (they write the overlay only).
//! Nothing in it is secret: the user entry is an exec plugin that asks the broker for a
//! token. Typed with kube's own kubeconfig structs.

use std::path::Path;

use kube::config::{
    AuthInfo, Cluster, Context, ExecConfig, ExecInteractiveMode, Kubeconfig, NamedAuthInfo,
    NamedCluster, NamedContext, Preferences,
};

use crate::protocol::{ClusterEndpoint, ClusterView};

/// A cluster of the session: what the user may see of it, and where it is.
#[derive(Debug, Clone)]
pub(crate) struct SessionCluster {
    pub(crate) view: ClusterView,
    pub(crate) endpoint: ClusterEndpoint,
}

impl SessionCluster {
    pub(crate) fn name(&self) -> &str {
        &self.view.name
    }

    /// `CLUSTER` (its default namespace) and `CLUSTER/NS` for each allowlisted namespace.
    pub(crate) fn context_names(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(self.view.name.clone()).chain(
            self.view
                .namespaces
                .iter()
                .map(|n| format!("{}/{}", self.view.name, n.name)),
        )
    }
}

fn user_name(cluster: &str) -> String {
    format!("rolesh-{cluster}")
}

fn context(cluster: &str, namespace: Option<&str>) -> Context {
    Context {
        cluster: cluster.to_string(),
        user: Some(user_name(cluster)),
        namespace: namespace.map(str::to_string),
        ..Context::default()
    }
}

fn contexts(clusters: &[SessionCluster]) -> Vec<NamedContext> {
    let mut out = Vec::new();
    for c in clusters {
        let name = c.name();
        out.push(NamedContext {
            name: name.to_string(),
            context: Some(context(name, c.view.default_namespace.as_deref())),
            ..NamedContext::default()
        });
        for ns in &c.view.namespaces {
            out.push(NamedContext {
                name: format!("{name}/{}", ns.name),
                context: Some(context(name, Some(&ns.name))),
                ..NamedContext::default()
            });
        }
    }
    out
}

/// An empty kubeconfig (`apiVersion: v1`, `kind: Config`).
fn kubeconfig() -> Kubeconfig {
    Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        ..Kubeconfig::default()
    }
}

/// The sealed part: clusters and exec-plugin users.
pub(crate) fn sealed(clusters: &[SessionCluster], rolesh: &Path) -> Kubeconfig {
    let cluster = |c: &SessionCluster| NamedCluster {
        name: c.name().to_string(),
        cluster: Some(Cluster {
            server: Some(c.endpoint.endpoint.clone()),
            certificate_authority_data: Some(c.endpoint.ca_data.clone()),
            ..Cluster::default()
        }),
        ..NamedCluster::default()
    };
    let user = |c: &SessionCluster| NamedAuthInfo {
        name: user_name(c.name()),
        auth_info: Some(AuthInfo {
            exec: Some(ExecConfig {
                api_version: Some(crate::token::DEFAULT_API_VERSION.into()),
                command: Some(rolesh.display().to_string()),
                args: Some(vec!["token".into(), "--cluster".into(), c.name().into()]),
                interactive_mode: Some(ExecInteractiveMode::Never),
                provide_cluster_info: false,
                ..ExecConfig::default()
            }),
            ..AuthInfo::default()
        }),
        ..NamedAuthInfo::default()
    };
    Kubeconfig {
        clusters: clusters.iter().map(cluster).collect(),
        auth_infos: clusters.iter().map(user).collect(),
        ..kubeconfig()
    }
}

/// The writable part: contexts and the current one (the first cluster's default).
pub(crate) fn overlay(clusters: &[SessionCluster]) -> Kubeconfig {
    Kubeconfig {
        preferences: Some(Preferences::default()),
        contexts: contexts(clusters),
        current_context: clusters.first().map(|c| c.name().to_string()),
        ..kubeconfig()
    }
}

/// Both parts as one kubeconfig (`rolesh kubeconfig`).
pub(crate) fn merged(clusters: &[SessionCluster], rolesh: &Path) -> Kubeconfig {
    let o = overlay(clusters);
    Kubeconfig {
        contexts: o.contexts,
        current_context: o.current_context,
        ..sealed(clusters, rolesh)
    }
}

pub(crate) fn to_yaml(k: &Kubeconfig) -> String {
    serde_yaml_ng::to_string(k).unwrap_or_default()
}

/// The current context of the overlay at `path`, if it names one.
pub(crate) fn current_context(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_yaml_ng::from_str::<Kubeconfig>(&text)
        .ok()?
        .current_context
}

/// Sets the overlay's current context, keeping everything else in it.
pub(crate) fn set_current_context(path: &Path, context: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut k: Kubeconfig = serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?;
    k.current_context = Some(context.to_string());
    std::fs::write(path, to_yaml(&k)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NamespaceSettings;

    fn prod() -> SessionCluster {
        let ns = |name: &str| NamespaceSettings {
            name: name.into(),
            selectors: vec![],
        };
        SessionCluster {
            view: ClusterView {
                name: "prod".into(),
                region: "us-east-1".into(),
                default_namespace: Some("web".into()),
                namespaces: vec![ns("web"), ns("jobs")],
            },
            endpoint: ClusterEndpoint {
                name: "prod".into(),
                endpoint: "https://k8s.example".into(),
                ca_data: "Q0E=".into(),
            },
        }
    }

    #[test]
    fn contexts_for_the_cluster_and_each_namespace() {
        let k = merged(&[prod()], Path::new("/usr/bin/rolesh"));
        let names: Vec<&str> = k.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["prod", "prod/web", "prod/jobs"]);
        assert_eq!(k.current_context.as_deref(), Some("prod"));
        let yaml = to_yaml(&k);
        let v: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(v["contexts"][0]["context"]["namespace"], "web");
        let exec = &v["users"][0]["user"]["exec"];
        assert_eq!(exec["command"], "/usr/bin/rolesh");
        assert_eq!(
            exec["args"],
            serde_json::json!(["token", "--cluster", "prod"])
        );
        assert_eq!(exec["interactiveMode"], "Never");
        assert_eq!(exec["apiVersion"], crate::token::DEFAULT_API_VERSION);
        assert_eq!(v["clusters"][0]["cluster"]["server"], "https://k8s.example");
        assert!(!yaml.contains("token:"), "no secret in a kubeconfig");
    }

    #[test]
    fn the_overlay_switches_context_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, to_yaml(&overlay(&[prod()]))).unwrap();
        set_current_context(&path, "prod/jobs").unwrap();
        assert_eq!(current_context(&path).as_deref(), Some("prod/jobs"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("prod/web"), "{text}");
    }
}
