//! Helpers for the fake Kubernetes API server tests: which real kubectl binaries to run, the
//! rolesh binary as exec credential plugin, kubeconfigs, and a raw HTTPS client.
#![allow(dead_code)]

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rolesh_testkit::fake_aws::{
    BASE_ACCESS_KEY_ID, BASE_SECRET_ACCESS_KEY, FakeAws, FakeAwsOptions,
};
use rolesh_testkit::fake_k8s::{FakeK8s, FakeK8sOptions, KubeUser};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The role alice's tokens are for; the default fixture maps it to user `alice`, group
/// `web-devs`.
pub const ALICE_ROLE: &str = "arn:aws:iam::123456789012:role/bastion-alice";
/// Mapped to user `bob`, who has no RBAC.
pub const BOB_ROLE: &str = "arn:aws:iam::123456789012:role/bastion-bob";

/// Whether every optional tool must be present (CI).
pub fn require_all() -> bool {
    std::env::var("ROLESH_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// A kubectl binary and its client version.
#[derive(Clone, Debug)]
pub struct Kubectl {
    pub path: PathBuf,
    pub minor: u32,
    pub git_version: String,
}

impl Kubectl {
    /// Whether it execs over WebSocket (1.30+); older ones speak SPDY only.
    pub fn websocket_exec(&self) -> bool {
        self.minor >= 30
    }

    /// Whether it has `kubectl auth whoami` (1.27+ with v1beta1, 1.26 alpha).
    pub fn has_whoami(&self) -> bool {
        self.minor >= 27
    }
}

fn probe(path: &Path) -> Option<Kubectl> {
    let output = Command::new(path)
        .args(["version", "--client", "-o", "json"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let client = &json["clientVersion"];
    let minor = client["minor"]
        .as_str()?
        .trim_end_matches('+')
        .parse()
        .ok()?;
    Some(Kubectl {
        path: path.to_owned(),
        minor,
        git_version: client["gitVersion"].as_str().unwrap_or("").to_owned(),
    })
}

fn newest_gcloud() -> Option<PathBuf> {
    let dir = Path::new("/usr/lib/google-cloud-sdk/bin");
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(minor) = name
            .strip_prefix("kubectl.1.")
            .and_then(|m| m.parse::<u32>().ok())
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| minor > *b) {
            best = Some((minor, entry.path()));
        }
    }
    best.map(|(_, path)| path)
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Returns `found`, or (when it is missing) panics under ROLESH_REQUIRE_ALL=1 and otherwise
/// reports the skip.
fn required(what: &str, how: &str, found: Option<Kubectl>) -> Option<Kubectl> {
    if found.is_none() {
        assert!(
            !require_all(),
            "{what} is required (ROLESH_REQUIRE_ALL=1) but missing: {how}"
        );
        eprintln!("skipping {what}: missing ({how})");
    }
    found
}

/// The newest kubectl here: $ROLESH_KUBECTL, else the highest google-cloud-sdk
/// `kubectl.1.N`, else `kubectl` on PATH. Must be 1.30+ (WebSocket exec).
pub fn newest() -> Option<Kubectl> {
    static NEWEST: OnceLock<Option<Kubectl>> = OnceLock::new();
    NEWEST
        .get_or_init(|| {
            let path = std::env::var_os("ROLESH_KUBECTL")
                .map(PathBuf::from)
                .or_else(newest_gcloud)
                .or_else(|| on_path("kubectl"));
            let found = path.and_then(|p| probe(&p)).filter(|k| k.minor >= 30);
            required(
                "a kubectl 1.30+",
                "set ROLESH_KUBECTL or install google-cloud-sdk's kubectl",
                found,
            )
        })
        .clone()
}

/// Debian's kubectl 1.20 (package kubernetes-client): $ROLESH_KUBECTL_OLD, /usr/bin/kubectl if
/// it is 1.20, or /opt/kubernetes-client/usr/bin/kubectl (where
/// tests/support/scripts/install-kubectl-1.20 unpacks it when /usr/bin/kubectl is taken).
pub fn debian_1_20() -> Option<Kubectl> {
    static OLD: OnceLock<Option<Kubectl>> = OnceLock::new();
    OLD.get_or_init(|| {
        let candidates: Vec<PathBuf> = match std::env::var_os("ROLESH_KUBECTL_OLD") {
            Some(path) => vec![PathBuf::from(path)],
            None => vec![
                PathBuf::from("/usr/bin/kubectl"),
                PathBuf::from("/opt/kubernetes-client/usr/bin/kubectl"),
            ],
        };
        let found = candidates
            .iter()
            .filter_map(|p| probe(p))
            .find(|k| k.minor == 20);
        required(
            "Debian's kubectl 1.20",
            "apt-get install kubernetes-client, or tests/support/scripts/install-kubectl-1.20",
            found,
        )
    })
    .clone()
}

/// google-cloud-sdk's kubectl 1.27, the last minor before WebSocket exec and the one the
/// issue names for SPDY: $ROLESH_KUBECTL_SPDY, else /usr/lib/google-cloud-sdk/bin/kubectl.1.27.
pub fn spdy_1_27() -> Option<Kubectl> {
    static SPDY: OnceLock<Option<Kubectl>> = OnceLock::new();
    SPDY.get_or_init(|| {
        let path = std::env::var_os("ROLESH_KUBECTL_SPDY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/lib/google-cloud-sdk/bin/kubectl.1.27"));
        required(
            "kubectl 1.27 (SPDY exec)",
            "set ROLESH_KUBECTL_SPDY or install google-cloud-sdk's kubectl",
            probe(&path).filter(|k| k.minor == 27),
        )
    })
    .clone()
}

/// Every kubectl that execs over SPDY: Debian's 1.20 and 1.27.
pub fn spdy() -> Vec<Kubectl> {
    [debian_1_20(), spdy_1_27()].into_iter().flatten().collect()
}

/// /usr/bin/kubectl, whatever version it is (here often google-cloud-sdk's dispatcher).
pub fn system() -> Option<Kubectl> {
    static SYSTEM: OnceLock<Option<Kubectl>> = OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            required(
                "/usr/bin/kubectl",
                "apt-get install kubernetes-client",
                probe(Path::new("/usr/bin/kubectl")),
            )
        })
        .clone()
}

/// Every distinct kubectl to test with: the newest, Debian's 1.20, and /usr/bin/kubectl.
pub fn all() -> Vec<Kubectl> {
    let mut all: Vec<Kubectl> = Vec::new();
    for k in [newest(), debian_1_20(), system()].into_iter().flatten() {
        let canonical = std::fs::canonicalize(&k.path).unwrap_or_else(|_| k.path.clone());
        if !all.iter().any(|seen| {
            std::fs::canonicalize(&seen.path).unwrap_or_else(|_| seen.path.clone()) == canonical
        }) {
            all.push(k);
        }
    }
    all
}

/// The rolesh binary: $ROLESH_BIN, else the workspace's target/debug/rolesh, else built into
/// a separate target directory (the running `cargo test` holds the workspace's).
pub fn rolesh_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("ROLESH_BIN") {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "ROLESH_BIN={} does not exist",
                path.display()
            );
            return path;
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        let built = target.join("debug/rolesh");
        if built.is_file() {
            return built;
        }
        let separate = workspace.join("target/rolesh-testkit");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-p", "rolesh", "--bin", "rolesh", "--target-dir"])
            .arg(&separate)
            .current_dir(&workspace)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p rolesh failed");
        separate.join("debug/rolesh")
    })
    .clone()
}

/// A fake AWS and a fake cluster `demo` with the default fixture and RBAC, plus a scratch
/// HOME for kubectl.
pub struct Cluster {
    pub aws: FakeAws,
    pub k8s: FakeK8s,
    pub home: TempDir,
}

impl Cluster {
    pub fn start() -> Self {
        Self::start_with(|options| options)
    }

    pub fn start_with(configure: impl FnOnce(FakeK8sOptions) -> FakeK8sOptions) -> Self {
        let aws = FakeAws::start_in_background(FakeAwsOptions::default()).expect("fake AWS");
        let options = configure(FakeK8sOptions::new("demo", aws.handle().clone()));
        let k8s = FakeK8s::start_in_background(options).expect("fake k8s");
        let home = tempfile::tempdir().expect("home");
        Self { aws, k8s, home }
    }

    /// The environment of the exec plugin: the fake's base credentials and its STS.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), BASE_ACCESS_KEY_ID.into()),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                BASE_SECRET_ACCESS_KEY.into(),
            ),
            ("AWS_ENDPOINT_URL_STS".into(), self.aws.endpoint()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }

    /// Writes a kubeconfig whose user runs `rolesh token --cluster-name demo --role-arn ROLE`.
    pub fn kubeconfig_for_role(&self, role_arn: &str) -> PathBuf {
        let user = KubeUser::Exec {
            command: rolesh_bin().to_string_lossy().into_owned(),
            args: [
                "token",
                "--cluster-name",
                "demo",
                "--region",
                "us-east-1",
                "--role-arn",
                role_arn,
            ]
            .map(str::to_owned)
            .to_vec(),
            env: self.aws_env(),
        };
        let name = role_arn.rsplit('/').next().unwrap_or("user");
        let path = self.home.path().join(format!("kubeconfig-{name}"));
        std::fs::write(&path, self.k8s.kubeconfig("demo", &user)).expect("kubeconfig");
        path
    }

    /// Writes a kubeconfig with a static bearer token.
    pub fn kubeconfig_with_token(&self, token: &str) -> PathBuf {
        let path = self.home.path().join("kubeconfig-token");
        std::fs::write(
            &path,
            self.k8s
                .kubeconfig("demo", &KubeUser::Token(token.to_owned())),
        )
        .expect("kubeconfig");
        path
    }

    /// kubectl with a clean environment (PATH, HOME, KUBECONFIG only).
    pub fn kubectl(&self, kubectl: &Kubectl, kubeconfig: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(&kubectl.path);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null());
        command
    }

    /// Runs kubectl and returns its output.
    pub fn run(&self, kubectl: &Kubectl, kubeconfig: &Path, args: &[&str]) -> Output {
        self.kubectl(kubectl, kubeconfig, args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", kubectl.path.display()))
    }

    /// Runs kubectl and returns its stdout, asserting success.
    pub fn ok(&self, kubectl: &Kubectl, kubeconfig: &Path, args: &[&str]) -> String {
        let output = self.run(kubectl, kubeconfig, args);
        assert!(
            output.status.success(),
            "kubectl {} ({}) failed: {}\n{}",
            args.join(" "),
            kubectl.git_version,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    /// Runs kubectl, asserting failure; returns stderr.
    pub fn fails(&self, kubectl: &Kubectl, kubeconfig: &Path, args: &[&str]) -> String {
        let output = self.run(kubectl, kubeconfig, args);
        assert!(
            !output.status.success(),
            "kubectl {} ({}) should fail: {}",
            args.join(" "),
            kubectl.git_version,
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// One HTTPS request to the fake cluster (trusting its CA), with an optional bearer token.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, String) {
        https(&self.k8s, method, path, token, body)
    }
}

/// Pod names in the first column of `kubectl get pods` output (header skipped).
pub fn names(output: &str) -> Vec<String> {
    let mut names: Vec<String> = output
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS connection to the fake cluster, verified against its CA for `127.0.0.1`.
pub async fn tls(k8s: &FakeK8s) -> tokio_rustls::client::TlsStream<TcpStream> {
    let connector = TlsConnector::from(client_config(k8s.ca_pem()));
    let tcp = TcpStream::connect(k8s.addr()).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    connector.connect(name, tcp).await.expect("TLS handshake")
}

/// One HTTPS request on a new connection.
pub fn https(
    k8s: &FakeK8s,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    https_with_headers(k8s, method, path, token, &[], body)
}

/// One HTTPS request on a new connection, with extra headers.
pub fn https_with_headers(
    k8s: &FakeK8s,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let stream = tls(k8s).await;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP handshake");
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", k8s.addr().to_string())
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
}
