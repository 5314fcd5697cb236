//! One cluster as the user sees it: a kube client built from what the broker hands out
//! (endpoint, CA and a bearer token signed with the user's own role; no kubeconfig file),
//! and the pods and namespaces the picker offers.
//!
//! Every call here uses the user's own token, so the cluster's RBAC decides what is
//! listed and what may be exec'ed into; the allowlist only narrows it further.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::client;
use crate::config::ClusterRoute;
use crate::config::Selector;
use crate::error::{Failure, error_chain};
use crate::protocol::{ClusterEndpoint, ClusterView, Request, Token};

/// Where and as whom to connect, from the broker. Holds the bearer token in a
/// `SecretString`, which never prints it.
pub(super) struct Connection {
    pub cluster: String,
    config: kube::Config,
}

impl Connection {
    /// Asks the broker for the cluster's endpoint and CA and for a token; a cluster behind
    /// the API proxy needs none (the proxy knows who connects, and holds the token).
    pub(super) fn from_broker(view: &ClusterView) -> Result<Connection, Failure> {
        let socket = client::socket_path(false);
        let cluster = view.name.as_str();
        let name = cluster.to_string();
        let info: ClusterEndpoint = client::call(
            &socket,
            &Request::Cluster {
                cluster: name.clone(),
            },
        )?;
        let token = match view.access {
            ClusterRoute::Direct => {
                let token: Token = client::call(&socket, &Request::Token { cluster: name })?;
                Some(secrecy::SecretString::from(token.token))
            }
            ClusterRoute::Proxy => None,
        };
        let endpoint = &info.endpoint;
        let url: http::Uri = endpoint.parse().map_err(|_| {
            Failure::runtime(format!(
                "cluster {cluster} has an invalid endpoint {endpoint:?}"
            ))
        })?;
        let mut config = kube::Config::new(url);
        config.root_cert = Some(ca_certificates(cluster, &info.ca_data)?);
        config.auth_info.token = token;
        Ok(Connection {
            cluster: cluster.to_string(),
            config,
        })
    }

    /// The client; must be called inside the tokio runtime.
    pub(super) fn client(&self) -> Result<kube::Client, Failure> {
        // Both rustls providers are linked (the AWS SDK and kube); pick aws-lc-rs once.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        kube::Client::try_from(self.config.clone()).map_err(|e| {
            Failure::runtime(format!(
                "cannot set up a client for cluster {}: {}",
                self.cluster,
                error_chain(&e)
            ))
        })
    }
}

/// `certificateAuthorityData`: base64 of one or more PEM certificates.
fn ca_certificates(cluster: &str, data: &str) -> Result<Vec<Vec<u8>>, Failure> {
    let bad = || Failure::runtime(format!("cluster {cluster} has unreadable CA data"));
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| bad())?;
    let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    if certs.is_empty() {
        return Err(bad());
    }
    Ok(certs)
}

/// A Kubernetes API failure as a rolesh failure: 403 is a refusal by the cluster's RBAC
/// (exit 77), anything else a runtime error. The message never holds the token.
pub(super) fn api_failure(what: &str, error: &kube::Error) -> Failure {
    match error {
        kube::Error::Api(status) if status.code == 403 => {
            Failure::denied(format!("the cluster refused to {what}: {}", status.message))
        }
        kube::Error::Api(status) if status.code == 404 => {
            Failure::runtime(format!("cannot {what}: {}", status.message))
        }
        other => Failure::runtime(format!("cannot {what}: {}", error_chain(other))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ContainerKind {
    Regular,
    Init,
    Ephemeral,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ContainerInfo {
    pub name: String,
    pub kind: ContainerKind,
}

/// The annotation that names the container `kubectl exec` and `kubectl logs` default to.
const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// What the picker shows of a pod, and what the allowlist check needs (its labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PodInfo {
    pub name: String,
    pub phase: String,
    pub ready: (usize, usize),
    pub age: String,
    pub node: String,
    pub labels: BTreeMap<String, String>,
    pub containers: Vec<ContainerInfo>,
    /// The container [`DEFAULT_CONTAINER_ANNOTATION`] names, if any.
    pub annotated_default: Option<String>,
}

/// The container to exec into when none is named and there is no terminal to ask on,
/// and kubectl's notice when it had to choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DefaultContainer {
    pub name: String,
    /// `Defaulted container "nginx" out of: nginx, log-shipper, migrate (init)`.
    pub notice: Option<String>,
}

impl PodInfo {
    pub(super) fn from_pod(pod: &Pod, now: jiff::Timestamp) -> PodInfo {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let mut containers = Vec::new();
        let mut push = |names: Vec<String>, kind| {
            containers.extend(names.into_iter().map(|name| ContainerInfo { name, kind }));
        };
        if let Some(spec) = spec {
            push(
                spec.containers.iter().map(|c| c.name.clone()).collect(),
                ContainerKind::Regular,
            );
            push(
                spec.init_containers
                    .iter()
                    .flatten()
                    .map(|c| c.name.clone())
                    .collect(),
                ContainerKind::Init,
            );
            push(
                spec.ephemeral_containers
                    .iter()
                    .flatten()
                    .map(|c| c.name.clone())
                    .collect(),
                ContainerKind::Ephemeral,
            );
        }
        let statuses = status.and_then(|s| s.container_statuses.as_ref());
        let ready = statuses.map_or(0, |s| s.iter().filter(|c| c.ready).count());
        let total = spec.map_or(0, |s| s.containers.len());
        let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
        PodInfo {
            name: pod.metadata.name.clone().unwrap_or_default(),
            phase: status
                .and_then(|s| s.reason.clone().or_else(|| s.phase.clone()))
                .unwrap_or_else(|| "Unknown".into()),
            ready: (ready, total),
            age: created.map_or_else(|| "?".into(), |t| short_age(now.duration_since(t))),
            node: spec
                .and_then(|s| s.node_name.clone())
                .unwrap_or_else(|| "-".into()),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            containers,
            annotated_default: pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CONTAINER_ANNOTATION))
                .filter(|name| !name.is_empty())
                .cloned(),
        }
    }

    /// The container `kubectl exec` takes when none is named (kubectl's
    /// `podcmd.FindOrDefaultContainerByName`): the one the annotation names, silently;
    /// else the first container, with kubectl's notice when the pod has any other (init
    /// and ephemeral ones included, listed as kubectl lists them). Unlike kubectl, an
    /// annotation naming an init container is passed over: in a running pod those have
    /// finished, and exec'ing into one fails.
    pub(super) fn default_container(&self) -> Option<DefaultContainer> {
        let annotated = self.annotated_default.as_ref().and_then(|name| {
            self.containers
                .iter()
                .find(|c| &c.name == name && c.kind != ContainerKind::Init)
        });
        if let Some(c) = annotated {
            return Some(DefaultContainer {
                name: c.name.clone(),
                notice: None,
            });
        }
        let first = self
            .containers
            .iter()
            .find(|c| c.kind == ContainerKind::Regular)?;
        let notice = (self.containers.len() > 1).then(|| {
            format!(
                "Defaulted container {:?} out of: {}",
                first.name,
                self.all_container_names()
            )
        });
        Some(DefaultContainer {
            name: first.name.clone(),
            notice,
        })
    }

    /// kubectl's `AllContainerNames`: containers, then ephemeral ones `(ephem)`, then init
    /// ones `(init)`.
    fn all_container_names(&self) -> String {
        let of = |kind: ContainerKind, mark: &'static str| {
            self.containers
                .iter()
                .filter(move |c| c.kind == kind)
                .map(move |c| format!("{}{mark}", c.name))
        };
        of(ContainerKind::Regular, "")
            .chain(of(ContainerKind::Ephemeral, " (ephem)"))
            .chain(of(ContainerKind::Init, " (init)"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(super) fn is_running(&self) -> bool {
        self.phase == "Running"
    }

    /// Whether the pod matches ANY of `selectors` (none: every pod matches).
    pub(super) fn matches_any(&self, selectors: &[Selector]) -> bool {
        selectors.is_empty() || selectors.iter().any(|s| s.matches(&self.labels))
    }
}

/// `45s`, `12m`, `3h`, `9d`, as kubectl's AGE column.
fn short_age(d: jiff::SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Pods in `namespace` matching ANY of `selectors`: one list call per selector (the API
/// server evaluates each, set-based ones included), the union deduplicated by name.
/// Running pods first, then by name.
pub(super) async fn list_pods(
    client: &kube::Client,
    namespace: &str,
    selectors: &[Selector],
) -> Result<Vec<PodInfo>, Failure> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let queries: Vec<ListParams> = if selectors.is_empty() {
        vec![ListParams::default()]
    } else {
        selectors
            .iter()
            .map(|s| ListParams::default().labels(&s.to_string()))
            .collect()
    };
    let now = jiff::Timestamp::now();
    let mut pods = BTreeMap::new();
    for query in &queries {
        let list = api
            .list(query)
            .await
            .map_err(|e| api_failure(&format!("list pods in {namespace}"), &e))?;
        for pod in &list.items {
            let info = PodInfo::from_pod(pod, now);
            pods.insert(info.name.clone(), info);
        }
    }
    let mut pods: Vec<PodInfo> = pods.into_values().collect();
    pods.sort_by(|a, b| {
        b.is_running()
            .cmp(&a.is_running())
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(pods)
}

/// One pod, read with the user's token (what the selector check needs: its labels).
pub(super) async fn get_pod(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<PodInfo, Failure> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = api
        .get(name)
        .await
        .map_err(|e| api_failure(&format!("read pod {namespace}/{name}"), &e))?;
    Ok(PodInfo::from_pod(&pod, jiff::Timestamp::now()))
}

/// For a cluster without an allowlist: the namespaces the user's RBAC lets them list;
/// if it does not, the cluster's default namespace alone (RBAC still decides on pods).
pub(super) async fn visible_namespaces(
    client: &kube::Client,
    default_namespace: Option<&str>,
) -> Result<Vec<String>, Failure> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list
            .items
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect()),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            Ok(default_namespace.into_iter().map(str::to_string).collect())
        }
        Err(e) => Err(api_failure("list namespaces", &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: &[(&str, &str)]) -> PodInfo {
        PodInfo {
            name: "p".into(),
            phase: "Running".into(),
            ready: (1, 1),
            age: "1m".into(),
            node: "n".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            containers: vec![],
            annotated_default: None,
        }
    }

    fn containers(pod: &mut PodInfo, kind: ContainerKind, names: &[&str]) {
        pod.containers.extend(names.iter().map(|n| ContainerInfo {
            name: n.to_string(),
            kind,
        }));
    }

    /// The pod of issue 22: two containers and an init container.
    fn frontend() -> PodInfo {
        let mut p = pod(&[]);
        containers(&mut p, ContainerKind::Regular, &["nginx", "log-shipper"]);
        containers(&mut p, ContainerKind::Init, &["migrate"]);
        p
    }

    #[test]
    fn without_an_annotation_the_first_container_is_the_default_with_kubectls_notice() {
        let chosen = frontend().default_container().unwrap();
        assert_eq!(chosen.name, "nginx");
        assert_eq!(
            chosen.notice.as_deref(),
            Some(r#"Defaulted container "nginx" out of: nginx, log-shipper, migrate (init)"#)
        );
        let mut p = frontend();
        containers(&mut p, ContainerKind::Ephemeral, &["debugger"]);
        assert_eq!(
            p.default_container().unwrap().notice.as_deref(),
            Some(
                r#"Defaulted container "nginx" out of: nginx, log-shipper, debugger (ephem), migrate (init)"#
            )
        );
    }

    #[test]
    fn a_single_container_is_the_default_without_a_notice() {
        let mut p = pod(&[]);
        containers(&mut p, ContainerKind::Regular, &["app"]);
        assert_eq!(
            p.default_container(),
            Some(DefaultContainer {
                name: "app".into(),
                notice: None
            })
        );
    }

    #[test]
    fn the_annotation_names_the_default_silently() {
        let mut p = frontend();
        p.annotated_default = Some("log-shipper".into());
        assert_eq!(
            p.default_container(),
            Some(DefaultContainer {
                name: "log-shipper".into(),
                notice: None
            })
        );
    }

    #[test]
    fn an_annotation_naming_an_init_or_missing_container_falls_back_to_the_first() {
        for named in ["migrate", "no-such-container"] {
            let mut p = frontend();
            p.annotated_default = Some(named.into());
            let chosen = p.default_container().unwrap();
            assert_eq!(chosen.name, "nginx", "{named}");
            assert!(chosen.notice.is_some(), "{named}");
        }
    }

    #[test]
    fn a_pod_is_allowed_when_it_matches_any_selector() {
        let selectors: Vec<Selector> = ["app=frontend", "tier in (web,edge)"]
            .iter()
            .map(|s| Selector::parse(s).unwrap())
            .collect();
        assert!(pod(&[("app", "frontend")]).matches_any(&selectors));
        assert!(pod(&[("app", "proxy"), ("tier", "edge")]).matches_any(&selectors));
        assert!(!pod(&[("app", "api"), ("tier", "backend")]).matches_any(&selectors));
        assert!(pod(&[]).matches_any(&[]));
    }

    #[test]
    fn ages_read_like_kubectl() {
        let s = jiff::SignedDuration::from_secs;
        assert_eq!(short_age(s(45)), "45s");
        assert_eq!(short_age(s(50 * 60)), "50m");
        assert_eq!(short_age(s(3 * 3600)), "3h");
        assert_eq!(short_age(s(12 * 86400)), "12d");
    }
}
