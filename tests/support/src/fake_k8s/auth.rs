//! Authentication the way EKS does it: aws-iam-authenticator's token checks, the presigned
//! GetCallerIdentity answered by the fake STS for the public host the token names, then the
//! ARN → user mapping of aws-auth (`mapRoles`/`mapUsers`) or access entries.

use crate::fake_aws::FakeAwsHandle;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};
use time::PrimitiveDateTime;
use time::macros::format_description;

/// The prefix of EKS bearer tokens.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// aws-iam-authenticator's limit on a token's length.
const MAX_TOKEN_LEN: usize = 4096;
/// Tokens are valid this long after their X-Amz-Date.
pub const TOKEN_VALIDITY: Duration = Duration::from_secs(15 * 60);
/// The largest X-Amz-Expires accepted (what every token generator writes).
pub const MAX_TOKEN_EXPIRES: u64 = 60;
/// The header whose signed value binds a token to a cluster.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// The only query parameters a token may carry (lowercased).
const ALLOWED_PARAMS: [&str; 9] = [
    "action",
    "version",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-signedheaders",
];

/// An aws-auth `mapRoles`/`mapUsers` entry (or an EKS access entry): which IAM principal is
/// which Kubernetes user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityMapping {
    /// `arn:aws:iam::ACCOUNT:role/NAME` or `arn:aws:iam::ACCOUNT:user/NAME`, compared
    /// case-insensitively with the caller's canonical ARN (an assumed-role session
    /// `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION` is `arn:aws:iam::ACCOUNT:role/NAME`).
    /// As in aws-auth, a role ARN with a path never matches. Testkit extension, not EKS: a
    /// trailing `*` matches any ARN with that prefix (`…:role/bastion-*`).
    pub arn: String,
    /// Username, with the templates `{{SessionName}}` (the session name with `@` as `-`),
    /// `{{SessionNameRaw}}`, `{{AccountID}}` and `{{AccessKeyID}}`.
    pub username: String,
    /// Groups (templates allowed); `system:authenticated` is always added.
    pub groups: Vec<String>,
}

#[derive(Deserialize)]
struct AwsAuthEntry {
    #[serde(default, alias = "rolearn")]
    rolearn: Option<String>,
    #[serde(default)]
    userarn: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

impl IdentityMapping {
    /// A mapping of `arn` to `username` in `groups`.
    pub fn new(arn: impl Into<String>, username: impl Into<String>, groups: &[&str]) -> Self {
        Self {
            arn: arn.into(),
            username: username.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    /// The mappings of the `aws-auth` ConfigMap (namespace `kube-system`) among the objects of
    /// a multi-document YAML: its `data.mapRoles` and `data.mapUsers` (YAML lists of
    /// `{rolearn|userarn, username, groups}`). No such ConfigMap: no mappings.
    pub fn from_aws_auth_yaml(yaml: &str) -> Result<Vec<Self>, String> {
        let mut mappings = Vec::new();
        for object in super::rbac::yaml_objects(yaml)? {
            let is_aws_auth = object.get("kind").and_then(Value::as_str) == Some("ConfigMap")
                && object.pointer("/metadata/name").and_then(Value::as_str) == Some("aws-auth")
                && object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    == Some("kube-system");
            if !is_aws_auth {
                continue;
            }
            for key in ["mapRoles", "mapUsers"] {
                let Some(text) = object.pointer(&format!("/data/{key}")) else {
                    continue;
                };
                let text = text
                    .as_str()
                    .ok_or_else(|| format!("aws-auth data.{key} must be a string"))?;
                let entries: Vec<AwsAuthEntry> = serde_yaml_ng::from_str(text)
                    .map_err(|e| format!("aws-auth data.{key}: {e}"))?;
                for entry in entries {
                    let arn = match (key, entry.rolearn, entry.userarn) {
                        ("mapRoles", Some(arn), _) | ("mapUsers", _, Some(arn)) => arn,
                        _ => {
                            return Err(format!(
                                "aws-auth data.{key}: an entry lacks its {}",
                                if key == "mapRoles" {
                                    "rolearn"
                                } else {
                                    "userarn"
                                }
                            ));
                        }
                    };
                    mappings.push(Self {
                        username: entry.username.unwrap_or_else(|| arn.clone()),
                        arn,
                        groups: entry.groups,
                    });
                }
            }
        }
        Ok(mappings)
    }

    fn matches(&self, canonical_arn: &str) -> bool {
        let wanted = self.arn.to_ascii_lowercase();
        let actual = canonical_arn.to_ascii_lowercase();
        match wanted.strip_suffix('*') {
            Some(prefix) => actual.starts_with(prefix),
            None => wanted == actual,
        }
    }
}

/// Who an authenticated request comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    /// Kubernetes username.
    pub username: String,
    /// `aws-iam-authenticator:ACCOUNT:USERID`, as EKS sets it.
    pub uid: String,
    /// Groups, `system:authenticated` (or `system:unauthenticated`) included.
    pub groups: Vec<String>,
    /// `arn`, `canonicalArn`, `sessionName`, `accessKeyId`, `principalId`, as EKS sets them.
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// `system:anonymous`, what a request without credentials is.
    pub fn anonymous() -> Self {
        Self {
            username: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
            extra: BTreeMap::new(),
        }
    }
}

/// The parts of a verified token the mapping needs.
struct AwsIdentity {
    arn: String,
    canonical_arn: String,
    account: String,
    user_id: String,
    session_name: String,
    access_key_id: String,
}

/// Verifies an EKS bearer token for `cluster` and maps its caller. The error is the reason,
/// worded like aws-iam-authenticator's log line; the client only ever sees `Unauthorized`.
pub(crate) async fn authenticate(
    token: &str,
    cluster: &str,
    aws: &FakeAwsHandle,
    mappings: &[IdentityMapping],
) -> Result<UserInfo, String> {
    let url = check_token(token, SystemTime::now())?;
    let caller = aws
        .presigned_caller_identity(&url, &[(CLUSTER_ID_HEADER, cluster)])
        .await
        .map_err(|e| {
            format!(
                "sts getCallerIdentity failed: error from AWS (expected 200, got {}): {} {}",
                e.status.as_u16(),
                e.code,
                e.message
            )
        })?;
    let params: HashMap<String, String> = query_of(&url)
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let access_key_id = params
        .get("x-amz-credential")
        .and_then(|c| c.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let (user_id, session_name) = match caller.user_id.split_once(':') {
        Some((id, session)) => (id.to_owned(), session.to_owned()),
        None => (caller.user_id.clone(), String::new()),
    };
    let identity = AwsIdentity {
        canonical_arn: canonicalize(&caller.arn)?,
        arn: caller.arn,
        account: caller.account,
        user_id,
        session_name,
        access_key_id,
    };
    map_identity(&identity, mappings)
}

/// aws-iam-authenticator's format checks; returns the presigned URL.
pub(crate) fn check_token(token: &str, now: SystemTime) -> Result<String, String> {
    let bad = |message: &str| Err(format!("input token was not properly formatted: {message}"));
    if token.len() > MAX_TOKEN_LEN {
        return bad("token is too large");
    }
    let Some(encoded) = token.strip_prefix(TOKEN_PREFIX) else {
        return bad(&format!(
            "token is missing expected {TOKEN_PREFIX:?} prefix"
        ));
    };
    let Ok(decoded) = URL_SAFE_NO_PAD.decode(encoded) else {
        return bad("illegal base64 data");
    };
    let Ok(url) = String::from_utf8(decoded) else {
        return bad("the presigned URL is not UTF-8");
    };
    let Some(rest) = url.strip_prefix("https://") else {
        return bad("unexpected scheme in pre-signed URL");
    };
    let (authority, path_and_query) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !is_sts_host(authority) {
        return bad(&format!(
            "unexpected hostname {authority:?} in pre-signed URL"
        ));
    }
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    if path != "/" {
        return bad("unexpected path in pre-signed URL");
    }
    if url.contains('#') {
        return bad("unexpected fragment in pre-signed URL");
    }
    let mut params: HashMap<String, String> = HashMap::new();
    for (key, value) in query_of(&url) {
        let lower = key.to_ascii_lowercase();
        if !ALLOWED_PARAMS.contains(&lower.as_str()) {
            return bad(&format!("non-whitelisted query parameter {key:?}"));
        }
        if params.insert(lower, value).is_some() {
            return bad("query parameter with multiple values not supported");
        }
    }
    if query.is_empty() || params.get("action").map(String::as_str) != Some("GetCallerIdentity") {
        return bad("unexpected action parameter in pre-signed URL");
    }
    if params.get("version").map(String::as_str) != Some("2011-06-15") {
        return bad("unexpected version parameter in pre-signed URL");
    }
    let signs_cluster = params.get("x-amz-signedheaders").is_some_and(|h| {
        h.split(';')
            .any(|h| h.eq_ignore_ascii_case(CLUSTER_ID_HEADER))
    });
    if !signs_cluster {
        return bad(&format!(
            "client did not sign the {CLUSTER_ID_HEADER} header in the pre-signed URL"
        ));
    }
    let expires = params
        .get("x-amz-expires")
        .map(String::as_str)
        .unwrap_or("");
    if !expires
        .parse::<u64>()
        .is_ok_and(|secs| secs <= MAX_TOKEN_EXPIRES)
    {
        return bad(&format!(
            "invalid X-Amz-Expires parameter in pre-signed URL: {expires}"
        ));
    }
    let Some(date) = params.get("x-amz-date") else {
        return bad("X-Amz-Date parameter must be present in pre-signed URL");
    };
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    let Ok(signed) = PrimitiveDateTime::parse(date, format) else {
        return bad(&format!("error parsing X-Amz-Date parameter {date}"));
    };
    let signed: SystemTime = signed.assume_utc().into();
    if now > signed + TOKEN_VALIDITY {
        return bad(&format!(
            "X-Amz-Date parameter is expired (15 minute expiration) {date}"
        ));
    }
    Ok(url)
}

fn query_of(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The public STS hosts aws-iam-authenticator accepts: `sts.amazonaws.com`,
/// `sts.REGION.amazonaws.com`, `sts-fips.REGION.amazonaws.com` and, for China regions,
/// `sts.REGION.amazonaws.com.cn` (no port).
pub fn is_sts_host(host: &str) -> bool {
    if host == "sts.amazonaws.com" {
        return true;
    }
    let Some(rest) = host
        .strip_prefix("sts.")
        .or_else(|| host.strip_prefix("sts-fips."))
    else {
        return false;
    };
    if let Some(region) = rest.strip_suffix(".amazonaws.com.cn") {
        return host.starts_with("sts.") && region.starts_with("cn-") && is_region(region);
    }
    rest.strip_suffix(".amazonaws.com")
        .is_some_and(|region| is_region(region) && !region.starts_with("cn-"))
}

/// `us-east-1`, `us-gov-west-1`, `ap-southeast-4`, …
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 4
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// aws-iam-authenticator's `arn.Canonicalize`: an assumed-role session ARN becomes its role's
/// IAM ARN; IAM users and roles stay as they are.
pub fn canonicalize(arn: &str) -> Result<String, String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", partition, service, "", account, resource] = parts[..] else {
        return Err(format!("arn {arn:?} is invalid"));
    };
    match service {
        "iam" if resource.starts_with("role/") || resource.starts_with("user/") => {
            Ok(arn.to_owned())
        }
        "iam" if resource == "root" => Ok(arn.to_owned()),
        "sts" => {
            let pieces: Vec<&str> = resource.split('/').collect();
            match pieces[..] {
                ["assumed-role", role, _session] => {
                    Ok(format!("arn:{partition}:iam::{account}:role/{role}"))
                }
                ["federated-user", _] => Ok(arn.to_owned()),
                _ => Err(format!(
                    "unrecognized resource {resource:?} for service sts"
                )),
            }
        }
        _ => Err(format!(
            "service {service:?} in arn {arn:?} is not a valid service for identities"
        )),
    }
}

fn map_identity(identity: &AwsIdentity, mappings: &[IdentityMapping]) -> Result<UserInfo, String> {
    let mapping = mappings
        .iter()
        .find(|m| m.matches(&identity.canonical_arn))
        .ok_or_else(|| format!("ARN is not mapped: {}", identity.canonical_arn))?;
    let render = |template: &str| -> Result<String, String> {
        if template.contains("{{EC2PrivateDNSName}}") {
            return Err("{{EC2PrivateDNSName}} is not supported by the fake".into());
        }
        Ok(template
            .replace("{{AccountID}}", &identity.account)
            .replace("{{SessionName}}", &identity.session_name.replace('@', "-"))
            .replace("{{SessionNameRaw}}", &identity.session_name)
            .replace("{{AccessKeyID}}", &identity.access_key_id))
    };
    let username = render(&mapping.username)?;
    if username.is_empty() {
        return Err(format!(
            "mapping for {} renders an empty username",
            mapping.arn
        ));
    }
    let mut groups = mapping
        .groups
        .iter()
        .map(|g| render(g))
        .collect::<Result<Vec<_>, _>>()?;
    groups.push("system:authenticated".into());
    let principal = identity.user_id.clone();
    let mut extra = BTreeMap::new();
    extra.insert("accessKeyId".into(), vec![identity.access_key_id.clone()]);
    extra.insert("arn".into(), vec![identity.arn.clone()]);
    extra.insert("canonicalArn".into(), vec![identity.canonical_arn.clone()]);
    extra.insert("principalId".into(), vec![principal.clone()]);
    extra.insert("sessionName".into(), vec![identity.session_name.clone()]);
    extra.insert(
        "sigs.k8s.io/aws-iam-authenticator/principalId".into(),
        vec![principal],
    );
    Ok(UserInfo {
        username,
        uid: format!(
            "aws-iam-authenticator:{}:{}",
            identity.account, identity.user_id
        ),
        groups,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(url: &str) -> String {
        format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(url))
    }

    fn url(host: &str, extra: &str) -> String {
        format!(
            "https://{host}/?Action=GetCallerIdentity&Version=2011-06-15\
             &X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20240101%2Fus-east-1%2Fsts%2Faws4_request\
             &X-Amz-Date=20240101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id\
             &X-Amz-Signature=abc{extra}"
        )
    }

    fn at(minutes: u64) -> SystemTime {
        let format = format_description!("[year][month][day]T[hour][minute][second]Z");
        let start: SystemTime = PrimitiveDateTime::parse("20240101T000000Z", format)
            .expect("date")
            .assume_utc()
            .into();
        start + Duration::from_secs(minutes * 60)
    }

    #[test]
    fn well_formed_tokens_pass_the_format_checks() {
        let u = url("sts.us-east-1.amazonaws.com", "");
        assert_eq!(check_token(&token(&u), at(14)).as_deref(), Ok(u.as_str()));
    }

    #[test]
    fn malformed_tokens_are_refused_with_the_authenticators_reasons() {
        let ok = url("sts.amazonaws.com", "");
        let cases = [
            ("k8s-aws-v2.abc".to_owned(), "prefix"),
            (format!("{TOKEN_PREFIX}%%%"), "base64"),
            (token(&ok.replace("https://", "http://")), "scheme"),
            (token(&url("sts.example.com", "")), "hostname"),
            (
                token(&url("sts.us-east-1.amazonaws.com:443", "")),
                "hostname",
            ),
            (token(&url("127.0.0.1:4566", "")), "hostname"),
            (token(&ok.replace(".com/?", ".com/x?")), "path"),
            (
                token(&url("sts.amazonaws.com", "&Foo=1")),
                "non-whitelisted",
            ),
            (
                token(&url("sts.amazonaws.com", "&Action=GetCallerIdentity")),
                "multiple",
            ),
            (
                token(&ok.replace("GetCallerIdentity", "AssumeRole")),
                "action",
            ),
            (token(&ok.replace("Version=2011-06-15&", "")), "version"),
            (
                token(&ok.replace("host%3Bx-k8s-aws-id", "host")),
                "x-k8s-aws-id",
            ),
            (
                token(&ok.replace("Expires=60", "Expires=61")),
                "X-Amz-Expires",
            ),
            (
                token(&ok.replace("Expires=60", "Expires=-1")),
                "X-Amz-Expires",
            ),
            (
                token(&ok.replace("20240101T000000Z", "2024-01-01")),
                "X-Amz-Date",
            ),
            (format!("{TOKEN_PREFIX}{}", "A".repeat(5000)), "too large"),
        ];
        for (token, reason) in cases {
            let err = check_token(&token, at(1)).expect_err(reason);
            assert!(err.contains(reason), "{err} should mention {reason}");
        }
        let err = check_token(&token(&ok), at(16)).expect_err("expired");
        assert!(err.contains("expired (15 minute expiration)"), "{err}");
    }

    #[test]
    fn sts_hosts_follow_the_partitions() {
        for good in [
            "sts.amazonaws.com",
            "sts.eu-west-1.amazonaws.com",
            "sts-fips.us-east-2.amazonaws.com",
            "sts.us-gov-west-1.amazonaws.com",
            "sts.cn-north-1.amazonaws.com.cn",
        ] {
            assert!(is_sts_host(good), "{good}");
        }
        for bad in [
            "sts.amazonaws.com.evil.com",
            "sts.evil.com",
            "sts.us-east-1.amazonaws.com.cn",
            "sts.cn-north-1.amazonaws.com",
            "sts-fips.cn-north-1.amazonaws.com.cn",
            "vpce-1.sts.us-east-1.vpce.amazonaws.com",
            "sts.us-east-1.amazonaws.com:443",
            "sts..amazonaws.com",
            "sts.US-EAST-1.amazonaws.com",
        ] {
            assert!(!is_sts_host(bad), "{bad}");
        }
    }

    #[test]
    fn arns_are_canonicalized_like_the_authenticator() {
        assert_eq!(
            canonicalize("arn:aws:sts::123456789012:assumed-role/bastion-alice/alice").as_deref(),
            Ok("arn:aws:iam::123456789012:role/bastion-alice")
        );
        assert_eq!(
            canonicalize("arn:aws:iam::123456789012:user/ops/bob").as_deref(),
            Ok("arn:aws:iam::123456789012:user/ops/bob")
        );
        assert!(canonicalize("arn:aws:s3:::bucket").is_err());
    }

    fn identity(arn: &str, session: &str) -> AwsIdentity {
        AwsIdentity {
            canonical_arn: canonicalize(arn).expect("arn"),
            arn: arn.into(),
            account: "123456789012".into(),
            user_id: "AROAEXAMPLE".into(),
            session_name: session.into(),
            access_key_id: "ASIAEXAMPLE".into(),
        }
    }

    #[test]
    fn mappings_render_templates_and_refuse_unmapped_arns() {
        let mappings = [
            IdentityMapping::new(
                "arn:aws:iam::123456789012:role/Bastion-*",
                "{{SessionName}}",
                &["bastion:{{AccountID}}"],
            ),
            IdentityMapping::new(
                "arn:aws:iam::123456789012:role/admin",
                "admin",
                &["system:masters"],
            ),
        ];
        let user = map_identity(
            &identity(
                "arn:aws:sts::123456789012:assumed-role/bastion-alice/alice@corp",
                "alice@corp",
            ),
            &mappings,
        )
        .expect("mapped");
        assert_eq!(user.username, "alice-corp");
        assert_eq!(
            user.groups,
            ["bastion:123456789012", "system:authenticated"]
        );
        assert_eq!(user.uid, "aws-iam-authenticator:123456789012:AROAEXAMPLE");
        assert_eq!(
            user.extra["canonicalArn"],
            ["arn:aws:iam::123456789012:role/bastion-alice"]
        );
        let err = map_identity(
            &identity("arn:aws:sts::123456789012:assumed-role/other/x", "x"),
            &mappings,
        )
        .expect_err("unmapped");
        assert!(err.contains("not mapped"), "{err}");
    }

    #[test]
    fn aws_auth_config_maps_are_read() {
        let yaml = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: aws-auth, namespace: kube-system}
data:
  mapRoles: |
    - rolearn: arn:aws:iam::123456789012:role/bastion-alice
      username: "{{SessionName}}"
      groups: [rolesh:users]
  mapUsers: |
    - userarn: arn:aws:iam::123456789012:user/ops
      username: ops
      groups: [system:masters]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other, namespace: kube-system}
data: {mapRoles: "- rolearn: x"}
"#;
        let mappings = IdentityMapping::from_aws_auth_yaml(yaml).expect("aws-auth");
        assert_eq!(
            mappings,
            [
                IdentityMapping::new(
                    "arn:aws:iam::123456789012:role/bastion-alice",
                    "{{SessionName}}",
                    &["rolesh:users"]
                ),
                IdentityMapping::new(
                    "arn:aws:iam::123456789012:user/ops",
                    "ops",
                    &["system:masters"]
                ),
            ]
        );
    }
}
