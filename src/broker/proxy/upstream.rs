//! The connections to each cluster's API server: one pool a cluster, HTTP/2 where the
//! server offers it, and a separate HTTP/1.1 pool for upgrades (exec, attach,
//! port-forward over WebSocket or SPDY), which HTTP/2 cannot carry. Each trusts the
//! cluster's own CA only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// One cluster's API server.
pub(super) struct Upstream {
    /// `https://HOST[:PORT][/PREFIX]`, no trailing slash.
    base: String,
    pooled: Https,
    upgrades: Https,
}

impl Upstream {
    fn new(endpoint: &str, ca_data: &str) -> Result<Upstream, String> {
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
            .map(|b| {
                b.with_root_certificates(roots.clone())
                    .with_no_client_auth()
            })
            .map_err(|e| format!("TLS: {e}"))
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
                .pool_idle_timeout(Duration::from_secs(90))
                .build(connector)
        };
        Ok(Upstream {
            base: endpoint.trim_end_matches('/').to_string(),
            pooled: client(pooled),
            upgrades: client(upgrades),
        })
    }

    /// The URI of `path_and_query` on this server.
    pub(super) fn uri(&self, path_and_query: &str) -> Result<http::Uri, String> {
        format!("{}{path_and_query}", self.base)
            .parse()
            .map_err(|e| format!("bad upstream URI: {e}"))
    }

    /// The client for a request: the upgrade pool for an upgrade.
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
    upstream: Arc<Upstream>,
}

impl Upstreams {
    pub(super) fn get(
        &self,
        cluster: &str,
        endpoint: &str,
        ca_data: &str,
    ) -> Result<Arc<Upstream>, String> {
        let mut all = self.by_cluster.lock().expect("upstreams lock");
        if let Some(made) = all.get(cluster)
            && made.endpoint == endpoint
            && made.ca_data == ca_data
        {
            return Ok(Arc::clone(&made.upstream));
        }
        let upstream = Arc::new(Upstream::new(endpoint, ca_data)?);
        let made = Made {
            endpoint: endpoint.to_string(),
            ca_data: ca_data.to_string(),
            upstream: Arc::clone(&upstream),
        };
        all.insert(cluster.to_string(), made);
        Ok(upstream)
    }
}
