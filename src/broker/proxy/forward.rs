//! One request to the cluster: the policy's decision (with the pod's labels or the
//! cluster's discovery when it needs them), the upstream request (the client's headers but
//! its credentials and hop-by-hop ones, the user's own token added), and the answer: passed
//! through, filtered to the allowed pods, or — for an upgrade — spliced both ways.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::super::connections::Admission;
use super::as_user::UpstreamAuth;
use super::exit_status::ExitStatus;
use super::identity::Caller;
use super::labels;
use super::spdy_status::SpdyExitStatus;
use super::upstream::{BoxError, ProxyBody, Upstream};
use super::{MAX_LIST, Proxy, Routed, filter, full, status, status_object};
use crate::config::{ApiAudit, ClusterKind, Config};
use crate::policy::{self, Decision, Verb};

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl Proxy {
    pub(super) async fn forward(
        &self,
        config: &Config,
        caller: &Caller,
        routed: &Routed,
        mut request: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let mut event = ApiEvent::new(caller, routed, &request);
        let (upstream, token) = match self.upstream_as(config, caller, routed).await {
            Ok(both) => both,
            Err(refusal) => return event.answered(config, refusal),
        };
        let decision = match &routed.api {
            None => policy::non_resource(request.method(), routed.api_path()),
            Some(api) => {
                if api.namespace.is_none() && !routed.view.namespaces.is_empty() {
                    self.discovery.learn(&upstream, &token, routed, api).await;
                }
                let known = |group: Option<&str>, resource: &str| {
                    self.discovery
                        .namespaced(&routed.cluster, group, &api.version, resource)
                };
                policy::decide(api, &routed.view, &known)
            }
        };
        let filter = match decision {
            Decision::Allow => None,
            Decision::FilterPods => {
                Some(routed.api.as_ref().is_some_and(|a| a.verb == Verb::Watch))
            }
            Decision::Deny(why) => {
                event.refused = true;
                return event.answered(config, status(StatusCode::FORBIDDEN, &why));
            }
            Decision::PodLabels { namespace, name } => {
                let upgrade = is_upgrade(request.headers());
                if !upgrade {
                    // A request for one pod often comes just before an exec, attach or
                    // port-forward of it (kubectl GETs the pod first).
                    upstream.warm_upgrades();
                }
                let get = routed.api.as_ref().is_some_and(|a| a.verb == Verb::Get);
                if get && !upgrade && event.subresource.is_none() && reads_json(&request) {
                    // A JSON GET of one pod carries the pod's labels itself: they are read
                    // from the answer, before the client sees it, not with a GET of their own.
                    let pod = (namespace.as_str(), name.as_str());
                    let answer = self.get_pod(&upstream, &token, caller, routed, pod, request);
                    return match answer.await {
                        Ok(response) => event.passed_on(config, response),
                        Err(refusal) => {
                            event.refused = refusal.status() == StatusCode::FORBIDDEN;
                            event.answered(config, refusal)
                        }
                    };
                }
                let labels = self.labels.of(
                    &upstream,
                    &token,
                    caller.account.uid,
                    &routed.cluster,
                    &namespace,
                    &name,
                );
                match labels.await {
                    Ok(None) if event.subresource.is_some() => {
                        event.refused = true;
                        let why = format!("pod {namespace}/{name} not found");
                        return event.answered(config, status(StatusCode::NOT_FOUND, &why));
                    }
                    Ok(None) => None,
                    Ok(Some(labels)) if policy::pod_allowed(&routed.view, &namespace, &labels) => {
                        None
                    }
                    Ok(Some(_)) => {
                        event.refused = true;
                        let why = policy::pod_refusal(&routed.view, &namespace, &name);
                        return event.answered(config, status(StatusCode::FORBIDDEN, &why));
                    }
                    Err(why) => {
                        event.refused = true;
                        return event.answered(config, status(StatusCode::FORBIDDEN, &why));
                    }
                }
            }
        };
        let upgrade = is_upgrade(request.headers());
        let long = upgrade || is_long(routed);
        // A watch or stream holds a connection to the cluster for its whole life: counted
        // per uid, and carried on its own HTTP/1.1 connection, so that one user's many
        // cannot fill the streams of the HTTP/2 connection everyone's requests share.
        let held = match long {
            true => match self.streams.hold(caller.account.uid) {
                Some(held) => Some(held),
                None => {
                    let why = "too many watches and streams open for this user; close some";
                    return event.answered(config, status(StatusCode::TOO_MANY_REQUESTS, why));
                }
            },
            false => None,
        };
        if upgrade && !event.is_connect() {
            // A watch over WebSocket would pass unfiltered: only exec, attach and
            // port-forward switch protocols.
            event.refused = true;
            let why =
                "only exec, attach and port-forward may switch protocols through this bastion";
            return event.answered(config, status(StatusCode::FORBIDDEN, why));
        }
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let outgoing = match upstream_request(&upstream, routed, &token, filter.is_some(), request)
        {
            Ok(r) => r,
            Err(e) => return event.answered(config, status(StatusCode::BAD_REQUEST, &e)),
        };
        if upgrade {
            upstream.upgrade_starts();
        }
        let mut answer = match upstream.client(long).request(outgoing).await {
            Ok(a) => a,
            Err(e) => {
                let why = format!("cannot reach cluster {}: {e}", routed.cluster);
                return event.answered(config, status(StatusCode::BAD_GATEWAY, &why));
            }
        };
        event.status = answer.status().as_u16();
        if let (Some(client), StatusCode::SWITCHING_PROTOCOLS) = (client_upgrade, answer.status()) {
            let exit = match event.is_exec_or_attach() {
                true if channel_protocol(&answer) => Exit::WebSocket(ExitStatus::default()),
                true if spdy_channel_protocol(&answer) => Exit::Spdy(Box::default()),
                _ => Exit::None,
            };
            let server = hyper::upgrade::on(&mut answer);
            let session = caller.session.is_some().then(|| caller.clone());
            let spliced = splice(client, server, exit, event, config.audit.api, session, held);
            tokio::spawn(async move {
                spliced.await;
                // The next exec finds a connection ready (opened now, not while this one
                // started, when it would compete for the CPU).
                upstream.warm_upgrades();
            });
            let (parts, _) = answer.into_parts();
            return Response::from_parts(parts, Empty::new().map_err(|n| match n {}).boxed());
        }
        let (mut parts, body) = answer.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let view = routed.view.clone();
        let namespace = routed
            .api
            .as_ref()
            .and_then(|a| a.namespace.clone())
            .unwrap_or_default();
        let allowed =
            move |labels: &BTreeMap<String, String>| policy::pod_allowed(&view, &namespace, labels);
        let watch = routed.api.as_ref().is_some_and(|a| a.verb == Verb::Watch);
        let body: ProxyBody = match filter {
            None if watch => WatchEnd::new(body, &routed.cluster).boxed(),
            None => body.map_err(BoxError::from).boxed(),
            Some(true) => filtered_watch(body, allowed, routed.cluster.clone()),
            Some(false) if parts.status.is_success() => {
                let Some(_listing) = self.lists.hold(caller.account.uid) else {
                    let why = "too many pod lists at once for this user; try again";
                    return event.answered(config, status(StatusCode::TOO_MANY_REQUESTS, why));
                };
                parts.headers.remove(header::CONTENT_LENGTH);
                match http_body_util::Limited::new(body, MAX_LIST).collect().await {
                    Ok(whole) => match filter::list(&whole.to_bytes(), &allowed) {
                        Ok(filtered) => full(filtered),
                        Err(why) => {
                            return event.answered(config, status(StatusCode::BAD_GATEWAY, &why));
                        }
                    },
                    Err(e) => {
                        return event.answered(
                            config,
                            status(StatusCode::BAD_GATEWAY, &format!("the pod list: {e}")),
                        );
                    }
                }
            }
            Some(false) => body.map_err(BoxError::from).boxed(),
        };
        let audited = Audited {
            inner: body,
            event: Some((event, config.audit.api)),
            bytes: 0,
            _held: held,
        };
        Response::from_parts(parts, audited.boxed())
    }

    /// A JSON GET of pod `namespace/name`: the answer, whose labels decide, with the event
    /// to write when it has been passed on; or the refusal to send instead (the body
    /// withheld) when they match none of the selectors.
    async fn get_pod(
        &self,
        upstream: &Upstream,
        token: &UpstreamAuth,
        caller: &Caller,
        routed: &Routed,
        (namespace, name): (&str, &str),
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Response<ProxyBody>> {
        let mut outgoing = upstream_request(upstream, routed, token, false, request)
            .map_err(|e| status(StatusCode::BAD_REQUEST, &e))?;
        // The answer is read here: not compressed.
        outgoing.headers_mut().remove(header::ACCEPT_ENCODING);
        let answer = upstream
            .client(false)
            .request(outgoing)
            .await
            .map_err(|e| {
                let why = format!("cannot reach cluster {}: {e}", routed.cluster);
                status(StatusCode::BAD_GATEWAY, &why)
            })?;
        let (mut parts, body) = answer.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let whole = http_body_util::Limited::new(body, labels::MAX_POD)
            .collect()
            .await
            .map_err(|e| status(StatusCode::BAD_GATEWAY, &format!("the pod: {e}")))?
            .to_bytes();
        if parts.status.is_success() {
            let labels = labels::of_pod(&whole, namespace, name)
                .map_err(|why| status(StatusCode::FORBIDDEN, &why))?;
            if !policy::pod_allowed(&routed.view, namespace, &labels) {
                let why = policy::pod_refusal(&routed.view, namespace, name);
                return Err(status(StatusCode::FORBIDDEN, &why));
            }
            let whose = (caller.account.uid, routed.cluster.as_str());
            self.labels.remember(whose, namespace, name, labels);
        }
        Ok(Response::from_parts(parts, full(whole)))
    }

    /// The cluster's API server (its endpoint and CA as the broker knows them, and the
    /// broker's client certificate for a `kubernetes` cluster that takes one), and what
    /// makes a request to it the caller's.
    async fn upstream_as(
        &self,
        config: &Config,
        caller: &Caller,
        routed: &Routed,
    ) -> Result<(std::sync::Arc<Upstream>, UpstreamAuth), Response<ProxyBody>> {
        let unavailable = |e: String| status(StatusCode::SERVICE_UNAVAILABLE, &e);
        let settings = config.cluster(&routed.cluster);
        let credential = match settings.map(|c| (c.kind, c.credentials.as_ref())) {
            Some((ClusterKind::Kubernetes, Some(c))) => {
                let read = self.credentials.get(&routed.cluster, &c.source);
                // The details (a path, its owner and mode) are the broker's log's.
                let read = read.map_err(|why| {
                    tracing::error!("{why}");
                    let cluster = &routed.cluster;
                    unavailable(format!("the broker cannot use its credential for cluster {cluster}; its log says why"))
                })?;
                Some(read)
            }
            Some((ClusterKind::Kubernetes, None)) => {
                return Err(unavailable(format!(
                    "cluster {} has no credential",
                    routed.cluster
                )));
            }
            _ => None,
        };
        let (endpoint, ca_data) = self
            .broker
            .proxy_upstream(config, &caller.account, &routed.grant, &routed.cluster)
            .await
            .map_err(|e| status(StatusCode::BAD_GATEWAY, &e))?;
        let client = credential.as_ref().and_then(|c| c.client.clone());
        let upstream = self
            .upstreams
            .get(&routed.cluster, &endpoint, &ca_data, client)
            .map_err(|e| status(StatusCode::BAD_GATEWAY, &e))?;
        let session = caller.session.as_ref().map(|s| &s.session_id);
        let auth = match credential {
            Some(credential) => UpstreamAuth::impersonating(
                credential.bearer.as_deref(),
                &routed.grant,
                session.map(|s| s.as_str()),
                self.broker.hostname(),
            ),
            None => {
                let token = self
                    .broker
                    .proxy_token(
                        config,
                        &caller.account,
                        session,
                        &routed.grant,
                        &routed.cluster,
                    )
                    .await
                    .map_err(unavailable)?;
                UpstreamAuth::token(&token)
            }
        };
        Ok((upstream, auth.map_err(unavailable)?))
    }
}

/// Whether the server switched to a WebSocket channel protocol whose channel 3 carries the
/// exit status (`v4.channel.k8s.io`, `v5.channel.k8s.io`).
fn channel_protocol<B>(answer: &Response<B>) -> bool {
    answer
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|p| p.to_str().ok())
        .is_some_and(|p| matches!(p.trim(), "v4.channel.k8s.io" | "v5.channel.k8s.io"))
}

/// Whether a request is a GET whose answer is plain JSON (no `Table`, protobuf, CBOR or
/// YAML asked for), from which the proxy can read an object.
fn reads_json(request: &Request<Incoming>) -> bool {
    if request.method() != http::Method::GET {
        return false;
    }
    request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .all(|accept| {
            accept.to_str().is_ok_and(|accept| {
                accept.split(',').all(|range| {
                    let range = range.trim().to_ascii_lowercase();
                    let (media, params) = range.split_once(';').unwrap_or((&range, ""));
                    matches!(media.trim(), "application/json" | "*/*") && params.trim().is_empty()
                })
            })
        })
}

/// Whether the server switched to SPDY with the stream protocol whose error stream carries
/// a `Status` (`v4.channel.k8s.io`).
fn spdy_channel_protocol<B>(answer: &Response<B>) -> bool {
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("SPDY/3.1"))
        && header("x-stream-protocol-version") == Some("v4.channel.k8s.io")
}

/// The exit-code reader of one upgraded connection (`None`: not an exec or attach whose
/// status can be read).
enum Exit {
    None,
    WebSocket(ExitStatus),
    Spdy(Box<SpdyExitStatus>),
}

impl Exit {
    fn client_bytes(&mut self, bytes: &[u8]) {
        if let Exit::Spdy(spdy) = self {
            spdy.client_bytes(bytes);
        }
    }

    fn server_bytes(&mut self, bytes: &[u8]) {
        match self {
            Exit::None => {}
            Exit::WebSocket(ws) => ws.feed(bytes),
            Exit::Spdy(spdy) => spdy.server_bytes(bytes),
        }
    }

    fn code(&self) -> Option<i32> {
        match self {
            Exit::None => None,
            Exit::WebSocket(ws) => ws.code(),
            Exit::Spdy(spdy) => spdy.code(),
        }
    }
}

/// Whether a request stays open for as long as the client wants: a watch, or a log
/// followed (`logs -f`).
fn is_long(routed: &Routed) -> bool {
    let follow = || {
        form_urlencoded::parse(
            routed
                .path_and_query
                .split_once('?')
                .map_or("", |(_, q)| q)
                .as_bytes(),
        )
        .any(|(k, v)| k == "follow" && v != "false" && v != "0")
    };
    routed.api.as_ref().is_some_and(|a| {
        a.verb == Verb::Watch || (a.subresource.as_deref() == Some("log") && follow())
    })
}

/// Whether a request asks to switch protocols (exec, attach, port-forward).
fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
        && headers.contains_key(header::UPGRADE)
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// An upgrade's hop-by-hop headers: `Upgrade` as the client sent it and `Connection:
/// Upgrade`, nothing else (a `Connection` naming other headers would have a gateway in
/// front of the API server drop them: the identity headers, say).
fn only_the_upgrade(headers: &mut HeaderMap) {
    let upgrade = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(headers);
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Some(upgrade) = upgrade {
        headers.insert(header::UPGRADE, upgrade);
    }
}

/// Removes `base64url.bearer.authorization.k8s.io.TOKEN` from `Sec-WebSocket-Protocol` (how
/// browsers pass a token): the cluster gets the proxy's credential only.
fn drop_protocol_tokens(headers: &mut HeaderMap) {
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if !offered
        .iter()
        .any(|p| p.starts_with("base64url.bearer.authorization.k8s.io."))
    {
        return;
    }
    headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
    let kept: Vec<&str> = offered
        .iter()
        .map(String::as_str)
        .filter(|p| !p.starts_with("base64url.bearer.authorization.k8s.io."))
        .collect();
    if let Ok(value) = HeaderValue::from_str(&kept.join(", "))
        && !kept.is_empty()
    {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
}

/// The request to the cluster: the client's method, path, query and headers, without its
/// credentials, `Host` and (unless it upgrades) hop-by-hop headers, with the user's token.
/// A filtered answer is asked for as JSON, uncompressed.
fn upstream_request(
    upstream: &Upstream,
    routed: &Routed,
    token: &UpstreamAuth,
    filtered: bool,
    request: Request<Incoming>,
) -> Result<Request<ProxyBody>, String> {
    let upgrade = is_upgrade(request.headers());
    let (mut parts, body) = request.into_parts();
    parts.uri = upstream.uri(&routed.path_and_query)?;
    parts.version = http::Version::HTTP_11;
    let headers = &mut parts.headers;
    headers.remove(header::HOST);
    headers.remove(header::AUTHORIZATION);
    let impersonating: Vec<_> = headers
        .keys()
        .filter(|h| h.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for name in impersonating {
        headers.remove(name);
    }
    if upgrade {
        only_the_upgrade(headers);
    } else {
        strip_hop_by_hop(headers);
    }
    // Headers a front proxy would vouch for, and a bearer token in a WebSocket protocol:
    // none is the client's to send.
    let remote: Vec<_> = headers
        .keys()
        .filter(|h| h.as_str().starts_with("x-remote-"))
        .cloned()
        .collect();
    for name in remote {
        headers.remove(name);
    }
    drop_protocol_tokens(headers);
    token.apply(headers);
    if filtered {
        let table = headers
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("as=Table"));
        let accept = match table {
            true => "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            false => "application/json",
        };
        headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
        headers.remove(header::ACCEPT_ENCODING);
    }
    Ok(Request::from_parts(
        parts,
        body.map_err(BoxError::from).boxed(),
    ))
}

/// `GET path` as JSON with `token`: the body, `None` for 404, an error otherwise.
pub(super) async fn get_json(
    upstream: &Upstream,
    token: &UpstreamAuth,
    path: &str,
) -> Result<Option<Bytes>, String> {
    let mut request = Request::get(upstream.uri(path)?)
        .header(header::ACCEPT, "application/json")
        .body(Empty::new().map_err(|n| match n {}).boxed())
        .map_err(|e| e.to_string())?;
    token.apply(request.headers_mut());
    let answer = upstream
        .client(false)
        .request(request)
        .await
        .map_err(|e| format!("cannot reach the cluster: {e}"))?;
    let code = answer.status();
    if code == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let body = http_body_util::Limited::new(answer.into_body(), 4 << 20)
        .collect()
        .await
        .map_err(|e| format!("the cluster's answer: {e}"))?
        .to_bytes();
    if !code.is_success() {
        return Err(format!(
            "{path}: the cluster answered {code} (the proxy must read it to apply this bastion's selectors)"
        ));
    }
    Ok(Some(body))
}

/// What the proxy learned of each cluster's resources: namespaced or not, by cluster,
/// group and version (discovery, asked once with the user's token).
#[derive(Default)]
pub(super) struct Discovery {
    known: Mutex<HashMap<GroupVersion, HashMap<String, bool>>>,
}

/// A cluster, an API group (`None`: the core group) and a version.
type GroupVersion = (String, Option<String>, String);

impl Discovery {
    fn namespaced(
        &self,
        cluster: &str,
        group: Option<&str>,
        version: &str,
        resource: &str,
    ) -> Option<bool> {
        let known = self.known.lock().expect("discovery lock");
        let key = (
            cluster.to_string(),
            group.map(str::to_string),
            version.to_string(),
        );
        known.get(&key)?.get(resource).copied()
    }

    /// Asks the cluster's discovery for the request's group and version, once.
    async fn learn(
        &self,
        upstream: &Upstream,
        token: &UpstreamAuth,
        routed: &Routed,
        api: &policy::ApiRequest,
    ) {
        let key = (
            routed.cluster.clone(),
            api.group.clone(),
            api.version.clone(),
        );
        if self
            .known
            .lock()
            .expect("discovery lock")
            .contains_key(&key)
        {
            return;
        }
        #[derive(Deserialize)]
        struct Resource {
            name: String,
            namespaced: bool,
        }
        #[derive(Deserialize)]
        struct ResourceList {
            resources: Vec<Resource>,
        }
        let path = match &api.group {
            None => format!("/api/{}", api.version),
            Some(g) => format!("/apis/{g}/{}", api.version),
        };
        let Ok(Some(body)) = get_json(upstream, token, &path).await else {
            return;
        };
        let Ok(list) = serde_json::from_slice::<ResourceList>(&body) else {
            return;
        };
        let resources = list
            .resources
            .into_iter()
            .map(|r| (r.name, r.namespaced))
            .collect();
        self.known
            .lock()
            .expect("discovery lock")
            .insert(key, resources);
    }
}

/// A watch's body with only the allowed pods' events: complete lines are judged as they
/// come; a partial line waits for its end (at most [`MAX_LIST`] bytes). A broken upstream
/// ends it with [`watch_broke`]'s event.
fn filtered_watch(
    body: Incoming,
    allowed: impl Fn(&BTreeMap<String, String>) -> bool + Send + Sync + 'static,
    cluster: String,
) -> ProxyBody {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, BoxError>>(16);
    tokio::spawn(async move {
        let mut body = body;
        let mut pending: Vec<u8> = Vec::new();
        loop {
            // A client that has gone (the proxy dropped its answer) ends the watch at once,
            // not at the cluster's next event: its connection to the cluster is let go.
            let frame = tokio::select! {
                frame = body.frame() => frame,
                () = sender.closed() => return,
            };
            let Some(frame) = frame else { return };
            let data = match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
                Err(e) => {
                    let _ = sender.send(Ok(watch_broke(&cluster, &e))).await;
                    return;
                }
            };
            pending.extend_from_slice(&data);
            if pending.len() > MAX_LIST {
                let _ = sender
                    .send(Err("a watch event longer than 64 MiB".into()))
                    .await;
                return;
            }
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if let Some(kept) = filter::event(&line, &allowed)
                    && sender.send(Ok(Bytes::from(kept))).await.is_err()
                {
                    return;
                }
            }
        }
    });
    ChannelBody(receiver).boxed()
}

/// The last line of a watch whose connection to the cluster broke: a watch `ERROR` event
/// with a `Status`, as the API server ends a watch it cannot go on with. kubectl then says
/// why, instead of seeing a reset stream; the client's connection to the proxy stays usable.
fn watch_broke(cluster: &str, why: &dyn std::fmt::Display) -> Bytes {
    #[derive(serde::Serialize)]
    struct WatchError {
        #[serde(rename = "type")]
        kind: &'static str,
        object: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status,
    }
    let message = format!("the connection to cluster {cluster} broke during the watch: {why}");
    let event = WatchError {
        kind: "ERROR",
        object: status_object(StatusCode::BAD_GATEWAY, &message),
    };
    let mut line = serde_json::to_vec(&event).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// A watch passed on as it comes; if the cluster's side breaks, it ends with
/// [`watch_broke`]'s event (on a line of its own) instead of an error.
struct WatchEnd {
    inner: Incoming,
    cluster: String,
    /// Whether the last byte passed on ended a line.
    at_line_start: bool,
    ended: bool,
}

impl WatchEnd {
    fn new(inner: Incoming, cluster: &str) -> WatchEnd {
        WatchEnd {
            inner,
            cluster: cluster.to_string(),
            at_line_start: true,
            ended: false,
        }
    }
}

impl Body for WatchEnd {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                this.ended = true;
                let event = watch_broke(&this.cluster, &e);
                let line = match this.at_line_start {
                    true => event,
                    false => Bytes::from([b"\n".as_slice(), &event].concat()),
                };
                Poll::Ready(Some(Ok(Frame::data(line))))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Some(last) = data.last()
                {
                    this.at_line_start = *last == b'\n';
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other.map_err(BoxError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }
}

/// A body fed by a channel.
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Bytes, BoxError>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|m| m.map(|r| r.map(Frame::data)))
    }
}

/// Exec, attach or port-forward after `101 Switching Protocols`: bytes both ways until
/// both sides have closed; then the audit event, with the bytes and, for an exec or attach,
/// the command's exit code (`exit` reads it as the bytes pass).
async fn splice(
    client: hyper::upgrade::OnUpgrade,
    server: hyper::upgrade::OnUpgrade,
    exit: Exit,
    mut event: ApiEvent,
    policy: ApiAudit,
    session: Option<Caller>,
    _held: Option<Admission>,
) {
    let (Ok(client), Ok(server)) = (client.await, server.await) else {
        return event.emit(policy, 0);
    };
    let (mut client_read, mut client_write) = tokio::io::split(TokioIo::new(client));
    let (mut server_read, mut server_write) = tokio::io::split(TokioIo::new(server));
    // Both directions run in this task and take the reader in turn, never across an await.
    let exit = Mutex::new(exit);
    let look = |up: bool, bytes: &[u8]| {
        let mut exit = exit.lock().expect("exit lock");
        match up {
            true => exit.client_bytes(bytes),
            false => exit.server_bytes(bytes),
        }
    };
    let up = copy_looked_at(&mut client_read, &mut server_write, |b| look(true, b));
    let down = copy_looked_at(&mut server_read, &mut client_write, |b| look(false, b));
    // An exec or port-forward does not outlive its session: both sides are closed when it
    // ends (even if the client's socket is held by a process outside it).
    let session_ended = async {
        match &session {
            Some(caller) => caller.ended().await,
            None => std::future::pending().await,
        }
    };
    let moved = tokio::select! {
        (up, down) = async { tokio::join!(up, down) } => up + down,
        () = session_ended => 0,
    };
    event.status = 101;
    event.exit_code = exit.lock().expect("exit lock").code();
    event.emit(policy, moved);
}

/// Copies `from` to `to` until either side ends, then shuts `to`; each read is shown to
/// `look` before it is forwarded (the client's bytes must be: the server cannot answer a
/// stream before it has been seen). The bytes moved.
async fn copy_looked_at(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    mut look: impl FnMut(&[u8]),
) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 64 << 10];
    let mut moved = 0u64;
    while let Ok(n) = from.read(&mut buffer).await
        && n > 0
    {
        look(&buffer[..n]);
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
        moved += n as u64;
    }
    let _ = to.shutdown().await;
    moved
}

/// A response whose body (a watch, `logs -f`) ends when the caller's session does.
pub(super) fn bound_to_session(
    response: Response<ProxyBody>,
    caller: &Caller,
) -> Response<ProxyBody> {
    if caller.session.is_none() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bound = SessionBound {
        inner: body,
        caller: caller.clone(),
        next_check: Box::pin(tokio::time::sleep(SESSION_RECHECK)),
    };
    Response::from_parts(parts, bound.boxed())
}

/// How often a long answer checks that its session is still live.
const SESSION_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

struct SessionBound {
    inner: ProxyBody,
    caller: Caller,
    next_check: Pin<Box<tokio::time::Sleep>>,
}

impl Body for SessionBound {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        // (Polling the timer again after a reset registers the wake-up of a quiet stream.)
        while this.next_check.as_mut().poll(cx).is_ready() {
            if !this.caller.still_live() {
                return Poll::Ready(Some(Err("the rolesh session has ended".into())));
            }
            let next = tokio::time::Instant::now() + SESSION_RECHECK;
            this.next_check.as_mut().reset(next);
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// A body passed on, counted; its request's audit event is written when it ends.
struct Audited {
    inner: ProxyBody,
    event: Option<(ApiEvent, ApiAudit)>,
    bytes: u64,
    /// A long request's place in its uid's allowance, given back when the body ends.
    _held: Option<Admission>,
}

impl Body for Audited {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.bytes += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        if let Some((event, policy)) = self.event.take() {
            event.emit(policy, self.bytes);
        }
    }
}

/// One request's `api` audit event.
pub(super) struct ApiEvent {
    user: String,
    uid: u32,
    session_id: Option<String>,
    cluster: String,
    verb: Option<Verb>,
    resource: Option<String>,
    subresource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    /// A non-resource request's path (`/version`).
    path: Option<String>,
    /// Exec's command, as the query gives it.
    command: Option<String>,
    /// Whether this is an exec or attach over WebSocket (`v4`/`v5.channel.k8s.io`), whose
    /// exit code the proxy can read.
    exit_code: Option<i32>,
    status: u16,
    refused: bool,
    started: Instant,
}

impl ApiEvent {
    fn new(caller: &Caller, routed: &Routed, request: &Request<Incoming>) -> ApiEvent {
        let api = routed.api.as_ref();
        let command = request.uri().query().map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        });
        ApiEvent {
            user: caller.account.name.clone(),
            uid: caller.account.uid,
            session_id: caller.session.as_ref().map(|s| s.session_id.to_string()),
            cluster: routed.cluster.clone(),
            verb: api.map(|a| a.verb),
            resource: api.map(|a| a.resource.clone()),
            subresource: api.and_then(|a| a.subresource.clone()),
            namespace: api.and_then(|a| a.namespace.clone()),
            name: api.and_then(|a| a.name.clone()),
            path: api
                .is_none()
                .then(|| super::shortened(request.uri().path())),
            command: command.filter(|c| !c.is_empty()),
            exit_code: None,
            status: 0,
            refused: false,
            started: Instant::now(),
        }
    }

    /// Exec, attach or port-forward: the requests that switch protocols.
    fn is_connect(&self) -> bool {
        matches!(
            self.subresource.as_deref(),
            Some("exec" | "attach" | "portforward")
        )
    }

    fn is_exec_or_attach(&self) -> bool {
        matches!(self.subresource.as_deref(), Some("exec" | "attach"))
    }

    /// The proxy's own answer (a refusal, an upstream failure), audited now.
    /// The cluster's answer, passed on; the event is written when its body has been.
    fn passed_on(mut self, config: &Config, response: Response<ProxyBody>) -> Response<ProxyBody> {
        self.status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let audited = Audited {
            inner: body,
            event: Some((self, config.audit.api)),
            bytes: 0,
            _held: None,
        };
        Response::from_parts(parts, audited.boxed())
    }

    fn answered(mut self, config: &Config, response: Response<ProxyBody>) -> Response<ProxyBody> {
        self.status = response.status().as_u16();
        self.emit(config.audit.api, 0);
        response
    }

    /// Whether `[audit] api` wants this one: `all`; `writes` (the default) is every
    /// change, exec/attach/port-forward, and every refusal.
    fn wanted(&self, policy: ApiAudit) -> bool {
        match policy {
            ApiAudit::Off => false,
            ApiAudit::All => true,
            ApiAudit::Writes => {
                self.refused
                    || self.verb.is_some_and(Verb::writes)
                    || matches!(
                        self.subresource.as_deref(),
                        Some("exec" | "attach" | "portforward")
                    )
            }
        }
    }

    fn emit(self, policy: ApiAudit, bytes: u64) {
        if !self.wanted(policy) {
            return;
        }
        let duration_ms = self.started.elapsed().as_millis() as u64;
        tracing::info!(target: "rolesh::audit", event = "api", user = %self.user, uid = self.uid,
            session_id = self.session_id.as_deref(), cluster = %self.cluster,
            verb = self.verb.map(Verb::as_str), resource = self.resource.as_deref(),
            subresource = self.subresource.as_deref(), namespace = self.namespace.as_deref(),
            name = self.name.as_deref(), path = self.path.as_deref(),
            command = self.command.as_deref(), exit_code = self.exit_code,
            status = self.status, duration_ms, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgrade_keeps_only_its_upgrade_and_no_token_in_its_protocols() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, Impersonate-User"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(
                "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.c2VjcmV0",
            ),
        );
        only_the_upgrade(&mut headers);
        drop_protocol_tokens(&mut headers);
        assert_eq!(headers[header::CONNECTION], "Upgrade");
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert!(!headers.contains_key(header::TRANSFER_ENCODING));
        assert_eq!(headers[header::SEC_WEBSOCKET_PROTOCOL], "v5.channel.k8s.io");
    }
}
