//! Shared state of a running fake: credentials it issued, counters, injected faults.

use super::sigv4::{self, AuthError};
use super::wire::{self, AwsError};
use super::{FakeAwsOptions, HttpRequest};
use aws_credential_types::Credentials;
use http::StatusCode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;

/// Who the caller of GetCallerIdentity is, as STS answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    /// `AIDA…` for the base IAM user, `AROA…:SESSION` for an assumed role.
    pub user_id: String,
    /// Account id.
    pub account: String,
    /// `arn:aws:iam::ACCOUNT:user/rolesh-base` or `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: String,
}

/// One AssumeRole call that issued credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumeRoleRecord {
    /// Requested `RoleArn`.
    pub role_arn: String,
    /// Requested `RoleSessionName`.
    pub role_session_name: String,
    /// Requested `SourceIdentity`, if any.
    pub source_identity: Option<String>,
    /// Session tags (`Tags.member.N.Key`/`Value`) in request order.
    pub tags: Vec<(String, String)>,
    /// Requested `DurationSeconds` (3600 when absent).
    pub duration_seconds: u64,
    /// Access key id that signed the call.
    pub caller_access_key_id: String,
    /// Access key id of the issued temporary credentials.
    pub issued_access_key_id: String,
    /// Expiration of the issued credentials.
    pub expiration: SystemTime,
}

/// Which fake service a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// STS (AssumeRole, GetCallerIdentity).
    Sts,
    /// EKS (ListClusters, DescribeCluster).
    Eks,
}

/// Call counters; see [`FakeAwsHandle::counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// AssumeRole requests received, answered or not.
    pub assume_role: u64,
    /// GetCallerIdentity requests received (HTTP and in-process), answered or not.
    pub get_caller_identity: u64,
    /// DescribeCluster requests received, answered or not.
    pub describe_cluster: u64,
    /// ListClusters requests received, answered or not.
    pub list_clusters: u64,
}

/// A fault the next request of an API gets instead of its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    Throttle,
    Fail(StatusCode),
    /// A failure whose error message is the test's (e.g. one echoing secrets back).
    FailWith(StatusCode, String),
}

/// A key pair the fake accepts, with the principal it belongs to.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) session_token: Option<String>,
    pub(crate) expiration: Option<SystemTime>,
    pub(crate) identity: CallerIdentity,
}

impl Caller {
    pub(crate) fn is_temporary(&self) -> bool {
        self.session_token.is_some()
    }

    fn credentials(&self) -> Credentials {
        Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "rolesh-fake-aws",
        )
    }
}

/// A successfully authenticated request.
pub(crate) struct Authenticated {
    pub(crate) caller: Caller,
    /// Region of the credential scope.
    pub(crate) region: String,
}

#[derive(Default)]
struct RoleStats {
    calls: u64,
    in_flight: usize,
    max_in_flight: usize,
}

#[derive(Default)]
struct ApiFaults {
    throttle: u32,
    fail: u32,
    fail_status: Option<StatusCode>,
    fail_message: Option<String>,
}

#[derive(Default)]
struct Inner {
    counters: Counters,
    roles: HashMap<String, RoleStats>,
    records: Vec<AssumeRoleRecord>,
    temporary: HashMap<String, Caller>,
    issued: u64,
    faults: HashMap<Api, ApiFaults>,
    latency: Duration,
    drop_requests: u32,
    credential_duration: Option<Duration>,
    added_clusters: Vec<super::EksCluster>,
}

pub(crate) struct State {
    pub(crate) options: FakeAwsOptions,
    requests: AtomicU64,
    inner: Mutex<Inner>,
}

impl State {
    pub(crate) fn new(options: FakeAwsOptions) -> Self {
        Self {
            options,
            requests: AtomicU64::new(0),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn next_request_id(&self) -> String {
        wire::request_id(self.requests.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Latency, then the next injected fault of `api`, if any.
    pub(crate) async fn before_answer(&self, api: Api) -> Result<(), Fault> {
        let latency = self.lock().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.take_fault(api).map_or(Ok(()), Err)
    }

    fn take_fault(&self, api: Api) -> Option<Fault> {
        let mut inner = self.lock();
        let faults = inner.faults.entry(api).or_default();
        if faults.throttle > 0 {
            faults.throttle -= 1;
            return Some(Fault::Throttle);
        }
        if faults.fail > 0 {
            faults.fail -= 1;
            let status = faults
                .fail_status
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if let Some(message) = &faults.fail_message {
                return Some(Fault::FailWith(status, message.clone()));
            }
            return Some(Fault::Fail(
                faults
                    .fail_status
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ));
        }
        None
    }

    /// Whether the connection carrying the current request is to be dropped.
    pub(crate) fn take_dropped_request(&self) -> bool {
        let mut inner = self.lock();
        let drop = inner.drop_requests > 0;
        inner.drop_requests = inner.drop_requests.saturating_sub(1);
        drop
    }

    pub(crate) fn count(&self, bump: impl FnOnce(&mut Counters)) {
        bump(&mut self.lock().counters);
    }

    /// Counts an AssumeRole call for `role_arn` and marks it in flight until the guard drops.
    pub(crate) fn begin_assume_role(self: &Arc<Self>, role_arn: &str) -> FlightGuard {
        let mut inner = self.lock();
        inner.counters.assume_role += 1;
        let role = inner.roles.entry(role_arn.to_owned()).or_default();
        role.calls += 1;
        role.in_flight += 1;
        role.max_in_flight = role.max_in_flight.max(role.in_flight);
        FlightGuard {
            state: Arc::clone(self),
            role_arn: role_arn.to_owned(),
        }
    }

    /// Verifies the request's SigV4 signature for `service`; `region`, when given, is the only
    /// credential-scope region accepted.
    pub(crate) fn authenticate(
        &self,
        req: &HttpRequest,
        service: &str,
        region: Option<&str>,
    ) -> Result<Authenticated, AuthError> {
        let claim = sigv4::claim(req)?;
        if claim.service != service {
            return Err(AuthError::Signature(format!(
                "Credential should be scoped to correct service: '{service}'. "
            )));
        }
        if region.is_some_and(|r| r != claim.region) {
            return Err(AuthError::Signature(
                "Credential should be scoped to a valid region. ".into(),
            ));
        }
        let caller = self
            .lookup(&claim.access_key_id)
            .ok_or(AuthError::UnknownKey)?;
        if !same_token(
            caller.session_token.as_deref(),
            claim.security_token.as_deref(),
        ) {
            return Err(AuthError::UnknownKey);
        }
        let now = SystemTime::now();
        let signed_at = sigv4::signing_time(&claim, now)?;
        sigv4::verify(req, &claim, caller.credentials(), signed_at)?;
        if caller.expiration.is_some_and(|at| at <= now) {
            return Err(AuthError::Expired);
        }
        Ok(Authenticated {
            caller,
            region: claim.region,
        })
    }

    fn lookup(&self, access_key_id: &str) -> Option<Caller> {
        if access_key_id == self.options.access_key_id {
            return Some(self.base_caller());
        }
        self.lock().temporary.get(access_key_id).cloned()
    }

    fn base_caller(&self) -> Caller {
        let account = &self.options.account_id;
        Caller {
            access_key_id: self.options.access_key_id.clone(),
            secret_access_key: self.options.secret_access_key.clone(),
            session_token: None,
            expiration: None,
            identity: CallerIdentity {
                user_id: wire::stable_id("AIDA", &self.options.access_key_id),
                account: account.clone(),
                arn: format!("arn:aws:iam::{account}:user/{}", super::BASE_USER_NAME),
            },
        }
    }

    /// Issues and remembers temporary credentials for `identity`, valid for `requested` (or the
    /// injected credential duration).
    pub(crate) fn issue(&self, identity: CallerIdentity, requested: Duration) -> Caller {
        let mut inner = self.lock();
        inner.issued += 1;
        let n = inner.issued;
        let access_key_id = format!("ASIAROLESH{n:010}");
        let secret_access_key = format!(
            "fakeSecret{n:010}{}",
            wire::stable_chars("", &access_key_id, 20)
        );
        let session_token = format!(
            "IQoJb3JpZ2luX2VjEROLESH+fake/{n:010}/{}==",
            wire::stable_chars("", &secret_access_key, 64)
        );
        let duration = inner.credential_duration.unwrap_or(requested);
        let caller = Caller {
            access_key_id: access_key_id.clone(),
            secret_access_key,
            session_token: Some(session_token),
            expiration: Some(SystemTime::now() + duration),
            identity,
        };
        inner.temporary.insert(access_key_id, caller.clone());
        caller
    }

    pub(crate) fn record(&self, record: AssumeRoleRecord) {
        self.lock().records.push(record);
    }

    /// Clusters added with [`FakeAwsHandle::add_cluster`].
    pub(crate) fn added_clusters(&self) -> Vec<super::EksCluster> {
        self.lock().added_clusters.clone()
    }
}

fn same_token(expected: Option<&str>, given: Option<&str>) -> bool {
    match (expected, given) {
        (None, None) => true,
        (Some(expected), Some(given)) => bool::from(expected.as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    }
}

/// Marks one AssumeRole call for a role as in flight while alive.
pub(crate) struct FlightGuard {
    state: Arc<State>,
    role_arn: String,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if let Some(role) = self.state.lock().roles.get_mut(&self.role_arn) {
            role.in_flight = role.in_flight.saturating_sub(1);
        }
    }
}

/// Control and inspection of a running [`FakeAws`](super::FakeAws): inject faults, read
/// counters and recorded calls. Cheap to clone, usable from any thread while the fake runs.
#[derive(Clone)]
pub struct FakeAwsHandle {
    pub(crate) state: Arc<State>,
}

impl FakeAwsHandle {
    /// The options the fake was started with.
    pub fn options(&self) -> &FakeAwsOptions {
        &self.state.options
    }

    /// The next `n` calls to `api` fail with throttling: STS `Throttling` (400),
    /// EKS `ThrottlingException` (429). Throttling is served before other injected failures.
    pub fn throttle_next(&self, api: Api, n: u32) {
        self.state.lock().faults.entry(api).or_default().throttle = n;
    }

    /// The next `n` calls to `api` fail with `status` (500 or 503 are what AWS sends; STS
    /// answers `InternalFailure` or `ServiceUnavailable`, EKS `ServerException` or
    /// `ServiceUnavailableException`).
    pub fn fail_next(&self, api: Api, n: u32, status: StatusCode) {
        let mut inner = self.state.lock();
        let faults = inner.faults.entry(api).or_default();
        faults.fail = n;
        faults.fail_status = Some(status);
        faults.fail_message = None;
    }

    /// Like [`fail_next`](Self::fail_next), with `message` as the error message: what a
    /// misbehaving endpoint or proxy might echo back (secrets included).
    pub fn fail_next_with_message(&self, api: Api, n: u32, status: StatusCode, message: &str) {
        let mut inner = self.state.lock();
        let faults = inner.faults.entry(api).or_default();
        faults.fail = n;
        faults.fail_status = Some(status);
        faults.fail_message = Some(message.to_string());
    }

    /// Every STS and EKS call waits `latency` before it is answered (zero to turn off); calls
    /// in flight during the wait count as concurrent.
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().latency = latency;
    }

    /// For each of the next `n` requests (any API), the server closes the connection after
    /// reading the request, without sending a response.
    pub fn drop_next_connections(&self, n: u32) {
        self.state.lock().drop_requests = n;
    }

    /// Credentials issued from now on last `duration` whatever DurationSeconds asked for
    /// (`None` restores the requested duration). `Duration::ZERO` issues credentials that are
    /// already expired.
    pub fn set_credential_duration(&self, duration: Option<Duration>) {
        self.state.lock().credential_duration = duration;
    }

    /// Clears all injected faults (throttling, failures, latency, dropped connections,
    /// credential duration).
    pub fn clear_faults(&self) {
        let mut inner = self.state.lock();
        inner.faults.clear();
        inner.latency = Duration::ZERO;
        inner.drop_requests = 0;
        inner.credential_duration = None;
    }

    /// Adds a cluster to those EKS lists and describes (after [`FakeAwsOptions::clusters`]),
    /// e.g. a fake Kubernetes API server started after the fake AWS.
    ///
    /// [`FakeAwsOptions::clusters`]: super::FakeAwsOptions::clusters
    pub fn add_cluster(&self, cluster: super::EksCluster) {
        self.state.lock().added_clusters.push(cluster);
    }

    /// Totals of calls received per operation.
    pub fn counters(&self) -> Counters {
        self.state.lock().counters
    }

    /// AssumeRole calls received for `role_arn` (as the request spelled it), answered or not.
    pub fn assume_role_calls_for(&self, role_arn: &str) -> u64 {
        self.state.lock().roles.get(role_arn).map_or(0, |r| r.calls)
    }

    /// The largest number of AssumeRole calls for `role_arn` that were in flight at once.
    /// 1 means the client never overlapped calls for that role (single flight).
    pub fn max_concurrent_assume_role(&self, role_arn: &str) -> usize {
        self.state
            .lock()
            .roles
            .get(role_arn)
            .map_or(0, |r| r.max_in_flight)
    }

    /// The AssumeRole calls that issued credentials, oldest first.
    pub fn assume_role_requests(&self) -> Vec<AssumeRoleRecord> {
        self.state.lock().records.clone()
    }

    /// Resets counters and recorded calls (issued credentials stay valid).
    pub fn reset_counters(&self) {
        let mut inner = self.state.lock();
        inner.counters = Counters::default();
        inner.roles.clear();
        inner.records.clear();
    }

    /// Answers a presigned GetCallerIdentity URL in-process, exactly as the HTTP endpoint would
    /// answer `GET path?query` with `Host` set to the URL's host and `headers` added (e.g.
    /// `("x-k8s-aws-id", cluster)`): what an EKS authenticator does with a `k8s-aws-v1.` token.
    /// Counts as a GetCallerIdentity call and is subject to STS faults and latency.
    pub async fn presigned_caller_identity(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<CallerIdentity, AwsError> {
        super::sts::presigned_caller_identity(&self.state, url, headers).await
    }
}
