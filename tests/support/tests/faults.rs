//! Fault injection and counters.

mod common;

use common::{
    GET_CALLER_IDENTITY, Keys, ROLE, assume_role_params, request, send, sign_request, signed_sts,
};
use http::{Method, StatusCode};
use rolesh_testkit::fake_aws::{Api, Counters, FakeAws};
use std::time::{Duration, Instant, SystemTime};

async fn start() -> FakeAws {
    FakeAws::start(common::options()).await.expect("start")
}

async fn assume_role(fake: &FakeAws, role: &str) -> common::Reply {
    let req = signed_sts(
        fake.addr(),
        &Keys::base(),
        &assume_role_params(role, "alice"),
        SystemTime::now(),
    );
    send(fake.addr(), req).await.expect("send")
}

async fn describe(fake: &FakeAws, name: &str) -> common::Reply {
    let mut req = request(
        Method::GET,
        &fake.addr().to_string(),
        &format!("/clusters/{name}"),
        "",
    );
    sign_request(
        &mut req,
        &Keys::base(),
        "us-east-1",
        "eks",
        SystemTime::now(),
    );
    send(fake.addr(), req).await.expect("send")
}

#[tokio::test]
async fn throttle_next_three_then_success() {
    let fake = start().await;
    fake.handle().throttle_next(Api::Sts, 3);
    for _ in 0..3 {
        let reply = assume_role(&fake, ROLE).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert_eq!(reply.xml("Code").as_deref(), Some("Throttling"));
        assert_eq!(reply.xml("Type").as_deref(), Some("Sender"));
    }
    let reply = assume_role(&fake, ROLE).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let handle = fake.handle();
    assert_eq!(
        handle.counters(),
        Counters {
            assume_role: 4,
            ..Counters::default()
        }
    );
    assert_eq!(handle.assume_role_calls_for(ROLE), 4);
    assert_eq!(
        handle.assume_role_calls_for("arn:aws:iam::123456789012:role/other"),
        0
    );
    assert_eq!(handle.assume_role_requests().len(), 1);
    assert_eq!(handle.max_concurrent_assume_role(ROLE), 1);
}

#[tokio::test]
async fn server_errors_then_success_and_counters_per_operation() {
    let fake = start().await;
    fake.handle()
        .fail_next(Api::Sts, 2, StatusCode::SERVICE_UNAVAILABLE);
    for _ in 0..2 {
        let req = signed_sts(
            fake.addr(),
            &Keys::base(),
            &GET_CALLER_IDENTITY,
            SystemTime::now(),
        );
        let reply = send(fake.addr(), req).await.expect("send");
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.xml("Code").as_deref(), Some("ServiceUnavailable"));
        assert_eq!(reply.xml("Type").as_deref(), Some("Receiver"));
    }
    fake.handle()
        .fail_next(Api::Sts, 1, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        assume_role(&fake, ROLE).await.xml("Code").as_deref(),
        Some("InternalFailure")
    );
    assert_eq!(assume_role(&fake, ROLE).await.status, StatusCode::OK);

    // EKS faults are separate from STS faults.
    fake.handle().throttle_next(Api::Eks, 1);
    fake.handle()
        .fail_next(Api::Eks, 1, StatusCode::INTERNAL_SERVER_ERROR);
    let reply = describe(&fake, "demo").await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        reply.header("x-amzn-errortype"),
        Some("ThrottlingException")
    );
    let reply = describe(&fake, "demo").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.header("x-amzn-errortype"), Some("ServerException"));
    assert_eq!(describe(&fake, "demo").await.status, StatusCode::OK);

    let counters = fake.handle().counters();
    assert_eq!(
        counters,
        Counters {
            assume_role: 2,
            get_caller_identity: 2,
            describe_cluster: 3,
            list_clusters: 0
        }
    );
    fake.handle().reset_counters();
    assert_eq!(fake.handle().counters(), Counters::default());
    assert!(fake.handle().assume_role_requests().is_empty());
}

#[tokio::test]
async fn dropped_connection_is_a_connection_error() {
    let fake = start().await;
    fake.handle().drop_next_connections(2);
    for _ in 0..2 {
        let req = signed_sts(
            fake.addr(),
            &Keys::base(),
            &GET_CALLER_IDENTITY,
            SystemTime::now(),
        );
        let err = send(fake.addr(), req).await.expect_err("no response");
        assert!(err.is_incomplete_message() || err.is_closed(), "{err:?}");
    }
    let req = signed_sts(
        fake.addr(),
        &Keys::base(),
        &GET_CALLER_IDENTITY,
        SystemTime::now(),
    );
    assert_eq!(
        send(fake.addr(), req).await.expect("send").status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn latency_makes_concurrency_visible_per_role() {
    let fake = start().await;
    let other = "arn:aws:iam::123456789012:role/other";
    fake.handle().set_latency(Duration::from_secs(1));

    let started = Instant::now();
    let (a, b, c) = tokio::join!(
        assume_role(&fake, ROLE),
        assume_role(&fake, ROLE),
        assume_role(&fake, ROLE)
    );
    let replies = [a, b, c];
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    assert_eq!(fake.handle().max_concurrent_assume_role(ROLE), 3);

    assume_role(&fake, other).await;
    assume_role(&fake, other).await;
    assert_eq!(fake.handle().max_concurrent_assume_role(other), 1);
    assert_eq!(fake.handle().assume_role_calls_for(other), 2);

    fake.handle().clear_faults();
    let started = Instant::now();
    assume_role(&fake, other).await;
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn credential_duration_override_sets_expiration() {
    let fake = start().await;
    fake.handle()
        .set_credential_duration(Some(Duration::from_secs(120)));
    let reply = assume_role(&fake, ROLE).await;
    assert_eq!(reply.status, StatusCode::OK);
    let record = &fake.handle().assume_role_requests()[0];
    assert_eq!(record.duration_seconds, 3600);
    let lifetime = record
        .expiration
        .duration_since(SystemTime::now())
        .expect("future");
    assert!(lifetime <= Duration::from_secs(120) && lifetime > Duration::from_secs(100));
    let expiration = reply.xml("Expiration").expect("Expiration");
    assert!(
        expiration.ends_with('Z') && expiration.len() == 20,
        "{expiration}"
    );
}
