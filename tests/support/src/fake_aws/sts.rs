//! STS over the query protocol: AssumeRole and GetCallerIdentity.

use super::HttpRequest;
use super::sigv4::{self, AuthError};
use super::state::{Api, AssumeRoleRecord, Authenticated, Caller, CallerIdentity, Fault, State};
use super::wire::{self, AwsError, HttpResponse, Node, STS_XMLNS};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_DURATION: u64 = 3600;
const MIN_DURATION: u64 = 900;
const MAX_DURATION: u64 = 43200;
/// Role chaining (temporary credentials calling AssumeRole) is capped at one hour.
const MAX_CHAINED_DURATION: u64 = 3600;
const MAX_TAGS: usize = 50;
/// Bytes of session policy and tags that make a packed policy 100% full.
const PACKED_POLICY_BUDGET: usize = 2048;

/// A successful STS answer.
enum Reply {
    AssumeRole(AssumeRoleOutput),
    CallerIdentity(CallerIdentity),
}

struct AssumeRoleOutput {
    credentials: Caller,
    source_identity: Option<String>,
    packed_policy_size: Option<usize>,
}

/// Answers an STS HTTP request.
pub(crate) async fn handle(state: &Arc<State>, req: &HttpRequest) -> HttpResponse {
    let request_id = state.next_request_id();
    let json = wants_json(&req.headers);
    match call(state, req).await {
        Ok((action, reply)) => render_reply(action, &reply, &request_id, json),
        Err(err) => render_error(&err, &request_id, json),
    }
}

async fn call(state: &Arc<State>, req: &HttpRequest) -> Result<(String, Reply), AwsError> {
    let params = params(req);
    let action = params.get("Action").cloned().unwrap_or_default();
    let reply = match action.as_str() {
        "AssumeRole" => Reply::AssumeRole(assume_role(state, req, &params).await?),
        "GetCallerIdentity" => Reply::CallerIdentity(get_caller_identity(state, req).await?),
        "" => {
            return Err(AwsError::new(
                StatusCode::BAD_REQUEST,
                "MissingAction",
                "Missing Action",
            ));
        }
        other => {
            return Err(AwsError::new(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                format!("Could not find operation {other} for version 2011-06-15"),
            ));
        }
    };
    Ok((action, reply))
}

/// See [`FakeAwsHandle::presigned_caller_identity`](super::FakeAwsHandle::presigned_caller_identity).
pub(crate) async fn presigned_caller_identity(
    state: &Arc<State>,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<CallerIdentity, AwsError> {
    let req = presigned_request(url, headers)?;
    if !sigv4::query_params(&req).contains_key("X-Amz-Signature") {
        return Err(AwsError::validation("not a presigned URL"));
    }
    match params(&req).get("Action").map(String::as_str) {
        Some("GetCallerIdentity") => get_caller_identity(state, &req).await,
        _ => Err(AwsError::validation(
            "the presigned URL is not for GetCallerIdentity",
        )),
    }
}

fn presigned_request(url: &str, headers: &[(&str, &str)]) -> Result<HttpRequest, AwsError> {
    let bad_url = || AwsError::validation(format!("not an absolute URL: {url}"));
    let uri: Uri = url.parse().map_err(|_| bad_url())?;
    let host = uri.authority().ok_or_else(bad_url)?.as_str();
    let mut map = HeaderMap::new();
    map.insert(
        header::HOST,
        HeaderValue::from_str(host).map_err(|_| bad_url())?,
    );
    for (name, value) in headers {
        let bad_header = || AwsError::validation(format!("bad header {name}"));
        map.append(
            HeaderName::try_from(*name).map_err(|_| bad_header())?,
            HeaderValue::from_str(value).map_err(|_| bad_header())?,
        );
    }
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok(HttpRequest {
        method: Method::GET,
        uri: path_and_query.parse().map_err(|_| bad_url())?,
        headers: map,
        body: Bytes::new(),
    })
}

async fn get_caller_identity(
    state: &Arc<State>,
    req: &HttpRequest,
) -> Result<CallerIdentity, AwsError> {
    state.count(|c| c.get_caller_identity += 1);
    state.before_answer(Api::Sts).await.map_err(fault_error)?;
    Ok(authenticate(state, req)?.caller.identity)
}

async fn assume_role(
    state: &Arc<State>,
    req: &HttpRequest,
    params: &HashMap<String, String>,
) -> Result<AssumeRoleOutput, AwsError> {
    let role_arn = params.get("RoleArn").map_or("", String::as_str);
    let _in_flight = state.begin_assume_role(role_arn);
    state.before_answer(Api::Sts).await.map_err(fault_error)?;
    let caller = authenticate(state, req)?.caller;
    let input = AssumeRoleInput::parse(params)?;
    authorize(state, &caller, &input)?;
    let packed_policy_size = packed_policy_size(&input)?;
    let credentials = state.issue(assumed_identity(state, &input), input.duration());
    state.record(AssumeRoleRecord {
        role_arn: input.role.arn.clone(),
        role_session_name: input.session_name.clone(),
        source_identity: input.source_identity.clone(),
        tags: input.tags.clone(),
        duration_seconds: input.duration_seconds,
        caller_access_key_id: caller.access_key_id.clone(),
        issued_access_key_id: credentials.access_key_id.clone(),
        expiration: credentials
            .expiration
            .unwrap_or_else(std::time::SystemTime::now),
    });
    Ok(AssumeRoleOutput {
        credentials,
        source_identity: input.source_identity,
        packed_policy_size,
    })
}

fn authenticate(state: &State, req: &HttpRequest) -> Result<Authenticated, AwsError> {
    let region = host_region(&req.headers);
    state
        .authenticate(req, "sts", region.as_deref())
        .map_err(auth_error)
}

/// The region a public STS host name implies (`sts.amazonaws.com` is us-east-1); `None` for
/// other hosts (this server's own address, VPC endpoints), which accept any region.
fn host_region(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let host = host.split(':').next()?.to_ascii_lowercase();
    if host == "sts.amazonaws.com" {
        return Some("us-east-1".to_owned());
    }
    let rest = host
        .strip_prefix("sts-fips.")
        .or_else(|| host.strip_prefix("sts."))?;
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
    (!region.is_empty() && !region.contains('.')).then(|| region.to_owned())
}

fn authorize(state: &State, caller: &Caller, input: &AssumeRoleInput) -> Result<(), AwsError> {
    let options = &state.options;
    let allowed = input.role.account == options.account_id
        && (options.allowed_roles.is_empty() || options.allowed_roles.contains(&input.role.arn));
    if !allowed {
        return Err(AwsError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
                caller.identity.arn, input.role.arn
            ),
        ));
    }
    if caller.is_temporary() && input.duration_seconds > MAX_CHAINED_DURATION {
        return Err(AwsError::validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed \
             by role chaining.",
        ));
    }
    Ok(())
}

fn assumed_identity(state: &State, input: &AssumeRoleInput) -> CallerIdentity {
    let account = &state.options.account_id;
    let role_id = wire::stable_id("AROA", &input.role.arn);
    CallerIdentity {
        user_id: format!("{role_id}:{}", input.session_name),
        account: account.clone(),
        arn: format!(
            "arn:{}:sts::{account}:assumed-role/{}/{}",
            input.role.partition, input.role.name, input.session_name
        ),
    }
}

/// Percentage of the packed-policy budget used by the session policy and tags; `None` when the
/// request has neither (STS then omits PackedPolicySize).
fn packed_policy_size(input: &AssumeRoleInput) -> Result<Option<usize>, AwsError> {
    let tag_bytes: usize = input.tags.iter().map(|(k, v)| k.len() + v.len()).sum();
    let used = input.policy_bytes + tag_bytes;
    if used == 0 {
        return Ok(None);
    }
    let percent = (used * 100).div_ceil(PACKED_POLICY_BUDGET);
    if percent > 100 {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "PackedPolicyTooLarge",
            format!(
                "Packed policy consumes {percent}% of allotted space, please use smaller policy \
                 for this request."
            ),
        ));
    }
    Ok(Some(percent))
}

/// A validated `RoleArn`.
struct RoleArn {
    arn: String,
    partition: String,
    account: String,
    name: String,
}

impl RoleArn {
    fn parse(arn: &str) -> Result<Self, AwsError> {
        let invalid = || AwsError::validation(format!("{arn} is invalid"));
        if !(20..=2048).contains(&arn.len()) {
            return Err(AwsError::constraint(
                arn,
                "roleArn",
                "Member must have length between 20 and 2048",
            ));
        }
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ["arn", partition, "iam", "", account, resource] = parts[..] else {
            return Err(invalid());
        };
        let path = resource.strip_prefix("role/").ok_or_else(invalid)?;
        let name = path.rsplit('/').next().unwrap_or_default();
        let valid = matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && (1..=64).contains(&name.len())
            && path
                .split('/')
                .all(|segment| segment.chars().all(is_name_char));
        if !valid {
            return Err(invalid());
        }
        Ok(Self {
            arn: arn.to_owned(),
            partition: partition.to_owned(),
            account: account.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// The validated parameters of an AssumeRole call.
struct AssumeRoleInput {
    role: RoleArn,
    session_name: String,
    source_identity: Option<String>,
    tags: Vec<(String, String)>,
    duration_seconds: u64,
    policy_bytes: usize,
}

impl AssumeRoleInput {
    fn parse(params: &HashMap<String, String>) -> Result<Self, AwsError> {
        let required = |name: &str, field: &str| {
            params.get(name).cloned().ok_or_else(|| {
                AwsError::validation(format!(
                    "1 validation error detected: Value null at '{field}' failed to satisfy \
                     constraint: Member must not be null"
                ))
            })
        };
        let role = RoleArn::parse(&required("RoleArn", "roleArn")?)?;
        let session_name = required("RoleSessionName", "roleSessionName")?;
        check_name(&session_name, "roleSessionName")?;
        let source_identity = params.get("SourceIdentity").cloned();
        if let Some(source_identity) = &source_identity {
            check_source_identity(source_identity)?;
        }
        Ok(Self {
            role,
            session_name,
            source_identity,
            tags: parse_tags(params)?,
            duration_seconds: parse_duration(params)?,
            policy_bytes: params.get("Policy").map_or(0, String::len),
        })
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_seconds)
    }
}

/// `[\w+=,.@-]`, the character class of session names, source identities and role names.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

fn check_name(value: &str, field: &str) -> Result<(), AwsError> {
    let len = value.chars().count();
    if len < 2 {
        return Err(AwsError::constraint(
            value,
            field,
            "Member must have length greater than or equal to 2",
        ));
    }
    if len > 64 {
        return Err(AwsError::constraint(
            value,
            field,
            "Member must have length less than or equal to 64",
        ));
    }
    if !value.chars().all(is_name_char) {
        return Err(AwsError::constraint(
            value,
            field,
            "Member must satisfy regular expression pattern: [\\w+=,.@-]*",
        ));
    }
    Ok(())
}

fn check_source_identity(value: &str) -> Result<(), AwsError> {
    check_name(value, "sourceIdentity")?;
    if value.to_ascii_lowercase().starts_with("aws:") {
        return Err(AwsError::validation(
            "SourceIdentity cannot start with the reserved prefix 'aws:'",
        ));
    }
    Ok(())
}

fn parse_duration(params: &HashMap<String, String>) -> Result<u64, AwsError> {
    let Some(raw) = params.get("DurationSeconds") else {
        return Ok(DEFAULT_DURATION);
    };
    let seconds: u64 = raw.parse().map_err(|_| {
        AwsError::validation(format!(
            "Value '{raw}' for parameter DurationSeconds is invalid."
        ))
    })?;
    if seconds < MIN_DURATION {
        return Err(AwsError::constraint(
            raw,
            "durationSeconds",
            "Member must have value greater than or equal to 900",
        ));
    }
    if seconds > MAX_DURATION {
        return Err(AwsError::validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }
    Ok(seconds)
}

/// `Tags.member.N.Key`/`Value` for N = 1, 2, … until the first missing key.
fn parse_tags(params: &HashMap<String, String>) -> Result<Vec<(String, String)>, AwsError> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for n in 1.. {
        let Some(key) = params.get(&format!("Tags.member.{n}.Key")) else {
            break;
        };
        let value = params
            .get(&format!("Tags.member.{n}.Value"))
            .cloned()
            .unwrap_or_default();
        check_tag(key, &value)?;
        if tags.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
            return Err(AwsError::new(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValue",
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
            ));
        }
        tags.push((key.clone(), value));
    }
    if tags.len() > MAX_TAGS {
        return Err(AwsError::constraint(
            &format!("{} tags", tags.len()),
            "tags",
            "Member must have length less than or equal to 50",
        ));
    }
    Ok(tags)
}

/// `[\p{L}\p{Z}\p{N}_.:/=+\-@]`, the character class of tag keys and values.
fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)
}

fn check_tag(key: &str, value: &str) -> Result<(), AwsError> {
    let pattern = "Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+";
    if !(1..=128).contains(&key.chars().count()) || !key.chars().all(is_tag_char) {
        return Err(AwsError::constraint(key, "tags.member.key", pattern));
    }
    if value.chars().count() > 256 || !value.chars().all(is_tag_char) {
        return Err(AwsError::constraint(value, "tags.member.value", pattern));
    }
    Ok(())
}

/// Query-string parameters, then form-encoded body parameters (POST).
fn params(req: &HttpRequest) -> HashMap<String, String> {
    let mut params = sigv4::query_params(req);
    let is_form = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if req.method == Method::POST && is_form {
        for (key, value) in form_urlencoded::parse(&req.body) {
            params.entry(key.into_owned()).or_insert(value.into_owned());
        }
    }
    params
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

fn auth_error(err: AuthError) -> AwsError {
    let forbidden = |code: &str, message: &str| AwsError::new(StatusCode::FORBIDDEN, code, message);
    match err {
        AuthError::Missing => forbidden(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ),
        AuthError::Incomplete(message) => {
            AwsError::new(StatusCode::BAD_REQUEST, "IncompleteSignature", message)
        }
        AuthError::UnknownKey => forbidden(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ),
        AuthError::Expired => forbidden(
            "ExpiredToken",
            "The security token included in the request is expired",
        ),
        AuthError::Signature(message) => forbidden("SignatureDoesNotMatch", &message),
    }
}

fn fault_error(fault: Fault) -> AwsError {
    match fault {
        Fault::FailWith(status, message) => AwsError::new(status, "InternalFailure", message),
        Fault::Throttle => AwsError::new(StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded"),
        Fault::Fail(StatusCode::SERVICE_UNAVAILABLE) => AwsError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "Service is unavailable. Please try again later.",
        ),
        Fault::Fail(status) => AwsError::new(
            status,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        ),
    }
}

fn reply_node(reply: &Reply) -> Node {
    match reply {
        Reply::AssumeRole(output) => assume_role_node(output),
        Reply::CallerIdentity(identity) => Node::Tree(vec![
            ("Arn", Node::text(&identity.arn)),
            ("UserId", Node::text(&identity.user_id)),
            ("Account", Node::text(&identity.account)),
        ]),
    }
}

fn assume_role_node(output: &AssumeRoleOutput) -> Node {
    let creds = &output.credentials;
    let mut result = Vec::new();
    if let Some(source_identity) = &output.source_identity {
        result.push(("SourceIdentity", Node::text(source_identity)));
    }
    result.push((
        "AssumedRoleUser",
        Node::Tree(vec![
            ("Arn", Node::text(&creds.identity.arn)),
            ("AssumedRoleId", Node::text(&creds.identity.user_id)),
        ]),
    ));
    result.push((
        "Credentials",
        Node::Tree(vec![
            ("AccessKeyId", Node::text(&creds.access_key_id)),
            ("SecretAccessKey", Node::text(&creds.secret_access_key)),
            (
                "SessionToken",
                Node::text(creds.session_token.clone().unwrap_or_default()),
            ),
            (
                "Expiration",
                Node::text(creds.expiration.map(wire::iso8601).unwrap_or_default()),
            ),
        ]),
    ));
    if let Some(size) = output.packed_policy_size {
        result.push(("PackedPolicySize", Node::text(size.to_string())));
    }
    Node::Tree(result)
}

fn render_reply(action: String, reply: &Reply, request_id: &str, json: bool) -> HttpResponse {
    let root = format!("{action}Response");
    let document = Node::Tree(vec![
        (result_name(reply), reply_node(reply)),
        (
            "ResponseMetadata",
            Node::Tree(vec![("RequestId", Node::text(request_id))]),
        ),
    ]);
    let body = if json {
        serde_json::json!({ root: document.to_json() }).to_string()
    } else {
        document.to_xml(&root, Some(STS_XMLNS))
    };
    wire::response(StatusCode::OK, content_type(json), request_id, body)
}

fn result_name(reply: &Reply) -> &'static str {
    match reply {
        Reply::AssumeRole(_) => "AssumeRoleResult",
        Reply::CallerIdentity(_) => "GetCallerIdentityResult",
    }
}

fn render_error(err: &AwsError, request_id: &str, json: bool) -> HttpResponse {
    let kind = if err.is_sender_fault() {
        "Sender"
    } else {
        "Receiver"
    };
    let error = Node::Tree(vec![
        ("Type", Node::text(kind)),
        ("Code", Node::text(&err.code)),
        ("Message", Node::text(&err.message)),
    ]);
    let document = Node::Tree(vec![
        ("Error", error),
        ("RequestId", Node::text(request_id)),
    ]);
    let body = if json {
        document.to_json().to_string()
    } else {
        document.to_xml("ErrorResponse", Some(STS_XMLNS))
    };
    wire::response(err.status, content_type(json), request_id, body)
}

fn content_type(json: bool) -> &'static str {
    if json { "application/json" } else { "text/xml" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_map(host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).expect("host"));
        headers
    }

    #[test]
    fn public_sts_hosts_imply_their_region() {
        let region = |host| host_region(&header_map(host));
        assert_eq!(region("sts.amazonaws.com").as_deref(), Some("us-east-1"));
        assert_eq!(
            region("sts.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region("sts-fips.us-east-2.amazonaws.com").as_deref(),
            Some("us-east-2")
        );
        assert_eq!(
            region("sts.cn-north-1.amazonaws.com.cn").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(region("127.0.0.1:4566"), None);
        assert_eq!(region("vpce-1.sts.us-east-1.vpce.amazonaws.com"), None);
    }

    #[test]
    fn role_arns_are_validated() {
        let role = RoleArn::parse("arn:aws:iam::123456789012:role/team/alice").expect("valid");
        assert_eq!(
            (role.account.as_str(), role.name.as_str()),
            ("123456789012", "alice")
        );
        for bad in [
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::12345678901:role/alice",
            "arn:aws:s3:::bucket/role/alice-and-more",
            "arn:aws:iam::123456789012:role/al ice",
            "role/alice",
        ] {
            assert!(RoleArn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn session_names_follow_sts_rules() {
        assert!(check_name("alice", "roleSessionName").is_ok());
        assert!(check_name("a", "roleSessionName").is_err());
        assert!(check_name(&"a".repeat(65), "roleSessionName").is_err());
        assert!(check_name("al ice", "roleSessionName").is_err());
        assert!(check_source_identity("aws:alice").is_err());
    }

    #[test]
    fn tags_are_parsed_in_order_and_limited() {
        let mut params: HashMap<String, String> = (1..=2)
            .flat_map(|n| {
                [
                    (format!("Tags.member.{n}.Key"), format!("k{n}")),
                    (format!("Tags.member.{n}.Value"), format!("v{n}")),
                ]
            })
            .collect();
        let tags = parse_tags(&params).expect("valid tags");
        assert_eq!(
            tags,
            [("k1".into(), "v1".into()), ("k2".into(), "v2".into())]
        );
        params.insert("Tags.member.3.Key".into(), "K1".into());
        assert_eq!(
            parse_tags(&params).unwrap_err().code,
            "InvalidParameterValue"
        );
        let many: HashMap<String, String> = (1..=51)
            .map(|n| (format!("Tags.member.{n}.Key"), format!("k{n}")))
            .collect();
        assert_eq!(parse_tags(&many).unwrap_err().code, "ValidationError");
    }
}
