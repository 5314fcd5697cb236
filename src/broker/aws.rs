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
pub(crate) use crate::protocol::EksCluster;
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

    /// An S3 client for `[audit.s3]` with the broker's own credentials.
    pub(crate) fn s3(&self, settings: &crate::config::S3Settings) -> aws_sdk_s3::Client {
        crate::s3::client(&self.sdk, settings)
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
        let described = self
            .describe_eks(role, name, region)
            .await
            .map_err(|e| WireError::new(ErrorCode::Sts, e.message().to_string()))?;
        match (described.endpoint, described.ca_data) {
            (Some(endpoint), Some(ca_data)) => Ok(ClusterInfo { endpoint, ca_data }),
            _ => Err(WireError::new(
                ErrorCode::Sts,
                format!("cluster {name} has no endpoint or CA yet (is it still creating?)"),
            )),
        }
    }

    /// An EKS client for `region`, with `role`'s credentials or the broker's own.
    fn eks(&self, role: Option<&RoleCredentials>, region: &str) -> aws_sdk_eks::Client {
        let mut conf =
            aws_sdk_eks::config::Builder::from(&self.sdk).region(Region::new(region.to_string()));
        if let Some(role) = role {
            conf = conf.credentials_provider(role.credentials.clone());
        }
        aws_sdk_eks::Client::from_conf(conf.build())
    }

    /// DescribeCluster, all of what `[[discovery]]` looks at.
    pub(crate) async fn describe_eks(
        &self,
        role: Option<&RoleCredentials>,
        name: &str,
        region: &str,
    ) -> Result<EksCluster, EksError> {
        let out = self
            .eks(role, region)
            .describe_cluster()
            .name(name)
            .send()
            .await
            .map_err(|e| {
                let message = format!(
                    "EKS DescribeCluster {name} in {region} failed: {}",
                    detail(&e)
                );
                match e.code() {
                    Some("AccessDeniedException" | "ResourceNotFoundException") => {
                        EksError::Refused(message)
                    }
                    _ => EksError::Failed(message),
                }
            })?;
        let cluster = out.cluster().ok_or_else(|| {
            EksError::Failed(format!("EKS DescribeCluster {name} returned no cluster"))
        })?;
        Ok(EksCluster {
            name: name.to_string(),
            region: region.to_string(),
            status: cluster
                .status()
                .map_or_else(|| "UNKNOWN".to_string(), |s| s.as_str().to_string()),
            tags: cluster
                .tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            endpoint: cluster.endpoint().map(str::to_string),
            ca_data: cluster
                .certificate_authority()
                .and_then(|c| c.data())
                .map(str::to_string),
        })
    }

    /// Every cluster name in `region` (ListClusters, all pages), with the broker's own
    /// credentials.
    pub(crate) async fn list_clusters_as_broker(
        &self,
        region: &str,
    ) -> Result<Vec<String>, String> {
        let mut pages = self
            .eks(None, region)
            .list_clusters()
            .into_paginator()
            .send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| format!("EKS ListClusters in {region} failed: {}", detail(&e)))?;
            names.extend(page.clusters().iter().cloned());
        }
        Ok(names)
    }
}

/// Why DescribeCluster gave no cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EksError {
    /// The caller may not see it, or it is gone: an answer, not a failure.
    Refused(String),
    /// No answer (throttled past the retries, down, unreachable).
    Failed(String),
}

impl EksError {
    pub(crate) fn message(&self) -> &str {
        match self {
            EksError::Refused(m) | EksError::Failed(m) => m,
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
