//! What a Kubernetes API request through the proxy may do before the cluster's RBAC sees it
//! (issue 18): the cluster's namespace allowlist and each namespace's pod selectors, which
//! RBAC cannot express, bind every call, not only the picker's.
//!
//! The rules, in order:
//! - a path the proxy would read differently from the API server is refused
//!   ([`check_path`]: percent-encoding, empty, `.` or `..` segments), so that what is judged
//!   is what the server serves; a path that is no API object (`/version`, discovery,
//!   `/openapi/…`, health) passes for reading only ([`non_resource`]);
//! - `Impersonate-*` headers are refused (the proxy acts as the session's user only);
//! - a request in a namespace outside the allowlist is refused, and so is one on the
//!   namespace object itself; a cluster with no allowlist leaves namespaces to RBAC;
//! - a request that spans namespaces (`kubectl get pods -A`) for a namespaced resource is
//!   refused on a cluster with an allowlist: it would show what is outside it;
//! - in a namespace with selectors, a request on one pod (get, exec, attach, port-forward,
//!   log, ephemeral containers, delete, patch, update, its status) is allowed only for a pod
//!   whose labels match one of them, which the proxy looks up first ([`Decision::PodLabels`]);
//!   a list or watch of pods is answered with the matching pods alone
//!   ([`Decision::FilterPods`]); a delete of the whole collection is refused; a pod name
//!   that is not a pod name (`redis-0:6379`, which the server's pod proxy reads as a pod
//!   and a port) is refused; a query that names `watch` twice is refused;
//! - the ways around the selectors and the allowlist that go through another object are
//!   refused: a service's proxy in a namespace with selectors, a node's proxy (the kubelet
//!   reaches every pod) on a cluster with an allowlist, and deleting a namespace that has
//!   selectors;
//! - everything else (other resources, cluster-scoped requests) passes: RBAC decides. A
//!   user whom RBAC lets change a workload's pod template can still make pods that match:
//!   the selectors narrow what RBAC grants, they do not replace it.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::config::NamespaceSettings;
use crate::protocol::ClusterView;

/// A request as the API server's RequestInfo sees it, from its method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiRequest {
    pub(crate) verb: Verb,
    /// `None` for the core group (`/api/v1`).
    pub(crate) group: Option<String>,
    pub(crate) version: String,
    pub(crate) namespace: Option<String>,
    pub(crate) resource: String,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
    /// The query names `watch` more than once: the server reads the first, a proxy might
    /// read another, so the request is refused.
    pub(crate) conflicting_watch: bool,
}

/// The Kubernetes verb of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    /// Whether it changes anything (for `[audit] api = "writes"`).
    pub(crate) fn writes(self) -> bool {
        !matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

/// What the proxy does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Forward it.
    Allow,
    /// Forward it and keep only the pods that match the namespace's selectors in the answer
    /// (a list, a watch's events, a Table's rows).
    FilterPods,
    /// Forward it only if pod `name` in `namespace` matches the namespace's selectors: the
    /// proxy gets its labels first ([`pod_allowed`]).
    PodLabels { namespace: String, name: String },
    /// Refuse it with 403 and this message.
    Deny(String),
}

/// Subresources whose requests are not about one API object but a non-resource path
/// (`/version`, `/openapi/v2`, `/healthz`…): [`parse`] gives `None` for those.
pub(crate) fn parse(method: &http::Method, path: &str, query: Option<&str>) -> Option<ApiRequest> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => (None, version.to_string(), rest),
        ["apis", group, version, rest @ ..] => (Some(group.to_string()), version.to_string(), rest),
        _ => return None,
    };
    // The old watch paths: `/api/v1/watch/namespaces/NS/pods` is a watch of those pods.
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        // The namespace object itself: its own namespace, as RequestInfo has it.
        ["namespaces", ns] => (Some(ns.to_string()), &["namespaces", ns][..]),
        rest => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [] => return None,
        [resource] => (resource.to_string(), None, None),
        [resource, name] => (resource.to_string(), Some(name.to_string()), None),
        [resource, name, sub, ..] => (
            resource.to_string(),
            Some(name.to_string()),
            Some(sub.to_string()),
        ),
    };
    let watches = watch_values(query);
    let conflicting_watch = watches.len() > 1;
    let watch = legacy_watch || watches.iter().any(|v| is_true(v));
    let verb = match (method.as_str(), name.is_some()) {
        ("GET" | "HEAD", _) if watch => Verb::Watch,
        ("GET" | "HEAD", true) => Verb::Get,
        ("GET" | "HEAD", false) => Verb::List,
        ("POST", _) => Verb::Create,
        ("PUT", _) => Verb::Update,
        ("PATCH", _) => Verb::Patch,
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        // OPTIONS, CONNECT, extension methods: not an API verb this proxy judges, so not an
        // API request ([`non_resource`] then refuses it).
        _ => return None,
    };
    Some(ApiRequest {
        verb,
        group,
        version,
        namespace,
        resource,
        name,
        subresource,
        conflicting_watch,
    })
}

/// Every value of `watch` in `query`, decoded as the server decodes it.
fn watch_values(query: Option<&str>) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "watch")
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// A query flag as the API server reads it: anything but `0`, `f` and `false` is true.
fn is_true(value: &str) -> bool {
    !matches!(value.to_ascii_lowercase().as_str(), "0" | "f" | "false")
}

/// Whether the proxy reads `path` as the API server does: no percent-encoding (the server
/// decodes it; a proxy judging the raw path would see another request), no empty, `.` or
/// `..` segment, printable ASCII only. kubectl and client-go send such paths.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    let odd = |segment: &str| segment.is_empty() || segment == "." || segment == "..";
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'%' && b != b'\\');
    if !path.starts_with('/') || !plain || (path != "/" && path[1..].split('/').any(odd)) {
        return Err(format!(
            "the path {:?} is not one this bastion's proxy reads as the API server would              (percent-encoding, empty or dot segments)",
            path.chars().take(200).collect::<String>()
        ));
    }
    Ok(())
}

/// A request for no API object (`parse` gave `None`): discovery, `/version`, the OpenAPI
/// documents and health checks may be read; nothing else passes.
pub(crate) fn non_resource(method: &http::Method, path: &str) -> Decision {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let readable = matches!(
        parts.as_slice(),
        [""] | ["version"]
            | ["api"]
            | ["api", _]
            | ["apis"]
            | ["apis", _]
            | ["apis", _, _]
            | ["openapi", ..]
            | ["healthz" | "livez" | "readyz", ..]
    );
    if readable && matches!(*method, http::Method::GET | http::Method::HEAD) {
        Decision::Allow
    } else {
        Decision::Deny(format!(
            "{method} {} is not allowed through this bastion's proxy",
            path.chars().take(200).collect::<String>()
        ))
    }
}

/// Whether `name` can be a pod's name (a DNS-1123 subdomain): what the server's pod proxy
/// would split (`redis-0:6379`, `https:redis-0:443`) cannot.
fn pod_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Whether a resource is namespaced, as the cluster's discovery says; `None` when it is not
/// known (the proxy then refuses a request that spans namespaces on a cluster with an
/// allowlist, rather than guess).
pub(crate) type Namespaced<'a> = &'a dyn Fn(Option<&str>, &str) -> Option<bool>;

/// The decision for `request` on `cluster` (its allowlist and selectors).
pub(crate) fn decide(
    request: &ApiRequest,
    cluster: &ClusterView,
    namespaced: Namespaced<'_>,
) -> Decision {
    if request.conflicting_watch {
        return Decision::Deny("a query naming `watch` more than once is ambiguous".into());
    }
    let Some(namespace) = &request.namespace else {
        return spanning(request, cluster, namespaced);
    };
    if !cluster.allows_namespace(namespace) {
        return Decision::Deny(format!(
            "namespace {namespace:?} is not allowed on cluster {} from this bastion (allowed: {})",
            cluster.name,
            allowlist(cluster)
        ));
    }
    let selectors = selectors_of(cluster, namespace);
    if selectors.is_empty() {
        return Decision::Allow;
    }
    if let Some(why) = around_the_selectors(request, namespace) {
        return Decision::Deny(format!(
            "{why}: namespace {namespace} allows only pods matching {}",
            describe_selectors(selectors)
        ));
    }
    if request.group.is_some() || request.resource != "pods" {
        return Decision::Allow;
    }
    match (&request.name, request.verb) {
        (Some(name), _) if !pod_name(name) => Decision::Deny(format!(
            "{:?} is not a pod name",
            name.chars().take(200).collect::<String>()
        )),
        (Some(name), _) => Decision::PodLabels {
            namespace: namespace.clone(),
            name: name.clone(),
        },
        (None, Verb::List | Verb::Watch) => Decision::FilterPods,
        (None, Verb::DeleteCollection) => Decision::Deny(format!(
            "deleting every pod of {namespace} is not allowed from this bastion: only pods \
             matching {} are yours to act on",
            describe_selectors(selectors)
        )),
        // Creating a pod: RBAC decides, and the pod is usable only if it matches.
        (None, _) => Decision::Allow,
    }
}

/// Requests in a namespace with selectors that reach its pods through another object.
fn around_the_selectors(request: &ApiRequest, namespace: &str) -> Option<String> {
    let core = request.group.is_none();
    let sub = request.subresource.as_deref();
    match (core, request.resource.as_str(), sub, request.verb) {
        (true, "services", Some("proxy"), _) => {
            Some("a service's proxy reaches pods whatever their labels".into())
        }
        (true, "namespaces", _, Verb::Delete) => Some(format!(
            "deleting namespace {namespace} deletes every pod in it"
        )),
        _ => None,
    }
}

/// A request with no namespace: cluster-scoped resources pass (RBAC decides); a namespaced
/// resource across every namespace is refused where there is an allowlist, and so is a
/// node's proxy (through the kubelet it reaches every pod on the node).
fn spanning(request: &ApiRequest, cluster: &ClusterView, namespaced: Namespaced<'_>) -> Decision {
    if cluster.namespaces.is_empty() {
        return Decision::Allow;
    }
    if request.group.is_none()
        && request.resource == "nodes"
        && request.subresource.as_deref() == Some("proxy")
    {
        return Decision::Deny(format!(
            "a node's proxy reaches every pod on the node; cluster {} allows only {}",
            cluster.name,
            allowlist(cluster)
        ));
    }
    match namespaced(request.group.as_deref(), &request.resource) {
        Some(false) => Decision::Allow,
        known => Decision::Deny(format!(
            "{} {} across all namespaces is not allowed on cluster {} from this bastion{}; \
             name a namespace (allowed: {})",
            request.verb.as_str(),
            request.resource,
            cluster.name,
            if known.is_none() {
                " (not known to be cluster-scoped)"
            } else {
                ""
            },
            allowlist(cluster)
        )),
    }
}

/// Whether a pod with `labels` in `namespace` may be acted on: the namespace has no
/// selectors, or one of them matches.
pub(crate) fn pod_allowed(
    cluster: &ClusterView,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let selectors = selectors_of(cluster, namespace);
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

/// The refusal for pod `name` that matches none of its namespace's selectors.
pub(crate) fn pod_refusal(cluster: &ClusterView, namespace: &str, name: &str) -> String {
    format!(
        "pod {namespace}/{name} is not allowed on cluster {} from this bastion: it matches none \
         of {}",
        cluster.name,
        describe_selectors(selectors_of(cluster, namespace))
    )
}

fn selectors_of<'a>(cluster: &'a ClusterView, namespace: &str) -> &'a [crate::config::Selector] {
    cluster
        .namespaces
        .iter()
        .find(|n| n.name == namespace)
        .map_or(&[], |n: &NamespaceSettings| n.selectors.as_slice())
}

fn allowlist(cluster: &ClusterView) -> String {
    cluster
        .namespaces
        .iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_selectors(selectors: &[crate::config::Selector]) -> String {
    selectors
        .iter()
        .map(|s| format!("{:?}", s.to_string()))
        .collect::<Vec<_>>()
        .join(" or ")
}
