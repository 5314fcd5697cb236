//! The connections to each cluster's API server: one pool a cluster, HTTP/2 where the
//! server offers it, and a separate HTTP/1.1 pool for upgrades (exec, attach,
//! port-forward over WebSocket or SPDY), which HTTP/2 cannot carry. Each trusts the
//! cluster's own CA only.
//!
//! An upgraded connection never returns to its pool, so each exec would wait for a new TLS
//! handshake with the cluster. The upgrade pool therefore keeps one spare: opened when a
//! request names a pod (kubectl GETs the pod before it execs) and when an upgraded
//! connection ends,
//! with a `GET /version` whose answer (200, or 401 where anonymous requests are off) leaves
//! the connection idle in the pool. No user's token goes with it; on a cluster whose
//! broker credential is a client certificate, the connection presents that certificate, as
//! every connection to that cluster does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::credential::ClientIdentity;
use base64::Engine;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A body the proxy sends or passes on.
pub(super) type ProxyBody = BoxBody<Bytes, BoxError>;
pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Https = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// TCP to an API server, with Nagle's algorithm off: a proxy's small writes (a request,
/// an exec's keystrokes and frames) must not wait for the peer's delayed ACK (40 ms).
fn tcp() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http
}

/// How long an idle connection stays in a pool (and so how long a spare is good for).
const IDLE: Duration = Duration::from_secs(90);

/// One cluster's API server.
pub(super) struct Upstream {
    /// `https://HOST[:PORT][/PREFIX]`, no trailing slash.
    base: String,
    pooled: Https,
    upgrades: Https,
    spare: Arc<Mutex<Spare>>,
}

/// The upgrade pool's spare connection, as far as the proxy knows.
#[derive(Default)]
struct Spare {
    /// When it was left idle in the pool.
    ready_since: Option<Instant>,
    warming: bool,
}

impl Upstream {
    fn new(
        endpoint: &str,
        ca_data: &str,
        client: Option<&ClientIdentity>,
    ) -> Result<Upstream, String> {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(ca_data.trim())
            .map_err(|e| format!("the cluster's CA is not base64: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("the cluster's CA is not PEM: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("the cluster's CA is unusable: {e}"))?;
        }
        let tls = || {
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))
            .and_then(|b| {
                let b = b.with_root_certificates(roots.clone());
                match client {
                    None => Ok(b.with_no_client_auth()),
                    Some(identity) => {
                        let (chain, key) = client_certificate(identity)?;
                        b.with_client_auth_cert(chain, key)
                            .map_err(|e| format!("the broker's client certificate: {e}"))
                    }
                }
            })
        };
        let pooled = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls()?)
            .https_only()
            .enable_all_versions()
            .wrap_connector(tcp());
        let upgrades = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls()?)
            .https_only()
            .enable_http1()
            .wrap_connector(tcp());
        let client = |connector| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(IDLE)
                .build(connector)
        };
        Ok(Upstream {
            base: endpoint.trim_end_matches('/').to_string(),
            pooled: client(pooled),
            upgrades: client(upgrades),
            spare: Arc::default(),
        })
    }

    /// Leaves a connection idle in the upgrade pool for the next exec, attach or
    /// port-forward, unless one is there or on its way.
    pub(super) fn warm_upgrades(&self) {
        {
            let mut spare = self.spare.lock().expect("spare lock");
            let ready = spare.ready_since.is_some_and(|at| at.elapsed() < IDLE / 2);
            if spare.warming || ready {
                return;
            }
            spare.warming = true;
        }
        let spare = Arc::clone(&self.spare);
        let client = self.upgrades.clone();
        let request = self.uri("/version").and_then(|uri| {
            http::Request::get(uri)
                .body(empty())
                .map_err(|e| e.to_string())
        });
        tokio::spawn(async move {
            let warmed = match request {
                Ok(request) => match client.request(request).await {
                    // Reading the answer to its end returns the connection to the pool.
                    Ok(answer) => http_body_util::BodyExt::collect(answer.into_body())
                        .await
                        .is_ok(),
                    Err(_) => false,
                },
                Err(_) => false,
            };
            let mut spare = spare.lock().expect("spare lock");
            spare.warming = false;
            spare.ready_since = warmed.then(Instant::now);
        });
    }

    /// An upgrade is about to take the spare (if there is one); another is opened for the
    /// one after it.
    pub(super) fn upgrade_starts(&self) {
        self.spare.lock().expect("spare lock").ready_since = None;
    }

    /// The URI of `path_and_query` on this server.
    pub(super) fn uri(&self, path_and_query: &str) -> Result<http::Uri, String> {
        format!("{}{path_and_query}", self.base)
            .parse()
            .map_err(|e| format!("bad upstream URI: {e}"))
    }

    /// The client for a request: the upgrade pool for an upgrade (or a watch).
    pub(super) fn client(&self, upgrade: bool) -> &Https {
        if upgrade {
            &self.upgrades
        } else {
            &self.pooled
        }
    }
}

/// Every cluster's [`Upstream`], made on first use and made again when the cluster's
/// endpoint or CA changes.
#[derive(Default)]
pub(super) struct Upstreams {
    by_cluster: Mutex<HashMap<String, Made>>,
}

/// An upstream and what it was made for.
struct Made {
    endpoint: String,
    ca_data: String,
    client: Option<ClientIdentity>,
    upstream: Arc<Upstream>,
}

/// A PEM certificate chain and its key (PKCS#8, PKCS#1 or SEC1).
fn client_certificate(
    identity: &ClientIdentity,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    String,
> {
    let chain = CertificateDer::pem_slice_iter(&identity.certificate_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "the broker's client certificate is not PEM".to_string())?;
    if chain.is_empty() {
        return Err("the broker's client certificate file holds no certificate".into());
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&identity.key_pem)
        .map_err(|_| "the broker's client key is not a PEM private key".to_string())?;
    Ok((chain, key))
}

impl Upstreams {
    pub(super) fn get(
        &self,
        cluster: &str,
        endpoint: &str,
        ca_data: &str,
        client: Option<ClientIdentity>,
    ) -> Result<Arc<Upstream>, String> {
        let mut all = self.by_cluster.lock().expect("upstreams lock");
        if let Some(made) = all.get(cluster)
            && made.endpoint == endpoint
            && made.ca_data == ca_data
            && made.client == client
        {
            return Ok(Arc::clone(&made.upstream));
        }
        let upstream = Arc::new(Upstream::new(endpoint, ca_data, client.as_ref())?);
        let made = Made {
            endpoint: endpoint.to_string(),
            ca_data: ca_data.to_string(),
            client,
            upstream: Arc::clone(&upstream),
        };
        all.insert(cluster.to_string(), made);
        Ok(upstream)
    }
}

fn empty() -> ProxyBody {
    use http_body_util::BodyExt;
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}
