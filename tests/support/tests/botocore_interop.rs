//! Interop with signers nobody here wrote: botocore and the AWS CLI v1.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Keys, ROLE, aws_cli, block_on, botocore, presigned_get, send};
use http::{StatusCode, Uri};
use rolesh_testkit::fake_aws::{Api, FakeAws};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};
use time::OffsetDateTime;
use time::macros::format_description;

fn start() -> FakeAws {
    FakeAws::start_in_background(common::options()).expect("start fake AWS")
}

/// AssumeRole through botocore; returns the response's `ok` object.
fn assume_role_with_botocore(fake: &FakeAws, session: &str) -> Value {
    let params = json!({
        "RoleArn": ROLE,
        "RoleSessionName": session,
        "SourceIdentity": session,
        "DurationSeconds": 900,
        "Tags": [{"Key": "unix_user", "Value": session}, {"Key": "bastion", "Value": "b-1"}],
    });
    let out = botocore(
        &fake.endpoint(),
        &Keys::base(),
        "sts",
        "AssumeRole",
        params,
        1,
    );
    out["ok"].clone()
}

fn temporary_keys(response: &Value) -> Keys {
    let creds = &response["Credentials"];
    Keys::new(
        creds["AccessKeyId"].as_str().expect("AccessKeyId"),
        creds["SecretAccessKey"].as_str().expect("SecretAccessKey"),
        Some(creds["SessionToken"].as_str().expect("SessionToken")),
    )
}

#[test]
fn botocore_assume_role_returns_credentials_and_is_recorded() {
    let fake = start();
    let response = assume_role_with_botocore(&fake, "alice");

    let creds = &response["Credentials"];
    let access_key = creds["AccessKeyId"].as_str().expect("AccessKeyId");
    assert!(
        access_key.starts_with("ASIA") && access_key.len() == 20,
        "{access_key}"
    );
    assert_eq!(creds["SecretAccessKey"].as_str().map(str::len), Some(40));
    assert!(
        !creds["SessionToken"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(
        response["AssumedRoleUser"]["Arn"],
        "arn:aws:sts::123456789012:assumed-role/alice-role/alice"
    );
    let role_id = response["AssumedRoleUser"]["AssumedRoleId"]
        .as_str()
        .expect("id");
    assert!(
        role_id.starts_with("AROA") && role_id.ends_with(":alice"),
        "{role_id}"
    );
    assert_eq!(response["SourceIdentity"], "alice");
    assert!(response["PackedPolicySize"].as_u64().is_some_and(|n| n > 0));

    let records = fake.handle().assume_role_requests();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.role_arn, ROLE);
    assert_eq!(record.role_session_name, "alice");
    assert_eq!(record.source_identity.as_deref(), Some("alice"));
    assert_eq!(
        record.tags,
        [
            ("unix_user".into(), "alice".into()),
            ("bastion".into(), "b-1".into())
        ]
    );
    assert_eq!(record.caller_access_key_id, "AKIDROLESHTESTBASE");
    assert_eq!(record.issued_access_key_id, access_key);

    // Expiration = now + DurationSeconds, as botocore parsed it.
    let lifetime = record
        .expiration
        .duration_since(SystemTime::now())
        .expect("future");
    assert!((Duration::from_secs(850)..=Duration::from_secs(900)).contains(&lifetime));
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]+00:00");
    let expected = OffsetDateTime::from(record.expiration)
        .format(format)
        .expect("format");
    assert_eq!(creds["Expiration"], expected);
}

#[test]
fn botocore_get_caller_identity_sees_the_assumed_role_and_the_base_user() {
    let fake = start();
    let keys = temporary_keys(&assume_role_with_botocore(&fake, "alice"));
    let endpoint = fake.endpoint();

    let out = botocore(&endpoint, &keys, "sts", "GetCallerIdentity", json!({}), 1);
    assert_eq!(
        out["ok"]["Arn"],
        "arn:aws:sts::123456789012:assumed-role/alice-role/alice"
    );
    assert_eq!(out["ok"]["Account"], "123456789012");
    assert!(
        out["ok"]["UserId"]
            .as_str()
            .is_some_and(|id| id.ends_with(":alice"))
    );

    let out = botocore(
        &endpoint,
        &Keys::base(),
        "sts",
        "GetCallerIdentity",
        json!({}),
        1,
    );
    assert_eq!(
        out["ok"]["Arn"],
        "arn:aws:iam::123456789012:user/rolesh-base"
    );
    assert_eq!(fake.handle().counters().get_caller_identity, 2);
}

#[test]
fn botocore_sees_sts_errors_with_their_codes() {
    let fake = start();
    let endpoint = fake.endpoint();
    let wrong = Keys::new("AKIDROLESHTESTBASE", "not-the-secret", None);
    let out = botocore(&endpoint, &wrong, "sts", "GetCallerIdentity", json!({}), 1);
    assert_eq!(out["error"]["Code"], "SignatureDoesNotMatch");
    assert_eq!(out["error"]["HTTPStatusCode"], 403);

    // botocore checks lengths and ranges itself, not patterns: a space gets to the server.
    let params = json!({"RoleArn": ROLE, "RoleSessionName": "al ice"});
    let out = botocore(&endpoint, &Keys::base(), "sts", "AssumeRole", params, 1);
    assert_eq!(out["error"]["Code"], "ValidationError", "{out}");
    assert_eq!(out["error"]["HTTPStatusCode"], 400);
}

#[test]
fn botocore_retries_through_throttling_and_sees_dropped_connections() {
    let fake = start();
    let endpoint = fake.endpoint();
    fake.handle().throttle_next(Api::Sts, 3);
    let out = botocore(
        &endpoint,
        &Keys::base(),
        "sts",
        "GetCallerIdentity",
        json!({}),
        4,
    );
    assert_eq!(
        out["ok"]["Arn"], "arn:aws:iam::123456789012:user/rolesh-base",
        "{out}"
    );
    assert_eq!(fake.handle().counters().get_caller_identity, 4);

    fake.handle().drop_next_connections(1);
    let out = botocore(
        &endpoint,
        &Keys::base(),
        "sts",
        "GetCallerIdentity",
        json!({}),
        1,
    );
    assert!(
        out["exception"]
            .as_str()
            .is_some_and(|e| e.contains("Connection")),
        "{out}"
    );
}

/// `aws eks get-token` for `cluster` with `keys`; returns the presigned URL inside the token.
fn aws_eks_get_token(keys: &Keys, cluster: &str, sts_endpoints: &str) -> Uri {
    let (ok, stdout, stderr) = aws_cli(
        &[
            "eks",
            "get-token",
            "--cluster-name",
            cluster,
            "--region",
            "us-east-1",
        ],
        keys,
        &[("AWS_STS_REGIONAL_ENDPOINTS", sts_endpoints)],
    );
    assert!(ok, "aws eks get-token failed: {stderr}");
    let credential: Value = serde_json::from_str(&stdout).expect("ExecCredential JSON");
    let token = credential["status"]["token"].as_str().expect("token");
    let encoded = token.strip_prefix("k8s-aws-v1.").expect("token prefix");
    let url = URL_SAFE_NO_PAD.decode(encoded).expect("base64url");
    String::from_utf8(url).expect("utf-8").parse().expect("URL")
}

#[test]
fn aws_eks_get_token_is_verified_for_the_public_sts_host_it_names() {
    let fake = start();
    let keys = temporary_keys(&assume_role_with_botocore(&fake, "alice"));
    let assumed = "arn:aws:sts::123456789012:assumed-role/alice-role/alice";

    for (mode, expected_host) in [
        ("regional", "sts.us-east-1.amazonaws.com"),
        ("legacy", "sts.amazonaws.com"),
    ] {
        let url = aws_eks_get_token(&keys, "demo", mode);
        let host = url.host().expect("host");
        assert_eq!(host, expected_host);
        let path = url.path_and_query().expect("query").as_str();
        assert!(path.contains("X-Amz-Security-Token="), "{path}");

        let reply = block_on(send(fake.addr(), presigned_get(host, path, "demo"))).expect("send");
        assert_eq!(reply.status, StatusCode::OK, "{mode}: {}", reply.body);
        assert_eq!(reply.xml("Arn").as_deref(), Some(assumed));

        // The same URL, answered in-process (what the fake EKS API server will do).
        let identity = block_on(
            fake.handle()
                .presigned_caller_identity(&url.to_string(), &[("x-k8s-aws-id", "demo")]),
        )
        .expect("in-process verification");
        assert_eq!(identity.arn, assumed);
    }

    let url = aws_eks_get_token(&keys, "demo", "regional");
    let path = url.path_and_query().expect("query").as_str();
    // A token for another cluster, or replayed against another STS host, does not verify.
    let other_cluster = presigned_get("sts.us-east-1.amazonaws.com", path, "prod");
    let reply = block_on(send(fake.addr(), other_cluster)).expect("send");
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.xml("Code").as_deref(), Some("SignatureDoesNotMatch"));
    let other_host = presigned_get("sts.eu-west-1.amazonaws.com", path, "demo");
    let reply = block_on(send(fake.addr(), other_host)).expect("send");
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[test]
fn aws_cli_lists_and_describes_clusters() {
    let fake = start();
    let endpoint = fake.endpoint();
    let eks = |args: &[&str]| {
        let mut all = vec!["eks", "--endpoint-url", &endpoint, "--region", "us-east-1"];
        all.extend_from_slice(args);
        aws_cli(&all, &Keys::base(), &[])
    };

    let (ok, stdout, stderr) = eks(&["list-clusters"]);
    assert!(ok, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(listed["clusters"], json!(["demo", "prod"]));

    let (ok, stdout, stderr) = eks(&["describe-cluster", "--name", "demo"]);
    assert!(ok, "{stderr}");
    let described: Value = serde_json::from_str(&stdout).expect("JSON");
    let cluster = &described["cluster"];
    assert_eq!(cluster["name"], "demo");
    assert_eq!(
        cluster["arn"],
        "arn:aws:eks:us-east-1:123456789012:cluster/demo"
    );
    assert_eq!(cluster["endpoint"], "https://127.0.0.1:6443");
    assert_eq!(cluster["certificateAuthority"]["data"], "Q0EtZGVtbw==");
    assert_eq!(cluster["status"], "ACTIVE");
    assert!(cluster["version"].is_string() && cluster["platformVersion"].is_string());

    let (ok, _, stderr) = eks(&["describe-cluster", "--name", "euro"]);
    assert!(!ok);
    assert!(stderr.contains("ResourceNotFoundException"), "{stderr}");

    let counters = fake.handle().counters();
    assert_eq!((counters.list_clusters, counters.describe_cluster), (1, 2));
}
