//! `rolesh token --cluster-name` without the AWS SDK: when the credentials and the region
//! are in the environment (the common CI and benchmark case, and what `aws eks get-token`
//! gets in most pipelines) the token is signed at once, with no runtime, no network and
//! no file read. Anything else (a profile, SSO, web identity, IMDS, `--role-arn`) needs
//! the SDK's default credential chain, which only the whole `rolesh` links.

use std::env;
use std::time::SystemTime;

use aws_credential_types::Credentials;

use crate::args::StandaloneArgs;
use crate::error::Failure;
use crate::sign::{self, StsEndpoints};
use crate::wire::Token;

/// Environment credentials and a region: what signing here needs.
#[derive(Debug)]
pub struct FromEnvironment {
    pub credentials: Credentials,
    pub region: String,
    pub endpoints: StsEndpoints,
}

/// What the environment holds for `request`; `None` when it needs the SDK's credential
/// chain (or `--role-arn`), which only the whole `rolesh` has. A bad
/// `AWS_STS_REGIONAL_ENDPOINTS` is a usage error either way.
pub fn from_environment(request: &StandaloneArgs) -> Result<Option<FromEnvironment>, Failure> {
    let endpoints = endpoints(request.endpoints)?;
    let region = request.region.clone().or_else(region_from_env);
    Ok(match (env_credentials(), &request.role_arn, region) {
        (Some(credentials), None, Some(region)) => Some(FromEnvironment {
            credentials,
            region,
            endpoints,
        }),
        _ => None,
    })
}

/// `--sts-regional-endpoints`, else `AWS_STS_REGIONAL_ENDPOINTS`, else regional.
pub fn endpoints(flag: Option<StsEndpoints>) -> Result<StsEndpoints, Failure> {
    match flag {
        Some(chosen) => Ok(chosen),
        None => match non_empty_env("AWS_STS_REGIONAL_ENDPOINTS").as_deref() {
            None => Ok(StsEndpoints::Regional),
            Some(word) => StsEndpoints::parse(word).ok_or_else(|| {
                Failure::usage(format!(
                    "AWS_STS_REGIONAL_ENDPOINTS must be \"legacy\" or \"regional\", not {word:?}"
                ))
            }),
        },
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.is_empty())
}

/// `AWS_REGION`, then `AWS_DEFAULT_REGION`.
pub fn region_from_env() -> Option<String> {
    non_empty_env("AWS_REGION").or_else(|| non_empty_env("AWS_DEFAULT_REGION"))
}

/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`[/`AWS_SESSION_TOKEN`]: the first link of
/// every AWS credential chain, read without starting one.
pub fn env_credentials() -> Option<Credentials> {
    let key = non_empty_env("AWS_ACCESS_KEY_ID")?;
    let secret = non_empty_env("AWS_SECRET_ACCESS_KEY")?;
    let session = non_empty_env("AWS_SESSION_TOKEN");
    Some(Credentials::new(key, secret, session, None, "Environment"))
}

/// Signs for `cluster` now, for the public STS host of `region` (SPEC §3).
pub fn sign_now(
    credentials: &Credentials,
    cluster: &str,
    region: Option<&str>,
    endpoints: StsEndpoints,
) -> Result<Token, Failure> {
    let (host, signing_region) = sign::sts_host(region, endpoints);
    let token = sign::presign(
        credentials,
        cluster,
        &host,
        &signing_region,
        SystemTime::now(),
    )
    .map_err(|e| Failure::runtime(e.to_string()))?;
    Ok(sign::wire(&token))
}
