//! The Kubernetes API: request info (what RBAC sees), discovery, namespaces, pods, logs,
//! self reviews, and `Status` errors.

use super::auth::UserInfo;
use super::fixture::{Namespace, Pod, Rendered};
use super::rbac::{Attributes, PolicyRule};
use super::selector::{FieldSelector, LabelSelector};
use super::{Body, State, full};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Groups whose `Status` errors name a resource without a group (`pods`), and the rest
/// (`selfsubjectreviews.authentication.k8s.io`).
fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

/// What the API server's request-info resolver makes of a request.
#[derive(Clone, Debug)]
pub(crate) struct RequestInfo {
    pub(crate) attributes: Attributes,
    pub(crate) query: Vec<(String, String)>,
}

impl RequestInfo {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn params(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub(crate) fn flag(&self, name: &str) -> bool {
        matches!(self.param(name), Some("true" | "1"))
    }
}

/// Subresources that are connections, authorized as `create` whatever the method (a
/// WebSocket exec is a GET; the API server authorizes it as `create` since 1.35).
const CONNECT_SUBRESOURCES: [&str; 3] = ["exec", "attach", "portforward"];

/// `RequestInfoFactory.NewRequestInfo` for the paths the fake serves.
pub(crate) fn request_info(method: &Method, path: &str, query: &str) -> RequestInfo {
    let query: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let non_resource = |query: Vec<(String, String)>| RequestInfo {
        attributes: Attributes::non_resource(&method.as_str().to_ascii_lowercase(), path),
        query,
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.first() {
        Some(&"api") if parts.len() >= 3 => ("", parts[1], &parts[2..]),
        Some(&"apis") if parts.len() >= 4 => (parts[1], parts[2], &parts[3..]),
        _ => return non_resource(query),
    };
    let mut rest: Vec<&str> = rest.to_vec();
    let mut namespace = "";
    if rest[0] == "namespaces" && rest.len() > 1 {
        namespace = rest[1];
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = rest[2..].to_vec();
        }
    }
    let resource = rest[0];
    let name = rest.get(1).copied().unwrap_or("");
    let subresource = rest.get(2).copied().unwrap_or("");
    // ListOptions' `watch` as the server converts it (Convert_Slice_string_To_bool): the
    // first value decides, and anything but "0", "f" and "false" is true.
    let watch = query
        .iter()
        .find(|(k, _)| k == "watch")
        .is_some_and(|(_, v)| {
            !(v == "0" || v.eq_ignore_ascii_case("f") || v.eq_ignore_ascii_case("false"))
        });
    let verb = if CONNECT_SUBRESOURCES.contains(&subresource) {
        "create"
    } else {
        match *method {
            Method::GET | Method::HEAD if watch => "watch",
            Method::GET | Method::HEAD if name.is_empty() => "list",
            Method::GET | Method::HEAD => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if name.is_empty() => "deletecollection",
            Method::DELETE => "delete",
            _ => "",
        }
    };
    let mut attributes = Attributes::resource(verb, group, resource, subresource, namespace, name);
    attributes.api_version = version.to_owned();
    attributes.path = path.to_owned();
    RequestInfo { attributes, query }
}

/// A `Status` response.
pub(crate) fn status(
    code: StatusCode,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    json_response(code, &body)
}

pub(crate) fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn unauthorized() -> Response<Body> {
    status(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "Unauthorized",
        None,
    )
}

/// 403 worded as the API server words it.
pub(crate) fn forbidden(user: &UserInfo, attributes: &Attributes) -> Response<Body> {
    let who = format!("User \"{}\"", user.username);
    if !attributes.resource_request {
        let message = format!(
            "forbidden: {who} cannot {} path \"{}\"",
            attributes.verb, attributes.path
        );
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &message,
            Some(json!({})),
        );
    }
    let resource = qualified(&attributes.resource, &attributes.api_group);
    let subject = if attributes.name.is_empty() {
        resource.clone()
    } else {
        format!("{resource} \"{}\"", attributes.name)
    };
    let scope = if attributes.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace \"{}\"", attributes.namespace)
    };
    let message = format!(
        "{subject} is forbidden: {who} cannot {} resource \"{}\" in API group \"{}\" {scope}",
        attributes.verb,
        attributes.combined_resource(),
        attributes.api_group
    );
    let mut details = json!({"kind": attributes.resource});
    if !attributes.name.is_empty() {
        details["name"] = json!(attributes.name);
    }
    if !attributes.api_group.is_empty() {
        details["group"] = json!(attributes.api_group);
    }
    status(StatusCode::FORBIDDEN, "Forbidden", &message, Some(details))
}

pub(crate) fn not_found(resource: &str, name: &str) -> Response<Body> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
        Some(json!({"name": name, "kind": resource})),
    )
}

pub(crate) fn no_such_path() -> Response<Body> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

pub(crate) fn bad_request(message: &str) -> Response<Body> {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, None)
}

fn method_not_allowed(attributes: &Attributes) -> Response<Body> {
    status(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &format!(
            "{} is not supported on resources of kind \"{}\" by this fake API server",
            attributes.verb,
            attributes.combined_resource()
        ),
        Some(json!({})),
    )
}

/// Routes an authenticated, authorized non-exec request.
pub(crate) async fn route(
    state: &Arc<State>,
    info: &RequestInfo,
    user: &UserInfo,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let a = &info.attributes;
    if !a.resource_request {
        return discovery(state, a);
    }
    match (
        a.api_group.as_str(),
        a.api_version.as_str(),
        a.resource.as_str(),
    ) {
        ("", "v1", "namespaces") => namespaces(state, info, headers).await,
        ("", "v1", "pods") => pods(state, info, headers).await,
        ("authentication.k8s.io", "v1" | "v1beta1" | "v1alpha1", "selfsubjectreviews")
            if a.name.is_empty() && a.namespace.is_empty() =>
        {
            if a.verb != "create" {
                return method_not_allowed(a);
            }
            self_subject_review(&a.api_version, user)
        }
        ("authorization.k8s.io", "v1", "selfsubjectaccessreviews")
            if a.name.is_empty() && a.namespace.is_empty() =>
        {
            if a.verb != "create" {
                return method_not_allowed(a);
            }
            self_subject_access_review(state, user, headers, &body)
        }
        ("authorization.k8s.io", "v1", "selfsubjectrulesreviews")
            if a.name.is_empty() && a.namespace.is_empty() =>
        {
            if a.verb != "create" {
                return method_not_allowed(a);
            }
            self_subject_rules_review(state, user, headers, &body)
        }
        _ => no_such_path(),
    }
}

// ---------------------------------------------------------------------------------------
// Discovery

fn group_versions(group: &str) -> &'static [&'static str] {
    match group {
        "authentication.k8s.io" => &["v1", "v1beta1", "v1alpha1"],
        "authorization.k8s.io" | "rbac.authorization.k8s.io" | "apps" => &["v1"],
        _ => &[],
    }
}

/// Groups in discovery. `rbac.authorization.k8s.io` and `apps` are listed (not served) so
/// that kubectl can map their kinds: `create --dry-run=client` of generated RBAC, and
/// `auth can-i` on deployments.
const GROUPS: [&str; 4] = [
    "authentication.k8s.io",
    "authorization.k8s.io",
    "rbac.authorization.k8s.io",
    "apps",
];

/// A discovery entry for a kind this stand-in only lists.
fn listed(name: &str, singular: &str, kind: &str, namespaced: bool) -> Value {
    json!({"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
           "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
}

fn api_group(name: &str) -> Value {
    let versions: Vec<Value> = group_versions(name)
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": versions,
        "preferredVersion": versions[0],
    })
}

fn resource_list(group_version: &str, resources: Value) -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

fn discovery(state: &Arc<State>, a: &Attributes) -> Response<Body> {
    if a.verb != "get" {
        return no_such_path();
    }
    let path = a.path.trim_end_matches('/');
    let body = match path {
        "/version" => state.version.clone(),
        "/healthz" | "/livez" | "/readyz" => {
            let mut response = Response::new(full("ok"));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return response;
        }
        "/api" => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": state.addr.to_string()}
            ],
        }),
        "/apis" => json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": GROUPS.iter().map(|g| api_group(g)).collect::<Vec<_>>(),
        }),
        "/api/v1" => resource_list(
            "v1",
            json!([
                {"name": "namespaces", "singularName": "namespace", "namespaced": false,
                 "kind": "Namespace", "verbs": ["get", "list", "watch"], "shortNames": ["ns"]},
                {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                 "verbs": ["get", "list", "watch"], "shortNames": ["po"], "categories": ["all"]},
                {"name": "pods/exec", "singularName": "", "namespaced": true,
                 "kind": "PodExecOptions", "verbs": ["create", "get"]},
                {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod",
                 "verbs": ["get"]},
                listed("configmaps", "configmap", "ConfigMap", true),
                listed("secrets", "secret", "Secret", true),
            ]),
        ),
        _ => {
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            match parts[..] {
                ["apis", group] if GROUPS.contains(&group) => {
                    let mut body = api_group(group);
                    body["kind"] = json!("APIGroup");
                    body["apiVersion"] = json!("v1");
                    body
                }
                ["apis", "authentication.k8s.io", version]
                    if group_versions("authentication.k8s.io").contains(&version) =>
                {
                    resource_list(
                        &format!("authentication.k8s.io/{version}"),
                        json!([{"name": "selfsubjectreviews", "singularName": "selfsubjectreview",
                                "namespaced": false, "kind": "SelfSubjectReview", "verbs": ["create"]}]),
                    )
                }
                ["apis", "authorization.k8s.io", "v1"] => resource_list(
                    "authorization.k8s.io/v1",
                    json!([
                        {"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview",
                         "namespaced": false, "kind": "SelfSubjectAccessReview", "verbs": ["create"]},
                        {"name": "selfsubjectrulesreviews", "singularName": "selfsubjectrulesreview",
                         "namespaced": false, "kind": "SelfSubjectRulesReview", "verbs": ["create"]},
                    ]),
                ),
                ["apis", "rbac.authorization.k8s.io", "v1"] => resource_list(
                    "rbac.authorization.k8s.io/v1",
                    json!([
                        listed("clusterroles", "clusterrole", "ClusterRole", false),
                        listed(
                            "clusterrolebindings",
                            "clusterrolebinding",
                            "ClusterRoleBinding",
                            false
                        ),
                        listed("roles", "role", "Role", true),
                        listed("rolebindings", "rolebinding", "RoleBinding", true),
                    ]),
                ),
                ["apis", "apps", "v1"] => resource_list(
                    "apps/v1",
                    json!([
                        listed("deployments", "deployment", "Deployment", true),
                        listed("replicasets", "replicaset", "ReplicaSet", true),
                        listed("statefulsets", "statefulset", "StatefulSet", true),
                        listed("daemonsets", "daemonset", "DaemonSet", true),
                    ]),
                ),
                _ => return no_such_path(),
            }
        }
    };
    json_response(StatusCode::OK, &body)
}

// ---------------------------------------------------------------------------------------
// Namespaces and pods

/// How the client wants a list: a Table (`as=Table;g=meta.k8s.io;v=v1`) or the objects.
fn table_version(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut best = None;
    for media in accept.split(',') {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        if !params.contains(&"as=Table") || !params.contains(&"g=meta.k8s.io") {
            continue;
        }
        if params.contains(&"v=v1") {
            return Some("meta.k8s.io/v1");
        }
        if params.contains(&"v=v1beta1") {
            best = Some("meta.k8s.io/v1beta1");
        }
    }
    best
}

/// The request's selectors; the error is a BadRequest message (as are those below).
fn selectors(info: &RequestInfo) -> Result<(LabelSelector, FieldSelector), String> {
    let labels =
        LabelSelector::parse(info.param("labelSelector").unwrap_or("")).map_err(|e| e.0)?;
    let fields =
        FieldSelector::parse(info.param("fieldSelector").unwrap_or("")).map_err(|e| e.0)?;
    Ok((labels, fields))
}

fn check_fields(fields: &FieldSelector, supported: impl Fn(&str) -> bool) -> Result<(), String> {
    match fields.fields().find(|f| !supported(f)) {
        Some(field) => Err(format!("field label not supported: {field}")),
        None => Ok(()),
    }
}

/// `HumanDuration` of apimachinery.
pub(crate) fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(created: SystemTime) -> String {
    human_duration(
        SystemTime::now()
            .duration_since(created)
            .unwrap_or_default(),
    )
}

fn column(name: &str, kind: &str, format: &str, priority: u8, description: &str) -> Value {
    json!({"name": name, "type": kind, "format": format, "description": description, "priority": priority})
}

fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object["metadata"],
    })
}

fn table(
    api_version: &str,
    columns: Value,
    rows: Vec<(Vec<Value>, Value)>,
    include: &str,
) -> Value {
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|(cells, object)| {
            let mut row = json!({"cells": cells});
            match include {
                "None" => {}
                "Object" => row["object"] = object,
                _ => row["object"] = partial_metadata(&object),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": {"resourceVersion": "1"},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn namespace_columns() -> Value {
    json!([
        column(
            "Name",
            "string",
            "name",
            0,
            "Name must be unique within a namespace."
        ),
        column("Status", "string", "", 0, "The status of the namespace"),
        column(
            "Age",
            "string",
            "",
            0,
            "CreationTimestamp is a timestamp representing the server time when this object was created."
        ),
    ])
}

fn pod_columns() -> Value {
    json!([
        column(
            "Name",
            "string",
            "name",
            0,
            "Name must be unique within a namespace."
        ),
        column(
            "Ready",
            "string",
            "",
            0,
            "The aggregate readiness state of this pod for accepting traffic."
        ),
        column(
            "Status",
            "string",
            "",
            0,
            "The aggregate status of the containers in this pod."
        ),
        column(
            "Restarts",
            "string",
            "",
            0,
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."
        ),
        column(
            "Age",
            "string",
            "",
            0,
            "CreationTimestamp is a timestamp representing the server time when this object was created."
        ),
        column(
            "IP",
            "string",
            "",
            1,
            "podIP is the IP address allocated to the pod."
        ),
        column(
            "Node",
            "string",
            "",
            1,
            "nodeName is the name of the node this pod is scheduled on."
        ),
        column(
            "Nominated Node",
            "string",
            "",
            1,
            "nominatedNodeName is set when this pod preempts other pods on the node."
        ),
        column(
            "Readiness Gates",
            "string",
            "",
            1,
            "readinessGates specifies additional conditions to be evaluated for pod readiness."
        ),
    ])
}

fn pod_cells(rendered: &Rendered, pod: &Pod) -> Vec<Value> {
    let ready = if Rendered::pod_ready(pod) {
        pod.containers.len()
    } else {
        0
    };
    let status = match (&pod.reason, pod.phase.as_str()) {
        (Some(reason), _) => reason.clone(),
        (None, "Succeeded") => "Completed".into(),
        (None, phase) => phase.to_owned(),
    };
    let none = || "<none>".to_owned();
    vec![
        json!(pod.name),
        json!(format!("{ready}/{}", pod.containers.len())),
        json!(status),
        json!(pod.restarts.to_string()),
        json!(age(rendered.pod_created(pod))),
        json!(pod.ip.clone().unwrap_or_else(none)),
        json!(pod.node.clone().unwrap_or_else(none)),
        json!(none()),
        json!(none()),
    ]
}

/// Serves a list, a watch (the current objects as ADDED events, then an open stream until
/// `timeoutSeconds`), or a single object.
fn respond_objects(
    info: &RequestInfo,
    headers: &HeaderMap,
    kind: &str,
    columns: Value,
    rows: Vec<(Vec<Value>, Value)>,
) -> Response<Body> {
    let include = info.param("includeObject").unwrap_or("Metadata").to_owned();
    let table_version = table_version(headers);
    if info.attributes.verb == "watch" {
        let timeout = info
            .param("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map_or(Duration::from_secs(1800), Duration::from_secs);
        let events: Vec<Bytes> = rows
            .into_iter()
            .map(|(cells, object)| {
                let object = match table_version {
                    Some(version) => {
                        table(version, columns.clone(), vec![(cells, object)], &include)
                    }
                    None => object,
                };
                let mut line = json!({"type": "ADDED", "object": object}).to_string();
                line.push('\n');
                Bytes::from(line)
            })
            .collect();
        return watch_response(events, timeout);
    }
    let body = match table_version {
        Some(version) => table(version, columns, rows, &include),
        None => json!({
            "kind": format!("{kind}List"),
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "1"},
            "items": rows.into_iter().map(|(_, object)| object).collect::<Vec<_>>(),
        }),
    };
    json_response(StatusCode::OK, &body)
}

fn watch_response(events: Vec<Bytes>, timeout: Duration) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(events.len().max(1));
    tokio::spawn(async move {
        for event in events {
            if tx.send(event).await.is_err() {
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(timeout) => {}
            () = tx.closed() => {}
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn namespaces(state: &Arc<State>, info: &RequestInfo, headers: &HeaderMap) -> Response<Body> {
    let a = &info.attributes;
    if !a.subresource.is_empty() {
        return no_such_path();
    }
    let rendered = &state.rendered;
    match a.verb.as_str() {
        "get" => match state.fixture.namespace(&a.name) {
            Some(ns) => {
                let object = rendered.namespace(ns);
                if table_version(headers).is_some() {
                    let row = (namespace_row(rendered, ns), object);
                    respond_objects(info, headers, "Namespace", namespace_columns(), vec![row])
                } else {
                    json_response(StatusCode::OK, &object)
                }
            }
            None => not_found("namespaces", &a.name),
        },
        "list" | "watch" => {
            let (labels, fields) = match selectors(info).map_err(|m| bad_request(&m)) {
                Ok(s) => s,
                Err(response) => return response,
            };
            let probe = Namespace {
                name: String::new(),
                labels: Default::default(),
                phase: String::new(),
                age: None,
            };
            if let Err(response) =
                check_fields(&fields, |f| Rendered::namespace_field(&probe, f).is_some())
                    .map_err(|m| bad_request(&m))
            {
                return response;
            }
            let rows = state
                .fixture
                .namespaces
                .iter()
                .filter(|ns| {
                    let mut all = ns.labels.clone();
                    all.insert("kubernetes.io/metadata.name".into(), ns.name.clone());
                    labels.matches(&all)
                        && fields.matches(|f| Rendered::namespace_field(ns, f).flatten())
                })
                .map(|ns| (namespace_row(rendered, ns), rendered.namespace(ns)))
                .collect();
            respond_objects(info, headers, "Namespace", namespace_columns(), rows)
        }
        _ => method_not_allowed(a),
    }
}

fn namespace_row(rendered: &Rendered, ns: &Namespace) -> Vec<Value> {
    vec![
        json!(ns.name),
        json!(ns.phase),
        json!(age(rendered.namespace_created(ns))),
    ]
}

async fn pods(state: &Arc<State>, info: &RequestInfo, headers: &HeaderMap) -> Response<Body> {
    let a = &info.attributes;
    let rendered = &state.rendered;
    match (a.verb.as_str(), a.subresource.as_str()) {
        ("get", "") => match state.fixture.pod(&a.namespace, &a.name) {
            Some(pod) => {
                let object = rendered.pod(pod);
                if table_version(headers).is_some() {
                    let row = (pod_cells(rendered, pod), object);
                    respond_objects(info, headers, "Pod", pod_columns(), vec![row])
                } else {
                    json_response(StatusCode::OK, &object)
                }
            }
            None => not_found("pods", &a.name),
        },
        ("list" | "watch", "") => {
            let (labels, fields) = match selectors(info).map_err(|m| bad_request(&m)) {
                Ok(s) => s,
                Err(response) => return response,
            };
            let probe = &Pod {
                name: String::new(),
                namespace: String::new(),
                labels: Default::default(),
                annotations: Default::default(),
                containers: Vec::new(),
                init_containers: Vec::new(),
                ephemeral_containers: Vec::new(),
                phase: String::new(),
                node: None,
                age: None,
                creation_timestamp: None,
                ready: None,
                restarts: 0,
                ip: None,
                reason: None,
            };
            if let Err(response) =
                check_fields(&fields, |f| Rendered::pod_field(probe, f).is_some())
                    .map_err(|m| bad_request(&m))
            {
                return response;
            }
            let rows = state
                .fixture
                .pods
                .iter()
                .filter(|p| a.namespace.is_empty() || p.namespace == a.namespace)
                .filter(|p| {
                    labels.matches(&p.labels)
                        && fields.matches(|f| Rendered::pod_field(p, f).flatten())
                })
                .map(|p| (pod_cells(rendered, p), rendered.pod(p)))
                .collect();
            respond_objects(info, headers, "Pod", pod_columns(), rows)
        }
        ("get", "log") => match state.fixture.pod(&a.namespace, &a.name) {
            Some(pod) => logs(pod, info),
            None => not_found("pods", &a.name),
        },
        _ => method_not_allowed(a),
    }
}

/// Picks the container a request names, or the pod's only/default one; the error is the
/// API server's.
pub(crate) fn pick_container<'a>(pod: &'a Pod, requested: Option<&str>) -> Result<&'a str, String> {
    match requested.filter(|c| !c.is_empty()) {
        Some(name) => {
            let known = pod
                .containers
                .iter()
                .chain(&pod.init_containers)
                .chain(&pod.ephemeral_containers)
                .find(|c| c.name() == name);
            match known {
                Some(c) => Ok(c.name()),
                None => Err(format!(
                    "container {name} is not valid for pod {}",
                    pod.name
                )),
            }
        }
        None if pod.containers.len() == 1 => Ok(pod.containers[0].name()),
        None => {
            let names: Vec<&str> = pod.containers.iter().map(|c| c.name()).collect();
            Err(format!(
                "a container name must be specified for pod {}, choose one of: [{}]",
                pod.name,
                names.join(" ")
            ))
        }
    }
}

fn logs(pod: &Pod, info: &RequestInfo) -> Response<Body> {
    let container = match pick_container(pod, info.param("container")).map_err(|m| bad_request(&m))
    {
        Ok(c) => c,
        Err(response) => return response,
    };
    let mut text = String::new();
    for n in 1..=3 {
        text.push_str(&format!(
            "2024-01-01T00:00:0{n}Z {}/{container}: fake log line {n}\n",
            pod.name
        ));
    }
    let mut response = Response::new(full(text));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

// ---------------------------------------------------------------------------------------
// Self reviews

fn created(body: &Value) -> Response<Body> {
    json_response(StatusCode::CREATED, body)
}

fn self_subject_review(version: &str, user: &UserInfo) -> Response<Body> {
    created(&json!({
        "kind": "SelfSubjectReview",
        "apiVersion": format!("authentication.k8s.io/{version}"),
        "metadata": {"creationTimestamp": super::fixture::rfc3339(SystemTime::now())},
        "status": {"userInfo": user},
    }))
}

/// A request body in JSON or Kubernetes protobuf, as its Content-Type says.
fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.starts_with(super::proto::PROTOBUF) {
        return super::proto::decode_review(body);
    }
    serde_json::from_slice(body).map_err(|e| format!("the request body is not JSON: {e}"))
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn self_subject_access_review(
    state: &Arc<State>,
    user: &UserInfo,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response<Body> {
    let mut review = match parse_body(headers, body).map_err(|m| bad_request(&m)) {
        Ok(review) => review,
        Err(response) => return response,
    };
    let attributes = if review.pointer("/spec/resourceAttributes").is_some() {
        let r = "/spec/resourceAttributes";
        let mut a = Attributes::resource(
            str_at(&review, &format!("{r}/verb")),
            str_at(&review, &format!("{r}/group")),
            str_at(&review, &format!("{r}/resource")),
            str_at(&review, &format!("{r}/subresource")),
            str_at(&review, &format!("{r}/namespace")),
            str_at(&review, &format!("{r}/name")),
        );
        a.api_version = str_at(&review, &format!("{r}/version")).to_owned();
        a
    } else if review.pointer("/spec/nonResourceAttributes").is_some() {
        Attributes::non_resource(
            str_at(&review, "/spec/nonResourceAttributes/verb"),
            str_at(&review, "/spec/nonResourceAttributes/path"),
        )
    } else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: \
             Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            None,
        );
    };
    let decision = state
        .authorizer
        .authorize(&user.username, &user.groups, &attributes);
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    review["status"] = status;
    review["metadata"] = json!({"creationTimestamp": null});
    created(&review)
}

fn self_subject_rules_review(
    state: &Arc<State>,
    user: &UserInfo,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response<Body> {
    let mut review = match parse_body(headers, body).map_err(|m| bad_request(&m)) {
        Ok(review) => review,
        Err(response) => return response,
    };
    let namespace = str_at(&review, "/spec/namespace").to_owned();
    let rules = state
        .authorizer
        .rules_for(&user.username, &user.groups, &namespace);
    let (non_resource, resource): (Vec<PolicyRule>, Vec<PolicyRule>) = rules
        .into_iter()
        .partition(|r| !r.non_resource_urls.is_empty());
    let resource_rules: Vec<Value> = resource
        .iter()
        .map(|r| {
            let mut rule =
                json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if !r.resource_names.is_empty() {
                rule["resourceNames"] = json!(r.resource_names);
            }
            rule
        })
        .collect();
    let non_resource_rules: Vec<Value> = non_resource
        .iter()
        .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
        .collect();
    review["status"] = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    });
    review["metadata"] = json!({"creationTimestamp": null});
    created(&review)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_info_resolves_like_the_api_server() {
        let info =
            |method: Method, path: &str, query: &str| request_info(&method, path, query).attributes;
        let a = info(
            Method::GET,
            "/api/v1/namespaces/web/pods",
            "labelSelector=app%3Dx",
        );
        assert_eq!(
            (a.verb.as_str(), a.resource.as_str(), a.namespace.as_str()),
            ("list", "pods", "web")
        );
        let a = info(
            Method::GET,
            "/api/v1/namespaces/web/pods/p1/exec",
            "command=sh",
        );
        assert_eq!(
            (
                a.verb.as_str(),
                a.combined_resource().as_str(),
                a.name.as_str()
            ),
            ("create", "pods/exec", "p1")
        );
        let a = info(Method::GET, "/api/v1/namespaces/web", "");
        assert_eq!(
            (a.resource.as_str(), a.name.as_str(), a.namespace.as_str()),
            ("namespaces", "web", "web")
        );
        let a = info(Method::GET, "/api/v1/namespaces", "watch=true");
        assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("watch", ""));
        for (query, verb) in [
            ("watch=yes", "watch"),
            ("watch=", "watch"),
            ("watch=0&watch=true", "list"),
            ("watch=F", "list"),
            ("watch=false", "list"),
        ] {
            let a = info(Method::GET, "/api/v1/namespaces/web/pods", query);
            assert_eq!(a.verb, verb, "{query}");
        }
        let a = info(
            Method::POST,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            "",
        );
        assert_eq!(
            (a.verb.as_str(), a.api_group.as_str()),
            ("create", "authorization.k8s.io")
        );
        let a = info(Method::GET, "/apis/authorization.k8s.io/v1", "");
        assert!(!a.resource_request);
        assert_eq!(a.path, "/apis/authorization.k8s.io/v1");
        assert!(!info(Method::GET, "/version", "").resource_request);
    }

    #[test]
    fn human_durations_match_apimachinery() {
        let cases = [
            (45, "45s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 20 * 60, "3h20m"),
            (26 * 3600, "26h"),
            (2 * 86400, "2d"),
            (3 * 86400 + 5 * 3600, "3d5h"),
            (90 * 86400, "90d"),
            (800 * 86400, "2y70d"),
        ];
        for (secs, expected) in cases {
            assert_eq!(
                human_duration(Duration::from_secs(secs)),
                expected,
                "{secs}"
            );
        }
    }

    #[test]
    fn table_requests_are_recognised() {
        let headers = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT,
                HeaderValue::from_str(accept).expect("header"),
            );
            h
        };
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(table_version(&headers(kubectl)), Some("meta.k8s.io/v1"));
        assert_eq!(
            table_version(&headers(
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
            )),
            Some("meta.k8s.io/v1beta1")
        );
        assert_eq!(table_version(&headers("application/json")), None);
    }
}
