//! method × path × namespace × labels → allow or deny, one row a case.

use std::collections::BTreeMap;

use super::*;
use crate::config::{NamespaceSettings, Selector};

/// `demo`: `web` with selectors `app=frontend` or `tier in (web,edge)`, `jobs` without.
fn demo() -> ClusterView {
    let ns = |name: &str, selectors: &[&str]| NamespaceSettings {
        name: name.into(),
        selectors: selectors
            .iter()
            .map(|s| Selector::parse(s).unwrap())
            .collect(),
    };
    ClusterView {
        name: "demo".into(),
        region: "us-east-1".into(),
        default_namespace: None,
        namespaces: vec![
            ns("web", &["app=frontend", "tier in (web,edge)"]),
            ns("jobs", &[]),
        ],
        access: crate::config::ClusterRoute::Proxy,
        discovered: None,
    }
}

/// The open cluster: no allowlist.
fn open() -> ClusterView {
    ClusterView {
        namespaces: Vec::new(),
        name: "open".into(),
        ..demo()
    }
}

/// Discovery as the proxy learns it: pods, secrets, deployments namespaced; nodes and
/// clusterroles not; the rest unknown.
fn namespaced(group: Option<&str>, resource: &str) -> Option<bool> {
    match (group, resource) {
        (None, "pods" | "secrets" | "configmaps") => Some(true),
        (Some("apps"), "deployments") => Some(true),
        (None, "nodes" | "namespaces") => Some(false),
        (Some("rbac.authorization.k8s.io"), "clusterroles") => Some(false),
        _ => None,
    }
}

enum Want {
    Allow,
    Filter,
    Labels(&'static str),
    Deny(&'static str),
}

fn decision_for(cluster: &ClusterView, method: &str, path_and_query: &str) -> Decision {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let method = http::Method::from_bytes(method.as_bytes()).unwrap();
    let request = parse(&method, path, query).expect(path_and_query);
    decide(&request, cluster, &namespaced)
}

#[test]
fn requests_are_decided_by_namespace_resource_and_pod() {
    use Want::*;
    let rows: [(&str, &str, Want); 27] = [
        // Outside the allowlist: every verb, every resource, the namespace object too.
        (
            "GET",
            "/api/v1/namespaces/kube-system/pods",
            Deny("namespace \"kube-system\" is not allowed"),
        ),
        (
            "GET",
            "/api/v1/namespaces/kube-system/secrets/x",
            Deny("allowed: web, jobs"),
        ),
        (
            "POST",
            "/api/v1/namespaces/kube-system/pods/etcd-0/exec?command=sh",
            Deny("kube-system"),
        ),
        (
            "GET",
            "/apis/apps/v1/namespaces/prod/deployments",
            Deny("\"prod\""),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/kube-system",
            Deny("kube-system"),
        ),
        // Inside, without selectors: RBAC decides.
        ("GET", "/api/v1/namespaces/jobs/pods", Allow),
        (
            "POST",
            "/api/v1/namespaces/jobs/pods/backfill-2h7x9/exec?command=sh",
            Allow,
        ),
        ("DELETE", "/api/v1/namespaces/jobs/pods", Allow),
        // Inside, with selectors: one pod needs its labels; lists are filtered.
        (
            "GET",
            "/api/v1/namespaces/web/pods/redis-0",
            Labels("redis-0"),
        ),
        (
            "POST",
            "/api/v1/namespaces/web/pods/redis-0/exec?command=sh&stdin=true",
            Labels("redis-0"),
        ),
        (
            "GET",
            "/api/v1/namespaces/web/pods/redis-0/exec?command=sh",
            Labels("redis-0"),
        ),
        (
            "POST",
            "/api/v1/namespaces/web/pods/redis-0/attach",
            Labels("redis-0"),
        ),
        (
            "POST",
            "/api/v1/namespaces/web/pods/redis-0/portforward",
            Labels("redis-0"),
        ),
        (
            "GET",
            "/api/v1/namespaces/web/pods/redis-0/log?follow=true",
            Labels("redis-0"),
        ),
        (
            "PATCH",
            "/api/v1/namespaces/web/pods/redis-0/ephemeralcontainers",
            Labels("redis-0"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/web/pods/redis-0",
            Labels("redis-0"),
        ),
        (
            "PATCH",
            "/api/v1/namespaces/web/pods/redis-0",
            Labels("redis-0"),
        ),
        (
            "PUT",
            "/api/v1/namespaces/web/pods/redis-0/status",
            Labels("redis-0"),
        ),
        ("GET", "/api/v1/namespaces/web/pods", Filter),
        (
            "GET",
            "/api/v1/namespaces/web/pods?watch=true&labelSelector=app",
            Filter,
        ),
        (
            "DELETE",
            "/api/v1/namespaces/web/pods",
            Deny("deleting every pod of web"),
        ),
        ("POST", "/api/v1/namespaces/web/pods", Allow),
        // Other resources of a namespace with selectors: RBAC decides.
        ("GET", "/api/v1/namespaces/web/secrets", Allow),
        (
            "GET",
            "/apis/apps/v1/namespaces/web/deployments/frontend",
            Allow,
        ),
        // Across namespaces: cluster-scoped passes, namespaced or unknown is refused.
        ("GET", "/api/v1/nodes", Allow),
        (
            "GET",
            "/api/v1/pods",
            Deny("list pods across all namespaces"),
        ),
        (
            "GET",
            "/apis/example.com/v1/widgets",
            Deny("not known to be cluster-scoped"),
        ),
    ];
    for (method, path, want) in rows {
        let got = decision_for(&demo(), method, path);
        match (&want, &got) {
            (Allow, Decision::Allow) | (Filter, Decision::FilterPods) => {}
            (Labels(pod), Decision::PodLabels { namespace, name }) => {
                assert_eq!(
                    (namespace.as_str(), name.as_str()),
                    ("web", *pod),
                    "{method} {path}"
                );
            }
            (Deny(part), Decision::Deny(message)) => {
                assert!(message.contains(part), "{method} {path}: {message}");
            }
            _ => panic!("{method} {path}: {got:?}"),
        }
    }
}

#[test]
fn a_cluster_without_an_allowlist_leaves_everything_to_rbac() {
    for (method, path) in [
        ("GET", "/api/v1/pods"),
        ("GET", "/api/v1/namespaces/kube-system/pods/etcd-0"),
        (
            "POST",
            "/api/v1/namespaces/kube-system/pods/etcd-0/exec?command=sh",
        ),
        ("GET", "/apis/example.com/v1/widgets"),
    ] {
        assert_eq!(
            decision_for(&open(), method, path),
            Decision::Allow,
            "{path}"
        );
    }
}

#[test]
fn cluster_scoped_and_non_resource_paths() {
    assert_eq!(
        decision_for(
            &demo(),
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles"
        ),
        Decision::Allow
    );
    for path in [
        "/version",
        "/openapi/v2",
        "/healthz",
        "/api",
        "/apis",
        "/api/v1",
        "/apis/apps/v1",
    ] {
        assert_eq!(parse(&http::Method::GET, path, None), None, "{path}");
    }
}

#[test]
fn requests_parse_as_the_api_servers_request_info() {
    let r = parse(
        &http::Method::GET,
        "/apis/apps/v1/namespaces/web/deployments/frontend/scale",
        None,
    )
    .unwrap();
    assert_eq!(r.group.as_deref(), Some("apps"));
    assert_eq!(r.version, "v1");
    assert_eq!(r.namespace.as_deref(), Some("web"));
    assert_eq!(r.resource, "deployments");
    assert_eq!(r.name.as_deref(), Some("frontend"));
    assert_eq!(r.subresource.as_deref(), Some("scale"));
    assert_eq!(r.verb, Verb::Get);
    let w = parse(
        &http::Method::GET,
        "/api/v1/namespaces/web/pods",
        Some("watch=1"),
    )
    .unwrap();
    assert_eq!(w.verb, Verb::Watch);
    let ns = parse(&http::Method::GET, "/api/v1/namespaces/web", None).unwrap();
    assert_eq!(
        (
            ns.namespace.as_deref(),
            ns.resource.as_str(),
            ns.name.as_deref()
        ),
        (Some("web"), "namespaces", Some("web"))
    );
}

#[test]
fn a_pod_is_allowed_by_any_selector_of_its_namespace() {
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let demo = demo();
    assert!(pod_allowed(&demo, "web", &labels(&[("app", "frontend")])));
    assert!(pod_allowed(
        &demo,
        "web",
        &labels(&[("tier", "edge"), ("app", "x")])
    ));
    assert!(!pod_allowed(&demo, "web", &labels(&[("app", "redis")])));
    assert!(!pod_allowed(&demo, "web", &labels(&[])));
    assert!(
        pod_allowed(&demo, "jobs", &labels(&[])),
        "no selectors: every pod"
    );
    let message = pod_refusal(&demo, "web", "redis-0");
    assert!(message.contains("pod web/redis-0"), "{message}");
    assert!(
        message.contains("\"app=frontend\" or \"tier in (web,edge)\""),
        "{message}"
    );
}

/// The ways around the allowlist and the selectors a hostile user tried.
#[test]
fn requests_that_go_around_the_selectors_are_refused() {
    use Want::*;
    let rows: [(&str, &str, Want); 12] = [
        // A pod name the server's pod proxy reads as a pod and a port.
        (
            "GET",
            "/api/v1/namespaces/web/pods/redis-0:6379/proxy/",
            Deny("\"redis-0:6379\" is not a pod name"),
        ),
        (
            "GET",
            "/api/v1/namespaces/web/pods/https:redis-0:443/proxy/",
            Deny("is not a pod name"),
        ),
        // Pods reached through a service's or a node's proxy.
        (
            "GET",
            "/api/v1/namespaces/web/services/redis:6379/proxy/",
            Deny("a service's proxy reaches pods whatever their labels"),
        ),
        (
            "GET",
            "/api/v1/nodes/ip-10-0-1-23/proxy/run/web/redis-0/redis",
            Deny("a node's proxy reaches every pod on the node"),
        ),
        // Deleting the namespace deletes its pods.
        (
            "DELETE",
            "/api/v1/namespaces/web",
            Deny("deleting namespace web deletes every pod in it"),
        ),
        // What the server takes for a watch is filtered as one.
        ("GET", "/api/v1/namespaces/web/pods?watch=yes", Filter),
        ("GET", "/api/v1/namespaces/web/pods?watch=t", Filter),
        ("GET", "/api/v1/namespaces/web/pods?watch=", Filter),
        ("GET", "/api/v1/namespaces/web/pods?wat%63h=true", Filter),
        ("GET", "/api/v1/watch/namespaces/web/pods", Filter),
        // Two answers to "is this a watch": refused.
        (
            "GET",
            "/api/v1/namespaces/web/pods?watch=0&watch=true",
            Deny("naming `watch` more than once"),
        ),
        // Elsewhere, services and nodes are RBAC's (jobs has no selectors).
        ("GET", "/api/v1/namespaces/jobs/services/x/proxy/", Allow),
    ];
    for (method, path, want) in rows {
        let got = decision_for(&demo(), method, path);
        match (&want, &got) {
            (Allow, Decision::Allow) | (Filter, Decision::FilterPods) => {}
            (Deny(part), Decision::Deny(message)) => {
                assert!(message.contains(part), "{method} {path}: {message}");
            }
            _ => panic!("{method} {path}: {got:?}"),
        }
    }
    // A watch that is not one: a list.
    let list = decision_for(&demo(), "GET", "/api/v1/namespaces/web/pods?watch=false");
    assert_eq!(list, Decision::FilterPods);
    let method = http::Method::GET;
    let request = parse(&method, "/api/v1/namespaces/web/pods", Some("watch=0")).unwrap();
    assert_eq!(request.verb, Verb::List);
    let request = parse(&method, "/api/v1/namespaces/web/pods", Some("watch=1")).unwrap();
    assert_eq!(request.verb, Verb::Watch);
    // On an open cluster (no allowlist), a node's proxy is RBAC's.
    let open = decision_for(&open(), "GET", "/api/v1/nodes/n/proxy/");
    assert_eq!(open, Decision::Allow);
}

#[test]
fn paths_the_server_would_read_otherwise_are_refused() {
    for path in [
        "/clusters/demo/%61pi/v1/namespaces/kube-system/secrets",
        "/clusters/demo/api/v1/namespaces/web/%70ods/redis-0/exec",
        "/clusters/demo/api/v1/namespaces/web/pods%2Fredis-0%2Fexec",
        "/clusters/demo/api/v1/namespaces/web/../kube-system/pods",
        "/clusters/demo/api/v1/namespaces/web/./pods",
        "/clusters/demo//api/v1/pods",
        "/clusters/demo/api/v1/namespaces/web/pods/",
        "/clusters/demo/api/v1/namespaces/web\\pods",
        "clusters/demo/api",
    ] {
        let why = check_path(path).expect_err(path);
        assert!(
            why.contains("is not one this bastion's proxy reads"),
            "{why}"
        );
    }
    for path in [
        "/",
        "/clusters/demo/api",
        "/clusters/demo/api/v1/namespaces/web/pods/frontend-6d8f7c9b5-x7k2p/exec",
        "/clusters/demo/apis/apps/v1/namespaces/web/deployments",
        "/clusters/demo/openapi/v3/apis/apps/v1",
    ] {
        assert_eq!(check_path(path), Ok(()), "{path}");
    }
}

#[test]
fn non_resource_paths_may_be_read_and_nothing_else() {
    let get = http::Method::GET;
    for path in [
        "/version",
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps",
        "/apis/apps/v1",
        "/openapi/v2",
        "/openapi/v3/api/v1",
        "/healthz",
        "/readyz/etcd",
    ] {
        assert_eq!(non_resource(&get, path), Decision::Allow, "{path}");
    }
    for (method, path) in [
        (http::Method::GET, "/metrics"),
        (http::Method::GET, "/logs/kube-apiserver.log"),
        (http::Method::GET, "/debug/pprof/"),
        (http::Method::POST, "/version"),
        (http::Method::GET, "/%61pi/v1/secrets"),
    ] {
        let Decision::Deny(why) = non_resource(&method, path) else {
            panic!("{method} {path} allowed");
        };
        assert!(
            why.contains("is not allowed through this bastion's proxy"),
            "{why}"
        );
    }
}

#[test]
fn a_method_that_is_no_api_verb_is_refused() {
    for method in ["OPTIONS", "G9ET", "CONNECT", "TRACE"] {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let path = "/api/v1/namespaces/web/pods";
        assert_eq!(parse(&method, path, None), None, "{method}");
        assert!(
            matches!(non_resource(&method, path), Decision::Deny(_)),
            "{method}"
        );
    }
}
