//! The broker's calls to AWS: STS AssumeRole for a user's role, EKS DescribeCluster with
//! that role's credentials. The SDK's standard retry mode gives exponential backoff with
//! jitter on throttling and 5xx; the broker never hands out its own base credentials.

use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_sts::error::ProvideErrorMetadata;

use crate::config::{Config, StsEndpoint};
use crate::error::error_chain;
use crate::mapping::Grant;
use crate::protocol::{ErrorCode, WireError};

/// Attempts per STS call (the first and 7 retries): survives a burst of throttling.
const STS_MAX_ATTEMPTS: u32 = 8;

/// Role credentials from AssumeRole, and when STS says they expire.
#[derive(Clone)]
pub(crate) struct RoleCredentials {
    pub credentials: Credentials,
    pub expiry: SystemTime,
}

/// Endpoint and CA of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterInfo {
    pub endpoint: String,
    pub ca_data: String,
}

pub(crate) struct Aws {
    sdk: SdkConfig,
    sts: aws_sdk_sts::Client,
}

impl Aws {
    /// Clients built from the default credential chain (env, profile, web identity,
    /// IMDSv2) and `[aws]` of the configuration.
    pub(crate) async fn new(config: &Config) -> Aws {
        let retry = RetryConfig::standard()
            .with_max_attempts(STS_MAX_ATTEMPTS)
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_secs(5));
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(10))
            .operation_timeout(Duration::from_secs(45))
            .build();
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.aws.region.clone()))
            .retry_config(retry)
            .timeout_config(timeouts)
            .load()
            .await;
        let mut sts = aws_sdk_sts::config::Builder::from(&sdk);
        match &config.aws.sts_endpoint {
            StsEndpoint::Regional => {}
            StsEndpoint::Legacy => {
                sts = sts
                    .endpoint_url("https://sts.amazonaws.com")
                    .region(Region::new("us-east-1"));
            }
            StsEndpoint::Url(url) => sts = sts.endpoint_url(url),
        }
        Aws {
            sts: aws_sdk_sts::Client::from_conf(sts.build()),
            sdk,
        }
    }

    pub(crate) async fn assume_role(
        &self,
        grant: &Grant,
        duration: Duration,
    ) -> Result<RoleCredentials, WireError> {
        let mut call = self
            .sts
            .assume_role()
            .role_arn(&grant.role_arn)
            .role_session_name(&grant.session_name)
            .source_identity(&grant.source_identity)
            .duration_seconds(duration.as_secs().min(i32::MAX as u64) as i32);
        for (key, value) in &grant.tags {
            let tag = aws_sdk_sts::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| {
                    WireError::new(ErrorCode::Config, format!("session tag {key}: {e}"))
                })?;
            call = call.tags(tag);
        }
        let out = call.send().await.map_err(|e| {
            let code = match e.code() {
                Some("AccessDenied") => ErrorCode::Denied,
                _ => ErrorCode::Sts,
            };
            let detail = detail(&e);
            WireError::new(
                code,
                format!("STS AssumeRole {} failed: {detail}", grant.role_arn),
            )
        })?;
        let c = out.credentials().ok_or_else(|| {
            WireError::new(ErrorCode::Sts, "STS AssumeRole returned no credentials")
        })?;
        let expiry = SystemTime::try_from(*c.expiration()).map_err(|_| {
            WireError::new(
                ErrorCode::Sts,
                "STS AssumeRole returned an invalid expiration",
            )
        })?;
        crate::redact::register_secret(c.secret_access_key());
        crate::redact::register_secret(c.session_token());
        Ok(RoleCredentials {
            credentials: Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                Some(expiry),
                "rolesh-broker",
            ),
            expiry,
        })
    }

    /// DescribeCluster with the user's own role, so IAM decides who may see a cluster.
    pub(crate) async fn describe_cluster(
        &self,
        role: &RoleCredentials,
        name: &str,
        region: &str,
    ) -> Result<ClusterInfo, WireError> {
        self.describe(Some(role), name, region).await
    }

    /// DescribeCluster with the broker's own (base) credentials: what `rolesh check
    /// --describe` asks, to find clusters nobody could reach.
    pub(crate) async fn describe_cluster_as_broker(
        &self,
        name: &str,
        region: &str,
    ) -> Result<ClusterInfo, WireError> {
        self.describe(None, name, region).await
    }

    async fn describe(
        &self,
        role: Option<&RoleCredentials>,
        name: &str,
        region: &str,
    ) -> Result<ClusterInfo, WireError> {
        let mut conf =
            aws_sdk_eks::config::Builder::from(&self.sdk).region(Region::new(region.to_string()));
        if let Some(role) = role {
            conf = conf.credentials_provider(role.credentials.clone());
        }
        let out = aws_sdk_eks::Client::from_conf(conf.build())
            .describe_cluster()
            .name(name)
            .send()
            .await
            .map_err(|e| {
                let detail = detail(&e);
                WireError::new(
                    ErrorCode::Sts,
                    format!("EKS DescribeCluster {name} failed: {detail}"),
                )
            })?;
        let cluster = out.cluster().ok_or_else(|| {
            WireError::new(
                ErrorCode::Sts,
                format!("EKS DescribeCluster {name} returned no cluster"),
            )
        })?;
        match (
            cluster.endpoint(),
            cluster.certificate_authority().and_then(|c| c.data()),
        ) {
            (Some(endpoint), Some(ca)) => Ok(ClusterInfo {
                endpoint: endpoint.to_string(),
                ca_data: ca.to_string(),
            }),
            _ => Err(WireError::new(
                ErrorCode::Sts,
                format!("cluster {name} has no endpoint or CA yet (is it still creating?)"),
            )),
        }
    }
}

/// "Code: message" from an AWS error, else its whole chain on one line.
fn detail(e: &(impl ProvideErrorMetadata + std::error::Error)) -> String {
    match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        _ => error_chain(e),
    }
}
