//! Requests the fake must refuse, each with the status and error code real AWS sends.

mod common;

use common::{
    GET_CALLER_IDENTITY, Keys, ROLE, assume, assume_role_params, presign, presigned_get, request,
    send, sign_request, signed_sts, sts_post,
};
use http::{Method, StatusCode};
use rolesh_testkit::fake_aws::{FakeAws, FakeAwsOptions};
use std::time::{Duration, SystemTime};

const STS_HOST: &str = "sts.us-east-1.amazonaws.com";

async fn start() -> FakeAws {
    FakeAws::start(common::options()).await.expect("start")
}

/// Asserts an STS query-protocol error: status, code, shape.
fn assert_sts_error(reply: &common::Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.xml("Code").as_deref(), Some(code), "{}", reply.body);
    assert!(
        reply.body.starts_with(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>"
        ),
        "{}",
        reply.body
    );
    let request_id = reply.xml("RequestId").expect("RequestId");
    assert_eq!(reply.header("x-amzn-requestid"), Some(request_id.as_str()));
}

async fn caller_identity(fake: &FakeAws, keys: &Keys, time: SystemTime) -> common::Reply {
    let req = signed_sts(fake.addr(), keys, &GET_CALLER_IDENTITY, time);
    send(fake.addr(), req).await.expect("send")
}

#[tokio::test]
async fn correctly_signed_requests_are_accepted() {
    let fake = start().await;
    let reply = caller_identity(&fake, &Keys::base(), SystemTime::now()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.body.starts_with(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/rolesh-base</Arn>"
    ));
    assert!(reply.xml("UserId").is_some_and(|id| id.starts_with("AIDA")));
    assert!(reply.xml("RequestId").is_some());
}

#[tokio::test]
async fn header_signed_get_with_query_parameters_is_accepted() {
    let fake = start().await;
    let host = fake.addr().to_string();
    let path = "/?Action=GetCallerIdentity&Version=2011-06-15";
    let mut req = request(Method::GET, &host, path, "");
    sign_request(
        &mut req,
        &Keys::base(),
        "us-east-1",
        "sts",
        SystemTime::now(),
    );
    let reply = send(fake.addr(), req).await.expect("send");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.xml("Account").as_deref(), Some("123456789012"));
}

#[tokio::test]
async fn errors_are_json_when_json_is_accepted() {
    let fake = start().await;
    let keys = Keys::new("AKIDNOBODYKNOWS00000", "whatever", None);
    let mut req = signed_sts(fake.addr(), &keys, &GET_CALLER_IDENTITY, SystemTime::now());
    req.headers_mut()
        .insert("accept", "application/json".parse().expect("header"));
    let reply = send(fake.addr(), req).await.expect("send");
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let json = reply.json();
    assert_eq!(json["Error"]["Code"], "InvalidClientTokenId");
    assert_eq!(json["Error"]["Type"], "Sender");
    assert!(json["RequestId"].is_string());
}

#[tokio::test]
async fn wrong_secret_is_signature_does_not_match() {
    let fake = start().await;
    let keys = Keys::new("AKIDROLESHTESTBASE", "wrong-secret", None);
    let reply = caller_identity(&fake, &keys, SystemTime::now()).await;
    assert_sts_error(&reply, StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    assert_eq!(reply.xml("Type").as_deref(), Some("Sender"));
}

#[tokio::test]
async fn tampered_body_is_signature_does_not_match() {
    let fake = start().await;
    let mut req = signed_sts(
        fake.addr(),
        &Keys::base(),
        &assume_role_params(ROLE, "alice"),
        SystemTime::now(),
    );
    let body = String::from_utf8(req.body().to_vec()).expect("utf-8");
    *req.body_mut() = body.replace("alice", "mallory").into();
    let reply = send(fake.addr(), req).await.expect("send");
    assert_sts_error(&reply, StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
}

#[tokio::test]
async fn unknown_access_key_is_invalid_client_token_id() {
    let fake = start().await;
    let keys = Keys::new("AKIDNOBODYKNOWS00000", "whatever", None);
    let reply = caller_identity(&fake, &keys, SystemTime::now()).await;
    assert_sts_error(&reply, StatusCode::FORBIDDEN, "InvalidClientTokenId");
}

#[tokio::test]
async fn missing_signature_is_refused() {
    let fake = start().await;
    let reply = send(fake.addr(), sts_post(fake.addr(), &GET_CALLER_IDENTITY))
        .await
        .expect("send");
    assert_sts_error(&reply, StatusCode::FORBIDDEN, "MissingAuthenticationToken");
}

#[tokio::test]
async fn stale_header_signature_is_refused() {
    let fake = start().await;
    let ten_minutes_ago = SystemTime::now() - Duration::from_secs(600);
    let reply = caller_identity(&fake, &Keys::base(), ten_minutes_ago).await;
    assert_sts_error(&reply, StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    assert!(reply.body.contains("Signature expired"), "{}", reply.body);
}

#[tokio::test]
async fn temporary_credentials_need_their_own_session_token() {
    let fake = start().await;
    let mut keys = assume(&fake, ROLE, "alice").await;
    let reply = caller_identity(&fake, &keys, SystemTime::now()).await;
    assert_eq!(
        reply.xml("Arn").as_deref(),
        Some("arn:aws:sts::123456789012:assumed-role/alice-role/alice")
    );

    keys.session_token = Some("IQoJb3JpZ2luX2VjEOTHER".to_owned());
    let reply = caller_identity(&fake, &keys, SystemTime::now()).await;
    assert_sts_error(&reply, StatusCode::FORBIDDEN, "InvalidClientTokenId");
    keys.session_token = None;
    let reply = caller_identity(&fake, &keys, SystemTime::now()).await;
    assert_sts_error(&reply, StatusCode::FORBIDDEN, "InvalidClientTokenId");
}

#[tokio::test]
async fn expired_temporary_credentials_are_expired_token() {
    let fake = start().await;
    fake.handle()
        .set_credential_duration(Some(Duration::from_secs(1)));
    let keys = assume(&fake, ROLE, "alice").await;
    let reply = caller_identity(&fake, &keys, SystemTime::now()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reply = caller_identity(&fake, &keys, SystemTime::now()).await;
    assert_sts_error(&reply, StatusCode::FORBIDDEN, "ExpiredToken");
}

async fn assume_with(fake: &FakeAws, params: &[(&str, &str)]) -> common::Reply {
    let req = signed_sts(fake.addr(), &Keys::base(), params, SystemTime::now());
    send(fake.addr(), req).await.expect("send")
}

#[tokio::test]
async fn invalid_assume_role_parameters_are_validation_errors() {
    let fake = start().await;
    let long = "x".repeat(65);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        assume_role_params(ROLE, "a"),
        assume_role_params(ROLE, &long),
        assume_role_params(ROLE, "al ice"),
        assume_role_params("arn:aws:iam::123456789012:user/alice", "alice"),
        assume_role_params("not-an-arn-but-long-enough", "alice"),
        [
            assume_role_params(ROLE, "alice"),
            vec![("DurationSeconds", "899")],
        ]
        .concat(),
        [
            assume_role_params(ROLE, "alice"),
            vec![("DurationSeconds", "43201")],
        ]
        .concat(),
        [
            assume_role_params(ROLE, "alice"),
            vec![("SourceIdentity", "a")],
        ]
        .concat(),
        [
            assume_role_params(ROLE, "alice"),
            vec![("SourceIdentity", "aws:alice")],
        ]
        .concat(),
        vec![("Action", "AssumeRole"), ("RoleArn", ROLE)],
    ];
    for params in &cases {
        let reply = assume_with(&fake, params).await;
        assert_sts_error(&reply, StatusCode::BAD_REQUEST, "ValidationError");
    }
    assert!(fake.handle().assume_role_requests().is_empty());

    let ok = [
        assume_role_params(ROLE, "a.b@c-d_e+f=g,h"),
        vec![("DurationSeconds", "43200")],
    ]
    .concat();
    assert_eq!(assume_with(&fake, &ok).await.status, StatusCode::OK);
}

#[tokio::test]
async fn too_many_tags_are_a_validation_error() {
    let fake = start().await;
    let names: Vec<(String, String)> = (1..=51)
        .flat_map(|n| {
            [
                (format!("Tags.member.{n}.Key"), format!("k{n}")),
                (format!("Tags.member.{n}.Value"), "v".into()),
            ]
        })
        .collect();
    let mut params = assume_role_params(ROLE, "alice");
    params.extend(names.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert_sts_error(
        &assume_with(&fake, &params).await,
        StatusCode::BAD_REQUEST,
        "ValidationError",
    );
    params.truncate(4 + 100);
    assert_eq!(assume_with(&fake, &params).await.status, StatusCode::OK);
}

#[tokio::test]
async fn roles_outside_the_account_or_the_allow_list_are_access_denied() {
    let options = FakeAwsOptions::default().allow_role(ROLE);
    let fake = FakeAws::start(options).await.expect("start");
    for role in [
        "arn:aws:iam::210987654321:role/alice-role",
        "arn:aws:iam::123456789012:role/other-role",
    ] {
        let reply = assume_with(&fake, &assume_role_params(role, "alice")).await;
        assert_sts_error(&reply, StatusCode::FORBIDDEN, "AccessDenied");
        assert!(
            reply.body.contains("user/rolesh-base is not authorized"),
            "{}",
            reply.body
        );
    }
    let reply = assume_with(&fake, &assume_role_params(ROLE, "alice")).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn role_chaining_is_limited_to_one_hour() {
    let fake = start().await;
    let keys = assume(&fake, ROLE, "alice").await;
    let params = [
        assume_role_params(ROLE, "alice"),
        vec![("DurationSeconds", "7200")],
    ]
    .concat();
    let req = signed_sts(fake.addr(), &keys, &params, SystemTime::now());
    let reply = send(fake.addr(), req).await.expect("send");
    assert_sts_error(&reply, StatusCode::BAD_REQUEST, "ValidationError");
}

#[tokio::test]
async fn valid_presigned_url_is_accepted() {
    let fake = start().await;
    let keys = assume(&fake, ROLE, "alice").await;
    let url = presign(
        STS_HOST,
        "demo",
        &keys,
        "us-east-1",
        SystemTime::now(),
        Duration::from_secs(60),
    );
    let reply = send(fake.addr(), presigned_get(STS_HOST, &url, "demo"))
        .await
        .expect("send");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.xml("Arn").as_deref(),
        Some("arn:aws:sts::123456789012:assumed-role/alice-role/alice")
    );

    // aws-iam-authenticator asks for JSON.
    let mut req = presigned_get(STS_HOST, &url, "demo");
    req.headers_mut()
        .insert("accept", "application/json".parse().expect("header"));
    let reply = send(fake.addr(), req).await.expect("send");
    let json = reply.json();
    let result = &json["GetCallerIdentityResponse"]["GetCallerIdentityResult"];
    assert_eq!(
        result["Arn"],
        "arn:aws:sts::123456789012:assumed-role/alice-role/alice"
    );
    assert_eq!(result["Account"], "123456789012");
}

#[tokio::test]
async fn tampered_presigned_url_is_refused() {
    let fake = start().await;
    let url = presign(
        STS_HOST,
        "demo",
        &Keys::base(),
        "us-east-1",
        SystemTime::now(),
        Duration::from_secs(60),
    );
    assert!(url.contains("X-Amz-Expires=60"), "{url}");
    for tampered in [
        url.replace("X-Amz-Expires=60", "X-Amz-Expires=61"),
        url.replace("Version=2011-06-15", "Version=2011-06-16"),
        format!("{url}&Extra=1"),
    ] {
        let reply = send(fake.addr(), presigned_get(STS_HOST, &tampered, "demo"))
            .await
            .expect("send");
        assert_sts_error(&reply, StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    }
}

#[tokio::test]
async fn expired_presigned_url_is_refused() {
    let fake = start().await;
    // STS ignores X-Amz-Expires on presigned URLs: they live 15 minutes after X-Amz-Date,
    // which is what lets EKS tokens (X-Amz-Expires=60) be used for 14 minutes.
    let sixteen_minutes_ago = SystemTime::now() - Duration::from_secs(16 * 60);
    for expires in [60, 900] {
        let url = presign(
            STS_HOST,
            "demo",
            &Keys::base(),
            "us-east-1",
            sixteen_minutes_ago,
            Duration::from_secs(expires),
        );
        let reply = send(fake.addr(), presigned_get(STS_HOST, &url, "demo"))
            .await
            .expect("send");
        assert_sts_error(&reply, StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
        assert!(reply.body.contains("Signature expired"), "{}", reply.body);
    }

    // Two minutes is past X-Amz-Expires=60 but within STS's 15 minutes.
    let url = presign(
        STS_HOST,
        "demo",
        &Keys::base(),
        "us-east-1",
        SystemTime::now() - Duration::from_secs(120),
        Duration::from_secs(60),
    );
    let reply = send(fake.addr(), presigned_get(STS_HOST, &url, "demo"))
        .await
        .expect("send");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn presigned_scope_region_must_match_the_public_host() {
    let fake = start().await;
    let url = presign(
        STS_HOST,
        "demo",
        &Keys::base(),
        "eu-west-1",
        SystemTime::now(),
        Duration::from_secs(60),
    );
    let reply = send(fake.addr(), presigned_get(STS_HOST, &url, "demo"))
        .await
        .expect("send");
    assert_sts_error(&reply, StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    assert!(reply.body.contains("valid region"), "{}", reply.body);
}

#[tokio::test]
async fn in_process_presigned_verification_refuses_what_http_refuses() {
    let fake = start().await;
    let path = presign(
        STS_HOST,
        "demo",
        &Keys::base(),
        "us-east-1",
        SystemTime::now(),
        Duration::from_secs(60),
    );
    let url = format!("https://{STS_HOST}{path}");
    let ok = fake
        .handle()
        .presigned_caller_identity(&url, &[("x-k8s-aws-id", "demo")])
        .await;
    assert_eq!(
        ok.expect("valid").arn,
        "arn:aws:iam::123456789012:user/rolesh-base"
    );
    let err = fake
        .handle()
        .presigned_caller_identity(&url, &[("x-k8s-aws-id", "prod")])
        .await
        .expect_err("other cluster");
    assert_eq!(
        (err.status, err.code.as_str()),
        (StatusCode::FORBIDDEN, "SignatureDoesNotMatch")
    );
    assert_eq!(fake.handle().counters().get_caller_identity, 2);
}

#[tokio::test]
async fn eks_errors_are_rest_json() {
    let fake = start().await;
    let host = fake.addr().to_string();
    let get = |path: &str, keys: &Keys, service: &str| {
        let mut req = request(Method::GET, &host, path, "");
        sign_request(&mut req, keys, "us-east-1", service, SystemTime::now());
        req
    };

    let reply = send(fake.addr(), get("/clusters/missing", &Keys::base(), "eks"))
        .await
        .expect("send");
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.header("x-amzn-errortype"),
        Some("ResourceNotFoundException")
    );
    assert_eq!(
        reply.json()["message"],
        "No cluster found for name: missing."
    );

    let wrong = Keys::new("AKIDROLESHTESTBASE", "wrong-secret", None);
    let reply = send(fake.addr(), get("/clusters", &wrong, "eks"))
        .await
        .expect("send");
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.header("x-amzn-errortype"),
        Some("InvalidSignatureException")
    );

    let reply = send(fake.addr(), get("/clusters", &Keys::base(), "sts"))
        .await
        .expect("send");
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.header("x-amzn-errortype"),
        Some("InvalidSignatureException")
    );

    let unknown = Keys::new("AKIDNOBODYKNOWS00000", "x", None);
    let reply = send(fake.addr(), get("/clusters/demo", &unknown, "eks"))
        .await
        .expect("send");
    assert_eq!(
        reply.header("x-amzn-errortype"),
        Some("UnrecognizedClientException")
    );

    let reply = send(fake.addr(), get("/clusters/demo", &Keys::base(), "eks"))
        .await
        .expect("send");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["cluster"]["name"], "demo");
}
