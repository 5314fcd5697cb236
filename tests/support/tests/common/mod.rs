//! Helpers shared by the fake AWS tests: a raw HTTP client, a SigV4 signer (aws-sigv4), and
//! runners for botocore and the AWS CLI.
#![allow(dead_code)]

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rolesh_testkit::fake_aws::{
    BASE_ACCESS_KEY_ID, BASE_SECRET_ACCESS_KEY, EksCluster, FakeAws, FakeAwsOptions,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;

pub const ACCOUNT: &str = "123456789012";
pub const ROLE: &str = "arn:aws:iam::123456789012:role/alice-role";

/// Options with two clusters in us-east-1 and one in eu-west-1.
pub fn options() -> FakeAwsOptions {
    FakeAwsOptions::default()
        .with_cluster(EksCluster::new(
            "demo",
            "https://127.0.0.1:6443",
            "Q0EtZGVtbw==",
        ))
        .with_cluster(EksCluster::new(
            "prod",
            "https://127.0.0.1:6444",
            "Q0EtcHJvZA==",
        ))
        .with_cluster(
            EksCluster::new("euro", "https://127.0.0.1:6445", "Q0EtZXVybw==")
                .in_region("eu-west-1"),
        )
}

/// A key pair to sign with.
#[derive(Clone, Debug)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl Keys {
    pub fn base() -> Self {
        Self::new(BASE_ACCESS_KEY_ID, BASE_SECRET_ACCESS_KEY, None)
    }

    pub fn new(access_key_id: &str, secret_access_key: &str, session_token: Option<&str>) -> Self {
        Self {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            session_token: session_token.map(str::to_owned),
        }
    }

    fn identity(&self) -> Identity {
        Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "test",
        )
        .into()
    }

    /// Environment variables botocore and the AWS CLI read.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
        ];
        if let Some(token) = &self.session_token {
            env.push(("AWS_SESSION_TOKEN", token.clone()));
        }
        env
    }
}

/// A response read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// Text of the first `<tag>` element of an XML body.
    pub fn xml(&self, tag: &str) -> Option<String> {
        let open = format!("<{tag}>");
        let start = self.body.find(&open)? + open.len();
        let end = self.body[start..].find(&format!("</{tag}>"))? + start;
        Some(self.body[start..end].to_owned())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request on a new connection to `addr`, keeping the request's Host header.
pub async fn send(addr: SocketAddr, req: Request<Bytes>) -> Result<Reply, hyper::Error> {
    let stream = TcpStream::connect(addr).await.expect("connect to the fake");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(req.map(Full::new)).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A request for `path_and_query` with the given Host header and body.
pub fn request(method: Method, host: &str, path_and_query: &str, body: &str) -> Request<Bytes> {
    Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(header::HOST, host)
        .body(Bytes::from(body.to_owned()))
        .expect("valid request")
}

/// A form-encoded STS POST (unsigned) for the fake at `addr`.
pub fn sts_post(addr: SocketAddr, params: &[(&str, &str)]) -> Request<Bytes> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut req = request(Method::POST, &addr.to_string(), "/", &body);
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/x-www-form-urlencoded; charset=utf-8"
            .parse()
            .expect("header"),
    );
    req
}

/// Signs `req` in the Authorization header with aws-sigv4.
pub fn sign_request(
    req: &mut Request<Bytes>,
    keys: &Keys,
    region: &str,
    service: &str,
    time: SystemTime,
) {
    let identity = keys.identity();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let body = req.body().clone();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().expect("ascii").to_owned()))
        .collect();
    let uri = req.uri().to_string();
    let signable = SignableRequest::new(
        req.method().as_str(),
        uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&body),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    instructions.apply_to_request_http1x(req);
}

/// A signed AssumeRole / GetCallerIdentity POST.
pub fn signed_sts(
    addr: SocketAddr,
    keys: &Keys,
    params: &[(&str, &str)],
    time: SystemTime,
) -> Request<Bytes> {
    let mut req = sts_post(addr, params);
    sign_request(&mut req, keys, "us-east-1", "sts", time);
    req
}

pub fn assume_role_params<'a>(role: &'a str, session: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("Action", "AssumeRole"),
        ("Version", "2011-06-15"),
        ("RoleArn", role),
        ("RoleSessionName", session),
    ]
}

pub const GET_CALLER_IDENTITY: [(&str, &str); 2] =
    [("Action", "GetCallerIdentity"), ("Version", "2011-06-15")];

/// AssumeRole with the base keys through the raw client; returns the temporary keys.
pub async fn assume(fake: &FakeAws, role: &str, session: &str) -> Keys {
    let req = signed_sts(
        fake.addr(),
        &Keys::base(),
        &assume_role_params(role, session),
        SystemTime::now(),
    );
    let reply = send(fake.addr(), req).await.expect("AssumeRole");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    Keys::new(
        &reply.xml("AccessKeyId").expect("AccessKeyId"),
        &reply.xml("SecretAccessKey").expect("SecretAccessKey"),
        Some(&reply.xml("SessionToken").expect("SessionToken")),
    )
}

/// A presigned GetCallerIdentity URL for `host` (path and query only), signed like
/// `aws eks get-token` (signed headers host;x-k8s-aws-id).
pub fn presign(
    host: &str,
    cluster: &str,
    keys: &Keys,
    region: &str,
    time: SystemTime,
    expires: Duration,
) -> String {
    let identity = keys.identity();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let base = "/?Action=GetCallerIdentity&Version=2011-06-15";
    let signable = SignableRequest::new(
        "GET",
        format!("https://{host}{base}"),
        [("host", host), ("x-k8s-aws-id", cluster)].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("presign").into_parts();
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in instructions.params() {
        query.append_pair(name, value);
    }
    format!("{base}&{}", query.finish())
}

/// GET `path_and_query` with `Host: host` and `x-k8s-aws-id: cluster`, like an EKS authenticator.
pub fn presigned_get(host: &str, path_and_query: &str, cluster: &str) -> Request<Bytes> {
    let mut req = request(Method::GET, host, path_and_query, "");
    req.headers_mut()
        .insert("x-k8s-aws-id", cluster.parse().expect("header"));
    req
}

/// Runs a command with a clean AWS environment: only `env` and PATH, no config files.
pub fn run_isolated(program: &str, args: &[&str], env: &[(&str, String)]) -> Output {
    let home = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .output()
        .unwrap_or_else(|err| panic!("{program} must be installed: {err}"))
}

/// Calls `service`.`operation` through botocore; returns its JSON line (`ok`/`error`/`exception`).
pub fn botocore(
    endpoint: &str,
    keys: &Keys,
    service: &str,
    operation: &str,
    params: Value,
    max_attempts: u32,
) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/botocore_client.py");
    let mut env = keys.env();
    env.push(("ENDPOINT_URL", endpoint.to_owned()));
    env.push(("REGION", "us-east-1".to_owned()));
    env.push(("MAX_ATTEMPTS", max_attempts.to_string()));
    let script = script.to_str().expect("utf-8 path");
    let params = params.to_string();
    let output = run_isolated("python3", &[script, service, operation, &params], &env);
    assert!(
        output.status.success(),
        "botocore failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("botocore JSON output")
}

/// Runs the AWS CLI (v1) with `keys`; returns (exit success, stdout, stderr).
pub fn aws_cli(args: &[&str], keys: &Keys, extra_env: &[(&str, &str)]) -> (bool, String, String) {
    let mut env = keys.env();
    env.extend(extra_env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let output = run_isolated("aws", args, &env);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Blocks on `future` with a fresh current-thread runtime (for synchronous tests).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}
