//! `/etc/rolesh/config.toml` and `/etc/rolesh/config.d/*.toml`: loading, merging,
//! validating, and the typed configuration the rest of rolesh reads.
//!
//! Errors name the file, line and column (`PATH:LINE:COL: message`) and all of them are
//! reported at once, so an administrator fixes a file in one pass.

mod diag;
mod dirs;
mod schema;
pub mod selector;
pub mod template;
mod tree;
pub mod values;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use diag::SourceFile;
pub use diag::{ConfigErrors, Diagnostic};
pub use selector::Selector;
pub use template::{Template, Vars};

use crate::paths;
use crate::system;

/// A configuration value written as one lowercase word. One list of the values serves
/// parsing, printing, error messages and the wire (serde), so a value is spelled once.
macro_rules! word_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            pub fn parse(word: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == word)
            }

            /// `"a", "b" or "c"`, for messages.
            pub fn choices() -> String {
                $crate::config::values::one_of(Self::ALL.iter().map(|v| v.as_str()))
            }
        }
    };
}
pub(crate) use word_enum;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub aws: AwsSettings,
    pub mapping: MappingSettings,
    /// The `[[cluster]]` blocks; in the broker, the clusters `[[discovery]]` found too.
    pub clusters: Vec<ClusterSettings>,
    /// `[[discovery]]`, in file order.
    pub discovery: Vec<DiscoverySettings>,
    pub session: SessionSettings,
    pub overrides: Vec<SessionOverride>,
    pub broker: BrokerSettings,
    pub audit: AuditSettings,
    /// The files this configuration was read from, in the order they were applied.
    pub files: Vec<PathBuf>,
}

/// `[aws]`.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub region: String,
    pub sts_endpoint: StsEndpoint,
    pub session_duration: Duration,
    pub session_name: Template,
    pub source_identity: Template,
    pub expose_credentials: bool,
    pub tags: Vec<(String, Template)>,
}

/// Where the broker sends AssumeRole. Tokens always name the public STS host whatever
/// this says (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StsEndpoint {
    Regional,
    Legacy,
    Url(String),
}

/// `[mapping]`.
#[derive(Debug, Clone)]
pub struct MappingSettings {
    pub deny_users: Vec<String>,
    pub users: Vec<UserRule>,
    pub groups: Vec<GroupRule>,
    pub default_role: Option<RoleRule>,
}

/// A role ARN (possibly a template such as `…:role/bastion-{user}`), the Kubernetes access
/// level its users get, and where it was set.
#[derive(Debug, Clone)]
pub struct RoleRule {
    pub role: Template,
    pub access: AccessLevel,
    /// Namespaces the access applies in; `None` is cluster-wide.
    pub namespaces: Option<Vec<String>>,
    pub origin: String,
}

word_enum! {
    /// Kubernetes access level of a mapping rule, as `rolesh rbac` generates it.
    pub enum AccessLevel {
        /// Everything.
        Admin = "admin",
        /// Workloads, logs, exec, port-forward; no RBAC, no secret writes.
        Poweruser = "poweruser",
        /// Read workloads and logs, exec into pods.
        User = "user",
    }
}

#[derive(Debug, Clone)]
pub struct UserRule {
    pub user: String,
    pub rule: RoleRule,
}

#[derive(Debug, Clone)]
pub struct GroupRule {
    pub group: String,
    pub rule: RoleRule,
}

/// `[[cluster]]`.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub name: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub certificate_authority: Option<CertificateAuthority>,
    pub default_namespace: Option<String>,
    /// Who sees this cluster; `None` means every mapped user.
    pub groups: Option<Vec<String>>,
    pub namespaces: Vec<NamespaceSettings>,
    pub access: ClusterRoute,
    /// EKS (users' own tokens), or any other Kubernetes (the broker's credential and
    /// impersonation).
    pub kind: ClusterKind,
    /// The broker's own credential for a `kubernetes` cluster.
    pub credentials: Option<ClusterCredentials>,
    /// Where it is written (`PATH:LINE:COL`); for a discovered cluster, its `[[discovery]]`.
    pub origin: String,
    /// Found by `[[discovery]]` rather than written as a `[[cluster]]`.
    pub discovered: Option<Discovered>,
}

impl ClusterSettings {
    /// The cluster's name at EKS, which its tokens name (`prod` for `prod@eu-west-1`).
    pub fn eks_name(&self) -> &str {
        self.discovered
            .as_ref()
            .map_or(self.name.as_str(), |d| d.eks_name.as_str())
    }
}

/// How a cluster was found: which `[[discovery]]` took it, under which EKS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub eks_name: String,
    /// The block's number (`[[discovery]] #1` is the first in file order).
    pub block: usize,
}

/// `[[discovery]]`: EKS clusters the broker finds with ListClusters and DescribeCluster in
/// its own name, and what each one it takes gets (as a `[[cluster]]` would say).
#[derive(Debug, Clone)]
pub struct DiscoverySettings {
    /// 1 for the first block in file order: `[[discovery]] #1` in messages.
    pub number: usize,
    pub regions: Vec<String>,
    /// Tags a cluster must all carry, with these values.
    pub tags: Vec<(String, String)>,
    /// A cluster's name must match one of these; empty: any name.
    pub names: Vec<NameGlob>,
    /// A name matching one of these is left out.
    pub exclude: Vec<NameGlob>,
    pub default_namespace: Option<String>,
    /// Who sees the clusters found; `None` means every mapped user.
    pub groups: Option<Vec<String>>,
    pub namespaces: Vec<NamespaceSettings>,
    pub access: ClusterRoute,
    /// Where the block is written (`PATH:LINE:COL`).
    pub origin: String,
}

impl DiscoverySettings {
    /// Whether this block takes a cluster named `name` in `region`, tags aside.
    pub fn takes_name(&self, region: &str, name: &str) -> bool {
        self.regions.iter().any(|r| r == region)
            && (self.names.is_empty() || self.names.iter().any(|g| g.matches(name)))
            && !self.exclude.iter().any(|g| g.matches(name))
    }
}

/// A shell-style glob on cluster names (`prod-*`, `*-sandbox`, `team-?`).
#[derive(Debug, Clone)]
pub struct NameGlob {
    pub text: String,
    pattern: glob::Pattern,
}

impl NameGlob {
    pub fn parse(text: &str) -> Result<NameGlob, String> {
        let pattern =
            glob::Pattern::new(text).map_err(|e| format!("invalid glob {text:?}: {}", e.msg))?;
        Ok(NameGlob {
            text: text.to_string(),
            pattern,
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        self.pattern.matches(name)
    }
}

/// Whether `path` may hold a cluster credential, and its content: a regular file (no
/// symlink) owned by root, by the broker's user (`rolesh`), or by whoever runs this (the
/// broker itself), that no one but its owner may read or write, in directories no one else
/// may write. Checked when the configuration is read (`rolesh check`, the broker's start
/// and reload) and each time the broker reads the file.
pub(crate) fn credential_file(path: &Path) -> Result<Vec<u8>, String> {
    trusted_file(path, true)
}

/// Like [`credential_file`] for a file that is not secret but decides whom the broker
/// trusts (a cluster's `ca_file`): others may read it, not write it.
pub(crate) fn trusted_file(path: &Path, secret: bool) -> Result<Vec<u8>, String> {
    let broker_user = crate::system::account_by_name(crate::audit::query::BROKER_USER)
        .ok()
        .flatten()
        .map(|a| a.uid);
    crate::system::read_trusted_file(path, secret, broker_user, MAX_TRUSTED_FILE).map(|f| f.bytes)
}

/// The largest credential or CA file read (a kubeconfig with certificates is a few KiB).
const MAX_TRUSTED_FILE: u64 = 1 << 20;

word_enum! {
    /// What a cluster is (`[[cluster]] kind`).
    pub enum ClusterKind {
        /// Amazon EKS: each user's own IAM role signs their token.
        Eks = "eks",
        /// Any other Kubernetes (EKS Anywhere, on-premises, other clouds): the broker's
        /// credential, impersonating each user, through the API proxy.
        Kubernetes = "kubernetes",
    }
}

/// `[cluster.credentials]`: how the broker authenticates to a `kubernetes` cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCredentials {
    pub source: CredentialSource,
    /// The name the cluster knows that credential by, which `rolesh rbac` lets impersonate
    /// (`system:serviceaccount:NS:NAME` for a service account).
    pub identity: String,
    /// Where `[cluster.credentials]` is written (`PATH:LINE:COL`).
    pub origin: String,
}

/// Where the broker's credential for a `kubernetes` cluster is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// A kubeconfig: its context (or current context)'s user, a token or a client
    /// certificate, inline or in files.
    Kubeconfig {
        path: PathBuf,
        context: Option<String>,
    },
    /// A bearer token (a service account's), read again when the file changes.
    TokenFile(PathBuf),
    /// A client certificate and its key, PEM.
    ClientCertificate { certificate: PathBuf, key: PathBuf },
}

impl CredentialSource {
    /// Every file the credential is read from.
    pub fn files(&self) -> Vec<&Path> {
        match self {
            CredentialSource::Kubeconfig { path, .. } => vec![path],
            CredentialSource::TokenFile(path) => vec![path],
            CredentialSource::ClientCertificate { certificate, key } => vec![certificate, key],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateAuthority {
    /// Base64 PEM, as in a kubeconfig's `certificate-authority-data`.
    Data(String),
    File(PathBuf),
}

/// `[[cluster.namespace]]`: an allowlisted namespace and the pods offered in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSettings {
    pub name: String,
    /// Pods matching ANY of these are offered; empty means every pod.
    pub selectors: Vec<Selector>,
}

word_enum! {
    /// How kubectl in a session reaches a cluster (`[[cluster]] access`).
    pub enum ClusterRoute {
        /// Straight to the cluster with a token the session's exec plugin gets from the
        /// broker.
        Direct = "direct",
        /// Through the broker's Kubernetes API proxy, which holds the token and applies the
        /// namespace allowlist and selectors to every request (`crate::policy`).
        Proxy = "proxy",
    }
}

impl ClusterRoute {
    /// The route as `explain` and `check` say it.
    pub fn in_words(self) -> &'static str {
        match self {
            ClusterRoute::Direct => "direct",
            ClusterRoute::Proxy => "through the API proxy",
        }
    }
}

word_enum! {
    /// Which requests through the API proxy are audited (`[audit] api`).
    pub enum ApiAudit {
        /// Every request.
        All = "all",
        /// Changes, exec, attach and port-forward, and every refusal.
        Writes = "writes",
        Off = "off",
    }
}

word_enum! {
    /// What a login session runs.
    pub enum Mode {
        Shell = "shell",
        Restricted = "restricted",
        Picker = "picker",
    }
}

word_enum! {
    /// Which sessions are recorded.
    pub enum RecordPolicy {
        Off = "off",
        /// Login sessions (a terminal, or `ssh -T bastion` with no command).
        Interactive = "interactive",
        /// Also `ssh bastion CMD` and `rolesh exec`.
        All = "all",
    }
}

/// `[session]`, and what a user ends up with after overrides. This is also what the
/// broker's `whoami` tells the session (durations in whole seconds).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    pub mode: Mode,
    pub shell: String,
    pub path: String,
    pub allowed_commands: Vec<String>,
    pub file_transfer: bool,
    #[serde(rename = "idle_timeout_secs", with = "values::whole_seconds")]
    pub idle_timeout: Duration,
    #[serde(rename = "max_duration_secs", with = "values::whole_seconds")]
    pub max_duration: Duration,
    #[serde(deserialize_with = "values::required")]
    pub banner: Option<String>,
    pub record: RecordPolicy,
    /// Whether recordings also hold what the user types (passwords typed at a prompt
    /// included: off unless an administrator decides otherwise).
    pub record_input: bool,
    /// The command `rolesh exec` runs when none is given; `None`: bash if present, else sh.
    #[serde(deserialize_with = "values::required")]
    pub exec_command: Option<Vec<String>>,
    /// What `kubectl edit` and friends open in restricted mode and `ssh bastion CMD`: a
    /// command on `path`, or an absolute path (an editor without a shell escape).
    pub editor: String,
    /// Token-shaped output becomes `<redacted>` in recordings.
    pub record_redact: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            mode: Mode::Shell,
            shell: "/bin/bash".into(),
            path: "/usr/local/bin:/usr/bin:/bin".into(),
            allowed_commands: vec!["kubectl".into(), "helm".into(), "k9s".into()],
            file_transfer: false,
            idle_timeout: Duration::from_secs(30 * 60),
            max_duration: Duration::from_secs(12 * 3600),
            banner: None,
            record: RecordPolicy::Off,
            record_input: false,
            exec_command: None,
            editor: "rnano".into(),
            record_redact: true,
        }
    }
}

/// The session keys an override sets; `None` leaves the `[session]` value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionPatch {
    pub mode: Option<Mode>,
    pub shell: Option<String>,
    pub path: Option<String>,
    pub allowed_commands: Option<Vec<String>>,
    pub file_transfer: Option<bool>,
    pub idle_timeout: Option<Duration>,
    pub max_duration: Option<Duration>,
    pub banner: Option<String>,
    pub record: Option<RecordPolicy>,
    pub record_input: Option<bool>,
    pub exec_command: Option<Vec<String>>,
    pub editor: Option<String>,
    pub record_redact: Option<bool>,
}

impl SessionPatch {
    pub fn apply(&self, base: &mut SessionSettings) {
        fn set<T: Clone>(target: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *target = v.clone();
            }
        }
        set(&mut base.mode, &self.mode);
        set(&mut base.shell, &self.shell);
        set(&mut base.path, &self.path);
        set(&mut base.allowed_commands, &self.allowed_commands);
        set(&mut base.file_transfer, &self.file_transfer);
        set(&mut base.idle_timeout, &self.idle_timeout);
        set(&mut base.max_duration, &self.max_duration);
        if self.banner.is_some() {
            base.banner = self.banner.clone();
        }
        set(&mut base.record, &self.record);
        set(&mut base.record_input, &self.record_input);
        if self.exec_command.is_some() {
            base.exec_command = self.exec_command.clone();
        }
        set(&mut base.editor, &self.editor);
        set(&mut base.record_redact, &self.record_redact);
    }
}

/// `[[session.override]]`: applies to the listed users and members of the listed groups.
#[derive(Debug, Clone)]
pub struct SessionOverride {
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub patch: SessionPatch,
    pub origin: String,
}

/// `[broker]`.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub refresh_before: Duration,
    pub max_connections: u32,
    /// Connections one uid may hold at once, so one user cannot take every slot.
    pub max_connections_per_uid: u32,
    /// A connection must send each complete request line within this time.
    pub idle_timeout: Duration,
    /// Requests per second one uid may make (bursts of twice that are allowed).
    pub rate_per_uid: u32,
    /// Tokens, credentials and cluster endpoints only for processes of a live session
    /// (its cgroup, as the kernel says). `false` is for hosts that are not bastions.
    pub require_session: bool,
    /// Where the Kubernetes API proxy listens (loopback only): one listener, a path a
    /// cluster (`https://127.0.0.1:7443/clusters/NAME`).
    pub proxy_listen: std::net::SocketAddr,
    /// The proxy's CA (its key readable by the broker's user alone), kept across restarts
    /// so that running sessions' kubeconfigs stay valid.
    pub proxy_ca_dir: PathBuf,
    /// How often `[[discovery]]` asks EKS again.
    pub discovery_refresh: Duration,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            refresh_before: Duration::from_secs(600),
            max_connections: 1024,
            max_connections_per_uid: 64,
            idle_timeout: Duration::from_secs(30),
            rate_per_uid: 200,
            require_session: true,
            proxy_listen: std::net::SocketAddr::from(([127, 0, 0, 1], 7443)),
            proxy_ca_dir: PathBuf::from("/var/lib/rolesh/proxy"),
            discovery_refresh: Duration::from_secs(300),
        }
    }
}

/// `[audit]`.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Which API proxy requests become `api` events.
    pub api: ApiAudit,
    pub journald: bool,
    pub file: Option<PathBuf>,
    pub recordings_dir: PathBuf,
    /// Bytes of recordings one user may have written per day (UTC); past it, sessions
    /// that must be recorded are refused.
    pub recording_quota: u64,
    /// Below this much free space on the recordings file system, new recordings are
    /// refused (except for `exempt_groups`).
    pub min_free: values::MinFree,
    /// Groups whose members are recorded even below `min_free`.
    pub exempt_groups: Vec<String>,
    /// Session events per second one uid may report (bursts of twice that); the excess
    /// is dropped and counted.
    pub event_rate_per_uid: u32,
    /// `[audit.s3]`: recordings streamed to S3 as well.
    pub s3: Option<S3Settings>,
}

/// `[audit.s3]`: where recordings are streamed, and how they are kept there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    pub region: String,
    /// The key prefix, `{hostname}` standing for the bastion's short host name.
    pub prefix: String,
    /// An S3 endpoint (a VPC endpoint; `http://` to loopback in tests).
    pub endpoint: Option<String>,
    pub object_lock: Option<ObjectLock>,
    /// SSE-KMS with this key (its ARN, id or alias).
    pub kms_key_id: Option<String>,
    pub storage_class: Option<StorageClass>,
    pub keep_local: KeepLocal,
    /// Where `[audit.s3]` is written (`PATH:LINE:COL`).
    pub origin: String,
}

impl S3Settings {
    /// The prefix for this host.
    pub fn prefix_for(&self, hostname: &str) -> String {
        self.prefix.replace("{hostname}", hostname)
    }
}

/// Object lock retention of each recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLock {
    pub days: u32,
    pub mode: ObjectLockMode,
}

word_enum! {
    /// `[audit.s3] object_lock_mode`, as S3 spells it.
    pub enum ObjectLockMode {
        /// Users with `s3:BypassGovernanceRetention` may still shorten or remove it.
        Governance = "GOVERNANCE",
        /// Nobody, the account's root user included, until it expires.
        Compliance = "COMPLIANCE",
    }
}

word_enum! {
    /// `[audit.s3] storage_class`, as S3 spells it.
    pub enum StorageClass {
        Standard = "STANDARD",
        StandardIa = "STANDARD_IA",
        OnezoneIa = "ONEZONE_IA",
        IntelligentTiering = "INTELLIGENT_TIERING",
        GlacierIr = "GLACIER_IR",
        Glacier = "GLACIER",
        DeepArchive = "DEEP_ARCHIVE",
    }
}

word_enum! {
    /// `[audit.s3] keep_local`: what becomes of the local copy of a recording.
    pub enum KeepLocal {
        /// Removed once S3 has the whole recording.
        UntilUploaded = "until_uploaded",
        Always = "always",
    }
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            api: ApiAudit::Writes,
            journald: true,
            file: None,
            recordings_dir: PathBuf::from("/var/log/rolesh/sessions"),
            recording_quota: 1 << 30,
            min_free: values::MinFree::Percent(5),
            exempt_groups: Vec::new(),
            event_rate_per_uid: 10,
            s3: None,
        }
    }
}

/// Which configuration to read.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// `/etc/rolesh/config.toml` + `config.d`: must be root-owned and not writable by group
    /// or others. The only source in login mode.
    System,
    /// `--config PATH`: a file, or a directory holding `config.toml` and `config.d/`.
    /// Not being owned by root is a warning (the broker would refuse it), not an error.
    Path(PathBuf),
}

/// A configuration and the warnings loading it produced.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads, merges and validates the configuration.
    pub fn load(source: &ConfigSource) -> Result<Loaded, ConfigErrors> {
        match source {
            ConfigSource::System => Self::load_dir(&paths::sysconf_dir(), true),
            ConfigSource::Path(p) if p.is_dir() => Self::load_dir(p, false),
            ConfigSource::Path(p) => Self::load_file(p),
        }
    }

    /// Loads `DIR/config.toml` and `DIR/config.d/*.toml` with the checks the system
    /// configuration gets (root-owned files and directories). For tests of those checks;
    /// rolesh itself uses [`ConfigSource::System`].
    #[doc(hidden)]
    pub fn load_strict(dir: &Path) -> Result<Loaded, ConfigErrors> {
        Self::load_dir(dir, true)
    }

    /// `DIR/config.toml` and `DIR/config.d/*.toml`, after the directories' checks.
    fn load_dir(dir: &Path, strict: bool) -> Result<Loaded, ConfigErrors> {
        let mut warnings = Vec::new();
        dirs::check(dir, Some(&dir.join("config.d")), strict, &mut warnings)?;
        Self::load_files(config_files(dir)?, strict, warnings)
    }

    /// One file (`--config FILE`), after the checks of the directories above it.
    fn load_file(path: &Path) -> Result<Loaded, ConfigErrors> {
        let mut warnings = Vec::new();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        dirs::check(dir, None, false, &mut warnings)?;
        Self::load_files(vec![path.to_path_buf()], false, warnings)
    }

    fn load_files(
        files: Vec<PathBuf>,
        strict: bool,
        mut warnings: Vec<String>,
    ) -> Result<Loaded, ConfigErrors> {
        let mut errors = Vec::new();
        let mut sources = Vec::new();
        for path in &files {
            match read_checked(path, strict, &mut warnings) {
                Ok(text) => sources.push(Arc::new(SourceFile {
                    path: path.clone(),
                    text,
                })),
                Err(d) => errors.push(d),
            }
        }
        let mut merged = tree::Table::default();
        for file in &sources {
            match tree::parse(file) {
                Ok(table) => merged.merge(table),
                Err(d) => errors.push(d),
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors::sorted(errors));
        }
        let config = schema::build(&merged, &sources, files)?;
        Ok(Loaded { config, warnings })
    }

    /// Parses one configuration text, as the fuzzer and unit tests do: no file system.
    pub fn from_text(path: &str, text: &str) -> Result<Config, ConfigErrors> {
        let file = Arc::new(SourceFile {
            path: path.into(),
            text: text.into(),
        });
        let table = tree::parse(&file).map_err(|d| ConfigErrors(vec![d]))?;
        schema::build(&table, &[file], vec![path.into()])
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterSettings> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

/// `DIR/config.toml`, then `DIR/config.d/*.toml` in lexical (byte) order; dotfiles and
/// other extensions (`.dpkg-old`, editor backups) are skipped.
fn config_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigErrors> {
    let mut files = vec![dir.join("config.toml")];
    let drop_in_dir = dir.join("config.d");
    let entries = match std::fs::read_dir(&drop_in_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => {
            return Err(ConfigErrors(vec![Diagnostic::file(
                &drop_in_dir,
                format!("cannot read directory: {}", io_reason(&e)),
            )]));
        }
    };
    let mut drop_ins: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && name.ends_with(".toml")
        })
        .collect();
    drop_ins.sort();
    files.extend(drop_ins);
    Ok(files)
}

/// Reads a config file after the StrictModes-style checks: the file must not be writable
/// by group or others, and (strictly) must be owned by root. Its directories were checked
/// before (`dirs`).
fn read_checked(
    path: &Path,
    strict: bool,
    warnings: &mut Vec<String>,
) -> Result<String, Diagnostic> {
    let owner = system::ownership(path)
        .map_err(|e| Diagnostic::file(path, format!("cannot read config: {}", io_reason(&e))))?;
    if owner.writable_by_group_or_others() {
        return Err(Diagnostic::file(
            path,
            format!(
                "refusing a config writable by group or others (mode {:04o}); run: chmod go-w {}",
                owner.mode & 0o7777,
                path.display()
            ),
        ));
    }
    if owner.uid != 0 {
        let message = format!(
            "config is owned by uid {}, not root; run: chown root {}",
            owner.uid,
            path.display()
        );
        if strict {
            return Err(Diagnostic::file(path, format!("refusing it: {message}")));
        }
        warnings.push(format!(
            "warning: {}: {message} (the broker and login shell refuse such a file)",
            path.display()
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Diagnostic::file(path, format!("cannot read config: {}", io_reason(&e))))?;
    String::from_utf8(bytes).map_err(|e| {
        Diagnostic::file(
            path,
            format!(
                "config is not valid UTF-8 (at byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// `std::io::Error` without the "(os error 2)" suffix.
pub fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}
