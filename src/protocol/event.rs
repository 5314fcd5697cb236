//! `event` (an extension of SPEC §2): a session reports one of its audit events. The
//! broker adds who (SO_PEERCRED) and the role; what the session says about those is
//! dropped. Fields outside the schema travel on as one JSON object, `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::word_enum;
use crate::redact::clean;
use crate::session_id::SessionId;

word_enum! {
    /// What a session may report; the broker writes every other event itself.
    pub enum SessionEventKind {
        Login = "login",
        Command = "command",
        Exec = "exec",
        Logout = "logout",
        Error = "error",
        /// A session refused before it started (the monitor's alone: see the broker).
        Denied = "denied",
    }
}

/// One reported event. Every field but `event` is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    pub event: SessionEventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_tmp: Option<bool>,
    /// The session's cgroup (`login`, from the monitor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Every other field the session sent.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// What the broker sets itself on a reported event; a session's values are dropped.
pub const RESERVED: [&str; 7] = [
    "user",
    "uid",
    "pid",
    "role_arn",
    "session_name",
    "reported_by",
    "report_error",
];

/// Extra fields a reported event may carry.
const MAX_EXTRA: usize = 16;

impl SessionEvent {
    /// An event of `kind` with no other field.
    pub fn new(kind: SessionEventKind) -> SessionEvent {
        SessionEvent {
            event: kind,
            session_id: None,
            ssh_client: None,
            cluster: None,
            namespace: None,
            pod: None,
            container: None,
            command: None,
            reason: None,
            mode: None,
            record: None,
            exit_code: None,
            duration_ms: None,
            private_tmp: None,
            cgroup: None,
            other: Map::new(),
        }
    }

    /// What the broker keeps of a reported event: every string redacted and capped,
    /// reserved names dropped, and the other fields (checked names, at most
    /// [`MAX_EXTRA`]) as one JSON text for `extra`.
    pub fn accepted(mut self) -> Result<(SessionEvent, Option<String>), String> {
        for text in [
            &mut self.ssh_client,
            &mut self.cluster,
            &mut self.namespace,
            &mut self.pod,
            &mut self.container,
            &mut self.command,
            &mut self.reason,
            &mut self.mode,
            &mut self.record,
            &mut self.cgroup,
        ]
        .into_iter()
        .flatten()
        {
            *text = clean(text);
        }
        let mut other = std::mem::take(&mut self.other);
        other.retain(|name, _| !RESERVED.contains(&name.as_str()));
        if let Some(name) = other.keys().find(|n| !valid_field_name(n)) {
            return Err(format!("{name:?} is not a field name (a-z, 0-9, _)"));
        }
        if other.len() > MAX_EXTRA {
            return Err(format!("at most {MAX_EXTRA} extra fields"));
        }
        let extra = (!other.is_empty()).then(|| clean(&Value::Object(other).to_string()));
        Ok((self, extra))
    }
}

fn valid_field_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
