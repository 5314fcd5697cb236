//! The fake Kubernetes API server at the HTTP level: token authentication the way EKS does it
//! (tokens crafted with aws-sigv4 and with the AWS CLI), Status errors, discovery, watch, logs
//! and the exec channel protocol (v4 and v5) spoken by a raw WebSocket client.

mod kube;

use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use kube::Cluster;
use rolesh_testkit::fake_aws::{BASE_ACCESS_KEY_ID, BASE_SECRET_ACCESS_KEY};
use rolesh_testkit::fake_k8s::IdentityMapping;
use rolesh_testkit::fake_k8s::token::{TokenSpec, encode_url};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const BASE_ARN: &str = "arn:aws:iam::123456789012:user/rolesh-base";

/// The default cluster, where the fake's base IAM user is also mapped (user `base`, group
/// web-devs), so tokens signed with the base keys are valid unless something is wrong.
fn cluster() -> Cluster {
    Cluster::start_with(|options| {
        options.map_identity(IdentityMapping::new(BASE_ARN, "base", &["web-devs"]))
    })
}

fn base_token(cluster: &str) -> TokenSpec {
    TokenSpec::new(
        BASE_ACCESS_KEY_ID,
        BASE_SECRET_ACCESS_KEY,
        cluster,
        "us-east-1",
    )
}

fn status_json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not a Status ({e}): {body}"))
}

fn assert_unauthorized(cluster: &Cluster, token: &str, reason: &str) {
    cluster.k8s.handle().clear_events();
    let (status, body) = cluster.request(Method::GET, "/api/v1/namespaces", Some(token), "");
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        status_json(&body),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    let events = cluster.k8s.handle().events();
    let event = events.last().expect("an event");
    assert_eq!((event.status, event.user.as_deref()), (401, None));
    assert!(
        event.reason.contains(reason),
        "expected {reason:?} in {:?}",
        event.reason
    );
}

#[test]
fn valid_tokens_authenticate_and_map_the_caller() {
    let cluster = cluster();
    let token = base_token("demo").token();
    let (status, body) = cluster.request(Method::GET, "/api/v1/namespaces", Some(&token), "");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(status_json(&body)["kind"], "NamespaceList");

    // Legacy global endpoint and FIPS forms are public STS hosts too.
    for (host, region) in [
        ("sts.amazonaws.com", "us-east-1"),
        ("sts-fips.us-east-2.amazonaws.com", "us-east-2"),
    ] {
        let mut spec = base_token("demo");
        spec.host = host.to_owned();
        spec.region = region.to_owned();
        let (status, body) = cluster.request(Method::GET, "/version", Some(&spec.token()), "");
        assert_eq!(status, StatusCode::OK, "{host}: {body}");
    }

    // A token is good for 15 minutes, whatever X-Amz-Expires says (60).
    let mut old = base_token("demo");
    old.time = SystemTime::now() - Duration::from_secs(14 * 60);
    let (status, body) = cluster.request(Method::GET, "/version", Some(&old.token()), "");
    assert_eq!(status, StatusCode::OK, "{body}");

    let review = cluster.request(
        Method::POST,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(&token),
        r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#,
    );
    assert_eq!(review.0, StatusCode::CREATED, "{}", review.1);
    let user = &status_json(&review.1)["status"]["userInfo"];
    assert_eq!(user["username"], "base");
    assert_eq!(user["extra"]["accessKeyId"][0], BASE_ACCESS_KEY_ID);
    assert_eq!(user["extra"]["arn"][0], BASE_ARN);
}

#[test]
fn expired_tampered_foreign_and_unknown_tokens_are_401() {
    let cluster = cluster();

    let mut expired = base_token("demo");
    expired.time = SystemTime::now() - Duration::from_secs(16 * 60);
    assert_unauthorized(&cluster, &expired.token(), "expired (15 minute expiration)");

    // Signed for another cluster: the signature over x-k8s-aws-id does not match "demo".
    assert_unauthorized(
        &cluster,
        &base_token("prod").token(),
        "SignatureDoesNotMatch",
    );

    let url = base_token("demo").presigned_url();
    let tampered = [
        (
            url.replace("Version=2011-06-15", "Version=2011-06-16"),
            "version",
        ),
        (
            {
                let (head, signature) = url.rsplit_once("X-Amz-Signature=").expect("signature");
                let flipped = if signature.starts_with('0') { "1" } else { "0" };
                format!("{head}X-Amz-Signature={flipped}{}", &signature[1..])
            },
            "SignatureDoesNotMatch",
        ),
        (
            url.replace("sts.us-east-1.amazonaws.com", "sts.us-west-2.amazonaws.com"),
            "SignatureDoesNotMatch",
        ),
        (
            url.replace(
                "https://sts.us-east-1.amazonaws.com",
                "https://sts.example.com",
            ),
            "hostname",
        ),
        (
            url.replace(
                "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
                "X-Amz-SignedHeaders=host",
            ),
            "x-k8s-aws-id",
        ),
        (
            url.replace("X-Amz-Expires=60", "X-Amz-Expires=900"),
            "X-Amz-Expires",
        ),
        (format!("{url}&X-Amz-Extra=1"), "non-whitelisted"),
    ];
    for (url, reason) in tampered {
        assert_unauthorized(&cluster, &encode_url(&url), reason);
    }

    // Keys STS never issued.
    let unknown = TokenSpec::new(
        "AKIDUNKNOWNKEY000000",
        "not/the/secret",
        "demo",
        "us-east-1",
    );
    assert_unauthorized(&cluster, &unknown.token(), "InvalidClientTokenId");
    // Known key, wrong secret.
    let wrong = TokenSpec::new(BASE_ACCESS_KEY_ID, "not/the/secret", "demo", "us-east-1");
    assert_unauthorized(&cluster, &wrong.token(), "SignatureDoesNotMatch");

    for (token, reason) in [
        ("k8s-aws-v2.abc", "prefix"),
        ("k8s-aws-v1.!!!", "base64"),
        ("not-a-token", "prefix"),
    ] {
        assert_unauthorized(&cluster, token, reason);
    }
}

#[test]
fn unmapped_callers_are_401_like_eks() {
    // No mapping for the base user in the default cluster.
    let cluster = Cluster::start();
    assert_unauthorized(
        &cluster,
        &base_token("demo").token(),
        "ARN is not mapped: arn:aws:iam::123456789012:user/rolesh-base",
    );
}

#[test]
fn kubectl_reports_unauthorized_tokens() {
    let Some(kubectl) = kube::newest() else {
        return;
    };
    let cluster = cluster();
    let mut expired = base_token("demo");
    expired.time = SystemTime::now() - Duration::from_secs(20 * 60);
    let config = cluster.kubeconfig_with_token(&expired.token());
    let err = cluster.fails(&kubectl, &config, &["get", "pods", "-n", "web"]);
    // kubectl 1.33 words it "(the server has asked for the client to provide credentials)".
    assert!(
        err.contains("error: You must be logged in to the server"),
        "{err}"
    );
    let config = cluster.kubeconfig_with_token(&base_token("demo").token());
    assert!(
        cluster
            .ok(&kubectl, &config, &["get", "pods", "-n", "web"])
            .contains("redis-0")
    );
}

/// The AWS CLI (botocore) mints tokens the fake accepts — and, with AWS_ENDPOINT_URL_STS set,
/// tokens naming that endpoint, which EKS (and the fake) refuse (SPEC §3).
#[test]
fn aws_cli_tokens_are_accepted_unless_they_name_a_custom_endpoint() {
    let cluster = cluster();
    let get_token = |extra: &[(&str, String)]| -> Option<String> {
        let mut env: Vec<(&str, String)> = vec![
            ("AWS_ACCESS_KEY_ID", BASE_ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", BASE_SECRET_ACCESS_KEY.to_owned()),
        ];
        env.extend(extra.iter().cloned());
        let home = tempfile::tempdir().expect("home");
        let mut command = std::process::Command::new("aws");
        command
            .args([
                "eks",
                "get-token",
                "--cluster-name",
                "demo",
                "--region",
                "us-east-1",
            ])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for (name, value) in env {
            command.env(name, value);
        }
        let output = match command.output() {
            Ok(output) => output,
            Err(err) => {
                assert!(!kube::require_all(), "the AWS CLI is required: {err}");
                eprintln!("skipping: no AWS CLI ({err})");
                return None;
            }
        };
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let credential: Value = serde_json::from_slice(&output.stdout).expect("ExecCredential");
        Some(
            credential["status"]["token"]
                .as_str()
                .expect("token")
                .to_owned(),
        )
    };
    let Some(token) = get_token(&[]) else { return };
    let (status, body) =
        cluster.request(Method::GET, "/api/v1/namespaces/web/pods", Some(&token), "");
    assert_eq!(status, StatusCode::OK, "{body}");

    let Some(token) = get_token(&[("AWS_ENDPOINT_URL_STS", cluster.aws.endpoint())]) else {
        return;
    };
    // The token names http://127.0.0.1:PORT/.
    assert_unauthorized(&cluster, &token, "unexpected scheme");
}

#[test]
fn anonymous_requests_see_only_public_info() {
    let cluster = Cluster::start();
    let (status, body) = cluster.request(Method::GET, "/version", None, "");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(status_json(&body)["major"], "1");
    let (status, body) = cluster.request(Method::GET, "/api", None, "");
    assert_eq!(status, StatusCode::FORBIDDEN);
    let body = status_json(&body);
    assert_eq!(
        body["message"],
        "forbidden: User \"system:anonymous\" cannot get path \"/api\""
    );
    assert_eq!(body["reason"], "Forbidden");
    let (status, _) = cluster.request(Method::GET, "/api/v1/namespaces", Some(""), "");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[test]
fn forbidden_and_not_found_statuses_read_like_the_api_servers() {
    let cluster = cluster();
    let token = base_token("demo").token();
    let (status, body) = cluster.request(
        Method::GET,
        "/api/v1/namespaces/kube-system/pods/etcd-0",
        Some(&token),
        "",
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        status_json(&body),
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods \"etcd-0\" is forbidden: User \"base\" cannot get resource \"pods\" in API group \"\" in the namespace \"kube-system\"",
            "reason": "Forbidden", "details": {"name": "etcd-0", "kind": "pods"}, "code": 403,
        })
    );
    let (status, body) = cluster.request(
        Method::GET,
        "/api/v1/namespaces/web/pods/ghost",
        Some(&token),
        "",
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(status_json(&body)["message"], "pods \"ghost\" not found");
    let (status, body) = cluster.request(
        Method::GET,
        "/api/v1/namespaces/web/pods?fieldSelector=spec.hostname%3Dx",
        Some(&token),
        "",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        status_json(&body)["message"],
        "field label not supported: spec.hostname"
    );
    let (status, _) = cluster.request(Method::GET, "/apis/batch/v1", Some(&token), "");
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn self_subject_reviews_are_served_in_every_version_kubectl_uses() {
    let cluster = cluster();
    let token = base_token("demo").token();
    for version in ["v1", "v1beta1", "v1alpha1"] {
        let (status, body) = cluster.request(
            Method::POST,
            &format!("/apis/authentication.k8s.io/{version}/selfsubjectreviews"),
            Some(&token),
            &format!(
                r#"{{"apiVersion":"authentication.k8s.io/{version}","kind":"SelfSubjectReview"}}"#
            ),
        );
        assert_eq!(status, StatusCode::CREATED, "{version}: {body}");
        let review = status_json(&body);
        assert_eq!(
            review["apiVersion"],
            format!("authentication.k8s.io/{version}")
        );
        assert_eq!(review["status"]["userInfo"]["username"], "base");
    }
    let (status, body) = cluster.request(
        Method::POST,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        Some(&token),
        r#"{"spec":{"resourceAttributes":{"namespace":"web","verb":"create","resource":"pods","subresource":"exec"}}}"#,
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let status_of = status_json(&body)["status"].clone();
    assert_eq!(status_of["allowed"], true);
    assert_eq!(
        status_of["reason"],
        "RBAC: allowed by RoleBinding \"web-devs-pod-exec/web\" of Role \"pod-exec\" to Group \"web-devs\""
    );
}

#[test]
fn discovery_documents_are_served() {
    let cluster = cluster();
    let token = base_token("demo").token();
    let get = |path: &str| {
        let (status, body) = cluster.request(Method::GET, path, Some(&token), "");
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        status_json(&body)
    };
    assert_eq!(get("/api")["versions"], json!(["v1"]));
    let groups = get("/apis");
    assert_eq!(groups["kind"], "APIGroupList");
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "authentication.k8s.io",
            "authorization.k8s.io",
            "rbac.authorization.k8s.io",
            "apps"
        ]
    );
    let core = get("/api/v1");
    let resources: Vec<&str> = core["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        resources,
        [
            "namespaces",
            "pods",
            "pods/exec",
            "pods/log",
            "configmaps",
            "secrets"
        ]
    );
    assert_eq!(
        get("/apis/authentication.k8s.io/v1beta1")["resources"][0]["kind"],
        "SelfSubjectReview"
    );
    assert_eq!(
        get("/apis/authorization.k8s.io")["preferredVersion"]["version"],
        "v1"
    );
}

#[test]
fn watch_streams_the_current_objects_then_ends_at_the_timeout() {
    let cluster = cluster();
    let token = base_token("demo").token();
    let started = std::time::Instant::now();
    let (status, body) = cluster.request(
        Method::GET,
        "/api/v1/namespaces/web/pods?watch=true&labelSelector=tier%3Dedge&timeoutSeconds=1",
        Some(&token),
        "",
    );
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let events: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("event"))
        .collect();
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(
        events[0]["object"]["metadata"]["name"],
        "edge-proxy-5f6c7d8b9-h2j5k"
    );
}

#[test]
fn logs_are_served_per_container() {
    let cluster = cluster();
    let token = base_token("demo").token();
    let (status, body) = cluster.request(
        Method::GET,
        "/api/v1/namespaces/web/pods/frontend-6d8f7c9b5-x7k2p/log?container=log-shipper",
        Some(&token),
        "",
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("frontend-6d8f7c9b5-x7k2p/log-shipper: fake log line 1"),
        "{body}"
    );
    let (status, body) = cluster.request(
        Method::GET,
        "/api/v1/namespaces/web/pods/frontend-6d8f7c9b5-x7k2p/log",
        Some(&token),
        "",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("a container name must be specified"),
        "{body}"
    );
}

/// Execs `printenv ROLESH_FAKE_CONTAINER` in `pod`/`container` over a raw WebSocket.
fn runtime_exec_ok(cluster: &Cluster, pod: &str, container: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(raw_exec_in(
        cluster,
        pod,
        &format!(
            "command=printenv&command=ROLESH_FAKE_CONTAINER&stdout=true&container={container}"
        ),
        "v5.channel.k8s.io",
        None,
    ));
    assert_eq!(result.stdout, format!("{container}\n"));
    assert_eq!(
        result.status,
        Some(json!({"metadata": {}, "status": "Success"}))
    );
}

/// What a raw exec connection saw: bytes per channel and the status.
#[derive(Debug, Default)]
struct ExecResult {
    protocol: String,
    stdout: String,
    stderr: String,
    status: Option<Value>,
}

/// Execs over a raw WebSocket, offering `protocols`; sends `stdin` then (v5) the close
/// message for stdin.
async fn raw_exec(
    cluster: &Cluster,
    query: &str,
    protocols: &str,
    stdin: Option<&[u8]>,
) -> ExecResult {
    raw_exec_in(cluster, "redis-0", query, protocols, stdin).await
}

async fn raw_exec_in(
    cluster: &Cluster,
    pod: &str,
    query: &str,
    protocols: &str,
    stdin: Option<&[u8]>,
) -> ExecResult {
    let token = base_token("demo").token();
    let url = format!(
        "wss://{}/api/v1/namespaces/web/pods/{pod}/exec?{query}",
        cluster.k8s.addr()
    );
    let mut request = url.into_client_request().expect("request");
    let headers = request.headers_mut();
    headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    headers.insert("sec-websocket-protocol", protocols.parse().expect("header"));
    let stream = kube::tls(&cluster.k8s).await;
    let (mut ws, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("WebSocket handshake");
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if let Some(stdin) = stdin {
        let mut frame = vec![0u8];
        frame.extend_from_slice(stdin);
        ws.send(Message::Binary(frame.into())).await.expect("stdin");
        if protocol.starts_with("v5") {
            ws.send(Message::Binary(vec![255, 0].into()))
                .await
                .expect("close stdin");
        }
    }
    let mut result = ExecResult {
        protocol,
        ..ExecResult::default()
    };
    while let Some(message) = tokio::time::timeout(Duration::from_secs(20), ws.next())
        .await
        .expect("exec finishes")
    {
        match message.expect("frame") {
            Message::Binary(data) if !data.is_empty() => {
                let text = String::from_utf8_lossy(&data[1..]).into_owned();
                match data[0] {
                    1 => result.stdout.push_str(&text),
                    2 => result.stderr.push_str(&text),
                    3 => result.status = Some(serde_json::from_str(&text).expect("Status")),
                    other => panic!("unexpected channel {other}"),
                }
            }
            Message::Close(frame) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000));
                break;
            }
            _ => {}
        }
    }
    result
}

#[test]
fn exec_channels_follow_the_v5_and_v4_protocols() {
    let cluster = cluster();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let script = "command=sh&command=-c&command=cat%3B%20echo%20err%20%3E%262%3B%20exit%203";
        let v5 = raw_exec(
            &cluster,
            &format!("{script}&stdin=true&stdout=true&stderr=true"),
            "v5.channel.k8s.io, v4.channel.k8s.io",
            Some(b"piped\n"),
        )
        .await;
        assert_eq!(v5.protocol, "v5.channel.k8s.io");
        assert_eq!(v5.stdout, "piped\n");
        assert_eq!(v5.stderr, "err\n");
        assert_eq!(
            v5.status,
            Some(json!({
                "metadata": {}, "status": "Failure",
                "message": "command terminated with non-zero exit code: error executing command [sh -c cat; echo err >&2; exit 3], exit code 3",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
            }))
        );

        let v4 = raw_exec(
            &cluster,
            "command=echo&command=hello&stdout=true",
            "v4.channel.k8s.io",
            None,
        )
        .await;
        assert_eq!(v4.protocol, "v4.channel.k8s.io");
        assert_eq!(v4.stdout, "hello\n");
        assert_eq!(v4.status, Some(json!({"metadata": {}, "status": "Success"})));
    });

    // Ephemeral containers can be exec'd into; init containers (finished) and pods that are
    // not running cannot.
    runtime_exec_ok(&cluster, "frontend-6d8f7c9b5-q9m4z", "debugger");
    for (pod, container) in [
        ("frontend-6d8f7c9b5-q9m4z", "migrate"),
        ("frontend-canary-7b5d4c8f9-z8r2w", "nginx"),
    ] {
        let (status, body) = cluster.request(
            Method::GET,
            &format!("/api/v1/namespaces/web/pods/{pod}/exec?command=true&stdout=true&container={container}"),
            Some(&base_token("demo").token()),
            "",
        );
        assert_eq!(status, StatusCode::BAD_REQUEST, "{pod}: {body}");
        assert!(body.contains("container not found"), "{body}");
    }

    // Unsupported subprotocols and SPDY are refused before upgrading.
    let token = base_token("demo").token();
    let (status, body) = cluster.request(
        Method::POST,
        "/api/v1/namespaces/web/pods/redis-0/exec?command=true&stdout=true",
        Some(&token),
        "",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Upgrade request required"), "{body}");
    // Over SPDY, a client sharing no stream protocol with the server (kubectl offers v4
    // first) gets the API server's negotiation error before any stream opens.
    let (status, body) = kube::https_with_headers(
        &cluster.k8s,
        Method::POST,
        "/api/v1/namespaces/web/pods/redis-0/exec?command=true&stdout=true",
        Some(&token),
        &[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "channel.k8s.io"),
        ],
        "",
    );
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("unable to negotiate protocol"), "{body}");
}
