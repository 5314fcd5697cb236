//! What the fuzz target `proxy_policy` drives: the API proxy's reading of a request
//! (`policy::check_path`, `parse`, `non_resource`, `decide`) and its pod filters, with the
//! invariants that make them a boundary; and its exit-code readers of an upgraded exec.
//! Hidden: not an API.

use std::collections::BTreeMap;

use crate::config::{ClusterRoute, NamespaceSettings, Selector};
use crate::policy::{self, Decision, Verb};
use crate::protocol::ClusterView;

/// `demo`: `web` with selectors `app=frontend`, `jobs` without.
fn demo() -> ClusterView {
    let ns = |name: &str, selectors: &[&str]| NamespaceSettings {
        name: name.into(),
        selectors: selectors
            .iter()
            .map(|s| Selector::parse(s).expect("selector"))
            .collect(),
    };
    ClusterView {
        name: "demo".into(),
        region: "us-east-1".into(),
        default_namespace: None,
        namespaces: vec![ns("web", &["app=frontend"]), ns("jobs", &[])],
        access: ClusterRoute::Proxy,
        discovered: None,
    }
}

fn frontend(labels: &BTreeMap<String, String>) -> bool {
    labels.get("app").map(String::as_str) == Some("frontend")
}

/// One request line's parts: the proxy's decision must hold to the allowlist and the
/// selectors whatever the path and query.
pub fn request(method: &str, path: &str, query: &str) {
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        return;
    };
    if policy::check_path(path).is_err() {
        return;
    }
    assert!(!path.contains('%') && !path.contains("/../") && !path.contains("//"));
    let query = (!query.is_empty()).then_some(query);
    let Some(request) = policy::parse(&method, path, query) else {
        let decision = policy::non_resource(&method, path);
        if decision == Decision::Allow {
            assert!(
                matches!(method, http::Method::GET | http::Method::HEAD),
                "{method} {path}"
            );
        }
        return;
    };
    let known = |_: Option<&str>, _: &str| None;
    let decision = policy::decide(&request, &demo(), &known);
    if let Some(namespace) = &request.namespace
        && namespace != "web"
        && namespace != "jobs"
    {
        assert!(
            matches!(decision, Decision::Deny(_)),
            "{method} {path}: {decision:?}"
        );
    }
    let web_pods = request.namespace.as_deref() == Some("web")
        && request.group.is_none()
        && request.resource == "pods";
    match &decision {
        Decision::Allow if web_pods => {
            assert!(
                request.name.is_none() && request.verb == Verb::Create,
                "{method} {path}"
            )
        }
        Decision::FilterPods => assert!(web_pods && request.name.is_none()),
        Decision::PodLabels { namespace, name } => {
            assert_eq!(namespace, "web");
            assert!(!name.contains(':') && !name.contains('/'), "{name:?}");
        }
        _ => {}
    }
    if request.conflicting_watch {
        assert!(matches!(decision, Decision::Deny(_)));
    }
}

/// A cluster's answer to a filtered list, and as watch lines: what passes has only pods
/// the selectors allow.
pub fn answer(body: &[u8]) {
    if let Ok(kept) = crate::broker::proxy_filter::list(body, &frontend) {
        let value: serde_json::Value = serde_json::from_slice(&kept).expect("filtered JSON");
        if value["kind"] == "PodList" {
            for item in value["items"].as_array().into_iter().flatten() {
                assert_eq!(item["metadata"]["labels"]["app"], "frontend", "{item}");
            }
        }
        if value["kind"] == "Table" {
            for row in value["rows"].as_array().into_iter().flatten() {
                assert_eq!(
                    row["object"]["metadata"]["labels"]["app"], "frontend",
                    "{row}"
                );
            }
        }
    }
    for line in body.split(|b| *b == b'\n') {
        let Some(kept) = crate::broker::proxy_filter::event(line, &frontend) else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_slice(&kept).expect("a JSON line");
        match value["type"].as_str() {
            Some("BOOKMARK" | "ERROR") => {}
            _ if value["object"]["kind"] == "Pod" => {
                assert_eq!(value["object"]["metadata"]["labels"]["app"], "frontend")
            }
            _ => {
                for row in value["object"]["rows"].as_array().into_iter().flatten() {
                    assert_eq!(
                        row["object"]["metadata"]["labels"]["app"], "frontend",
                        "{row}"
                    );
                }
            }
        }
    }
}

/// An upgraded exec's bytes, the first byte saying where the client's end and the server's
/// begin: the exit code each reader finds does not depend on how the bytes were read.
pub fn exec_streams(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (client, server) = rest.split_at(rest.len() * usize::from(split) / 255);
    let whole = crate::broker::proxy_exit_codes(client, server, usize::MAX);
    for cut in [1, 3, 64] {
        assert_eq!(
            crate::broker::proxy_exit_codes(client, server, cut),
            whole,
            "reads of {cut} bytes"
        );
    }
}
