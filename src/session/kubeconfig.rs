//! The session's kubeconfig (SPEC §6): clusters and users in a sealed memfd, contexts and
//! the current context in a small overlay listed first in `KUBECONFIG`. Nothing in it is
//! secret: the user entry is an exec plugin that asks the broker for a token. Typed with
//! kube's own kubeconfig structs.
//!
//! Both live in `/tmp/rolesh-SESSION_ID/` in the session's private `/tmp`, made by the
//! monitor before anything of the user runs: `config` (the overlay) and `clusters`, a
//! symlink to `/proc/self/fd/200`, the sealed memfd `session-init` puts on descriptor 200
//! (kubectl locks every file of `KUBECONFIG` as `FILE.lock` before it changes any, so the
//! memfd cannot be listed as `/dev/fd/N` itself). In shell and picker mode the directory
//! and the overlay are the user's, so that `kubectl config use-context`, kubectx and kubens
//! work (they write the overlay only). In restricted mode and for `ssh bastion CMD` they are
//! root's and read-only: an overlay the user could write is a place to put a user entry of
//! their own (an exec plugin runs any program), and kubectl reads the first file first.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use kube::config::{
    AuthInfo, Cluster, Context, ExecConfig, ExecInteractiveMode, Kubeconfig, NamedAuthInfo,
    NamedCluster, NamedContext, Preferences,
};

use crate::protocol::{ClusterEndpoint, ClusterView};
use crate::session_id::SessionId;

/// Where inherited session descriptors live: the sealed memfd is always this one. Far from
/// the low numbers: an interactive login bash (5.2) does not pass its inherited
/// descriptors 3 and 10 on to the programs it starts, but keeps 200.
pub(crate) const SEALED_FD: i32 = 200;

/// `/tmp/rolesh-SESSION_ID` (in the session's private `/tmp`).
pub(crate) fn dir(session: &SessionId) -> PathBuf {
    PathBuf::from("/tmp").join(format!("rolesh-{session}"))
}

/// `KUBECONFIG` for the session: the overlay, then the sealed part.
pub(crate) fn env_value(session: &SessionId) -> String {
    let dir = dir(session);
    format!(
        "{}:{}",
        dir.join("config").display(),
        dir.join("clusters").display()
    )
}

/// Makes the session's kubeconfig directory, its overlay (contexts of `views`, the first
/// cluster current) and the `clusters` link; `owner` (uid, gid): the user's, writable;
/// `None`: root's, read-only. Run by the monitor in the session's fresh private `/tmp`.
pub(crate) fn prepare(
    session: &SessionId,
    views: &[ClusterView],
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let dir = dir(session);
    let (dir_mode, file_mode) = if owner.is_some() {
        (0o700, 0o600)
    } else {
        (0o755, 0o644)
    };
    std::fs::DirBuilder::new().mode(dir_mode).create(&dir)?;
    std::os::unix::fs::symlink(format!("/proc/self/fd/{SEALED_FD}"), dir.join("clusters"))?;
    let config = dir.join("config");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(file_mode)
        .custom_flags(crate::system::no_follow_flag())
        .open(&config)?;
    file.write_all(to_yaml(&overlay(views)).as_bytes())?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&config, Some(uid), Some(gid))?;
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
    }
    Ok(())
}

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

fn contexts(views: &[ClusterView]) -> Vec<NamedContext> {
    let mut out = Vec::new();
    for c in views {
        let name = &c.name;
        out.push(NamedContext {
            name: name.to_string(),
            context: Some(context(name, c.default_namespace.as_deref())),
            ..NamedContext::default()
        });
        for ns in &c.namespaces {
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

/// The exec plugin kubectl runs for a token, and the arguments before `--cluster NAME`:
/// `rolesh-token` next to `rolesh` (the same command line as `rolesh token`, at a fraction
/// of the start-up cost; kubectl runs it on every call), else `rolesh token`.
fn plugin_command(rolesh: &Path) -> (String, Vec<String>) {
    let plugin = rolesh.with_file_name("rolesh-token");
    if plugin.is_file() {
        (plugin.display().to_string(), vec![])
    } else {
        (rolesh.display().to_string(), vec!["token".into()])
    }
}

/// What a proxied cluster's user holds instead of a credential.
pub(crate) const PROXY_PLACEHOLDER: &str = "rolesh-proxy-no-credential";

/// The sealed part: clusters and exec-plugin users. A cluster behind the API proxy has a
/// user with no credential: the proxy knows the caller from the kernel, and the token stays
/// in the broker. Its user has the placeholder token [`PROXY_PLACEHOLDER`], since kubectl
/// asks for a user name and password when a user has nothing at all; the proxy drops it.
pub(crate) fn sealed(clusters: &[SessionCluster], rolesh: &Path) -> Kubeconfig {
    let (command, first_args) = plugin_command(rolesh);
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
            token: (c.view.access == crate::config::ClusterRoute::Proxy)
                .then(|| secrecy::SecretString::from(PROXY_PLACEHOLDER)),
            exec: (c.view.access == crate::config::ClusterRoute::Direct).then(|| ExecConfig {
                api_version: Some(crate::token::DEFAULT_API_VERSION.into()),
                command: Some(command.clone()),
                args: Some(
                    first_args
                        .iter()
                        .cloned()
                        .chain(["--cluster".into(), c.name().into()])
                        .collect(),
                ),
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

/// The overlay: contexts and the current one (the first cluster's default).
pub(crate) fn overlay(views: &[ClusterView]) -> Kubeconfig {
    Kubeconfig {
        preferences: Some(Preferences::default()),
        contexts: contexts(views),
        current_context: views.first().map(|c| c.name.clone()),
        ..kubeconfig()
    }
}

/// Both parts as one kubeconfig (`rolesh kubeconfig`).
pub(crate) fn merged(clusters: &[SessionCluster], rolesh: &Path) -> Kubeconfig {
    let views: Vec<ClusterView> = clusters.iter().map(|c| c.view.clone()).collect();
    let o = overlay(&views);
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
                access: crate::config::ClusterRoute::Direct,
                discovered: None,
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
        // No rolesh-token beside this one: the plugin is `rolesh token`.
        let k = merged(&[prod()], Path::new("/nonexistent/bin/rolesh"));
        let names: Vec<&str> = k.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["prod", "prod/web", "prod/jobs"]);
        assert_eq!(k.current_context.as_deref(), Some("prod"));
        let yaml = to_yaml(&k);
        let v: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(v["contexts"][0]["context"]["namespace"], "web");
        let exec = &v["users"][0]["user"]["exec"];
        assert_eq!(exec["command"], "/nonexistent/bin/rolesh");
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
    fn the_plugin_is_rolesh_token_next_to_rolesh_when_installed() {
        let dir = tempfile::tempdir().unwrap();
        let rolesh = dir.path().join("rolesh");
        std::fs::write(&rolesh, "").unwrap();
        let exec = |k: &Kubeconfig| {
            let yaml = to_yaml(k);
            let v: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
            v["users"][0]["user"]["exec"].clone()
        };
        // Only rolesh: `rolesh token --cluster prod`.
        let e = exec(&sealed(&[prod()], &rolesh));
        assert_eq!(e["command"], rolesh.display().to_string());
        assert_eq!(e["args"], serde_json::json!(["token", "--cluster", "prod"]));
        // rolesh-token beside it: `rolesh-token --cluster prod`.
        let plugin = dir.path().join("rolesh-token");
        std::fs::write(&plugin, "").unwrap();
        let e = exec(&sealed(&[prod()], &rolesh));
        assert_eq!(e["command"], plugin.display().to_string());
        assert_eq!(e["args"], serde_json::json!(["--cluster", "prod"]));
    }

    #[test]
    fn the_overlay_names_the_first_cluster_current() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, to_yaml(&overlay(&[prod().view]))).unwrap();
        assert_eq!(current_context(&path).as_deref(), Some("prod"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("prod/web") && !text.contains("users:\n-"),
            "{text}"
        );
    }
}
