//! Minting EKS bearer tokens with chosen keys, cluster, host and time, for tests that need
//! tokens a real client would not produce (expired, other cluster, unknown keys, …).

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::{Duration, SystemTime};

/// What to sign.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// Cluster name (`x-k8s-aws-id`).
    pub cluster: String,
    /// Signing region.
    pub region: String,
    /// STS host the URL names (`sts.REGION.amazonaws.com`).
    pub host: String,
    /// Signing time.
    pub time: SystemTime,
    /// X-Amz-Expires.
    pub expires: Duration,
}

impl TokenSpec {
    /// A token for `cluster` signed now in `region` with the given keys, for
    /// `sts.REGION.amazonaws.com`, X-Amz-Expires=60: what `aws eks get-token` makes.
    pub fn new(access_key_id: &str, secret_access_key: &str, cluster: &str, region: &str) -> Self {
        Self {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            session_token: None,
            cluster: cluster.to_owned(),
            region: region.to_owned(),
            host: format!("sts.{region}.amazonaws.com"),
            time: SystemTime::now(),
            expires: Duration::from_secs(60),
        }
    }

    /// The presigned GetCallerIdentity URL.
    pub fn presigned_url(&self) -> String {
        let identity: Identity = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "rolesh-testkit",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(self.expires);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sts")
            .time(self.time)
            .settings(settings)
            .build()
            .expect("complete signing parameters")
            .into();
        let base = format!(
            "https://{}/?Action=GetCallerIdentity&Version=2011-06-15",
            self.host
        );
        let headers = [("x-k8s-aws-id", self.cluster.as_str())];
        let signable =
            SignableRequest::new("GET", &base, headers.into_iter(), SignableBody::Bytes(&[]))
                .expect("a valid request");
        let (instructions, _) = sign(signable, &params)
            .expect("signing succeeds")
            .into_parts();
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in instructions.params() {
            query.append_pair(name, value);
        }
        format!("{base}&{}", query.finish())
    }

    /// The bearer token: `k8s-aws-v1.` + base64url (no padding) of the presigned URL.
    pub fn token(&self) -> String {
        encode_url(&self.presigned_url())
    }
}

/// Wraps a presigned URL (possibly tampered with) as a token.
pub fn encode_url(url: &str) -> String {
    format!(
        "{}{}",
        super::auth::TOKEN_PREFIX,
        URL_SAFE_NO_PAD.encode(url)
    )
}
