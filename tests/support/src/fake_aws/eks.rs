//! EKS over rest-json: ListClusters and DescribeCluster.

use super::sigv4::{self, AuthError};
use super::state::{Api, Fault, State};
use super::wire::{self, AwsError, HttpResponse};
use super::{EksCluster, HttpRequest};
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

/// Creation time reported for every cluster (2024-01-01T00:00:00Z).
const CREATED_AT: f64 = 1_704_067_200.0;
const MAX_RESULTS: usize = 100;

enum Route {
    ListClusters,
    DescribeCluster(String),
}

impl Route {
    fn parse(req: &HttpRequest) -> Option<Self> {
        if req.method != Method::GET {
            return None;
        }
        match req.uri.path().trim_end_matches('/') {
            "/clusters" => Some(Self::ListClusters),
            path => path
                .strip_prefix("/clusters/")
                .filter(|name| !name.is_empty() && !name.contains('/'))
                .map(|name| Self::DescribeCluster(name.to_owned())),
        }
    }
}

/// Answers an EKS HTTP request.
pub(crate) async fn handle(state: &Arc<State>, req: &HttpRequest) -> HttpResponse {
    let request_id = state.next_request_id();
    match call(state, req).await {
        Ok(body) => wire::response(
            StatusCode::OK,
            "application/json",
            &request_id,
            body.to_string(),
        ),
        Err(err) => render_error(&err, &request_id),
    }
}

async fn call(state: &Arc<State>, req: &HttpRequest) -> Result<Value, AwsError> {
    let route = Route::parse(req).ok_or_else(|| {
        AwsError::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "Not Found",
        )
    })?;
    match &route {
        Route::ListClusters => state.count(|c| c.list_clusters += 1),
        Route::DescribeCluster(_) => state.count(|c| c.describe_cluster += 1),
    }
    state.before_answer(Api::Eks).await.map_err(fault_error)?;
    let caller = state.authenticate(req, "eks", None).map_err(auth_error)?;
    let region = caller.region;
    match route {
        Route::ListClusters => list_clusters(state, &region, req),
        Route::DescribeCluster(name) => {
            describe_cluster(state, &region, &name, &caller.caller.identity.arn)
        }
    }
}

/// Clusters of `region`, in configuration order, then those added while running.
fn clusters_in(state: &State, region: &str) -> Vec<EksCluster> {
    let default_region = state.options.region.as_str();
    state
        .options
        .clusters
        .iter()
        .cloned()
        .chain(state.added_clusters())
        .filter(|c| c.region.as_deref().unwrap_or(default_region) == region)
        .collect()
}

fn list_clusters(state: &State, region: &str, req: &HttpRequest) -> Result<Value, AwsError> {
    let query = sigv4::query_params(req);
    let invalid = |what: &str| {
        AwsError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            format!("The {what} is invalid."),
        )
    };
    let max_results = match query.get("maxResults") {
        Some(raw) => raw
            .parse()
            .ok()
            .filter(|n| (1..=MAX_RESULTS).contains(n))
            .ok_or_else(|| invalid("maxResults"))?,
        None => MAX_RESULTS,
    };
    let start: usize = match query.get("nextToken") {
        Some(token) => token.parse().map_err(|_| invalid("nextToken"))?,
        None => 0,
    };
    let clusters = clusters_in(state, region);
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    let page: Vec<&str> = names
        .iter()
        .skip(start)
        .take(max_results)
        .copied()
        .collect();
    let mut body = json!({ "clusters": page });
    if start + max_results < names.len() {
        body["nextToken"] = Value::String((start + max_results).to_string());
    }
    Ok(body)
}

fn describe_cluster(
    state: &State,
    region: &str,
    name: &str,
    caller_arn: &str,
) -> Result<Value, AwsError> {
    let clusters = clusters_in(state, region);
    let cluster = clusters.iter().find(|c| c.name == name).ok_or_else(|| {
        AwsError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("No cluster found for name: {name}."),
        )
    })?;
    if let Some(role) = assumed_role_arn(caller_arn)
        && cluster.denied_roles.contains(&role)
    {
        let account = &state.options.account_id;
        return Err(AwsError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            format!(
                "User: {caller_arn} is not authorized to perform: eks:DescribeCluster on resource: arn:aws:eks:{region}:{account}:cluster/{name}"
            ),
        ));
    }
    Ok(json!({ "cluster": cluster_json(state, region, cluster) }))
}

/// `arn:aws:iam::ACCOUNT:role/ROLE` of an `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
fn assumed_role_arn(caller_arn: &str) -> Option<String> {
    let (prefix, rest) = caller_arn.split_once(":assumed-role/")?;
    let account = prefix.rsplit(':').next().filter(|a| !a.is_empty())?;
    let role = rest.split('/').next()?;
    Some(format!("arn:aws:iam::{account}:role/{role}"))
}

fn cluster_json(state: &State, region: &str, cluster: &EksCluster) -> Value {
    let account = &state.options.account_id;
    let name = &cluster.name;
    let id = wire::stable_chars("", &format!("{region}/{name}"), 32);
    let short = id[..17].to_ascii_lowercase();
    json!({
        "name": name,
        "arn": format!("arn:aws:eks:{region}:{account}:cluster/{name}"),
        "createdAt": CREATED_AT,
        "version": cluster.version,
        "endpoint": cluster.endpoint,
        "roleArn": format!("arn:aws:iam::{account}:role/eks-cluster-{name}"),
        "resourcesVpcConfig": {
            "subnetIds": [],
            "securityGroupIds": [],
            "clusterSecurityGroupId": format!("sg-{short}"),
            "vpcId": format!("vpc-{short}"),
            "endpointPublicAccess": true,
            "endpointPrivateAccess": true,
            "publicAccessCidrs": ["0.0.0.0/0"]
        },
        "kubernetesNetworkConfig": { "serviceIpv4Cidr": "10.100.0.0/16", "ipFamily": "ipv4" },
        "identity": {
            "oidc": { "issuer": format!("https://oidc.eks.{region}.amazonaws.com/id/{id}") }
        },
        "status": cluster.status,
        "certificateAuthority": { "data": cluster.certificate_authority_data },
        "platformVersion": "eks.1",
        "tags": cluster.tags,
        "accessConfig": { "authenticationMode": "API_AND_CONFIG_MAP" }
    })
}

fn auth_error(err: AuthError) -> AwsError {
    let forbidden = |code: &str, message: &str| AwsError::new(StatusCode::FORBIDDEN, code, message);
    match err {
        AuthError::Missing => forbidden(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
        AuthError::Incomplete(message) => AwsError::new(
            StatusCode::BAD_REQUEST,
            "IncompleteSignatureException",
            message,
        ),
        AuthError::UnknownKey => forbidden(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        AuthError::Expired => forbidden(
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ),
        AuthError::Signature(message) => forbidden("InvalidSignatureException", &message),
    }
}

fn fault_error(fault: Fault) -> AwsError {
    match fault {
        Fault::FailWith(status, message) => AwsError::new(status, "ServerException", message),
        Fault::Throttle => AwsError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            "Rate exceeded",
        ),
        Fault::Fail(StatusCode::SERVICE_UNAVAILABLE) => AwsError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            "Service Unavailable",
        ),
        Fault::Fail(status) => AwsError::new(status, "ServerException", "Internal Server Error"),
    }
}

/// rest-json error: the code in `x-amzn-ErrorType`, the message in the body.
fn render_error(err: &AwsError, request_id: &str) -> HttpResponse {
    let body = json!({ "message": err.message }).to_string();
    let mut response = wire::response(err.status, "application/json", request_id, body);
    if let Ok(code) = HeaderValue::from_str(&err.code) {
        response.headers_mut().insert("x-amzn-errortype", code);
    }
    response
}
