//! `rolesh token --cluster-name`: a drop-in for `aws eks get-token` that needs no broker.
//!
//! With credentials and a region in the environment (the common CI and benchmark case)
//! it signs at once: no async runtime, no network, no file read. Otherwise it asks
//! aws-config's default chain (env, profile, SSO, web identity, IMDSv2), and with
//! `--role-arn` assumes that role first, as awscli does (session name `EKSGetTokenAuth`).

use std::env;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;

use crate::error::{Failure, error_chain};
use crate::token::{self, StsEndpoints};

/// awscli's session name when `--role-arn` is given.
const ASSUME_ROLE_SESSION_NAME: &str = "EKSGetTokenAuth";

/// What `rolesh token --cluster-name` asks for, as plain values.
pub(crate) struct TokenRequest {
    pub(crate) cluster_name: String,
    pub(crate) region: Option<String>,
    pub(crate) role_arn: Option<String>,
    /// `--sts-regional-endpoints`; absent: `AWS_STS_REGIONAL_ENDPOINTS`, else regional.
    pub(crate) endpoints: Option<StsEndpoints>,
}

pub(crate) fn run_token(request: &TokenRequest) -> Result<(), Failure> {
    let cluster = &request.cluster_name;
    let endpoints = endpoints(request.endpoints)?;
    let region = request.region.clone().or_else(region_from_env);
    let (credentials, region) = match (env_credentials(), &request.role_arn, region) {
        (Some(creds), None, Some(region)) => (creds, Some(region)),
        (_, role_arn, region) => credentials_from_chain(region, role_arn.as_deref())?,
    };
    let (host, signing_region) = token::sts_host(region.as_deref(), endpoints);
    let token = token::presign(
        &credentials,
        cluster,
        &host,
        &signing_region,
        SystemTime::now(),
    )
    .map_err(|e| Failure::runtime(e.to_string()))?;
    let exec_info = env::var("KUBERNETES_EXEC_INFO").ok();
    let api_version = token::api_version(exec_info.as_deref());
    println!(
        "{}",
        token::exec_credential(&token::wire(&token), &api_version)
    );
    Ok(())
}

fn endpoints(flag: Option<StsEndpoints>) -> Result<StsEndpoints, Failure> {
    match flag {
        Some(chosen) => Ok(chosen),
        None => match non_empty_env("AWS_STS_REGIONAL_ENDPOINTS").as_deref() {
            None | Some("regional") => Ok(StsEndpoints::Regional),
            Some("legacy") => Ok(StsEndpoints::Legacy),
            Some(other) => Err(Failure::usage(format!(
                "AWS_STS_REGIONAL_ENDPOINTS must be \"legacy\" or \"regional\", not {other:?}"
            ))),
        },
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.is_empty())
}

fn region_from_env() -> Option<String> {
    non_empty_env("AWS_REGION").or_else(|| non_empty_env("AWS_DEFAULT_REGION"))
}

/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`[/`AWS_SESSION_TOKEN`]: the first link of
/// every AWS credential chain, read without starting one.
fn env_credentials() -> Option<Credentials> {
    let key = non_empty_env("AWS_ACCESS_KEY_ID")?;
    let secret = non_empty_env("AWS_SECRET_ACCESS_KEY")?;
    let session = non_empty_env("AWS_SESSION_TOKEN");
    Some(Credentials::new(key, secret, session, None, "Environment"))
}

fn credentials_from_chain(
    region: Option<String>,
    role_arn: Option<&str>,
) -> Result<(Credentials, Option<String>), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the AWS client: {e}")))?;
    runtime.block_on(async {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = &region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        let sdk = loader.load().await;
        let region = sdk.region().map(|r| r.to_string());
        let credentials = match role_arn {
            Some(arn) => {
                let provider = aws_config::sts::AssumeRoleProvider::builder(arn)
                    .session_name(ASSUME_ROLE_SESSION_NAME)
                    .configure(&sdk)
                    .build()
                    .await;
                provider.provide_credentials().await.map_err(|e| {
                    Failure::runtime(format!(
                        "cannot assume role {arn}: {}",
                        error_chain(&e)
                    ))
                })?
            }
            None => {
                let provider = sdk.credentials_provider().ok_or_else(no_credentials)?;
                provider.provide_credentials().await.map_err(|e| {
                    Failure::runtime(format!(
                        "no usable AWS credentials (environment, profile, SSO, web identity, IMDS): {}",
                        error_chain(&e)
                    ))
                })?
            }
        };
        Ok((credentials, region))
    })
}

fn no_credentials() -> Failure {
    Failure::runtime("no AWS credentials provider is configured")
}
