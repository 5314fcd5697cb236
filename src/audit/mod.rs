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
//! Every value passes [`redact::redact`] and is capped at [`MAX_VALUE`] bytes first.

pub mod journald;
pub mod query;
pub mod redact;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Audit;
use journald::Journald;

/// The tracing target of audit events.
pub const TARGET: &str = "rolesh::audit";

/// The journald `SYSLOG_IDENTIFIER` of audit entries (`journalctl -t rolesh-audit`).
pub const IDENTIFIER: &str = "rolesh-audit";

/// The longest value kept (bytes); longer ones are cut and end in `…`.
pub const MAX_VALUE: usize = 4096;

/// Session events: what a session may report (the broker reports the others itself).
pub const SESSION_EVENTS: [&str; 5] = ["login", "command", "exec", "logout", "error"];

/// One audit record: its fields in the order they were given, each value redacted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub fields: Vec<(String, Value)>,
    pub message: Option<String>,
    pub warning: bool,
}

impl Record {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// Sets `name`, replacing an earlier value; strings are redacted and capped.
    pub fn set(&mut self, name: &str, value: Value) {
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
    pub fn set_default(&mut self, name: &str, value: Value) {
        if self.get(name).is_none() {
            self.set(name, value);
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|(n, _)| n != name);
    }

    /// A one-line human summary: journald's MESSAGE.
    pub fn summary(&self) -> String {
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

    /// The journald entry: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and `ROLESH_*` fields.
    pub fn journald_fields(&self) -> Vec<(String, String)> {
        let priority = if self.warning { "4" } else { "6" };
        let mut out = vec![
            ("MESSAGE".to_string(), self.summary()),
            ("PRIORITY".to_string(), priority.to_string()),
            ("SYSLOG_IDENTIFIER".to_string(), IDENTIFIER.to_string()),
        ];
        for (name, value) in &self.fields {
            out.push((journald::field_name(name), plain(value)));
        }
        out
    }

    /// The JSON Lines record: `ts` (RFC 3339, UTC, milliseconds), `host`, then the fields
    /// under their own (snake_case) names, numbers and booleans as JSON numbers and
    /// booleans.
    pub fn json_line(&self, at: SystemTime, host: &str) -> String {
        let mut map = Map::new();
        map.insert(
            "ts".into(),
            json!(humantime::format_rfc3339_millis(at).to_string()),
        );
        map.insert("host".into(), json!(host));
        for (name, value) in &self.fields {
            map.insert(name.clone(), value.clone());
        }
        Value::Object(map).to_string()
    }
}

/// A value as text (journald has no types).
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Redacted, and cut at a character boundary to [`MAX_VALUE`] bytes.
pub fn clean(text: &str) -> String {
    let redacted = redact::redact(text);
    if redacted.len() <= MAX_VALUE {
        return redacted.into_owned();
    }
    let mut end = MAX_VALUE - '…'.len_utf8();
    while !redacted.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &redacted[..end])
}

/// Collects an event's fields into a [`Record`].
struct Collect<'a>(&'a mut Record);

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, json!(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, json!(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, json!(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, json!(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, json!(format!("{value:?}")));
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

/// The record of a tracing event.
pub fn record_of(event: &Event<'_>) -> Record {
    let mut record = Record {
        warning: *event.metadata().level() <= Level::WARN,
        ..Record::default()
    };
    event.record(&mut Collect(&mut record));
    record
}

/// Where the broker's audit records go.
pub struct Sinks {
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
    fn open(audit: &Audit) -> Result<(Sinks, bool), String> {
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
    pub fn write(&self, record: &Record) {
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
pub struct AuditLayer;

impl<S: Subscriber> Layer<S> for AuditLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == TARGET
            && let Some(sinks) = BROKER_SINKS.get()
        {
            let sinks = Arc::clone(&sinks.read().unwrap_or_else(|p| p.into_inner()));
            sinks.write(&record_of(event));
        }
    }
}

/// Opens the JSON Lines file for appending (created 0640; the broker's group may read).
pub fn open_audit_file(path: &Path) -> Result<File, String> {
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
pub fn init_broker(audit: &Audit) -> Result<(), String> {
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
pub fn reload_broker(audit: &Audit) -> Result<(), String> {
    let (sinks, journald_missing) = Sinks::open(audit)?;
    let Some(current) = BROKER_SINKS.get() else {
        return Err("the audit trail was not set up".into());
    };
    AUDIT_OFF_STDERR.store(sinks.keeps_audit_off_stderr(), Ordering::Relaxed);
    *current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(sinks);
    warn_if_journald_missing(audit, journald_missing);
    Ok(())
}

fn warn_if_journald_missing(audit: &Audit, journald_missing: bool) {
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

/// stderr, with every formatted line passed through [`redact::redact`] (fmt writes each
/// event with one `write_all`, so a line is never split between two calls).
struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact::redact(&text).as_bytes())?;
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
pub struct SessionLayer {
    socket: PathBuf,
    /// `session_id` and `ssh_client`, read once at start (the environment is scrubbed for
    /// the session's children), added to events that do not carry them.
    defaults: Vec<(&'static str, String)>,
}

impl<S: Subscriber> Layer<S> for SessionLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut record = record_of(event);
        for (name, value) in &self.defaults {
            record.set_default(name, json!(value));
        }
        report_session_event(&self.socket, record);
    }
}

/// Logging for a user's session (login shell, `-c`, `rolesh exec`): audit events through
/// the broker at `socket`; warnings and errors to stderr (redacted).
pub fn init_session(socket: &Path) {
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
    let layer = SessionLayer {
        socket: socket.to_path_buf(),
        defaults,
    };
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
pub fn report_session_event(socket: &Path, mut record: Record) {
    // The broker sets these from the kernel and the configuration; never the session.
    for reserved in crate::broker::protocol::RESERVED {
        record.remove(reserved);
    }
    // On a thread of its own with SIGPIPE blocked: a broker that closes the connection
    // must not kill the session that reports.
    let sent = std::thread::scope(|s| {
        s.spawn(|| {
            crate::system::block_sigpipe_in_this_thread();
            send_event(socket, &record)
        })
        .join()
        .unwrap_or_else(|_| Err("the reporting thread failed".into()))
    });
    let broker_error = match sent {
        Ok(()) => return,
        Err(e) => e,
    };
    record.set("reported_by", json!("session-direct"));
    record.set("uid", json!(crate::system::current_uid()));
    record.set("report_error", json!(broker_error));
    let sent =
        Journald::connect(Path::new(journald::SOCKET)).map(|j| j.send(&record.journald_fields()));
    if !matches!(sent, Some(Ok(()))) {
        eprintln!(
            "rolesh: warning: audit event {:?} not recorded: {broker_error}",
            record.get_str("event").unwrap_or("?")
        );
    }
}

/// The `event` request: `{"v":1,"op":"event","fields":{…}}`.
fn send_event(socket: &Path, record: &Record) -> Result<(), String> {
    let fields: Map<String, Value> = record.fields.iter().cloned().collect();
    let mut line = json!({"v": 1, "op": "event", "fields": fields}).to_string();
    line.push('\n');
    let mut stream = UnixStream::connect(socket).map_err(|e| format!("broker: {e}"))?;
    stream.set_read_timeout(Some(REPORT_TIMEOUT)).ok();
    stream.set_write_timeout(Some(REPORT_TIMEOUT)).ok();
    stream
        .write_all(line.as_bytes())
        .map_err(|e| format!("broker: {e}"))?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| format!("broker: {e}"))?;
    let answer: Value =
        serde_json::from_str(&answer).map_err(|_| "broker: no answer".to_string())?;
    match answer.get("error") {
        None => Ok(()),
        Some(err) => Err(format!(
            "broker: {}",
            err.get("message")
                .and_then(Value::as_str)
                .unwrap_or("error")
        )),
    }
}

/// A new session id: 24 lowercase hex digits from the kernel's random source.
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 12];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `id` is a session id the broker accepts: 8 to 64 lowercase hex digits (it
/// names a file, so nothing else may get through).
pub fn valid_session_id(id: &str) -> bool {
    (8..=64).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_redacted_and_capped() {
        let mut r = Record::default();
        r.set(
            "reason",
            json!("STS said <SessionToken>FQoGZXIvYXdz</SessionToken>"),
        );
        r.set("command", json!("ls ".repeat(5_000)));
        assert!(!r.get_str("reason").unwrap().contains("FQoG"));
        let c = r.get_str("command").unwrap();
        assert!(c.len() <= MAX_VALUE && c.ends_with('…'));
    }

    #[test]
    fn journald_and_json_shapes() {
        let mut r = Record::default();
        r.set("event", json!("token"));
        r.set("user", json!("alice"));
        r.set("uid", json!(1001));
        let j = r.journald_fields();
        assert!(j.contains(&("ROLESH_EVENT".into(), "token".into())));
        assert!(j.contains(&("ROLESH_UID".into(), "1001".into())));
        assert!(j.contains(&("SYSLOG_IDENTIFIER".into(), IDENTIFIER.into())));
        let line: Value = serde_json::from_str(&r.json_line(SystemTime::UNIX_EPOCH, "h")).unwrap();
        assert_eq!(line["ts"], "1970-01-01T00:00:00.000Z");
        assert_eq!(line["uid"], 1001);
        assert_eq!(line["event"], "token");
    }

    #[test]
    fn session_ids() {
        assert!(valid_session_id(&new_session_id()));
        for bad in ["", "../../etc", "ABCDEF0123", "0123456", &"a".repeat(65)] {
            assert!(!valid_session_id(bad), "{bad}");
        }
    }
}
