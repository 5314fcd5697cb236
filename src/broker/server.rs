//! One broker: the configuration in force, the AWS clients, the caches, and the handling
//! of each connection and request. Who asks is what the kernel says (SO_PEERCRED), never
//! what the request says.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tracing::{info, warn};

use super::aws::{Aws, ClusterInfo, RoleCredentials};
use super::cache::{ClusterCache, CredentialCache, RoleKey, Source, TokenCache};
use super::limits::Limits;
use super::protocol::{self, Code, Error, MAX_LINE, RecordStart, Request, SessionEvent};
use super::recording;
use crate::config::{CertificateAuthority, Config, StsEndpoint};
use crate::mapping::{self, DenialKind, Grant};
use crate::system::{self, Account};
use crate::token::{self, StsEndpoints};

pub struct Broker {
    config: RwLock<Arc<Config>>,
    aws: RwLock<Arc<Aws>>,
    credentials: CredentialCache,
    tokens: TokenCache,
    clusters: ClusterCache,
    limits: Limits,
    recordings: recording::Active,
    hostname: String,
}

/// The peer of a connection, as the kernel reports it.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: u32,
    pub pid: Option<i32>,
}

impl Broker {
    pub async fn new(config: Config) -> Broker {
        let aws = Aws::new(&config).await;
        Broker {
            config: RwLock::new(Arc::new(config)),
            aws: RwLock::new(Arc::new(aws)),
            credentials: CredentialCache::default(),
            tokens: TokenCache::default(),
            clusters: ClusterCache::default(),
            limits: Limits::default(),
            recordings: recording::Active::default(),
            hostname: system::hostname(),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.read().expect("config lock"))
    }

    fn aws(&self) -> Arc<Aws> {
        Arc::clone(&self.aws.read().expect("aws lock"))
    }

    /// Puts a new, already validated configuration in force (SIGHUP).
    pub async fn replace_config(&self, config: Config) {
        let aws = Aws::new(&config).await;
        *self.aws.write().expect("aws lock") = Arc::new(aws);
        *self.config.write().expect("config lock") = Arc::new(config);
    }

    /// Serves one connection until the client closes it, breaks a limit, or idles.
    pub async fn serve(self: Arc<Self>, stream: UnixStream) {
        let Ok(cred) = stream.peer_cred() else {
            return;
        };
        let peer = Peer {
            uid: cred.uid(),
            pid: cred.pid(),
        };
        let config = self.config();
        let (read, mut write) = stream.into_split();
        let _admission = match self.limits.admit(
            peer.uid,
            config.broker.max_connections,
            config.broker.max_connections_per_uid,
        ) {
            Ok(a) => a,
            Err(why) => {
                let _ = send(&mut write, &Error::new(Code::Unavailable, why).to_json()).await;
                return;
            }
        };
        let account = lookup(peer.uid).await;
        let mut reader = BufReader::new(read);
        loop {
            let idle = self.config().broker.idle_timeout;
            let mut line = Vec::new();
            let mut limited = (&mut reader).take(MAX_LINE as u64 + 1);
            match tokio::time::timeout(idle, limited.read_until(b'\n', &mut line)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Err(_) => {
                    let message =
                        format!("no complete request within {}s; closing", idle.as_secs());
                    let _ =
                        send(&mut write, &Error::new(Code::BadRequest, message).to_json()).await;
                    return;
                }
                Ok(Ok(_)) => {}
            }
            if line.len() > MAX_LINE && !line.ends_with(b"\n") {
                let message = format!("request longer than {} KiB; closing", MAX_LINE / 1024);
                let _ = send(&mut write, &Error::new(Code::BadRequest, message).to_json()).await;
                return;
            }
            let request = protocol::parse(&line);
            if let Ok(Request::Record(start)) = request {
                // The connection becomes the recording's stream (no idle timeout).
                return self.record(peer, &account, start, reader, &mut write).await;
            }
            let answer = self.answer(peer, &account, request).await;
            if send(&mut write, &answer).await.is_err() {
                return;
            }
        }
    }

    /// `record`: checks and opens the recording, answers, then writes the stream.
    async fn record(
        &self,
        peer: Peer,
        account: &Result<Account, Error>,
        start: RecordStart,
        reader: BufReader<tokio::net::unix::OwnedReadHalf>,
        write: &mut tokio::net::unix::OwnedWriteHalf,
    ) {
        let opened = self.open_recording(peer, account, &start);
        let (recording, _slot, user) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                warn!(uid = peer.uid, session_id = %start.session_id, "recording refused: {}", e.message);
                let _ = send(write, &e.to_json()).await;
                return;
            }
        };
        let answer = json!({"ok": true, "path": recording.path.display().to_string()});
        info!(user = %user, uid = peer.uid, path = %recording.path.display(), "recording started");
        if send(write, &answer).await.is_err() {
            return;
        }
        recording::stream(recording, reader, write).await;
    }

    fn open_recording(
        &self,
        peer: Peer,
        account: &Result<Account, Error>,
        start: &RecordStart,
    ) -> Result<(recording::Recording, recording::Slot, String), Error> {
        let config = self.config();
        self.rate_limit(peer, &config)?;
        let account = account.as_ref().map_err(Clone::clone)?;
        let grant = self.grant(&config, peer, account)?;
        let slot = self.recordings.admit(peer.uid)?;
        let allow_input = start.record_input && grant.session.record_input;
        // Blocking file system calls, but few and local: creating two directories at most
        // and one file.
        let recording = recording::create(
            &config.audit.recordings_dir,
            account,
            &self.hostname,
            start,
            allow_input,
        )?;
        Ok((recording, slot, account.name.clone()))
    }

    fn rate_limit(&self, peer: Peer, config: &Config) -> Result<(), Error> {
        if self
            .limits
            .allow_request(peer.uid, config.broker.rate_per_uid)
        {
            return Ok(());
        }
        let message = format!(
            "rate limit: at most {} requests per second per user",
            config.broker.rate_per_uid
        );
        Err(Error::new(Code::Unavailable, message))
    }

    async fn answer(
        &self,
        peer: Peer,
        account: &Result<Account, Error>,
        request: Result<Request, Error>,
    ) -> Value {
        let config = self.config();
        if let Err(e) = self.rate_limit(peer, &config) {
            return e.to_json();
        }
        let result = match (request, account) {
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e.clone()),
            (Ok(request), Ok(account)) => self.handle(&config, peer, account, request).await,
        };
        result.unwrap_or_else(|e| e.to_json())
    }

    async fn handle(
        &self,
        config: &Config,
        peer: Peer,
        account: &Account,
        request: Request,
    ) -> Result<Value, Error> {
        if let Request::Event(event) = request {
            return Ok(self.session_event(config, peer, account, &event));
        }
        let grant = self.grant(config, peer, account)?;
        match request {
            Request::Whoami => Ok(whoami(account, &grant)),
            Request::Token { cluster, session_id } => {
                let link = session_id.as_deref();
                self.token(config, peer, account, &grant, &cluster, link).await
            }
            Request::Credentials => self.exposed_credentials(config, account, &grant).await,
            Request::Cluster { cluster } => self.cluster(config, account, &grant, &cluster).await.map(|(name, info)| {
                json!({"name": name, "endpoint": info.endpoint, "certificateAuthorityData": info.ca_data})
            }),
            Request::Record(_) | Request::Event(_) => Err(Error::new(Code::BadRequest, "unexpected request")),
        }
    }

    /// `event`: a session's audit event, attributed from SO_PEERCRED and the mapping (the
    /// session's own claims about who it is were dropped when it was parsed).
    fn session_event(
        &self,
        config: &Config,
        peer: Peer,
        account: &Account,
        e: &SessionEvent,
    ) -> Value {
        let grant = mapping::decide(config, account, &self.hostname)
            .outcome
            .ok();
        let role_arn = grant.as_ref().map(|g| g.role_arn.as_str());
        let session_name = grant.as_ref().map(|g| g.session_name.as_str());
        info!(
            target: "rolesh::audit",
            event = %e.event,
            user = %account.name,
            uid = peer.uid,
            pid = peer.pid.unwrap_or(0),
            role_arn,
            session_name,
            session_id = e.session_id.as_deref(),
            ssh_client = e.ssh_client.as_deref(),
            cluster = e.cluster.as_deref(),
            namespace = e.namespace.as_deref(),
            pod = e.pod.as_deref(),
            container = e.container.as_deref(),
            command = e.command.as_deref(),
            exit_code = e.exit_code,
            duration_ms = e.duration_ms,
            reason = e.reason.as_deref(),
            mode = e.mode.as_deref(),
            record = e.record.as_deref(),
            private_tmp = e.private_tmp,
            extra = e.extra.as_deref(),
            reported_by = "session",
        );
        json!({"ok": true})
    }

    /// The mapping decision for this account; a denial is audited here.
    fn grant(&self, config: &Config, peer: Peer, account: &Account) -> Result<Grant, Error> {
        let decision = mapping::decide(config, account, &self.hostname);
        decision.outcome.map_err(|denial| {
            info!(target: "rolesh::audit", event = "denied", user = %account.name, uid = peer.uid, pid = peer.pid.unwrap_or(0), reason = %denial.reason);
            let code = match denial.kind {
                DenialKind::Unmapped => Code::Unmapped,
                DenialKind::Denied => Code::Denied,
                DenialKind::Invalid => Code::Config,
            };
            Error::new(code, denial.reason)
        })
    }

    async fn role_credentials(
        &self,
        config: &Config,
        account: &Account,
        grant: &Grant,
    ) -> Result<(RoleKey, RoleCredentials), Error> {
        let key = RoleKey::new(grant, config.aws.session_duration);
        let aws = self.aws();
        let result = self
            .credentials
            .get(&key, config.broker.refresh_before, || {
                aws.assume_role(grant, config.aws.session_duration)
            })
            .await;
        match &result {
            Ok((c, Source::Sts)) => {
                info!(target: "rolesh::audit", event = "assume_role", user = %account.name, uid = account.uid, role_arn = %grant.role_arn, session_name = %grant.session_name, expires = %token::rfc3339(c.expiry))
            }
            Ok((c, Source::StaleAfterError)) => {
                warn!(user = %account.name, role_arn = %grant.role_arn, expires = %token::rfc3339(c.expiry), "STS refresh failed; serving cached credentials until they expire")
            }
            Ok((_, Source::Cache)) => {}
            Err(e) => {
                info!(target: "rolesh::audit", event = "error", user = %account.name, uid = account.uid, role_arn = %grant.role_arn, reason = %e.message)
            }
        }
        result.map(|(c, _)| (key, c))
    }

    async fn token(
        &self,
        config: &Config,
        peer: Peer,
        account: &Account,
        grant: &Grant,
        cluster: &str,
        session_id: Option<&str>,
    ) -> Result<Value, Error> {
        let access = visible(grant, cluster)?;
        let (key, creds) = self.role_credentials(config, account, grant).await?;
        let endpoints = match config.aws.sts_endpoint {
            StsEndpoint::Legacy => StsEndpoints::Legacy,
            StsEndpoint::Regional | StsEndpoint::Url(_) => StsEndpoints::Regional,
        };
        let (host, signing_region) = token::sts_host(Some(&access.region), endpoints);
        let (mut t, reused) = self.tokens.get_or_sign(&key, cluster, &creds, || {
            token::presign(
                &creds.credentials,
                cluster,
                &host,
                &signing_region,
                SystemTime::now(),
            )
            .map_err(|e| Error::new(Code::Sts, e.to_string()))
        })?;
        // A presigned URL dies with the credentials that signed it.
        t.expiration = t.expiration.min(creds.expiry);
        if !reused {
            crate::audit::redact::register_secret(&t.token);
            info!(target: "rolesh::audit", event = "token", user = %account.name, uid = peer.uid, pid = peer.pid.unwrap_or(0), role_arn = %grant.role_arn, session_name = %grant.session_name, cluster = %cluster, session_id);
        }
        Ok(json!({"token": t.token, "expirationTimestamp": token::rfc3339(t.expiration)}))
    }

    async fn exposed_credentials(
        &self,
        config: &Config,
        account: &Account,
        grant: &Grant,
    ) -> Result<Value, Error> {
        if !config.aws.expose_credentials {
            return Err(Error::new(
                Code::Denied,
                "credentials are not exposed on this bastion ([aws] expose_credentials = false)",
            ));
        }
        let (_, c) = self.role_credentials(config, account, grant).await?;
        Ok(json!({
            "Version": 1,
            "AccessKeyId": c.credentials.access_key_id(),
            "SecretAccessKey": c.credentials.secret_access_key(),
            "SessionToken": c.credentials.session_token(),
            "Expiration": token::rfc3339(c.expiry),
        }))
    }

    async fn cluster(
        &self,
        config: &Config,
        account: &Account,
        grant: &Grant,
        name: &str,
    ) -> Result<(String, ClusterInfo), Error> {
        visible(grant, name)?;
        let cluster = config.cluster(name).ok_or_else(|| {
            Error::new(
                Code::Denied,
                format!("no cluster {name} in the configuration"),
            )
        })?;
        if let (Some(endpoint), Some(ca)) = (&cluster.endpoint, &cluster.certificate_authority) {
            return Ok((
                name.into(),
                ClusterInfo {
                    endpoint: endpoint.clone(),
                    ca_data: ca_data(ca)?,
                },
            ));
        }
        if let Some(info) = self.clusters.fresh(name) {
            return Ok((name.into(), info));
        }
        let described = async {
            let (_, creds) = self.role_credentials(config, account, grant).await?;
            self.aws()
                .describe_cluster(&creds, name, &cluster.region)
                .await
        };
        match described.await {
            Ok(info) => {
                self.clusters.store(name, info.clone());
                Ok((name.into(), info))
            }
            Err(e) => self
                .clusters
                .any(name)
                .map(|info| (name.to_string(), info))
                .ok_or(e),
        }
    }
}

fn visible<'g>(grant: &'g Grant, cluster: &str) -> Result<&'g mapping::ClusterAccess, Error> {
    grant
        .clusters
        .iter()
        .find(|c| c.name == cluster)
        .ok_or_else(|| {
            Error::new(
                Code::Denied,
                format!(
                    "cluster {cluster} is not available to {}",
                    grant.session_name
                ),
            )
        })
}

fn ca_data(ca: &CertificateAuthority) -> Result<String, Error> {
    match ca {
        CertificateAuthority::Data(d) => Ok(d.clone()),
        CertificateAuthority::File(path) => std::fs::read(path)
            .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem))
            .map_err(|e| {
                Error::new(
                    Code::Config,
                    format!("cannot read CA file {}: {e}", path.display()),
                )
            }),
    }
}

fn whoami(account: &Account, grant: &Grant) -> Value {
    let mut v = grant.to_json();
    v["user"] = json!(account.name);
    v["uid"] = json!(account.uid);
    v
}

async fn lookup(uid: u32) -> Result<Account, Error> {
    let found = tokio::task::spawn_blocking(move || system::account_by_uid(uid))
        .await
        .map_err(|_| Error::new(Code::Unavailable, "account lookup failed"))?;
    match found {
        Ok(Some(account)) => Ok(account),
        Ok(None) => Err(Error::new(
            Code::Unmapped,
            format!("uid {uid} has no account on this bastion"),
        )),
        Err(e) => Err(Error::new(Code::Unavailable, e)),
    }
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, value: &Value) -> std::io::Result<()> {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    write.write_all(&line).await
}

/// How long after SIGTERM open connections may finish.
pub const DRAIN: Duration = Duration::from_secs(10);
