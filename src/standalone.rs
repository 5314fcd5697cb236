//! `rolesh token --cluster-name`: a drop-in for `aws eks get-token` that needs no broker.
//!
//! With credentials and a region in the environment it signs at once (the token path's
//! `standalone`, shared with `rolesh-token`): no async runtime, no network, no file read.
//! Otherwise it asks aws-config's default chain (env, profile, SSO, web identity, IMDSv2),
//! and with `--role-arn` assumes that role first, as awscli does (session name
//! `EKSGetTokenAuth`).

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use rolesh_token_core::args::StandaloneArgs;
use rolesh_token_core::plugin::{self, Plan};
use rolesh_token_core::standalone::{endpoints, region_from_env, sign_now};

use crate::error::{Failure, error_chain};

/// awscli's session name when `--role-arn` is given.
const ASSUME_ROLE_SESSION_NAME: &str = "EKSGetTokenAuth";

pub(crate) fn run_token(request: &StandaloneArgs) -> Result<(), Failure> {
    let plan = plugin::plan(&rolesh_token_core::args::TokenArgs::Standalone(
        request.clone(),
    ))?;
    let token = match plugin::token(&plan) {
        Some(signed) => signed?,
        None => {
            debug_assert!(matches!(plan, Plan::Sdk));
            let endpoints = endpoints(request.endpoints)?;
            let region = request.region.clone().or_else(region_from_env);
            let (credentials, region) =
                credentials_from_chain(region, request.role_arn.as_deref())?;
            sign_now(
                &credentials,
                &request.cluster_name,
                region.as_deref(),
                endpoints,
            )?
        }
    };
    plugin::print_exec_credential(&token)
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
