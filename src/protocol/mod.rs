//! The broker protocol (SPEC §2) as types, shared by the broker and every client: one
//! request per line, `{"v":1,"op":…}`, at most [`MAX_LINE`] bytes, several per
//! connection; one answer line each, a typed answer or `{"error":{"code","message"}}`.
//!
//! Both directions fail closed. The broker refuses unknown ops, unknown or missing fields
//! and wrong types (the peer is the user, who may send anything); a client refuses an
//! answer that lacks a field it needs, instead of filling in a default. Who asks is never
//! in a request: the broker takes it from the kernel (SO_PEERCRED).

mod answer;
mod event;
pub mod monitor;

use rolesh_token_core::wire::ErrorBody;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use answer::{
    Ack, ClusterEndpoint, ClusterView, DiscoverySeen, EksCluster, ExecCredential, Grant,
    ProcessCredentials, Recorded, Token, Whoami,
};
pub use event::{RESERVED, SessionEvent, SessionEventKind};

use crate::session_id::SessionId;

/// What the token path reads and writes (shared with `rolesh-token`): one definition.
pub use rolesh_token_core::wire::{ErrorCode, VERSION};

/// The longest request line accepted, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;

/// A request (`op` names the variant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The user's mapping: role, session settings, clusters. Answer: [`Whoami`]. (A
    /// variant with no fields, not a unit one: serde checks a unit variant's extra fields
    /// in no way at all.)
    Whoami {},
    /// An EKS token for `cluster`, signed with the user's own role. Answer: [`Token`].
    /// The token event names the session the asking process is in by its cgroup (the
    /// kernel's word), never one the client names.
    Token { cluster: String },
    /// `credential_process` JSON for the user's own role. Answer: [`ProcessCredentials`].
    Credentials {},
    /// Endpoint and CA of `cluster`. Answer: [`ClusterEndpoint`].
    Cluster { cluster: String },
    /// Opens a recording; the connection then carries its asciicast events and a
    /// [`RecordEnd`]. Answer: [`Recorded`] (to both).
    Record(RecordStart),
    /// A session's audit event. Answer: [`Ack`]. `uid`: whose session it is, said only
    /// by the session monitor (root); from anyone else it is refused.
    Event {
        fields: Box<SessionEvent>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
    },
    /// The session monitor (root only) starts a session for `uid`. Answer: [`Whoami`],
    /// the user's mapping, which the session runs under.
    SessionStart(SessionStart),
    /// The session monitor (root only) ends a session: its tokens are dropped at once.
    /// Answer: [`Ack`].
    SessionEnd {
        session_id: SessionId,
        reason: String,
    },
    /// What `[[discovery]]` last saw in each region (root only: `rolesh explain`).
    /// Answer: [`DiscoverySeen`].
    Discovered {},
}

/// `session_start`: which user's session, and where it lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionStart {
    pub uid: u32,
    /// The user's own `rolesh` process (sshd's child), for the audit trail.
    pub login_pid: u32,
    pub session_id: SessionId,
}

impl Request {
    /// Whether the answer names the user's clusters (and so waits for the first discovery).
    pub fn names_clusters(&self) -> bool {
        matches!(
            self,
            Request::Whoami {}
                | Request::Token { .. }
                | Request::Cluster { .. }
                | Request::SessionStart(_)
        )
    }

    /// The op's name, as the line spells it.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Whoami {} => "whoami",
            Request::Token { .. } => "token",
            Request::Credentials {} => "credentials",
            Request::Cluster { .. } => "cluster",
            Request::Record(_) => "record",
            Request::Event { .. } => "event",
            Request::SessionStart(_) => "session_start",
            Request::SessionEnd { .. } => "session_end",
            Request::Discovered {} => "discovered",
        }
    }

    /// The request as one line (no newline), `"v"` first.
    pub fn to_line(&self) -> String {
        let mut line = Map::new();
        line.insert("v".into(), VERSION.into());
        if let Ok(Value::Object(fields)) = serde_json::to_value(self) {
            line.extend(fields);
        }
        Value::Object(line).to_string()
    }

    /// Reads one request line, refusing anything that is not exactly a request.
    pub fn parse(line: &[u8]) -> Result<Request, WireError> {
        let bad = |m: String| WireError::new(ErrorCode::BadRequest, m);
        let mut fields: Map<String, Value> =
            serde_json::from_slice(line).map_err(|e| bad(format!("not a JSON request: {e}")))?;
        match fields.shift_remove("v") {
            Some(v) if v == VERSION => {}
            Some(v) => {
                return Err(bad(format!(
                    "unsupported protocol version {v} (this broker speaks {VERSION})"
                )));
            }
            None => return Err(bad(format!("missing \"v\": {VERSION}"))),
        }
        if !fields.contains_key("op") {
            return Err(bad("missing \"op\"".into()));
        }
        serde_json::from_value(Value::Object(fields)).map_err(|e| bad(e.to_string()))
    }
}

/// `record`: what a recording is of (SPEC §6; see `broker::recording`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordStart {
    pub session_id: SessionId,
    #[serde(deserialize_with = "terminal_size")]
    pub cols: u16,
    #[serde(deserialize_with = "terminal_size")]
    pub rows: u16,
    /// The `-c` command or `rolesh exec` target; absent for an interactive shell.
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub term: Option<String>,
    /// Whether keystrokes are recorded too (the broker also checks the configuration).
    #[serde(default)]
    pub record_input: bool,
    /// Whose session it is, said only by the session monitor (root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
}

/// The last line of a recording stream: the session ended with `exit_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordEnd {
    pub end: bool,
    pub exit_code: i64,
}

fn terminal_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let n = u16::deserialize(d)?;
    if (1..=1000).contains(&n) {
        Ok(n)
    } else {
        Err(serde::de::Error::custom(
            "`cols` and `rows` must be 1 to 1000",
        ))
    }
}

/// An error answer's body as the broker sends it. Messages never contain a secret: the
/// broker redacts them ([`WireError::to_line`]). Clients read it as the token path's
/// `ErrorBody`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
        }
    }

    /// The error line (no newline). Errors can carry text from STS or EKS: scrubbed like
    /// every audit value.
    pub fn to_line(&self) -> String {
        let error = WireError::new(self.code, crate::redact::redact(&self.message));
        serde_json::to_string(&ErrorAnswer { error }).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct ErrorAnswer {
    error: WireError,
}

impl From<ErrorBody> for WireError {
    fn from(body: ErrorBody) -> WireError {
        WireError::new(body.code, body.message)
    }
}

/// An answer line read by a client: the broker's error, or the answer `T`. `Err` when the
/// line is neither (the broker is not one this client understands: fail closed). The
/// token path's reader, which every client uses.
pub fn parse_answer<T: serde::de::DeserializeOwned>(
    line: &str,
) -> Result<Result<T, WireError>, String> {
    rolesh_token_core::wire::parse_answer(line).map(|answer| answer.map_err(WireError::from))
}

#[cfg(test)]
mod tests;
