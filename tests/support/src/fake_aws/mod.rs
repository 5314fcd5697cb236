//! A fake AWS on 127.0.0.1 speaking the real wire protocols, with real SigV4 verification:
//!
//! - STS (query protocol, XML; JSON with `Accept: application/json`): `AssumeRole` and
//!   `GetCallerIdentity`, header-signed or presigned (`k8s-aws-v1.` tokens);
//! - EKS (rest-json): `ListClusters` (`GET /clusters`) and `DescribeCluster`
//!   (`GET /clusters/NAME`);
//! - fault injection and call counters through [`FakeAwsHandle`].
//!
//! Like STS, the fake ignores X-Amz-Expires on presigned STS URLs: they are valid for 15
//! minutes after X-Amz-Date (what EKS tokens, which say X-Amz-Expires=60, rely on).
//!
//! Requests for `/clusters…` go to EKS, everything else to STS, so one endpoint serves both
//! (`AWS_ENDPOINT_URL`).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use rolesh_testkit::fake_aws::{Api, EksCluster, FakeAws, FakeAwsOptions};
//! let fake = FakeAws::start(FakeAwsOptions::default().with_cluster(EksCluster::new(
//!     "prod",
//!     "https://127.0.0.1:6443",
//!     "LS0tLS1CRUdJTi...",
//! )))
//! .await?;
//! fake.handle().throttle_next(Api::Sts, 2);
//! // point a client at fake.endpoint() with the base credentials of fake.options()
//! # Ok(()) }
//! ```

mod eks;
mod sigv4;
mod state;
mod sts;
mod wire;

pub use state::{Api, AssumeRoleRecord, CallerIdentity, Counters, FakeAwsHandle};
pub use wire::AwsError;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use state::State;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use wire::HttpResponse;

/// Default account id of the fake.
pub const DEFAULT_ACCOUNT_ID: &str = "123456789012";
/// Default region: that of clusters without one, and the one written to the env file.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Access key id of the fake's base (IAM user) credentials.
pub const BASE_ACCESS_KEY_ID: &str = "AKIDROLESHTESTBASE";
/// Secret access key of the fake's base credentials.
pub const BASE_SECRET_ACCESS_KEY: &str = "rolesh+test/BASE/secret/0123456789abcdef";
/// Name of the IAM user the base credentials belong to.
pub const BASE_USER_NAME: &str = "rolesh-base";

/// Largest request body the fake reads.
const MAX_BODY: usize = 1 << 20;

/// An EKS cluster the fake describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EksCluster {
    /// Cluster name.
    pub name: String,
    /// API server URL (`https://…`).
    pub endpoint: String,
    /// Base64 of the PEM CA bundle (`certificateAuthority.data`).
    pub certificate_authority_data: String,
    /// Region; `None` means [`FakeAwsOptions::region`].
    pub region: Option<String>,
    /// Kubernetes version, e.g. `1.31`.
    pub version: String,
    /// Cluster status, `ACTIVE` unless changed.
    pub status: String,
    /// Its tags, as DescribeCluster reports them.
    pub tags: std::collections::BTreeMap<String, String>,
    /// Role ARNs whose sessions DescribeCluster refuses (AccessDeniedException), as IAM
    /// would for a role without `eks:DescribeCluster` on it.
    pub denied_roles: Vec<String>,
}

impl EksCluster {
    /// An `ACTIVE` Kubernetes 1.31 cluster in the fake's default region.
    pub fn new(
        name: impl Into<String>,
        endpoint: impl Into<String>,
        certificate_authority_data: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            endpoint: endpoint.into(),
            certificate_authority_data: certificate_authority_data.into(),
            region: None,
            version: "1.31".to_owned(),
            status: "ACTIVE".to_owned(),
            tags: std::collections::BTreeMap::new(),
            denied_roles: Vec::new(),
        }
    }

    /// The same cluster, tagged `key = value`.
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// The same cluster in another status (`CREATING`, …).
    pub fn with_status(mut self, status: impl Into<String>) -> Self {
        self.status = status.into();
        self
    }

    /// The same cluster, which sessions of `role_arn` may not describe.
    pub fn deny_describe_to(mut self, role_arn: impl Into<String>) -> Self {
        self.denied_roles.push(role_arn.into());
        self
    }

    /// The same cluster in `region`.
    pub fn in_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }
}

/// What the fake knows: account, base credentials, clusters, assumable roles.
#[derive(Clone, Debug)]
pub struct FakeAwsOptions {
    /// Account id (default [`DEFAULT_ACCOUNT_ID`]).
    pub account_id: String,
    /// Default region (default [`DEFAULT_REGION`]).
    pub region: String,
    /// Base access key id (default [`BASE_ACCESS_KEY_ID`]).
    pub access_key_id: String,
    /// Base secret access key (default [`BASE_SECRET_ACCESS_KEY`]).
    pub secret_access_key: String,
    /// Clusters EKS lists and describes.
    pub clusters: Vec<EksCluster>,
    /// Role ARNs AssumeRole grants; empty means any role of the account.
    pub allowed_roles: Vec<String>,
    /// Port to bind on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

impl Default for FakeAwsOptions {
    fn default() -> Self {
        Self {
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            region: DEFAULT_REGION.to_owned(),
            access_key_id: BASE_ACCESS_KEY_ID.to_owned(),
            secret_access_key: BASE_SECRET_ACCESS_KEY.to_owned(),
            clusters: Vec::new(),
            allowed_roles: Vec::new(),
            port: 0,
        }
    }
}

impl FakeAwsOptions {
    /// Adds a cluster.
    pub fn with_cluster(mut self, cluster: EksCluster) -> Self {
        self.clusters.push(cluster);
        self
    }

    /// Adds a role ARN to the roles AssumeRole grants (and so restricts it to the listed ones).
    pub fn allow_role(mut self, role_arn: impl Into<String>) -> Self {
        self.allowed_roles.push(role_arn.into());
        self
    }
}

/// A running fake AWS on 127.0.0.1. It serves until dropped (or [`FakeAws::stop`]ped).
pub struct FakeAws {
    addr: SocketAddr,
    handle: FakeAwsHandle,
    _shutdown: oneshot::Sender<()>,
}

impl FakeAws {
    /// Binds 127.0.0.1:`options.port` and serves on the current tokio runtime. The runtime must
    /// keep running while the fake is used (with a current-thread runtime, do not block it on a
    /// child process talking to the fake; use [`FakeAws::start_in_background`] then).
    pub async fn start(options: FakeAwsOptions) -> io::Result<Self> {
        let (listener, state) = bind(options)?;
        let listener = TcpListener::from_std(listener)?;
        let (shutdown, stopped) = oneshot::channel();
        tokio::spawn(serve(listener, Arc::clone(&state), stopped));
        Ok(Self::new(&state, shutdown))
    }

    /// Like [`FakeAws::start`], but serves on its own thread and runtime; usable from
    /// synchronous tests and from any runtime.
    pub fn start_in_background(options: FakeAwsOptions) -> io::Result<Self> {
        let (listener, state) = bind(options)?;
        let (shutdown, stopped) = oneshot::channel();
        let server_state = Arc::clone(&state);
        crate::serve_in_background("fake-aws", listener, move |listener| {
            serve(listener, server_state, stopped)
        })?;
        Ok(Self::new(&state, shutdown))
    }

    fn new(state: &Arc<State>, shutdown: oneshot::Sender<()>) -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, state.options.port)),
            handle: FakeAwsHandle {
                state: Arc::clone(state),
            },
            _shutdown: shutdown,
        }
    }

    /// `http://127.0.0.1:PORT`, for `endpoint_url` / `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The options the fake runs with (`port` is the bound port).
    pub fn options(&self) -> &FakeAwsOptions {
        self.handle.options()
    }

    /// Fault injection, counters and recorded calls.
    pub fn handle(&self) -> &FakeAwsHandle {
        &self.handle
    }

    /// Stops serving: the listener closes and open connections are dropped.
    pub fn stop(self) {}
}

impl fmt::Debug for FakeAws {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeAws").field("addr", &self.addr).finish()
    }
}

/// A request as the services see it: body read in full.
pub(crate) struct HttpRequest {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

fn bind(mut options: FakeAwsOptions) -> io::Result<(StdTcpListener, Arc<State>)> {
    let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, options.port))?;
    listener.set_nonblocking(true)?;
    options.port = listener.local_addr()?.port();
    Ok((listener, Arc::new(State::new(options))))
}

async fn serve(listener: TcpListener, state: Arc<State>, mut stopped: oneshot::Receiver<()>) {
    // Dropping the set when the loop ends aborts every open connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve_connection(stream, Arc::clone(&state)));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, state: Arc<State>) {
    let service = service_fn(move |req| answer(Arc::clone(&state), req));
    // Connection errors (including the injected drops) end the connection; nothing to report.
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Returned by the service to make hyper close the connection without a response.
#[derive(Debug)]
struct DroppedConnection;

impl fmt::Display for DroppedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DroppedConnection {}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<HttpResponse, DroppedConnection> {
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, MAX_BODY).collect().await else {
        let request_id = state.next_request_id();
        let message = "request body too large or unreadable".to_owned();
        return Ok(wire::response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain",
            &request_id,
            message,
        ));
    };
    if state.take_dropped_request() {
        return Err(DroppedConnection);
    }
    let req = HttpRequest {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body: body.to_bytes(),
    };
    let path = req.uri.path();
    if path == "/clusters" || path.starts_with("/clusters/") {
        Ok(eks::handle(&state, &req).await)
    } else {
        Ok(sts::handle(&state, &req).await)
    }
}
