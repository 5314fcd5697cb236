//! The Kubernetes API proxy (`[[cluster]] access = "proxy"`): kubectl in a session talks to
//! `https://127.0.0.1:7443/clusters/NAME` (`[broker] proxy_listen`), a server of the
//! broker's own, and never holds a credential EKS accepts. For each connection the proxy
//! asks the kernel who is at the other end (`identity`); for each request it checks the
//! session is still live, refuses `Impersonate-*`, applies the namespace allowlist and the
//! pod selectors (`crate::policy`), signs the user's own EKS token itself (the broker's
//! token cache) and forwards the request on a pooled connection (`upstream`), filtering pod
//! lists and watches (`filter`) and passing upgrades (exec, attach, port-forward) through
//! both ways. Every request is an `api` audit event (`[audit] api`).

mod as_user;
mod ca;
mod credential;
mod exit_status;
pub(crate) mod filter;
mod forward;
mod identity;
mod labels;
mod spdy_status;
mod upstream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use super::connections::{Admission, Connections};
use super::server::Broker;
use crate::config::{ApiAudit, ClusterRoute, Config};
use crate::policy::{self, ApiRequest};
use crate::protocol::{ClusterView, Grant};
use forward::Discovery;
use identity::Caller;
use labels::PodLabels;
use upstream::{ProxyBody, Upstreams};

pub(super) use ca::{ProxyTls, load_or_create as load_tls};

/// How long a client has for TLS and for each request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections one uid may hold open at once (each kubectl call is one; a watch holds one).
const MAX_CONNECTIONS_PER_UID: usize = 512;

/// Long-lived requests (watches, `logs -f`, exec, attach, port-forward) one uid may hold
/// open at once, over all its connections (one HTTP/2 connection carries many).
const MAX_STREAMS_PER_UID: usize = 256;

/// Pod lists one uid may have the proxy hold and filter at once (each up to [`MAX_LIST`]):
/// a user's many parallel lists cannot make the broker hold gigabytes.
const MAX_LISTS_PER_UID: usize = 8;

/// How many of something each uid holds, up to a limit: the broker's own per-uid
/// admission ([`Connections`]), with no total but the per-uid ones.
struct PerUid {
    held: Connections,
    limit: u32,
    what: &'static str,
}

impl PerUid {
    fn new(limit: usize, what: &'static str) -> PerUid {
        PerUid {
            held: Connections::default(),
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            what,
        }
    }

    /// One more for `uid`, given back when the guard drops; `None` past the limit.
    fn hold(&self, uid: u32) -> Option<Admission> {
        self.held
            .admit(uid, u32::MAX, self.limit)
            .inspect_err(|why| warn!(uid, "API proxy, {}: {why}", self.what))
            .ok()
    }
}

/// The path prefix of a cluster on the proxy's one listener.
const CLUSTERS: &str = "/clusters/";
/// How much of a pod list the proxy holds to filter it.
const MAX_LIST: usize = 64 << 20;

/// The proxy: the broker, the TLS identity, and what it keeps between requests.
pub(super) struct Proxy {
    broker: Arc<Broker>,
    tls: tokio_rustls::TlsAcceptor,
    /// What the kubeconfig trusts (base64 PEM of the proxy's CA).
    pub(super) ca_data: String,
    /// Where it listens, as bound (a configured port 0 becomes the kernel's choice).
    pub(super) address: SocketAddr,
    upstreams: Upstreams,
    discovery: Discovery,
    labels: PodLabels,
    credentials: credential::Credentials,
    connections: PerUid,
    streams: PerUid,
    lists: PerUid,
}

/// The local endpoint of `cluster` on a proxy listening at `address`.
pub(super) fn endpoint(address: SocketAddr, cluster: &str) -> String {
    format!("https://{address}{CLUSTERS}{cluster}")
}

impl Proxy {
    /// Binds the listener; [`Proxy::serve`] then accepts on it.
    pub(super) async fn bind(
        broker: Arc<Broker>,
        tls: ProxyTls,
        listen: SocketAddr,
    ) -> Result<(Arc<Proxy>, TcpListener), String> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("the API proxy cannot listen on {listen}: {e}"))?;
        let address = listener
            .local_addr()
            .map_err(|e| format!("the API proxy's address: {e}"))?;
        let proxy = Proxy {
            broker,
            tls: tokio_rustls::TlsAcceptor::from(tls.server),
            ca_data: tls.ca_data,
            address,
            upstreams: Upstreams::default(),
            discovery: Discovery::default(),
            labels: PodLabels::default(),
            credentials: credential::Credentials::default(),
            connections: PerUid::new(MAX_CONNECTIONS_PER_UID, "connections"),
            streams: PerUid::new(MAX_STREAMS_PER_UID, "watches and streams"),
            lists: PerUid::new(MAX_LISTS_PER_UID, "pod lists being filtered"),
        };
        Ok((Arc::new(proxy), listener))
    }

    /// Accepts connections until the broker stops.
    pub(super) async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    // As for the cluster's side: no Nagle delay on small writes.
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(Arc::clone(&self).connection(stream, peer));
                }
                Err(e) => {
                    warn!("API proxy: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// One client connection: who it is (before TLS, from the kernel), then HTTP/1.1 or
    /// HTTP/2 with upgrades. A uid holds at most [`MAX_CONNECTIONS_PER_UID`] at once, and
    /// a connection that does not get through TLS and its first request's headers in time
    /// is dropped: no local user can use up the broker's descriptors.
    async fn connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let Ok(local) = stream.local_addr() else {
            return;
        };
        let require_session = self.broker.config().broker.require_session;
        // The kernel is asked who connected while TLS is negotiated (the answer holds for
        // the connection's life), and a uid over its allowance is dropped as soon as it is
        // known, mid-handshake.
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.tls.accept(stream));
        tokio::pin!(handshake);
        let identify = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            identity::identify(local, peer, require_session),
        );
        tokio::pin!(identify);
        let mut tls = None;
        let identified = loop {
            tokio::select! {
                identified = &mut identify => break identified,
                done = &mut handshake, if tls.is_none() => tls = Some(done),
            }
        };
        let Ok((uid, caller)) = identified else {
            return;
        };
        let Some(_held) = uid.and_then(|uid| self.connections.hold(uid)) else {
            return;
        };
        let caller = Arc::new(caller);
        let tls = match tls {
            Some(done) => done,
            None => handshake.await,
        };
        let Ok(Ok(tls)) = tls else {
            return;
        };
        let service = hyper::service::service_fn(move |request| {
            let proxy = Arc::clone(&self);
            let caller = Arc::clone(&caller);
            async move { Ok::<_, Infallible>(proxy.handle(&caller, request).await) }
        });
        let mut server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        server
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HANDSHAKE_TIMEOUT);
        server
            .http2()
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)));
        let _ = server
            .serve_connection_with_upgrades(TokioIo::new(tls), service)
            .await;
    }

    async fn handle(
        &self,
        caller: &Result<Caller, String>,
        request: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let caller = match caller {
            Ok(c) if c.still_live() => c,
            // 403, not 401: there is no credential to fix, and kubectl shows a 403's reason.
            Ok(_) => return status(StatusCode::FORBIDDEN, "your rolesh session has ended"),
            Err(why) => return status(StatusCode::FORBIDDEN, why),
        };
        self.broker.discovery().first_discovery().await;
        let config = self.broker.config();
        match self.route(&config, caller, &request).await {
            Ok(routed) => {
                let response = self.forward(&config, caller, &routed, request).await;
                forward::bound_to_session(response, caller)
            }
            Err((code, why)) => {
                let refusal = status(code, &why);
                audit_refusal(&config, caller, &request, &refusal, started);
                refusal
            }
        }
    }

    /// The cluster, the API request and the policy's decision, or the refusal.
    async fn route(
        &self,
        config: &Config,
        caller: &Caller,
        request: &Request<Incoming>,
    ) -> Result<Routed, (StatusCode, String)> {
        let path = request.uri().path();
        policy::check_path(path).map_err(|why| (StatusCode::BAD_REQUEST, why))?;
        let Some(rest) = path.strip_prefix(CLUSTERS) else {
            return Err((
                StatusCode::NOT_FOUND,
                "not a cluster of this proxy: the path starts with /clusters/NAME".into(),
            ));
        };
        let (cluster, api_path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let grant = self
            .broker
            .proxy_grant(config, &caller.account)
            .await
            .map_err(|e| (StatusCode::FORBIDDEN, e))?;
        let view = grant
            .cluster(cluster)
            .filter(|v| v.access == ClusterRoute::Proxy)
            .cloned()
            .ok_or_else(|| {
                let who = &caller.account.name;
                let why = format!("cluster {cluster} is not served by this proxy for {who}");
                (StatusCode::NOT_FOUND, why)
            })?;
        let api = policy::parse(request.method(), api_path, request.uri().query());
        // On an API request, impersonation is refused; discovery and `/version`, which
        // kubectl asks first, lose the headers instead (`forward`), so that the refusal
        // kubectl shows is this one.
        if api.is_some()
            && let Some(name) = request
                .headers()
                .keys()
                .find(|h| h.as_str().starts_with("impersonate-"))
        {
            let why = format!("impersonation is not allowed through this bastion (header {name})");
            return Err((StatusCode::FORBIDDEN, why));
        }
        Ok(Routed {
            cluster: cluster.to_string(),
            path_and_query: match request.uri().query() {
                Some(q) => format!("{api_path}?{q}"),
                None => api_path.to_string(),
            },
            api,
            view,
            grant,
        })
    }
}

impl Routed {
    /// The cluster's own path, without the query.
    fn api_path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }
}

/// A request on its way: where it goes and what it is.
struct Routed {
    cluster: String,
    /// The cluster's own path (the `/clusters/NAME` prefix taken off) and query.
    path_and_query: String,
    /// `None` for a non-resource path (`/version`, discovery, `/openapi`).
    api: Option<ApiRequest>,
    view: ClusterView,
    grant: Grant,
}

/// A request refused before it had a cluster (no such cluster for the user, an
/// impersonation header): an `api` event unless `[audit] api = "off"`.
fn audit_refusal(
    config: &Config,
    caller: &Caller,
    request: &Request<Incoming>,
    refusal: &Response<ProxyBody>,
    started: Instant,
) {
    if config.audit.api == ApiAudit::Off {
        return;
    }
    info!(target: "rolesh::audit", event = "api", user = %caller.account.name,
        uid = caller.account.uid,
        session_id = caller.session.as_ref().map(|s| s.session_id.to_string()),
        path = %shortened(request.uri().path()), status = refusal.status().as_u16(),
        duration_ms = started.elapsed().as_millis() as u64, bytes = 0u64);
}

/// A client's path as the trail keeps it: at most 256 characters (a request line may be
/// 64 KiB; one request must not be able to flood the audit trail).
fn shortened(path: &str) -> String {
    const KEPT: usize = 256;
    match path.char_indices().nth(KEPT) {
        Some((end, _)) => format!("{}…", &path[..end]),
        None => path.to_string(),
    }
}

/// A Kubernetes `Status` answer, as the API server writes its refusals.
fn status(code: StatusCode, message: &str) -> Response<ProxyBody> {
    // (k8s-openapi writes `kind` and `apiVersion` itself.)
    let body = serde_json::to_vec(&status_object(code, message)).unwrap_or_default();
    let mut response = Response::new(full(body));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A Kubernetes `Status` of failure: what kubectl prints as "Error from server (REASON)".
fn status_object(
    code: StatusCode,
    message: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Status {
    let reason = match code {
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::NOT_FOUND => "NotFound",
        _ => "ServiceUnavailable",
    };
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Status {
        status: Some("Failure".into()),
        message: Some(message.to_string()),
        reason: Some(reason.into()),
        code: Some(i32::from(code.as_u16())),
        ..Default::default()
    }
}

fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Reads the broker's credential for every `kind = "kubernetes"` cluster: one the broker
/// cannot read or use (a file only root may read while the broker runs as `rolesh`, say)
/// stops a start or a reload, as an invalid configuration does. The messages name files,
/// never what they hold.
pub(crate) fn unusable_credentials(config: &Config) -> Vec<String> {
    let credentials = credential::Credentials::default();
    config
        .clusters
        .iter()
        .filter_map(|c| Some((c.name.as_str(), c.credentials.as_ref()?)))
        .filter_map(|(name, c)| credentials.get(name, &c.source).err())
        .collect()
}

/// The exit codes the WebSocket and the SPDY readers find in one upgraded exec's bytes,
/// each direction read `cut` bytes at a time (the client's first): for the fuzz target
/// `proxy_policy`, through `crate::proxy_fuzz`.
pub(crate) fn exit_codes(client: &[u8], server: &[u8], cut: usize) -> (Option<i32>, Option<i32>) {
    let cut = cut.max(1);
    let mut websocket = exit_status::ExitStatus::default();
    let mut spdy = spdy_status::SpdyExitStatus::default();
    for piece in client.chunks(cut) {
        spdy.client_bytes(piece);
    }
    for piece in server.chunks(cut) {
        websocket.feed(piece);
        spdy.server_bytes(piece);
    }
    (websocket.code(), spdy.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz seeds (made with Python's zlib, another implementation of the SPDY header
    /// compression) read as the exec they are: the first byte splits client from server.
    #[test]
    fn the_fuzz_seeds_exec_streams_give_their_exit_codes() {
        let split = |seed: &'static [u8]| {
            let rest = &seed[1..];
            rest.split_at(rest.len() * usize::from(seed[0]) / 255)
        };
        let (client, server) = split(include_bytes!(
            "../../../fuzz/seeds/proxy_policy/spdy-exec-exit-7"
        ));
        assert_eq!(exit_codes(client, server, 5), (None, Some(7)));
        let (client, server) = split(include_bytes!(
            "../../../fuzz/seeds/proxy_policy/websocket-exec-exit-3"
        ));
        assert_eq!(exit_codes(client, server, 5), (Some(3), None));
    }

    #[test]
    fn a_long_path_is_shortened_for_the_trail() {
        let long = format!("/api/{}", "x".repeat(1000));
        let kept = shortened(&long);
        assert_eq!(kept.chars().count(), 257);
        assert!(kept.ends_with('…'));
        assert_eq!(shortened("/version"), "/version");
    }
}
