//! One broker: the configuration in force, the AWS clients, the caches, and the handling
//! of each connection and request. Who asks is what the kernel says (SO_PEERCRED), never
//! what the request says.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tracing::{info, warn};

use super::aws::{Aws, ClusterInfo, RoleCredentials};
use super::cache::{ClusterCache, CredentialCache, RoleKey, Source, TokenCache};
use super::connections::Connections;
use super::discovery::Discovery;
use super::events::{EventLimits, Verdict};
use super::quota::{DiskSpace, Quotas};
use super::recording;
use super::sessions;
use crate::config::{CertificateAuthority, ClusterRoute, ClusterSettings, Config, StsEndpoint};
use crate::discovery;
use crate::discovery::EksKey;
use crate::mapping::{self, ClusterView, DenialKind, Grant};
use crate::protocol::{
    Ack, ClusterEndpoint, DiscoverySeen, ErrorCode, MAX_LINE, ProcessCredentials, RecordStart,
    Recorded, Request, SessionEvent, SessionEventKind, SessionStart, Token, Whoami, WireError,
};
use crate::session_id::SessionId;
use crate::system::{self, Account};
use crate::token::{self, StsEndpoints};

pub(super) struct Broker {
    /// The configuration as read, without discovered clusters.
    base: RwLock<Arc<Config>>,
    /// What the broker answers with: `base` and the clusters `[[discovery]]` found.
    config: RwLock<Arc<Config>>,
    /// Held while `config` is made from `base` and what discovery saw, so that a reload
    /// and a refresh cannot undo each other.
    applying: std::sync::Mutex<()>,
    discovery: Discovery,
    aws: RwLock<Arc<Aws>>,
    credentials: CredentialCache,
    tokens: TokenCache,
    clusters: ClusterCache,
    connections: Connections,
    recordings: recording::Active,
    quotas: Quotas,
    disk: DiskSpace,
    events: EventLimits,
    hostname: String,
    /// Where the API proxy listens and the CA it presents, once it runs.
    proxy: std::sync::OnceLock<ProxyEndpoint>,
}

/// The API proxy as sessions reach it.
#[derive(Debug, Clone)]
pub(super) struct ProxyEndpoint {
    pub(super) address: std::net::SocketAddr,
    pub(super) ca_data: String,
}

/// The peer of a connection, as the kernel reports it: uid and pid (SO_PEERCRED), and a
/// pidfd for that very process (SO_PEERPIDFD) to tell it from a later process that got
/// the same pid.
#[derive(Debug, Clone)]
pub(super) struct Peer {
    pub(super) uid: u32,
    pub(super) pid: Option<i32>,
    pub(super) pidfd: Option<Arc<std::os::fd::OwnedFd>>,
}

impl Peer {
    fn is_root(&self) -> bool {
        self.uid == 0
    }
}

impl Broker {
    pub(super) async fn new(config: Config) -> Broker {
        let aws = Aws::new(&config).await;
        let config = Arc::new(config);
        Broker {
            base: RwLock::new(Arc::clone(&config)),
            config: RwLock::new(config),
            applying: std::sync::Mutex::new(()),
            discovery: Discovery::default(),
            aws: RwLock::new(Arc::new(aws)),
            credentials: CredentialCache::default(),
            tokens: TokenCache::default(),
            clusters: ClusterCache::default(),
            connections: Connections::default(),
            recordings: recording::Active::default(),
            quotas: Quotas::default(),
            disk: DiskSpace::default(),
            events: EventLimits::default(),
            hostname: system::hostname(),
            proxy: std::sync::OnceLock::new(),
        }
    }

    pub(super) fn hostname(&self) -> &str {
        &self.hostname
    }

    pub(super) fn proxy_running(&self) -> bool {
        self.proxy.get().is_some()
    }

    /// The API proxy now runs at `endpoint`.
    pub(super) fn set_proxy(&self, endpoint: ProxyEndpoint) {
        let _ = self.proxy.set(endpoint);
    }

    pub(super) fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.read().expect("config lock"))
    }

    fn aws(&self) -> Arc<Aws> {
        Arc::clone(&self.aws.read().expect("aws lock"))
    }

    /// The configuration as read, without what discovery found.
    pub(super) fn base_config(&self) -> Arc<Config> {
        Arc::clone(&self.base.read().expect("config lock"))
    }

    pub(super) fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// Puts a new, already validated configuration in force (SIGHUP), with the clusters
    /// discovery last saw as its `[[discovery]]` blocks take them, and asks EKS again.
    pub(super) async fn replace_config(&self, config: Config) {
        let aws = Aws::new(&config).await;
        *self.aws.write().expect("aws lock") = Arc::new(aws);
        *self.base.write().expect("config lock") = Arc::new(config);
        self.apply_discovery();
        self.discovery.wake();
    }

    /// The configuration in force becomes the base one with the clusters discovery saw, as
    /// its blocks take them; returns what was chosen.
    fn apply_discovery(&self) -> discovery::Selection {
        let _applying = self.applying.lock().expect("apply lock");
        let base = self.base_config();
        let (effective, selection) = discovery::with_discovered(&base, &self.discovery.seen());
        let before = discovered_names(&self.config());
        for c in selection
            .clusters
            .iter()
            .filter(|c| !before.contains(&c.name))
        {
            info!(cluster = %c.name, region = %c.region, origin = %c.origin, "cluster discovered");
        }
        let after = discovered_names(&effective);
        for gone in before.iter().filter(|n| !after.contains(n)) {
            info!(cluster = %gone, "cluster no longer discovered");
        }
        *self.config.write().expect("config lock") = Arc::new(effective);
        selection
    }

    /// One discovery: every region listed and its clusters described with the broker's own
    /// credentials. A region that fails keeps its last good answer, and its failure is an
    /// `error` event.
    pub(super) async fn refresh_discovery(&self) {
        let base = self.base_config();
        let started = std::time::Instant::now();
        let fetched = discovery::fetch(&self.aws(), &base).await;
        let failures = self.discovery.record(&base, fetched);
        for (region, why) in &failures {
            warn!(target: "rolesh::audit", event = "error",
                reason = %format!("cluster discovery in {region} failed; serving its last good list: {why}"));
        }
        let selection = self.apply_discovery();
        info!(
            clusters = selection.clusters.len(),
            left_out = selection.left_out.len(),
            failed_regions = failures.len(),
            ms = started.elapsed().as_millis() as u64,
            "discovery refreshed"
        );
        self.discovery.mark_done();
    }

    /// Serves one connection until the client closes it, breaks a limit, or idles.
    pub(super) async fn serve(self: Arc<Self>, stream: UnixStream) {
        let Ok(cred) = stream.peer_cred() else {
            return;
        };
        let peer = Peer {
            uid: cred.uid(),
            pid: cred.pid(),
            pidfd: system::peer_pidfd(&stream).map(Arc::new),
        };
        let config = self.config();
        let (read, mut write) = stream.into_split();
        let _admission = match self.connections.admit(
            peer.uid,
            config.broker.max_connections,
            config.broker.max_connections_per_uid,
        ) {
            Ok(a) => a,
            Err(why) => {
                let _ = send(
                    &mut write,
                    &WireError::new(ErrorCode::Unavailable, why).to_line(),
                )
                .await;
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
                    let _ = send(
                        &mut write,
                        &WireError::new(ErrorCode::BadRequest, message).to_line(),
                    )
                    .await;
                    return;
                }
                Ok(Ok(_)) => {}
            }
            if line.len() > MAX_LINE && !line.ends_with(b"\n") {
                let message = format!("request longer than {} KiB; closing", MAX_LINE / 1024);
                let _ = send(
                    &mut write,
                    &WireError::new(ErrorCode::BadRequest, message).to_line(),
                )
                .await;
                return;
            }
            let request = Request::parse(&line);
            if let Ok(Request::Record(start)) = request {
                // The connection becomes the recording's stream (no idle timeout).
                return self
                    .record(&peer, &account, start, reader, &mut write)
                    .await;
            }
            let answer = self.answer(&peer, &account, request).await;
            if send(&mut write, &answer).await.is_err() {
                return;
            }
        }
    }

    /// `record`: checks and opens the recording, answers, then writes the stream.
    async fn record(
        &self,
        peer: &Peer,
        account: &Result<Account, WireError>,
        start: RecordStart,
        reader: BufReader<tokio::net::unix::OwnedReadHalf>,
        write: &mut tokio::net::unix::OwnedWriteHalf,
    ) {
        let opened = match self.speaker(peer, account, start.uid).await {
            Ok((peer, account)) => self.open_recording(&peer, &account, &start),
            Err(e) => Err(e),
        };
        let (recording, _slot, user) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                warn!(uid = peer.uid, session_id = %start.session_id, "recording refused: {}", e.message);
                let _ = send(write, &e.to_line()).await;
                return;
            }
        };
        let upload = match self.begin_upload(peer.uid, &user, &start, &recording.path) {
            Ok(upload) => upload,
            Err(e) => {
                warn!(uid = peer.uid, session_id = %start.session_id, "recording refused: {}", e.message);
                let _ = send(write, &e.to_line()).await;
                return;
            }
        };
        let answer = line(&Recorded {
            ok: true,
            path: recording.path.display().to_string(),
        });
        info!(target: "rolesh::audit", event = "recording", user = %user, uid = peer.uid,
            session_id = %start.session_id, path = %recording.path.display());
        if send(write, &answer).await.is_err() {
            return;
        }
        recording::stream(recording, reader, write).await;
        // The recording is complete: its upload finishes (as it would if dropped earlier).
        drop(upload);
    }

    /// With `[audit.s3]`: the recording at `path` spooled and its upload started.
    fn begin_upload(
        &self,
        uid: u32,
        user: &str,
        start: &RecordStart,
        path: &std::path::Path,
    ) -> Result<Option<super::upload::Upload>, WireError> {
        let config = self.config();
        let Some(s3) = &config.audit.s3 else {
            return Ok(None);
        };
        super::upload::begin(
            self.aws().s3(s3),
            s3,
            &config.audit.recordings_dir,
            &self.hostname,
            (user, uid),
            start.session_id.as_str(),
            path,
        )
        .map(Some)
    }

    /// With `[audit.s3]`: every recording left in the spool (by a broker that stopped)
    /// is uploaded.
    pub(super) fn resume_uploads(&self) {
        let config = self.config();
        match &config.audit.s3 {
            Some(s3) => super::upload::resume(&self.aws().s3(s3), s3, &config.audit.recordings_dir),
            None => super::upload::left_in_spool(&config.audit.recordings_dir),
        }
    }

    fn open_recording(
        &self,
        peer: &Peer,
        account: &Account,
        start: &RecordStart,
    ) -> Result<(recording::Recording, recording::Slot, String), WireError> {
        let config = self.config();
        self.rate_limit(peer, &config)?;
        let grant = self.grant(&config, peer, account)?;
        let slot = self.recordings.admit(peer.uid)?;
        // Blocking file system calls, but few and local: statvfs, listing the user's
        // directory once per broker and day, creating two directories at most and one file.
        self.recording_room(&config, peer, account, start)?;
        let options = recording::Options {
            allow_input: start.record_input && grant.session.record_input,
            // The broker's own configuration decides, never the session.
            redact: grant.session.record_redact,
            quotas: self.quotas.clone(),
            quota: config.audit.recording_quota,
        };
        let recording = recording::create(
            &config.audit.recordings_dir,
            account,
            &self.hostname,
            start,
            options,
        )?;
        Ok((recording, slot, account.name.clone()))
    }

    /// Room on the recordings disk (`[audit] min_free`) and in the user's quota
    /// (`recording_quota`); a refusal is the user's `denied` event.
    fn recording_room(
        &self,
        config: &Config,
        peer: &Peer,
        account: &Account,
        start: &RecordStart,
    ) -> Result<(), WireError> {
        let audit = &config.audit;
        let user_dir = recording::user_dir_path(&audit.recordings_dir, &account.name)?;
        let room = self.disk.admit(audit, account).and_then(|()| {
            self.quotas
                .admit(&user_dir, &account.name, audit.recording_quota)
        });
        room.map_err(|reason| {
            info!(target: "rolesh::audit", event = "denied", user = %account.name,
                uid = peer.uid, pid = peer.pid.unwrap_or(0),
                session_id = %start.session_id, reason = %reason);
            WireError::new(ErrorCode::Denied, reason)
        })
    }

    fn rate_limit(&self, peer: &Peer, config: &Config) -> Result<(), WireError> {
        if self
            .connections
            .allow_request(peer.uid, config.broker.rate_per_uid)
        {
            return Ok(());
        }
        let message = format!(
            "rate limit: at most {} requests per second per user",
            config.broker.rate_per_uid
        );
        Err(WireError::new(ErrorCode::Unavailable, message))
    }

    async fn answer(
        &self,
        peer: &Peer,
        account: &Result<Account, WireError>,
        request: Result<Request, WireError>,
    ) -> String {
        // A cluster discovered late would be missing from a session's kubeconfig for good.
        if request.as_ref().is_ok_and(Request::names_clusters) {
            self.discovery.first_discovery().await;
        }
        let config = self.config();
        if let Err(e) = self.rate_limit(peer, &config) {
            return e.to_line();
        }
        let result = match request {
            Err(e) => Err(e),
            Ok(request) => self.handle(&config, peer, account, request).await,
        };
        result.unwrap_or_else(|e| e.to_line())
    }

    async fn handle(
        &self,
        config: &Config,
        peer: &Peer,
        account: &Result<Account, WireError>,
        request: Request,
    ) -> Result<String, WireError> {
        match request {
            Request::Event { fields, uid } => {
                let reported_by = if uid.is_some() { "monitor" } else { "session" };
                let (peer, account) = self.speaker(peer, account, uid).await?;
                if uid.is_none() {
                    self.event_rate(config, &peer, &account)?;
                }
                let ack = self.session_event(config, &peer, &account, *fields, reported_by)?;
                return Ok(line(&ack));
            }
            Request::SessionStart(start) => return self.session_start(config, peer, start).await,
            Request::SessionEnd { session_id, reason } => {
                return self
                    .session_end(peer, &session_id, &reason)
                    .map(|a| line(&a));
            }
            Request::Discovered {} if peer.is_root() => {
                return Ok(line(&DiscoverySeen {
                    regions: self.discovery.seen(),
                }));
            }
            Request::Discovered {} => {
                return Err(WireError::new(
                    ErrorCode::Denied,
                    "only root may ask what discovery saw (rolesh explain)",
                ));
            }
            _ => {}
        }
        let account = account.as_ref().map_err(Clone::clone)?;
        let grant = match request {
            Request::Credentials {} => self.grant(config, peer, account)?,
            _ => self.visible_grant(config, peer, account).await?,
        };
        match request {
            Request::Whoami {} => Ok(line(&Whoami {
                user: account.name.clone(),
                uid: account.uid,
                grant,
            })),
            Request::Token { cluster } => {
                let session = self.live_session(config, peer, account)?;
                if grant
                    .cluster(&cluster)
                    .is_some_and(|v| v.access == ClusterRoute::Proxy)
                {
                    return Err(WireError::new(
                        ErrorCode::Denied,
                        format!(
                            "cluster {cluster} is reached through this bastion's API proxy: its token never leaves the broker (kubectl in a rolesh session needs none)"
                        ),
                    ));
                }
                let t = self
                    .token(config, peer, account, &grant, &cluster, session.as_ref())
                    .await?;
                Ok(line(&t))
            }
            Request::Credentials {} => {
                self.live_session(config, peer, account)?;
                let c = self.exposed_credentials(config, account, &grant).await?;
                Ok(line(&c))
            }
            Request::Cluster { cluster } => {
                self.live_session(config, peer, account)?;
                let (name, info) = match grant.cluster(&cluster).map(|v| v.access) {
                    Some(ClusterRoute::Proxy) => (cluster.clone(), self.proxied(&cluster)?),
                    _ => self.cluster(config, account, &grant, &cluster).await?,
                };
                Ok(line(&ClusterEndpoint {
                    name,
                    endpoint: info.endpoint,
                    ca_data: info.ca_data,
                }))
            }
            Request::Record(_)
            | Request::Event { .. }
            | Request::SessionStart(_)
            | Request::SessionEnd { .. }
            | Request::Discovered {} => {
                Err(WireError::new(ErrorCode::BadRequest, "unexpected request"))
            }
        }
    }

    /// Who a request speaks for: the peer, or — from the session monitor (root) only —
    /// the user whose session it reports on.
    async fn speaker(
        &self,
        peer: &Peer,
        account: &Result<Account, WireError>,
        uid: Option<u32>,
    ) -> Result<(Peer, Account), WireError> {
        match uid {
            None => Ok((peer.clone(), account.clone()?)),
            Some(_) if !peer.is_root() => Err(WireError::new(
                ErrorCode::BadRequest,
                "only the session monitor (root) may speak for a uid",
            )),
            Some(uid) => {
                let account = lookup(uid).await?;
                let speaker = Peer {
                    uid,
                    pid: peer.pid,
                    pidfd: None,
                };
                Ok((speaker, account))
            }
        }
    }

    /// `session_start` (root only): the mapping of the user whose session the monitor
    /// starts. A denial is audited with that user's name, like any other.
    async fn session_start(
        &self,
        config: &Config,
        peer: &Peer,
        start: SessionStart,
    ) -> Result<String, WireError> {
        let (user, account) = self
            .speaker(peer, &Err(not_root()), Some(start.uid))
            .await?;
        let user = Peer {
            pid: Some(start.login_pid as i32),
            ..user
        };
        let grant = self.visible_grant(config, &user, &account).await?;
        Ok(line(&Whoami {
            user: account.name,
            uid: account.uid,
            grant,
        }))
    }

    /// `session_end` (root only): the session's tokens go at once; from now on its
    /// record says it ended, and nothing in it gets credentials.
    fn session_end(
        &self,
        peer: &Peer,
        session_id: &SessionId,
        reason: &str,
    ) -> Result<Ack, WireError> {
        if !peer.is_root() {
            return Err(not_root());
        }
        let dropped = self.tokens.drop_session(session_id);
        info!(session_id = %session_id, reason, dropped, "session ended; its tokens are dropped");
        Ok(Ack::OK)
    }

    /// The live session `peer` is a process of, when the broker answers live sessions only
    /// (`[broker] require_session`, the default); `None` when it answers everyone. A
    /// refusal is audited (`denied`, reason `session_ended` or `not_in_session`).
    fn live_session(
        &self,
        config: &Config,
        peer: &Peer,
        account: &Account,
    ) -> Result<Option<SessionId>, WireError> {
        if !config.broker.require_session {
            return Ok(None);
        }
        match sessions::check(peer) {
            Ok(id) => Ok(Some(id)),
            Err(refusal) => {
                info!(target: "rolesh::audit", event = "denied", user = %account.name,
                    uid = peer.uid, pid = peer.pid.unwrap_or(0), reason = refusal.reason,
                    session_id = refusal.session.as_ref().map(SessionId::as_str));
                Err(WireError::new(
                    ErrorCode::Denied,
                    "no live rolesh session for this process",
                ))
            }
        }
    }

    /// `event`: a session's audit event, attributed from SO_PEERCRED and the mapping (the
    /// session's own claims about who it is were dropped when it was parsed).
    fn session_event(
        &self,
        config: &Config,
        peer: &Peer,
        account: &Account,
        reported: SessionEvent,
        reported_by: &'static str,
    ) -> Result<Ack, WireError> {
        let (e, extra) = reported
            .accepted()
            .map_err(|why| WireError::new(ErrorCode::BadRequest, why))?;
        // A denial is the word of whoever refused: the monitor, never the user's session.
        if e.event == SessionEventKind::Denied && reported_by != "monitor" {
            return Err(WireError::new(
                ErrorCode::BadRequest,
                "only the session monitor reports denials",
            ));
        }
        let grant = mapping::decide(config, account, &self.hostname)
            .outcome
            .ok();
        let role_arn = grant.as_ref().map(|g| g.role_arn.as_str());
        let session_name = grant.as_ref().map(|g| g.session_name.as_str());
        info!(
            target: "rolesh::audit",
            event = e.event.as_str(),
            user = %account.name,
            uid = peer.uid,
            pid = peer.pid.unwrap_or(0),
            role_arn,
            session_name,
            session_id = e.session_id.as_ref().map(SessionId::as_str),
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
            cgroup = e.cgroup.as_deref(),
            extra = extra.as_deref(),
            reported_by,
        );
        Ok(Ack::OK)
    }

    /// `[audit] event_rate_per_uid` for events a session reports itself: the excess is
    /// refused and counted, and the count reported (one `error` event a minute at most).
    fn event_rate(&self, config: &Config, peer: &Peer, account: &Account) -> Result<(), WireError> {
        let rate = config.audit.event_rate_per_uid;
        let Verdict::Drop { report } = self.events.admit(peer.uid, &account.name, rate) else {
            return Ok(());
        };
        if let Some(count) = report {
            report_dropped(&account.name, peer.uid, count, rate);
        }
        Err(WireError::new(
            ErrorCode::Unavailable,
            format!(
                "audit event rate limit: at most {rate} events per second per user; this one was dropped and counted"
            ),
        ))
    }

    /// Drops not yet in the trail whose minute has passed (called periodically).
    pub(super) fn report_dropped_events(&self) {
        let rate = self.config().audit.event_rate_per_uid;
        for d in self.events.overdue() {
            report_dropped(&d.user, d.uid, d.count, rate);
        }
    }

    /// The mapping decision for this account; a denial is audited here.
    fn grant(&self, config: &Config, peer: &Peer, account: &Account) -> Result<Grant, WireError> {
        let decision = mapping::decide(config, account, &self.hostname);
        decision.outcome.map_err(|denial| {
            info!(target: "rolesh::audit", event = "denied", user = %account.name, uid = peer.uid, pid = peer.pid.unwrap_or(0), reason = %denial.reason);
            let code = match denial.kind {
                DenialKind::Unmapped => ErrorCode::Unmapped,
                DenialKind::Denied => ErrorCode::Denied,
                DenialKind::Invalid => ErrorCode::Config,
            };
            WireError::new(code, denial.reason)
        })
    }

    /// The mapping decision, its discovered clusters narrowed to those the user's own role
    /// may describe: IAM decides who sees a discovered cluster, as it does for the endpoint
    /// of one written without.
    async fn visible_grant(
        &self,
        config: &Config,
        peer: &Peer,
        account: &Account,
    ) -> Result<Grant, WireError> {
        let mut grant = self.grant(config, peer, account)?;
        let discovered: Vec<&ClusterSettings> = grant
            .clusters
            .iter()
            .filter_map(|v| config.cluster(&v.name))
            .filter(|c| c.discovered.is_some())
            .collect();
        if discovered.is_empty() {
            return Ok(grant);
        }
        let describable = self.describable(config, account, &grant, &discovered).await;
        grant.clusters.retain(|v| {
            config
                .cluster(&v.name)
                .is_none_or(|c| c.discovered.is_none() || describable.contains(&eks_key(c)))
        });
        Ok(grant)
    }

    /// Which of the discovered `clusters` the user's role may DescribeCluster: asked once
    /// per user and refresh, one asking at a time per user. A cluster whose answer failed
    /// keeps the user's previous verdict (none: not shown until the next refresh).
    async fn describable(
        &self,
        config: &Config,
        account: &Account,
        grant: &Grant,
        clusters: &[&ClusterSettings],
    ) -> std::collections::HashSet<EksKey> {
        let entry = self
            .discovery
            .verdicts((account.uid, grant.role_arn.clone()));
        let mut verdicts = entry.lock().await;
        let generation = self.discovery.generation();
        let stale = verdicts.generation != generation;
        let ask: Vec<EksKey> = clusters
            .iter()
            .map(|c| eks_key(c))
            .filter(|k| stale || !verdicts.visible.contains_key(k))
            .collect();
        if !ask.is_empty() {
            // Without the role's credentials nothing is stamped: asked again next request.
            if let Some(answers) = self.ask_describe(config, account, grant, &ask).await {
                for key in ask {
                    let previous = verdicts.visible.get(&key).copied().unwrap_or(false);
                    let verdict = answers.get(&key).copied().flatten().unwrap_or(previous);
                    verdicts.visible.insert(key, verdict);
                }
                verdicts.generation = generation;
            }
        }
        verdicts
            .visible
            .iter()
            .filter(|(_, visible)| **visible)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// DescribeCluster with the user's own role for each of `ask`: `Some(true)` answered,
    /// `Some(false)` refused (AccessDenied, or gone), `None` failed. `None` as a whole when
    /// the role's credentials could not be had.
    async fn ask_describe(
        &self,
        config: &Config,
        account: &Account,
        grant: &Grant,
        ask: &[EksKey],
    ) -> Option<std::collections::HashMap<EksKey, Option<bool>>> {
        let (_, creds) = self.role_credentials(config, account, grant).await.ok()?;
        let asked = discovery::describe_each(
            &self.aws(),
            Some(&creds),
            ask.to_vec(),
            Some(USER_DESCRIBE_TIMEOUT),
        )
        .await;
        let answers: std::collections::HashMap<EksKey, Option<bool>> = asked
            .into_iter()
            .map(|(key, answer)| {
                let verdict = match answer {
                    Ok(_) => Some(true),
                    Err(super::aws::EksError::Refused(_)) => Some(false),
                    Err(super::aws::EksError::Failed(_)) => None,
                };
                (key, verdict)
            })
            .collect();
        let shown = answers.values().filter(|v| **v == Some(true)).count();
        info!(user = %account.name, role_arn = %grant.role_arn, asked = answers.len(), shown,
            "discovered clusters checked with the user's role");
        Some(answers)
    }

    async fn role_credentials(
        &self,
        config: &Config,
        account: &Account,
        grant: &Grant,
    ) -> Result<(RoleKey, RoleCredentials), WireError> {
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
        peer: &Peer,
        account: &Account,
        grant: &Grant,
        cluster: &str,
        session_id: Option<&SessionId>,
    ) -> Result<Token, WireError> {
        let access = visible(grant, cluster)?;
        // A discovered `prod@eu-west-1` is `prod` to EKS, which the token names.
        let eks_name = config
            .cluster(cluster)
            .map_or(cluster, ClusterSettings::eks_name);
        let (key, creds) = self.role_credentials(config, account, grant).await?;
        let endpoints = match config.aws.sts_endpoint {
            StsEndpoint::Legacy => StsEndpoints::Legacy,
            StsEndpoint::Regional | StsEndpoint::Url(_) => StsEndpoints::Regional,
        };
        let (host, signing_region) = token::sts_host(Some(&access.region), endpoints);
        let (mut t, reused) = self
            .tokens
            .get_or_sign(&key, cluster, session_id, &creds, || {
                token::presign(
                    &creds.credentials,
                    eks_name,
                    &host,
                    &signing_region,
                    SystemTime::now(),
                )
                .map_err(|e| WireError::new(ErrorCode::Sts, e.to_string()))
            })?;
        // A presigned URL dies with the credentials that signed it.
        t.expiration = t.expiration.min(creds.expiry);
        if !reused {
            crate::redact::register_secret(&t.token);
            let session_id = session_id.map(SessionId::as_str);
            info!(target: "rolesh::audit", event = "token", user = %account.name, uid = peer.uid, pid = peer.pid.unwrap_or(0), role_arn = %grant.role_arn, session_name = %grant.session_name, cluster = %cluster, session_id);
        }
        Ok(token::wire(&t))
    }

    async fn exposed_credentials(
        &self,
        config: &Config,
        account: &Account,
        grant: &Grant,
    ) -> Result<ProcessCredentials, WireError> {
        if !config.aws.expose_credentials {
            return Err(WireError::new(
                ErrorCode::Denied,
                "credentials are not exposed on this bastion ([aws] expose_credentials = false)",
            ));
        }
        let (_, c) = self.role_credentials(config, account, grant).await?;
        Ok(ProcessCredentials {
            version: 1,
            access_key_id: c.credentials.access_key_id().into(),
            secret_access_key: c.credentials.secret_access_key().into(),
            session_token: c.credentials.session_token().unwrap_or_default().into(),
            expiration: token::rfc3339(c.expiry),
        })
    }

    async fn cluster(
        &self,
        config: &Config,
        account: &Account,
        grant: &Grant,
        name: &str,
    ) -> Result<(String, ClusterInfo), WireError> {
        visible(grant, name)?;
        let cluster = config.cluster(name).ok_or_else(|| {
            WireError::new(
                ErrorCode::Denied,
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

/// What the API proxy asks of the broker: the user's grant, token and cluster, for requests
/// that come with no `Peer` (the proxy knows the caller from the kernel's socket table).
impl Broker {
    /// The local endpoint of a proxied cluster and the proxy's CA.
    fn proxied(&self, cluster: &str) -> Result<ClusterInfo, WireError> {
        let proxy = self.proxy.get().ok_or_else(|| {
            WireError::new(
                ErrorCode::Unavailable,
                format!("cluster {cluster} is reached through the API proxy, which is not running"),
            )
        })?;
        Ok(ClusterInfo {
            endpoint: super::proxy::endpoint(proxy.address, cluster),
            ca_data: proxy.ca_data.clone(),
        })
    }

    pub(super) async fn proxy_grant(
        &self,
        config: &Config,
        account: &Account,
    ) -> Result<Grant, String> {
        self.visible_grant(config, &Peer::of(account), account)
            .await
            .map_err(|e| e.message)
    }

    /// The user's own EKS token for `cluster`, from the token cache; it stays here.
    pub(super) async fn proxy_token(
        &self,
        config: &Config,
        account: &Account,
        session: Option<&SessionId>,
        grant: &Grant,
        cluster: &str,
    ) -> Result<String, String> {
        self.token(config, &Peer::of(account), account, grant, cluster, session)
            .await
            .map(|t| t.token)
            .map_err(|e| e.message)
    }

    /// Where the cluster really is, and its CA.
    pub(super) async fn proxy_upstream(
        &self,
        config: &Config,
        account: &Account,
        grant: &Grant,
        cluster: &str,
    ) -> Result<(String, String), String> {
        self.cluster(config, account, grant, cluster)
            .await
            .map(|(_, info)| (info.endpoint, info.ca_data))
            .map_err(|e| e.message)
    }
}

impl Peer {
    /// A peer the kernel named by uid alone (the proxy's callers).
    fn of(account: &Account) -> Peer {
        Peer {
            uid: account.uid,
            pid: None,
            pidfd: None,
        }
    }
}

/// How long one of them may take, retries included: a login does not wait for an EKS that
/// does not answer (the user's previous verdict stands).
const USER_DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

fn eks_key(cluster: &ClusterSettings) -> EksKey {
    (cluster.eks_name().to_string(), cluster.region.clone())
}

/// The names of the discovered clusters `config` holds.
fn discovered_names(config: &Config) -> Vec<String> {
    config
        .clusters
        .iter()
        .filter(|c| c.discovered.is_some())
        .map(|c| c.name.clone())
        .collect()
}

/// The `error` event for session events dropped by the rate limit.
fn report_dropped(user: &str, uid: u32, count: u64, rate: u32) {
    warn!(target: "rolesh::audit", event = "error", user = %user, uid,
        reason = %format!("dropped {count} session event{} of this user: more than {rate} per second ([audit] event_rate_per_uid); further drops are reported once a minute",
            if count == 1 { "" } else { "s" }));
}

fn visible<'g>(grant: &'g Grant, cluster: &str) -> Result<&'g ClusterView, WireError> {
    grant.cluster(cluster).ok_or_else(|| {
        WireError::new(
            ErrorCode::Denied,
            format!(
                "cluster {cluster} is not available to {}",
                grant.session_name
            ),
        )
    })
}

fn ca_data(ca: &CertificateAuthority) -> Result<String, WireError> {
    match ca {
        CertificateAuthority::Data(d) => Ok(d.clone()),
        CertificateAuthority::File(path) => crate::config::trusted_file(path, false)
            .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem))
            .map_err(|e| WireError::new(ErrorCode::Config, format!("CA file: {e}"))),
    }
}

async fn lookup(uid: u32) -> Result<Account, WireError> {
    let found = tokio::task::spawn_blocking(move || system::account_by_uid(uid))
        .await
        .map_err(|_| WireError::new(ErrorCode::Unavailable, "account lookup failed"))?;
    match found {
        Ok(Some(account)) => Ok(account),
        Ok(None) => Err(WireError::new(
            ErrorCode::Unmapped,
            format!("uid {uid} has no account on this bastion"),
        )),
        Err(e) => Err(WireError::new(ErrorCode::Unavailable, e)),
    }
}

fn not_root() -> WireError {
    WireError::new(
        ErrorCode::Denied,
        "only the session monitor (root) may start or end sessions",
    )
}

/// An answer as its line (no newline).
fn line<T: Serialize>(answer: &T) -> String {
    serde_json::to_string(answer).unwrap_or_default()
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, line: &str) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    write.write_all(&bytes).await
}

/// How long after SIGTERM open connections may finish.
pub(super) const DRAIN: Duration = Duration::from_secs(10);
