//! EKS bearer tokens (`rolesh::token` re-exports this module): `k8s-aws-v1.` + base64url(presigned STS GetCallerIdentity URL), byte
//! for byte what `aws eks get-token` (botocore) produces for the same credentials, region
//! and signing time (SPEC §3). Signing is synchronous and local: no runtime, no network.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::date_time::{DateTime, Format};
use base64::Engine;

use crate::wire::{ExecCredential, Token};

/// How long the presigned URL is valid, as botocore sets it.
const URL_EXPIRES: Duration = Duration::from_secs(60);
/// `expirationTimestamp` = signing time + 14 minutes (EKS accepts 15).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);
const TOKEN_PREFIX: &str = "k8s-aws-v1.";
pub const DEFAULT_API_VERSION: &str = "client.authentication.k8s.io/v1beta1";

/// STS regions whose legacy endpoint is the global `sts.amazonaws.com` (botocore's STS
/// endpoint rule set); every other region is always regional.
const LEGACY_GLOBAL_REGIONS: [&str; 15] = [
    "ap-northeast-1",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "eu-central-1",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StsEndpoints {
    Regional,
    Legacy,
}

impl StsEndpoints {
    /// `legacy` or `regional`, as `--sts-regional-endpoints` and
    /// `AWS_STS_REGIONAL_ENDPOINTS` spell them.
    pub fn parse(word: &str) -> Option<StsEndpoints> {
        match word {
            "legacy" => Some(StsEndpoints::Legacy),
            "regional" => Some(StsEndpoints::Regional),
            _ => None,
        }
    }
}

/// The public STS host a token names and the region it is signed for. EKS's authenticator
/// accepts only these hosts, so this never follows `sts_endpoint` or `AWS_ENDPOINT_URL_STS`.
pub fn sts_host(region: Option<&str>, endpoints: StsEndpoints) -> (String, String) {
    match region {
        None | Some("aws-global") => ("sts.amazonaws.com".into(), "us-east-1".into()),
        Some(r) if endpoints == StsEndpoints::Legacy && LEGACY_GLOBAL_REGIONS.contains(&r) => {
            ("sts.amazonaws.com".into(), "us-east-1".into())
        }
        Some(r) if r.starts_with("cn-") => (format!("sts.{r}.amazonaws.com.cn"), r.into()),
        Some(r) => (format!("sts.{r}.amazonaws.com"), r.into()),
    }
}

/// A bearer token as signed, and when kubectl should consider it expired.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedToken {
    pub token: String,
    pub expiration: SystemTime,
}

impl std::fmt::Debug for SignedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A bearer token is a secret: never printed, not even in debug output.
        f.debug_struct("SignedToken")
            .field("token", &"<redacted>")
            .field("expiration", &self.expiration)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot sign the EKS token: {0}")]
pub struct SignError(String);

/// Presigns `GetCallerIdentity` for `cluster` on `host` (signed for `signing_region`).
pub fn presign(
    credentials: &Credentials,
    cluster: &str,
    host: &str,
    signing_region: &str,
    time: SystemTime,
) -> Result<SignedToken, SignError> {
    let url = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let headers = [("x-k8s-aws-id", cluster)];
    let signable = SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(&[]))
        .map_err(|e| SignError(e.to_string()))?;
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(URL_EXPIRES);
    let identity: Identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(signing_region)
        .name("sts")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| SignError(e.to_string()))?
        .into();
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| SignError(e.to_string()))?
        .into_parts();
    let query = botocore_query_order(instructions.params());
    let presigned = format!("{url}&{query}");
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned);
    Ok(SignedToken {
        token: format!("{TOKEN_PREFIX}{encoded}"),
        expiration: time + TOKEN_LIFETIME,
    })
}

/// botocore writes the auth parameters in this order, the session token before the
/// signature; the signature covers the sorted form, so only the token's bytes depend on it.
fn botocore_query_order(params: &[(&str, Cow<'static, str>)]) -> String {
    const ORDER: [&str; 7] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ];
    ORDER
        .iter()
        .filter_map(|name| params.iter().find(|(k, _)| k == name))
        .map(|(k, v)| format!("{k}={}", aws_uri_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 3986 unreserved characters stay, everything else is %XX (botocore's `quote(safe='-_.~')`).
fn aws_uri_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `apiVersion` kubectl asked for in `KUBERNETES_EXEC_INFO`, else v1beta1 (as awscli).
pub fn api_version(exec_info: Option<&str>) -> String {
    const KNOWN: [&str; 3] = [
        "client.authentication.k8s.io/v1",
        "client.authentication.k8s.io/v1beta1",
        "client.authentication.k8s.io/v1alpha1",
    ];
    /// What rolesh reads of `KUBERNETES_EXEC_INFO` (an ExecCredential kubectl sends).
    #[derive(serde::Deserialize)]
    struct ExecInfo {
        #[serde(rename = "apiVersion")]
        api_version: String,
    }
    exec_info
        .and_then(|raw| serde_json::from_str::<ExecInfo>(raw).ok())
        .map(|info| info.api_version)
        .filter(|v| KNOWN.contains(&v.as_str()))
        .unwrap_or_else(|| DEFAULT_API_VERSION.to_string())
}

/// RFC 3339 in UTC with second precision, as awscli writes `expirationTimestamp`.
/// (aws-smithy-types' formatter, which the signer links anyway: no time crate of its own
/// in the exec plugin.)
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    DateTime::from_secs(secs)
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// The wire form of a signed token (what the broker's `token` answers).
pub fn wire(token: &SignedToken) -> Token {
    Token {
        expiration_timestamp: rfc3339(token.expiration),
        token: token.token.clone(),
    }
}

/// The ExecCredential kubectl reads from an exec plugin, in awscli's key order.
pub fn exec_credential(token: &Token, api_version: &str) -> String {
    serde_json::to_string(&ExecCredential::new(token, api_version)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_2024() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200)
    }

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_string),
            None,
            "test",
        )
    }

    fn presigned_url(token: &SignedToken) -> String {
        let b64 = token.token.strip_prefix(TOKEN_PREFIX).unwrap();
        String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    }

    fn signature(token: &SignedToken) -> String {
        let url = presigned_url(token);
        url.rsplit_once("X-Amz-Signature=").unwrap().1.to_string()
    }

    fn vector(region: Option<&str>, endpoints: StsEndpoints, session: Option<&str>) -> SignedToken {
        let (host, signing_region) = sts_host(region, endpoints);
        presign(&creds(session), "demo", &host, &signing_region, at_2024()).unwrap()
    }

    // The three vectors of SPEC §3.
    #[test]
    fn regional_without_session_token() {
        let t = vector(Some("us-east-1"), StsEndpoints::Regional, None);
        assert_eq!(
            signature(&t),
            "ca12c58e5c47dbf8ab04459da58157f20c971488d869d9947676bd88f2470589"
        );
        assert_eq!(
            presigned_url(&t),
            "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15\
             &X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIDEXAMPLE%2F20240101%2Fus-east-1%2Fsts%2Faws4_request\
             &X-Amz-Date=20240101T000000Z&X-Amz-Expires=60\
             &X-Amz-SignedHeaders=host%3Bx-k8s-aws-id\
             &X-Amz-Signature=ca12c58e5c47dbf8ab04459da58157f20c971488d869d9947676bd88f2470589"
        );
    }

    #[test]
    fn legacy_endpoint() {
        let t = vector(Some("us-east-1"), StsEndpoints::Legacy, None);
        assert!(presigned_url(&t).starts_with("https://sts.amazonaws.com/?"));
        assert_eq!(
            signature(&t),
            "5626b5f919f8c7ce4f0c0419f9771401e4fc4cd29ef46c9f3608393b4e7bc767"
        );
    }

    #[test]
    fn regional_with_session_token() {
        let t = vector(
            Some("us-east-1"),
            StsEndpoints::Regional,
            Some("FQoGZXIvYXdzEXAMPLE/TOKEN+x=="),
        );
        assert_eq!(
            signature(&t),
            "27f022ffe088c94b27f10175f07017636160c112cfd3ab7456d62df3b21102ec"
        );
        let url = presigned_url(&t);
        assert!(url.contains(
            "&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLE%2FTOKEN%2Bx%3D%3D&X-Amz-Signature="
        ), "{url}");
    }

    #[test]
    fn expiration_is_fourteen_minutes_after_signing() {
        let t = vector(Some("us-east-1"), StsEndpoints::Regional, None);
        assert_eq!(rfc3339(t.expiration), "2024-01-01T00:14:00Z");
        let json = exec_credential(&wire(&t), DEFAULT_API_VERSION);
        assert!(json.starts_with(r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{},"status":{"expirationTimestamp":"2024-01-01T00:14:00Z","token":"k8s-aws-v1."#), "{json}");
    }

    #[test]
    fn hosts_for_every_endpoint_kind() {
        assert_eq!(
            sts_host(Some("eu-west-1"), StsEndpoints::Regional).0,
            "sts.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            sts_host(Some("eu-west-1"), StsEndpoints::Legacy),
            ("sts.amazonaws.com".into(), "us-east-1".into())
        );
        assert_eq!(
            sts_host(Some("ap-east-1"), StsEndpoints::Legacy).0,
            "sts.ap-east-1.amazonaws.com"
        );
        assert_eq!(
            sts_host(Some("cn-north-1"), StsEndpoints::Regional).0,
            "sts.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            sts_host(None, StsEndpoints::Regional).0,
            "sts.amazonaws.com"
        );
    }

    #[test]
    fn api_version_follows_kubernetes_exec_info() {
        assert_eq!(api_version(None), DEFAULT_API_VERSION);
        assert_eq!(
            api_version(Some(
                r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential"}"#
            )),
            "client.authentication.k8s.io/v1"
        );
        assert_eq!(api_version(Some("not json")), DEFAULT_API_VERSION);
        assert_eq!(
            api_version(Some(r#"{"apiVersion":"bogus/v9"}"#)),
            DEFAULT_API_VERSION
        );
    }

    #[test]
    fn timestamps_are_whole_seconds_in_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_704_067_200_999);
        assert_eq!(rfc3339(t), "2024-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
            "2099-12-31T23:59:59Z"
        );
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let t = vector(Some("us-east-1"), StsEndpoints::Regional, None);
        assert!(!format!("{t:?}").contains("k8s-aws-v1"));
    }
}
