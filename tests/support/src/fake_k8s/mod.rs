//! A fake Kubernetes API server on 127.0.0.1 that real `kubectl` talks to, standing in for an
//! EKS cluster:
//!
//! - HTTPS with its own CA (ECDSA P-256; SAN 127.0.0.1 and localhost), HTTP/2 where the
//!   client offers it (ALPN), else HTTP/1.1 with upgrades; client certificates the CA signed
//!   authenticate their CN in their O groups ([`FakeK8sHandle::client_certificate`]);
//! - authentication as EKS does it ([`auth`]): `k8s-aws-v1.` bearer tokens checked like
//!   aws-iam-authenticator checks them and verified by the fake STS
//!   ([`FakeAwsHandle::presigned_caller_identity`]) for the public STS host they name and this
//!   cluster's name, then mapped through aws-auth-style [`IdentityMapping`]s; any failure is a
//!   401, a request without credentials is `system:anonymous`;
//! - authorization by a real RBAC evaluator ([`Authorizer`]) over Role/ClusterRole/
//!   RoleBinding/ClusterRoleBinding YAML plus the bootstrap policy; a denial is a 403 `Status`
//!   worded like the API server's;
//! - the API: `/version`, discovery (`/api`, `/api/v1`, `/apis`, `/apis/G/V`; no aggregated
//!   discovery, clients fall back), namespaces and pods (get, list, watch; label selectors with
//!   the full syntax, field selectors, Table output), `pods/log`, SelfSubjectReview
//!   (`kubectl auth whoami`), SelfSubjectAccessReview and SelfSubjectRulesReview
//!   (`kubectl auth can-i [--list]`), and `pods/exec` over WebSocket (v5/v4 channel
//!   protocols) running the command as a local process, in a PTY for `tty=true`. Exec needs
//!   `create` on `pods/exec` whatever the method; exec over SPDY/3.1 too (kubectl < 1.30);
//!   `pods/portforward` over SPDY and over a WebSocket that tunnels it, a pod's port being
//!   that port on 127.0.0.1.
//! - fixtures ([`Fixture`]): namespaces and pods from YAML; the default is
//!   `tests/support/fixtures/cluster.yaml` with `tests/support/fixtures/rbac.yaml`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use rolesh_testkit::fake_aws::{FakeAws, FakeAwsOptions};
//! use rolesh_testkit::fake_k8s::{FakeK8s, FakeK8sOptions};
//! let aws = FakeAws::start(FakeAwsOptions::default()).await?;
//! let k8s = FakeK8s::start(FakeK8sOptions::new("demo", aws.handle().clone())).await?;
//! let kubeconfig = k8s.kubeconfig("demo", &rolesh_testkit::fake_k8s::KubeUser::Token("k8s-aws-v1.…".into()));
//! # Ok(()) }
//! ```

mod api;
pub mod auth;
mod exec;
pub mod fixture;
mod impersonate;
pub mod pod_port;
mod portforward;
mod proto;
pub mod rbac;
pub mod selector;
mod spdy;
mod tls;
pub mod token;

pub use auth::{IdentityMapping, UserInfo};
pub use exec::EXEC_PROTOCOLS;
pub use fixture::{DEFAULT_FIXTURE, DEFAULT_RBAC, Fixture};
pub use rbac::{Attributes, Authorizer, Decision, PolicyRule, RbacError};
pub use selector::{FieldSelector, LabelSelector};

use crate::fake_aws::FakeAwsHandle;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use fixture::Rendered;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// The response body type of the server.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

pub(crate) fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).boxed_unsync()
}

/// Whether `ROLESH_TESTKIT_TRACE=1`: requests and exec frames are logged to stderr.
pub(crate) fn trace_enabled() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var("ROLESH_TESTKIT_TRACE").is_ok_and(|v| v == "1"))
}

/// Largest request body read.
const MAX_BODY: usize = 1 << 20;

/// Kubernetes version the fake reports by default (that of EKS clusters of the fake AWS).
pub const DEFAULT_KUBERNETES_VERSION: &str = "1.31";

/// How to start a fake cluster.
#[derive(Clone)]
pub struct FakeK8sOptions {
    /// Cluster name: the `x-k8s-aws-id` tokens must be signed for.
    pub cluster_name: String,
    /// Namespaces and pods.
    pub fixture: Fixture,
    /// RBAC (the bootstrap policy is added at start).
    pub rbac: Authorizer,
    /// Who is who (first match wins).
    pub identity_mappings: Vec<IdentityMapping>,
    /// The fake AWS whose STS verifies tokens.
    pub aws: FakeAwsHandle,
    /// `major.minor` reported by `/version`.
    pub kubernetes_version: String,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Bearer tokens that are not EKS tokens (a service account's, say) and whom each is:
    /// a cluster that is not EKS authenticates its clients so.
    pub static_tokens: Vec<(String, UserInfo)>,
}

impl FakeK8sOptions {
    /// The default fixture and RBAC ([`DEFAULT_FIXTURE`], [`DEFAULT_RBAC`] with its aws-auth
    /// mappings) for cluster `cluster_name`, verified by `aws`.
    pub fn new(cluster_name: impl Into<String>, aws: FakeAwsHandle) -> Self {
        Self {
            cluster_name: cluster_name.into(),
            fixture: Fixture::default_cluster(),
            rbac: Authorizer::from_yaml(DEFAULT_RBAC).expect("the default RBAC is valid"),
            identity_mappings: IdentityMapping::from_aws_auth_yaml(DEFAULT_RBAC)
                .expect("the default aws-auth is valid"),
            aws,
            kubernetes_version: DEFAULT_KUBERNETES_VERSION.to_owned(),
            port: 0,
            static_tokens: Vec::new(),
        }
    }

    /// Accepts bearer `token` as user `username` (groups: `system:authenticated`).
    pub fn with_static_token(mut self, token: impl Into<String>, username: &str) -> Self {
        let user = UserInfo {
            username: username.to_owned(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
            extra: Default::default(),
        };
        self.static_tokens.push((token.into(), user));
        self
    }

    /// Replaces the fixture.
    pub fn with_fixture(mut self, fixture: Fixture) -> Self {
        self.fixture = fixture;
        self
    }

    /// Replaces RBAC and identity mappings with those of `yaml`: its RBAC objects, and the
    /// `aws-auth` ConfigMap (kube-system) if it has one (otherwise the mappings are kept).
    pub fn with_rbac_yaml(mut self, yaml: &str) -> Result<Self, String> {
        self.rbac = Authorizer::from_yaml(yaml).map_err(|e| e.0)?;
        let mappings = IdentityMapping::from_aws_auth_yaml(yaml)?;
        if !mappings.is_empty() {
            self.identity_mappings = mappings;
        }
        Ok(self)
    }

    /// Adds an identity mapping (after the existing ones).
    pub fn map_identity(mut self, mapping: IdentityMapping) -> Self {
        self.identity_mappings.push(mapping);
        self
    }
}

impl fmt::Debug for FakeK8sOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeK8sOptions")
            .field("cluster_name", &self.cluster_name)
            .field("identity_mappings", &self.identity_mappings)
            .field("kubernetes_version", &self.kubernetes_version)
            .field("port", &self.port)
            .field("static_tokens", &self.static_tokens.len())
            .finish_non_exhaustive()
    }
}

/// One request the server answered, for tests to inspect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// HTTP method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// Authenticated username; `None` when authentication failed.
    pub user: Option<String>,
    /// Verb RBAC saw.
    pub verb: String,
    /// Response status.
    pub status: u16,
    /// Why authentication failed, or which binding allowed the request; empty otherwise.
    pub reason: String,
}

pub(crate) struct State {
    pub(crate) cluster: String,
    pub(crate) fixture: Fixture,
    pub(crate) rendered: Rendered,
    pub(crate) authorizer: Authorizer,
    pub(crate) mappings: Vec<IdentityMapping>,
    static_tokens: Vec<(String, UserInfo)>,
    pub(crate) aws: FakeAwsHandle,
    pub(crate) version: Value,
    pub(crate) addr: SocketAddr,
    events: Mutex<Vec<AuditEvent>>,
    /// Bumped to drop every open connection (the server keeps listening).
    cut: tokio::sync::watch::Sender<u64>,
    /// The CA, to issue client certificates.
    issuer: Mutex<Option<tls::ClientIssuer>>,
}

impl State {
    /// Whom a static bearer token is (compared in constant time).
    fn static_user(&self, token: &str) -> Option<UserInfo> {
        use subtle::ConstantTimeEq;
        self.static_tokens
            .iter()
            .find(|(known, _)| bool::from(known.as_bytes().ct_eq(token.as_bytes())))
            .map(|(_, user)| user.clone())
    }

    fn record(&self, event: AuditEvent) {
        if trace_enabled() {
            eprintln!("fake-k8s {}: {event:?}", self.cluster);
        }
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }
}

/// Inspection of a running fake cluster; cheap to clone.
#[derive(Clone)]
pub struct FakeK8sHandle {
    state: Arc<State>,
}

impl FakeK8sHandle {
    /// A client certificate (and its key, PEM) that this cluster authenticates as user `cn`
    /// in groups `organizations`.
    pub fn client_certificate(
        &self,
        cn: &str,
        organizations: &[&str],
    ) -> io::Result<(String, String)> {
        let issuer = self.state.issuer.lock().unwrap_or_else(|p| p.into_inner());
        issuer
            .as_ref()
            .ok_or_else(|| io::Error::other("no CA"))?
            .issue(cn, organizations)
    }

    /// Requests answered so far, oldest first.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.state
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_events(&self) {
        self.state
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Drops every open connection, as a broken network or a restarted API server does
    /// (watches included; a stream already upgraded for exec runs on); new connections
    /// are served as before.
    pub fn cut_connections(&self) {
        self.state.cut.send_modify(|n| *n += 1);
    }

    /// The authorizer the server uses (bootstrap policy included).
    pub fn authorizer(&self) -> &Authorizer {
        &self.state.authorizer
    }
}

/// The user entry of a kubeconfig written by [`FakeK8s::kubeconfig`].
#[derive(Clone, Debug)]
pub enum KubeUser {
    /// A static bearer token.
    Token(String),
    /// An exec credential plugin (`client.authentication.k8s.io/v1beta1`).
    Exec {
        /// Program.
        command: String,
        /// Arguments.
        args: Vec<String>,
        /// Environment variables.
        env: Vec<(String, String)>,
    },
    /// A client certificate and its key, PEM.
    ClientCertificate {
        /// The certificate.
        certificate_pem: String,
        /// Its key.
        key_pem: String,
    },
}

/// A kubeconfig (YAML) with one cluster (`server`, `certificate-authority-data`), user and
/// context, all named `context`, the current context.
pub fn kubeconfig(context: &str, server: &str, ca_data: &str, user: &KubeUser) -> String {
    let user = match user {
        KubeUser::Token(token) => json!({"token": token}),
        KubeUser::Exec { command, args, env } => json!({"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": command,
            "args": args,
            "env": env.iter().map(|(name, value)| json!({"name": name, "value": value})).collect::<Vec<_>>(),
            "interactiveMode": "Never",
            "provideClusterInfo": false,
        }}),
        KubeUser::ClientCertificate {
            certificate_pem,
            key_pem,
        } => json!({
            "client-certificate-data": STANDARD.encode(certificate_pem),
            "client-key-data": STANDARD.encode(key_pem),
        }),
    };
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {
            "server": server,
            "certificate-authority-data": ca_data,
        }}],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
        "preferences": {},
    });
    serde_yaml_ng::to_string(&config).expect("a kubeconfig serializes")
}

/// A running fake Kubernetes API server on 127.0.0.1. It serves until dropped (or
/// [`FakeK8s::stop`]ped).
pub struct FakeK8s {
    addr: SocketAddr,
    ca_pem: String,
    cluster: String,
    handle: FakeK8sHandle,
    _shutdown: oneshot::Sender<()>,
}

impl FakeK8s {
    /// Binds 127.0.0.1:`options.port` and serves on the current tokio runtime (which must keep
    /// running while the server is used; with a current-thread runtime, use
    /// [`FakeK8s::start_in_background`] when a child process talks to it).
    pub async fn start(options: FakeK8sOptions) -> io::Result<Self> {
        let (listener, state, acceptor, ca_pem) = bind(options)?;
        let listener = TcpListener::from_std(listener)?;
        let (shutdown, stopped) = oneshot::channel();
        tokio::spawn(serve(listener, acceptor, Arc::clone(&state), stopped));
        Ok(Self::new(state, ca_pem, shutdown))
    }

    /// Like [`FakeK8s::start`], but serves on its own thread and runtime.
    pub fn start_in_background(options: FakeK8sOptions) -> io::Result<Self> {
        let (listener, state, acceptor, ca_pem) = bind(options)?;
        let (shutdown, stopped) = oneshot::channel();
        let server_state = Arc::clone(&state);
        crate::serve_in_background("fake-k8s", listener, move |listener| {
            serve(listener, acceptor, server_state, stopped)
        })?;
        Ok(Self::new(state, ca_pem, shutdown))
    }

    fn new(state: Arc<State>, ca_pem: String, shutdown: oneshot::Sender<()>) -> Self {
        Self {
            addr: state.addr,
            ca_pem,
            cluster: state.cluster.clone(),
            handle: FakeK8sHandle { state },
            _shutdown: shutdown,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The cluster's name.
    pub fn cluster_name(&self) -> &str {
        &self.cluster
    }

    /// PEM of the CA that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Base64 of [`FakeK8s::ca_pem`]: a kubeconfig's `certificate-authority-data`, rolesh's
    /// `certificate_authority_data`, EKS's `certificateAuthority.data`.
    pub fn ca_data(&self) -> String {
        STANDARD.encode(&self.ca_pem)
    }

    /// Requests log and authorizer.
    pub fn handle(&self) -> &FakeK8sHandle {
        &self.handle
    }

    /// A kubeconfig (YAML) for this cluster with one cluster, user and context, all named
    /// `context`, the current context.
    pub fn kubeconfig(&self, context: &str, user: &KubeUser) -> String {
        kubeconfig(context, &self.endpoint(), &self.ca_data(), user)
    }

    /// Stops serving: the listener closes and open connections are dropped.
    pub fn stop(self) {}
}

impl fmt::Debug for FakeK8s {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeK8s")
            .field("addr", &self.addr)
            .field("cluster", &self.cluster)
            .finish()
    }
}

fn bind(options: FakeK8sOptions) -> io::Result<(StdTcpListener, Arc<State>, TlsAcceptor, String)> {
    let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, options.port))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let tls = tls::generate(&options.cluster_name)?;
    let minor = options
        .kubernetes_version
        .split('.')
        .nth(1)
        .unwrap_or("31")
        .to_owned();
    let version = json!({
        "major": "1",
        "minor": format!("{minor}+"),
        "gitVersion": format!("v{}.0-eks-fake", options.kubernetes_version),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-01-01T00:00:00Z",
        "goVersion": "go1.22.5",
        "compiler": "gc",
        "platform": "linux/amd64",
    });
    let state = Arc::new(State {
        cluster: options.cluster_name,
        fixture: options.fixture,
        rendered: Rendered {
            started: SystemTime::now(),
        },
        authorizer: options.rbac.with_bootstrap_policy(),
        mappings: options.identity_mappings,
        static_tokens: options.static_tokens,
        aws: options.aws,
        version,
        addr,
        events: Mutex::default(),
        cut: tokio::sync::watch::Sender::new(0),
        issuer: Mutex::default(),
    });
    *state.issuer.lock().unwrap_or_else(|p| p.into_inner()) = Some(tls.issuer);
    Ok((listener, state, TlsAcceptor::from(tls.config), tls.ca_pem))
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    mut stopped: oneshot::Receiver<()>,
) {
    // Dropping the set when the loop ends aborts every open connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    // As the API server's (Go's) sockets: no Nagle delay on small writes.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, acceptor.clone(), Arc::clone(&state)));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, acceptor: TlsAcceptor, state: Arc<State>) {
    let mut cut = state.cut.subscribe();
    tokio::select! {
        _ = serve_tls(stream, acceptor, state) => {}
        _ = cut.changed() => {}
    }
}

async fn serve_tls(stream: TcpStream, acceptor: TlsAcceptor, state: Arc<State>) {
    let Ok(Ok(tls)) =
        tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)).await
    else {
        return;
    };
    // A verified client certificate authenticates the connection's requests.
    let certified = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| tls::certificate_user(leaf))
        .map(|(username, mut groups)| {
            groups.push("system:authenticated".into());
            UserInfo {
                username,
                uid: String::new(),
                groups,
                extra: Default::default(),
            }
        });
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        let certified = certified.clone();
        async move { Ok::<_, Infallible>(handle(state, req, certified).await) }
    });
    // HTTP/2 where the client offers it (as the API server), HTTP/1.1 with upgrades.
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(tls), service)
        .await;
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    certified: Option<UserInfo>,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let info = api::request_info(&method, &path, req.uri().query().unwrap_or(""));
    let mut event = AuditEvent {
        method: method.to_string(),
        path: path.clone(),
        user: None,
        verb: info.attributes.verb.clone(),
        status: 0,
        reason: String::new(),
    };
    // The x509 authenticator first, as in the API server; then tokens.
    let user = match bearer(req.headers()) {
        _ if certified.is_some() => Ok(certified.expect("certified")),
        None if req.headers().contains_key(header::AUTHORIZATION) => {
            Err("unsupported Authorization scheme".to_owned())
        }
        None => Ok(UserInfo::anonymous()),
        Some(token) => match state.static_user(token) {
            Some(user) => Ok(user),
            None => auth::authenticate(token, &state.cluster, &state.aws, &state.mappings).await,
        },
    };
    let user = match user {
        Ok(user) => user,
        Err(reason) => {
            event.status = 401;
            event.reason = reason;
            state.record(event);
            return api::unauthorized();
        }
    };
    let user = match impersonate::effective_user(&state.authorizer, user, req.headers()) {
        Ok(user) => user,
        Err(refused) => {
            event.status = refused.status().as_u16();
            state.record(event);
            return *refused;
        }
    };
    event.user = Some(user.username.clone());
    let decision = state
        .authorizer
        .authorize(&user.username, &user.groups, &info.attributes);
    if !decision.allowed {
        let response = api::forbidden(&user, &info.attributes);
        event.status = response.status().as_u16();
        state.record(event);
        return response;
    }
    event.reason = decision.reason;
    let a = &info.attributes;
    let connect = a.resource_request
        && a.api_group.is_empty()
        && a.resource == "pods"
        && matches!(a.subresource.as_str(), "exec" | "portforward");
    let response = if connect {
        match state.fixture.pod(&a.namespace, &a.name) {
            Some(pod) if a.subresource == "exec" => exec::exec(&state, &info, pod, req),
            Some(pod) => portforward::portforward(&state, &info, pod, req),
            None => api::not_found("pods", &a.name),
        }
    } else {
        let headers = req.headers().clone();
        let body = if method == Method::POST || method == Method::PUT || method == Method::PATCH {
            match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => {
                    let response = api::status(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "RequestEntityTooLarge",
                        "request body too large or unreadable",
                        None,
                    );
                    event.status = 413;
                    state.record(event);
                    return response;
                }
            }
        } else {
            Bytes::new()
        };
        api::route(&state, &info, &user, &headers, body).await
    };
    event.status = response.status().as_u16();
    state.record(event);
    response
}
