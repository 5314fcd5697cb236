//! Interop with the AWS SDK for Rust (aws-config + aws-sdk-sts with endpoint_url).

mod common;

use aws_config::BehaviorVersion;
use aws_config::Region;
use aws_config::retry::RetryConfig;
use aws_credential_types::Credentials;
use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_sdk_sts::types::Tag;
use common::ROLE;
use rolesh_testkit::fake_aws::{
    Api, BASE_ACCESS_KEY_ID, BASE_SECRET_ACCESS_KEY, FakeAws, FakeAwsOptions,
};
use std::time::{Duration, SystemTime};

async fn sts_client(
    fake: &FakeAws,
    credentials: Credentials,
    attempts: u32,
) -> aws_sdk_sts::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(fake.endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(10)),
        )
        .load()
        .await;
    aws_sdk_sts::Client::new(&config)
}

fn base_credentials() -> Credentials {
    Credentials::new(
        BASE_ACCESS_KEY_ID,
        BASE_SECRET_ACCESS_KEY,
        None,
        None,
        "test",
    )
}

async fn assume(
    client: &aws_sdk_sts::Client,
    session: &str,
) -> aws_sdk_sts::operation::assume_role::AssumeRoleOutput {
    client
        .assume_role()
        .role_arn(ROLE)
        .role_session_name(session)
        .source_identity(session)
        .tags(
            Tag::builder()
                .key("unix_user")
                .value(session)
                .build()
                .expect("tag"),
        )
        .duration_seconds(3600)
        .send()
        .await
        .expect("AssumeRole")
}

#[tokio::test]
async fn sdk_assume_role_then_get_caller_identity() {
    let fake = FakeAws::start(FakeAwsOptions::default())
        .await
        .expect("start");
    let client = sts_client(&fake, base_credentials(), 1).await;

    let output = assume(&client, "bob").await;
    let user = output.assumed_role_user().expect("AssumedRoleUser");
    assert_eq!(
        user.arn(),
        "arn:aws:sts::123456789012:assumed-role/alice-role/bob"
    );
    assert!(user.assumed_role_id().ends_with(":bob"));
    assert_eq!(output.source_identity(), Some("bob"));
    #[allow(deprecated)] // PackedPolicySize is what botocore and this fake know.
    let packed_policy_size = output.packed_policy_size();
    assert!(packed_policy_size.is_some_and(|n| n > 0));
    let creds = output.credentials().expect("Credentials");
    assert!(creds.access_key_id().starts_with("ASIA"));
    let expiration = SystemTime::try_from(*creds.expiration()).expect("time");
    let lifetime = expiration
        .duration_since(SystemTime::now())
        .expect("future");
    assert!(lifetime > Duration::from_secs(3500) && lifetime <= Duration::from_secs(3600));

    let temporary = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_owned()),
        None,
        "assumed",
    );
    let identity = sts_client(&fake, temporary, 1)
        .await
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity");
    assert_eq!(identity.arn(), Some(user.arn()));
    assert_eq!(identity.account(), Some("123456789012"));

    let records = fake.handle().assume_role_requests();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].tags, [("unix_user".into(), "bob".into())]);
    assert_eq!(records[0].duration_seconds, 3600);
}

#[tokio::test]
async fn sdk_retries_throttling_and_reports_expired_tokens() {
    let fake = FakeAws::start(FakeAwsOptions::default())
        .await
        .expect("start");
    let client = sts_client(&fake, base_credentials(), 4).await;

    fake.handle().throttle_next(Api::Sts, 3);
    assume(&client, "carol").await;
    assert_eq!(fake.handle().assume_role_calls_for(ROLE), 4);
    assert_eq!(fake.handle().assume_role_requests().len(), 1);

    fake.handle().set_credential_duration(Some(Duration::ZERO));
    let creds = assume(&client, "carol")
        .await
        .credentials
        .expect("Credentials");
    let expired = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_owned()),
        None,
        "expired",
    );
    let err = sts_client(&fake, expired, 1)
        .await
        .get_caller_identity()
        .send()
        .await
        .expect_err("expired credentials are refused");
    assert_eq!(err.code(), Some("ExpiredToken"));
}
