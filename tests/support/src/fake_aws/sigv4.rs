//! SigV4 verification.
//!
//! The server reads what the client claims (access key, scope, signed headers, signing time,
//! signature), then asks `aws-sigv4` to sign the same request (only the headers the client
//! signed, the same body, credentials and time) and compares the two signatures in constant
//! time. Nothing here canonicalises or HMACs by hand.

use super::HttpRequest;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SessionTokenMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::header::AUTHORIZATION;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a header-signed request's X-Amz-Date may be from the server's clock.
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// The longest presigned URL lifetime SigV4 allows.
const MAX_EXPIRES: u64 = 7 * 24 * 3600;
/// STS ignores X-Amz-Expires on presigned URLs: they are valid for 15 minutes after X-Amz-Date
/// whatever it says. EKS tokens rely on this (aws-iam-authenticator: "The sts GetCallerIdentity
/// request is valid for 15 minutes regardless of this parameters value"; tokens carry
/// X-Amz-Expires=60 and clients cache them for 14 minutes).
const STS_PRESIGNED_VALIDITY: Duration = Duration::from_secs(15 * 60);
const MISMATCH: &str = "The request signature we calculated does not match the signature you \
                        provided. Check your AWS Secret Access Key and signing method. Consult \
                        the service documentation for details.";
/// Query parameters that carry the signature of a presigned URL, not request data.
const QUERY_AUTH_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// Why a request failed authentication; each service words these its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// No Authorization header and no presigned query.
    Missing,
    /// Malformed signature information.
    Incomplete(String),
    /// Unknown access key, or a session token that does not belong to it.
    UnknownKey,
    /// Temporary credentials past their expiration.
    Expired,
    /// Wrong signature, scope, or signing time.
    Signature(String),
}

impl AuthError {
    fn mismatch() -> Self {
        Self::Signature(MISMATCH.to_owned())
    }
}

/// Where the client put its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    /// `Authorization` header.
    Header,
    /// Presigned URL (`X-Amz-*` query parameters).
    Query,
}

/// What the client claims about its signature.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub(crate) location: Location,
    pub(crate) access_key_id: String,
    pub(crate) scope_date: String,
    pub(crate) region: String,
    pub(crate) service: String,
    pub(crate) signed_headers: Vec<String>,
    pub(crate) signature: String,
    pub(crate) amz_date: String,
    pub(crate) expires: Option<u64>,
    pub(crate) security_token: Option<String>,
}

/// Reads the signature claim from the Authorization header or the presigned query.
pub(crate) fn claim(req: &HttpRequest) -> Result<Claim, AuthError> {
    if let Some(value) = req.headers.get(AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| AuthError::Incomplete("Authorization header is not ASCII".into()))?;
        return header_claim(value, req);
    }
    let query = query_params(req);
    if query.contains_key("X-Amz-Algorithm") {
        return query_claim(&query);
    }
    Err(AuthError::Missing)
}

fn header_claim(value: &str, req: &HttpRequest) -> Result<Claim, AuthError> {
    let fields = value.strip_prefix(ALGORITHM).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "Unsupported authorization type, expected {ALGORITHM}"
        ))
    })?;
    let fields: HashMap<&str, &str> = fields
        .split(',')
        .filter_map(|field| field.trim().split_once('='))
        .collect();
    let field = |name: &str| {
        fields.get(name).map(|v| (*v).to_owned()).ok_or_else(|| {
            AuthError::Incomplete(format!(
                "Authorization header requires '{name}' parameter. Authorization={value}"
            ))
        })
    };
    let amz_date = header(req, "x-amz-date").ok_or_else(|| {
        AuthError::Incomplete("Authorization header requires existence of 'X-Amz-Date'".into())
    })?;
    build_claim(Parts {
        location: Location::Header,
        credential: field("Credential")?,
        signed_headers: field("SignedHeaders")?,
        signature: field("Signature")?,
        amz_date: amz_date.to_owned(),
        expires: None,
        security_token: header(req, "x-amz-security-token").map(str::to_owned),
    })
}

fn query_claim(query: &HashMap<String, String>) -> Result<Claim, AuthError> {
    let param = |name: &str| {
        query.get(name).cloned().ok_or_else(|| {
            AuthError::Incomplete(format!("Presigned URL requires the '{name}' parameter"))
        })
    };
    if param("X-Amz-Algorithm")? != ALGORITHM {
        return Err(AuthError::Incomplete(format!(
            "X-Amz-Algorithm only supports '{ALGORITHM}'"
        )));
    }
    let expires = param("X-Amz-Expires")?;
    let expires = expires
        .parse()
        .ok()
        .filter(|secs: &u64| secs.to_string() == expires)
        .ok_or_else(|| AuthError::Incomplete("X-Amz-Expires must be a number".into()))?;
    build_claim(Parts {
        location: Location::Query,
        credential: param("X-Amz-Credential")?,
        signed_headers: param("X-Amz-SignedHeaders")?,
        signature: param("X-Amz-Signature")?,
        amz_date: param("X-Amz-Date")?,
        expires: Some(expires),
        security_token: query.get("X-Amz-Security-Token").cloned(),
    })
}

/// Raw signature fields before validation.
struct Parts {
    location: Location,
    credential: String,
    signed_headers: String,
    signature: String,
    amz_date: String,
    expires: Option<u64>,
    security_token: Option<String>,
}

fn build_claim(parts: Parts) -> Result<Claim, AuthError> {
    let scope: Vec<&str> = parts.credential.split('/').collect();
    let [access_key_id, scope_date, region, service, "aws4_request"] = scope[..] else {
        return Err(AuthError::Incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got '{}'",
            parts.credential
        )));
    };
    Ok(Claim {
        location: parts.location,
        access_key_id: access_key_id.to_owned(),
        scope_date: scope_date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed_header_list(&parts.signed_headers)?,
        signature: parts.signature,
        amz_date: parts.amz_date,
        expires: parts.expires,
        security_token: parts.security_token,
    })
}

/// Signed header names; they must be canonical (lowercase, sorted, unique) and include `host`.
fn signed_header_list(value: &str) -> Result<Vec<String>, AuthError> {
    let names: Vec<String> = value.split(';').map(str::to_owned).collect();
    let canonical = names.windows(2).all(|w| w[0] < w[1])
        && names
            .iter()
            .all(|n| !n.is_empty() && *n == n.to_ascii_lowercase());
    if !canonical {
        return Err(AuthError::Incomplete(format!(
            "SignedHeaders must be lowercase, sorted and separated by ';', got '{value}'"
        )));
    }
    if !names.iter().any(|n| n == "host") {
        return Err(AuthError::Signature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    Ok(names)
}

/// Checks X-Amz-Date (and X-Amz-Expires for presigned URLs) against `now`; returns the signing time.
pub(crate) fn signing_time(claim: &Claim, now: SystemTime) -> Result<SystemTime, AuthError> {
    let signed_at = parse_amz_date(&claim.amz_date).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "X-Amz-Date must be in the ISO8601 Long Format, got '{}'",
            claim.amz_date
        ))
    })?;
    if !claim.amz_date.starts_with(&claim.scope_date) || claim.scope_date.len() != 8 {
        return Err(AuthError::Signature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{}', from '{}'.",
            claim.scope_date,
            &claim.amz_date[..8],
            claim.amz_date
        )));
    }
    if signed_at > now + MAX_SKEW {
        return Err(AuthError::Signature(format!(
            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
            claim.amz_date,
            amz_date(now + MAX_SKEW),
            amz_date(now)
        )));
    }
    let valid_until = match claim.expires {
        Some(secs) if secs > MAX_EXPIRES => {
            return Err(AuthError::Incomplete(format!(
                "X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES}"
            )));
        }
        Some(_) if claim.service == "sts" => signed_at + STS_PRESIGNED_VALIDITY,
        Some(secs) => signed_at + Duration::from_secs(secs),
        None => signed_at + MAX_SKEW,
    };
    if now > valid_until {
        return Err(AuthError::Signature(format!(
            "Signature expired: {} is now earlier than {}",
            amz_date(valid_until),
            amz_date(now)
        )));
    }
    Ok(signed_at)
}

/// Recomputes the signature with aws-sigv4 and compares it with the claimed one.
pub(crate) fn verify(
    req: &HttpRequest,
    claim: &Claim,
    credentials: Credentials,
    signed_at: SystemTime,
) -> Result<(), AuthError> {
    let headers = signed_header_values(req, claim)?;
    let uri = signable_uri(req, claim.location);
    let identity: Identity = credentials.into();
    let settings = signing_settings(claim)?;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&claim.region)
        .name(&claim.service)
        .time(signed_at)
        .settings(settings)
        .build()
        .map_err(|_| AuthError::mismatch())?;
    let signable = SignableRequest::new(
        req.method.as_str(),
        uri,
        headers.into_iter(),
        SignableBody::Bytes(&req.body),
    )
    .map_err(|_| AuthError::mismatch())?;
    let output = sign(signable, &params.into()).map_err(|_| AuthError::mismatch())?;
    let expected = output.signature().as_bytes();
    if bool::from(expected.ct_eq(claim.signature.as_bytes())) {
        Ok(())
    } else {
        Err(AuthError::mismatch())
    }
}

fn signing_settings(claim: &Claim) -> Result<SigningSettings, AuthError> {
    let mut settings = SigningSettings::default();
    // Sign exactly the headers the client listed, even ones SDKs usually leave out.
    settings.excluded_headers = None;
    let token_signed = match claim.location {
        Location::Header => {
            // aws-sigv4 always signs X-Amz-Date in the Authorization header form; a client that
            // signed `date` instead cannot be verified this way (no AWS SDK does that).
            if !claim.signed_headers.iter().any(|h| h == "x-amz-date") {
                return Err(AuthError::mismatch());
            }
            claim
                .signed_headers
                .iter()
                .any(|h| h == "x-amz-security-token")
        }
        Location::Query => {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = claim.expires.map(Duration::from_secs);
            claim.security_token.is_some()
        }
    };
    settings.session_token_mode = if token_signed {
        SessionTokenMode::Include
    } else {
        SessionTokenMode::Exclude
    };
    Ok(settings)
}

/// The (name, value) pairs of the headers the client signed, minus those aws-sigv4 adds itself.
fn signed_header_values<'a>(
    req: &'a HttpRequest,
    claim: &'a Claim,
) -> Result<Vec<(&'a str, &'a str)>, AuthError> {
    let added_by_signer = |name: &str| {
        claim.location == Location::Header
            && (name == "x-amz-date" || name == "x-amz-security-token")
    };
    let mut pairs = Vec::new();
    for name in claim.signed_headers.iter().filter(|n| !added_by_signer(n)) {
        let mut values = req.headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            return Err(AuthError::mismatch());
        }
        for value in values {
            let value = value.to_str().map_err(|_| AuthError::mismatch())?;
            pairs.push((name.as_str(), value));
        }
    }
    Ok(pairs)
}

/// Path and query as the client signed them (a presigned URL's own `X-Amz-*` parameters removed).
fn signable_uri(req: &HttpRequest, location: Location) -> String {
    let path = req.uri.path();
    let query = req.uri.query().unwrap_or_default();
    let query = match location {
        Location::Header => query.to_owned(),
        Location::Query => query
            .split('&')
            .filter(|pair| !is_auth_param(pair))
            .collect::<Vec<_>>()
            .join("&"),
    };
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

fn is_auth_param(raw_pair: &str) -> bool {
    form_urlencoded::parse(raw_pair.as_bytes())
        .next()
        .is_some_and(|(key, _)| QUERY_AUTH_PARAMS.contains(&key.as_ref()))
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Decoded query parameters (the first value of each name).
pub(crate) fn query_params(req: &HttpRequest) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let query = req.uri.query().unwrap_or_default();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        params.entry(key.into_owned()).or_insert(value.into_owned());
    }
    params
}

/// Parses SigV4's `YYYYMMDDTHHMMSSZ`.
pub(crate) fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    let parsed = PrimitiveDateTime::parse(value, format).ok()?;
    Some(parsed.assume_utc().into())
}

/// Formats SigV4's `YYYYMMDDTHHMMSSZ`.
pub(crate) fn amz_date(at: SystemTime) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    OffsetDateTime::from(at).format(format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_round_trip() {
        let at = parse_amz_date("20240101T000000Z").expect("valid date");
        assert_eq!(amz_date(at), "20240101T000000Z");
        assert!(parse_amz_date("2024-01-01T00:00:00Z").is_none());
    }

    #[test]
    fn signed_headers_must_be_canonical() {
        assert!(signed_header_list("host;x-amz-date").is_ok());
        assert!(signed_header_list("x-amz-date;host").is_err());
        assert!(signed_header_list("Host;x-amz-date").is_err());
        assert!(signed_header_list("x-amz-date").is_err());
    }

    #[test]
    fn presign_auth_params_are_recognised_encoded_or_not() {
        assert!(is_auth_param("X-Amz-Signature=abc"));
        assert!(is_auth_param("X-Amz-Security-Token=a%2Bb"));
        assert!(!is_auth_param("Action=GetCallerIdentity"));
    }
}
