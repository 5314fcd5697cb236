//! The audit trail (SPEC §7): tracing events with target `rolesh::audit` become journald
//! entries with `ROLESH_*` fields and, in the broker, JSON Lines in `[audit] file`.
//!
//! Everyone emits audit events the same way:
//!
//! ```ignore
//! tracing::info!(target: "rolesh::audit", event = "exec", cluster = %c, pod = %p, exit_code = 0);
//! ```
//!
//! - In the broker ([`init_broker`]) the [`AuditLayer`] writes them to journald (the
//!   broker's `_UID`, which users cannot forge) and to the JSON Lines file the broker owns.
//! - In a user's session ([`init_session`]) the [`SessionLayer`] reports them to the
//!   broker (op `event`), which puts the user and uid the kernel gives it (SO_PEERCRED) on
//!   them, adds the role, and writes them like its own. Only when the broker cannot be
//!   reached does the session write to journald itself, marked `reported_by=session-direct`
//!   (journald stamps the user's `_UID` on it; `rolesh audit` shows such entries only for
//!   that uid and as self-reported).
//!
//! Every value passes [`crate::redact::clean`] (redacted, capped) first.

pub(crate) mod escape;
pub(crate) mod journald;
pub(crate) mod query;

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::AuditSettings;
use crate::protocol::{Ack, RESERVED, Request, SessionEvent};
use crate::redact::{clean, redact};
use journald::Journald;

/// The tracing target of audit events.
pub(crate) const TARGET: &str = "rolesh::audit";

/// The journald `SYSLOG_IDENTIFIER` of audit entries (`journalctl -t rolesh-audit`).
pub(crate) const IDENTIFIER: &str = "rolesh-audit";

/// One audit entry: its fields in the order they were given, each value redacted.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AuditEntry {
    pub fields: Vec<(String, Value)>,
    pub message: Option<String>,
    pub warning: bool,
}

impl AuditEntry {
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub(crate) fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// Sets `name`, replacing an earlier value; strings are redacted and capped.
    pub(crate) fn set(&mut self, name: &str, value: Value) {
        let value = match value {
            Value::String(s) => Value::String(clean(&s)),
            other => other,
        };
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.fields.push((name.to_string(), value)),
        }
    }

    /// Sets `name` only if the record does not have it.
    pub(crate) fn set_default(&mut self, name: &str, value: Value) {
        if self.get(name).is_none() {
            self.set(name, value);
        }
    }

    pub(crate) fn remove(&mut self, name: &str) {
        self.fields.retain(|(n, _)| n != name);
    }

    /// A one-line human summary: journald's MESSAGE.
    pub(crate) fn summary(&self) -> String {
        if let Some(m) = &self.message {
            return m.clone();
        }
        let mut parts = vec![format!(
            "rolesh {}",
            self.get_str("event").unwrap_or("event")
        )];
        for (name, value) in &self.fields {
            if name != "event" {
                parts.push(format!("{name}={}", plain(value)));
            }
        }
        parts.join(" ")
    }

    /// The journald entry: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and `ROLESH_*` fields,
    /// control characters escaped in MESSAGE and every value (see [`escape`]).
    pub(crate) fn journald_fields(&self) -> Vec<(String, String)> {
        let priority = if self.warning { "4" } else { "6" };
        let mut out = vec![
            (
                "MESSAGE".to_string(),
                escape::controls(&self.summary()).into_owned(),
            ),
            ("PRIORITY".to_string(), priority.to_string()),
            ("SYSLOG_IDENTIFIER".to_string(), IDENTIFIER.to_string()),
        ];
        for (name, value) in &self.fields {
            let value = plain(value);
            out.push((
                journald::field_name(name),
                escape::controls(&value).into_owned(),
            ));
        }
        out
    }

    /// The JSON Lines record: `ts` (RFC 3339, UTC, milliseconds), `host`, then the fields
    /// under their own (snake_case) names, numbers and booleans as JSON numbers and
    /// booleans; no raw control character (see [`escape::json`]).
    pub(crate) fn json_line(&self, at: SystemTime, host: &str) -> String {
        let mut map = Map::new();
        map.insert("ts".into(), rfc3339_millis(at).into());
        map.insert("host".into(), host.into());
        for (name, value) in &self.fields {
            map.insert(name.clone(), value.clone());
        }
        escape::json(&Value::Object(map))
    }
}

/// `2026-01-31T08:00:00.123Z`: UTC, milliseconds.
pub(crate) fn rfc3339_millis(at: SystemTime) -> String {
    match jiff::Timestamp::try_from(at) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => "1970-01-01T00:00:00.000Z".into(),
    }
}

/// A value as text (journald has no types).
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Collects an event's fields into an [`AuditEntry`].
struct Collect<'a>(&'a mut AuditEntry);

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

impl Collect<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.0.message = Some(clean(&plain(&value)));
        } else {
            self.0.set(field.name(), value);
        }
    }
}

/// The entry of a tracing event.
pub(crate) fn entry_of(event: &Event<'_>) -> AuditEntry {
    let mut record = AuditEntry {
        warning: *event.metadata().level() <= Level::WARN,
        ..AuditEntry::default()
    };
    event.record(&mut Collect(&mut record));
    record
}

/// Where the broker's audit records go.
pub(crate) struct Sinks {
    journald: Option<Journald>,
    file: Option<Mutex<File>>,
    host: String,
}

/// The broker's sinks, replaced as a whole when a reload changes `[audit]`.
static BROKER_SINKS: OnceLock<RwLock<Arc<Sinks>>> = OnceLock::new();

/// Whether audit events stay off stderr (under systemd with journald: they would be in the
/// journal twice); follows the sinks on reload.
static AUDIT_OFF_STDERR: AtomicBool = AtomicBool::new(false);

impl Sinks {
    /// Opens what `audit` names; an audit file that cannot be opened is an error (the
    /// broker does not run without its trail). Also says whether journald was asked for
    /// but is not running.
    fn open(audit: &AuditSettings) -> Result<(Sinks, bool), String> {
        let journald = audit
            .journald
            .then(|| Journald::connect(Path::new(journald::SOCKET)))
            .flatten();
        let file = match &audit.file {
            Some(path) => Some(Mutex::new(open_audit_file(path)?)),
            None => None,
        };
        let journald_missing = audit.journald && journald.is_none();
        let sinks = Sinks {
            journald,
            file,
            host: crate::system::hostname(),
        };
        Ok((sinks, journald_missing))
    }

    fn keeps_audit_off_stderr(&self) -> bool {
        self.journald.is_some() && crate::system::stderr_is_journal()
    }

    /// Writes one record to every sink. A failing sink does not stop the others; the
    /// failure itself goes to stderr (journald, under systemd).
    pub(crate) fn write(&self, record: &AuditEntry) {
        if let Some(j) = &self.journald
            && let Err(e) = j.send(&record.journald_fields())
        {
            eprintln!("rolesh: cannot write an audit record to journald: {e}");
        }
        if let Some(file) = &self.file {
            let mut line = record.json_line(SystemTime::now(), &self.host);
            line.push('\n');
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            // One write of the whole line on an O_APPEND file: lines never interleave.
            if let Err(e) = f.write_all(line.as_bytes()) {
                eprintln!("rolesh: cannot write an audit record to the audit file: {e}");
            }
        }
    }
}

/// The broker's layer: audit events to journald and the JSON Lines file.
pub(crate) struct AuditLayer;

impl<S: Subscriber> Layer<S> for AuditLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == TARGET
            && let Some(sinks) = BROKER_SINKS.get()
        {
            let sinks = Arc::clone(&sinks.read().unwrap_or_else(|p| p.into_inner()));
            sinks.write(&entry_of(event));
        }
    }
}

/// Opens the JSON Lines file for appending (created 0640; the broker's group may read).
pub(crate) fn open_audit_file(path: &Path) -> Result<File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(crate::system::no_follow_flag())
        .open(path)
        .map_err(|e| format!("cannot open the audit file {}: {e}", path.display()))
}

/// Logging for `rolesh broker`: diagnostics and audit events to stderr (redacted); audit
/// events also to journald (`[audit] journald`, when journald runs) and to the JSON Lines
/// `[audit] file`. Under systemd, whose journal already is stderr, audit events are not
/// written to stderr a second time.
pub(crate) fn init_broker(audit: &AuditSettings) -> Result<(), String> {
    let (sinks, journald_missing) = Sinks::open(audit)?;
    AUDIT_OFF_STDERR.store(sinks.keeps_audit_off_stderr(), Ordering::Relaxed);
    BROKER_SINKS
        .set(RwLock::new(Arc::new(sinks)))
        .map_err(|_| "the audit trail was already set up".to_string())?;
    let stderr = stderr_layer().with_filter(filter_fn(|m| {
        !(AUDIT_OFF_STDERR.load(Ordering::Relaxed) && m.target() == TARGET)
    }));
    let _ = tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(stderr)
        .with(AuditLayer)
        .try_init();
    warn_if_journald_missing(audit, journald_missing);
    Ok(())
}

/// On a configuration reload (SIGHUP): the sinks `audit` names, opened anew — the audit
/// file is reopened even when its path did not change, so a log rotation that renames the
/// file (rather than `copytruncate`) is followed. On an error the old sinks stay and the
/// caller keeps the old configuration.
pub(crate) fn reload_broker(audit: &AuditSettings) -> Result<(), String> {
    let (sinks, journald_missing) = Sinks::open(audit)?;
    let Some(current) = BROKER_SINKS.get() else {
        return Err("the audit trail was not set up".into());
    };
    AUDIT_OFF_STDERR.store(sinks.keeps_audit_off_stderr(), Ordering::Relaxed);
    *current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(sinks);
    warn_if_journald_missing(audit, journald_missing);
    Ok(())
}

fn warn_if_journald_missing(audit: &AuditSettings, journald_missing: bool) {
    if journald_missing {
        tracing::warn!(
            "journald is not running (nothing listens on {}): audit events go to stderr{} only",
            journald::SOCKET,
            if audit.file.is_some() {
                " and the audit file"
            } else {
                ""
            }
        );
    }
}

fn stderr_layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(|| RedactingStderr)
        .with_ansi(false)
        .with_target(true)
}

/// stderr, with every formatted line passed through [`redact`] and its control
/// characters escaped (fmt writes each event with one `write_all`, so a line is never
/// split between two calls).
struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let text = redact(&text);
        std::io::stderr().write_all(escape::log_line(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

// --- the session side -----------------------------------------------------------------

/// How long a session waits for the broker to take an event.
const REPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// The session's layer: audit events go to the broker (op `event`), which attributes them
/// from SO_PEERCRED; journald directly only when the broker cannot take them.
pub(crate) struct SessionLayer {
    socket: PathBuf,
    /// `session_id` and `ssh_client`, read once at start (the environment is scrubbed for
    /// the session's children), added to events that do not carry them.
    defaults: Vec<(&'static str, String)>,
    /// In the session monitor (root): the user whose session it is.
    speaks_for: Option<(u32, String)>,
}

impl<S: Subscriber> Layer<S> for SessionLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut record = entry_of(event);
        for (name, value) in &self.defaults {
            record.set_default(name, value.as_str().into());
        }
        report_session_event(&self.socket, record, self.speaks_for.as_ref());
    }
}

/// Logging for a user's session (`rolesh exec`, the restricted prompt, `session-init`):
/// audit events through the broker at `socket`; warnings and errors to stderr (redacted).
pub(crate) fn init_session(socket: &Path) {
    let mut defaults = Vec::new();
    for (name, var) in [
        ("session_id", "ROLESH_SESSION_ID"),
        ("ssh_client", "SSH_CLIENT"),
    ] {
        if let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            defaults.push((name, v));
        }
    }
    init_session_layer(SessionLayer {
        socket: socket.to_path_buf(),
        defaults,
        speaks_for: None,
    });
}

/// Logging for a session's monitor (root): its events (`login`, `command`, `logout`,
/// `error`) are the user's, reported through the broker for `account`; only when the
/// broker cannot take them does the monitor write them to journald itself.
pub(crate) fn init_monitor(
    socket: &Path,
    account: &crate::mapping::Account,
    session_id: &crate::session_id::SessionId,
    ssh_client: Option<&str>,
) {
    let mut defaults = vec![("session_id", session_id.to_string())];
    if let Some(client) = ssh_client {
        defaults.push(("ssh_client", client.to_string()));
    }
    init_session_layer(SessionLayer {
        socket: socket.to_path_buf(),
        defaults,
        speaks_for: Some((account.uid, account.name.clone())),
    });
}

fn init_session_layer(layer: SessionLayer) {
    let stderr = stderr_layer().with_filter(filter_fn(|m| {
        m.target() != TARGET && *m.level() <= Level::WARN
    }));
    let _ = tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(stderr)
        .with(layer)
        .try_init();
}

/// Sends a session event to the broker; if that fails, writes it to journald directly
/// (attributed by journald's `_UID`), and if that fails too, says so on stderr.
pub(crate) fn report_session_event(
    socket: &Path,
    mut record: AuditEntry,
    speaks_for: Option<&(u32, String)>,
) {
    // The broker sets these from the kernel and the configuration; never the session.
    for reserved in RESERVED {
        record.remove(reserved);
    }
    // On a thread of its own with SIGPIPE blocked: a broker that closes the connection
    // must not kill the session that reports.
    let sent = std::thread::scope(|s| {
        s.spawn(|| {
            crate::system::block_sigpipe_in_this_thread();
            send_event(socket, &record, speaks_for.map(|(uid, _)| *uid))
        })
        .join()
        .unwrap_or_else(|_| Err("the reporting thread failed".into()))
    });
    let broker_error = match sent {
        Ok(()) => return,
        Err(e) => e,
    };
    match speaks_for {
        // The monitor is root: journald's `_UID` makes its entries believed.
        Some((uid, user)) => {
            record.set("reported_by", "monitor".into());
            record.set("uid", (*uid).into());
            record.set("user", user.as_str().into());
        }
        None => {
            record.set("reported_by", "session-direct".into());
            record.set("uid", crate::system::current_uid().into());
        }
    }
    record.set("report_error", broker_error.as_str().into());
    let sent =
        Journald::connect(Path::new(journald::SOCKET)).map(|j| j.send(&record.journald_fields()));
    if !matches!(sent, Some(Ok(()))) {
        eprintln!(
            "rolesh: warning: audit event {:?} not recorded: {broker_error}",
            record.get_str("event").unwrap_or("?")
        );
    }
}

/// The `event` request (`uid`: the monitor speaking for a user).
fn send_event(socket: &Path, record: &AuditEntry, uid: Option<u32>) -> Result<(), String> {
    let fields: Map<String, Value> = record.fields.iter().cloned().collect();
    let fields: Box<SessionEvent> =
        serde_json::from_value(Value::Object(fields)).map_err(|e| format!("not an event: {e}"))?;
    crate::client::Connection::open(socket, REPORT_TIMEOUT)
        .and_then(|mut broker| broker.ask::<Ack>(&Request::Event { fields, uid }))
        .map(|_| ())
        .map_err(|f| format!("broker: {}", f.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_redacted_and_capped() {
        let mut r = AuditEntry::default();
        r.set(
            "reason",
            "STS said <SessionToken>FQoGZXIvYXdz</SessionToken>".into(),
        );
        r.set("command", "ls ".repeat(5_000).into());
        assert!(!r.get_str("reason").unwrap().contains("FQoG"));
        let c = r.get_str("command").unwrap();
        assert!(c.len() <= crate::redact::MAX_VALUE && c.ends_with('…'));
    }

    #[test]
    fn journald_and_json_shapes() {
        let mut r = AuditEntry::default();
        r.set("event", "token".into());
        r.set("user", "alice".into());
        r.set("uid", 1001.into());
        let j = r.journald_fields();
        assert!(j.contains(&("ROLESH_EVENT".into(), "token".into())));
        assert!(j.contains(&("ROLESH_UID".into(), "1001".into())));
        assert!(j.contains(&("SYSLOG_IDENTIFIER".into(), IDENTIFIER.into())));
        let line: Value = serde_json::from_str(&r.json_line(SystemTime::UNIX_EPOCH, "h")).unwrap();
        assert_eq!(line["ts"], "1970-01-01T00:00:00.000Z");
        assert_eq!(line["uid"], 1001);
        assert_eq!(line["event"], "token");
    }
}
