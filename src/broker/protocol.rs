//! The broker protocol (SPEC §2): newline-delimited JSON over the Unix socket, several
//! requests per connection, each at most 64 KiB.
//!
//! A request carries `"v": 1` and an `"op"`; anything else in it that names a user, uid or
//! role is ignored: who asks is what SO_PEERCRED says.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::audit;

/// The longest request line accepted, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
struct Raw {
    v: Option<u64>,
    op: Option<String>,
    cluster: Option<String>,
    /// `event`: the session event's fields.
    fields: Option<Map<String, Value>>,
    /// `record`: what the recording is of.
    session_id: Option<String>,
    cols: Option<u16>,
    rows: Option<u16>,
    command: Option<String>,
    term: Option<String>,
    record_input: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Whoami,
    /// `session_id`: the client's `ROLESH_SESSION_ID`, if valid, to link the token event to
    /// a session. A claim, not an identity: who asks is still SO_PEERCRED's.
    Token {
        cluster: String,
        session_id: Option<String>,
    },
    Credentials,
    Cluster {
        cluster: String,
    },
    Record(RecordStart),
    Event(Box<SessionEvent>),
}

/// `record`: opens a recording stream (SPEC §6; see `broker::recording`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordStart {
    pub session_id: String,
    pub cols: u16,
    pub rows: u16,
    pub command: Option<String>,
    pub term: Option<String>,
    pub record_input: bool,
}

/// `event` (an extension of SPEC §2): a session reports one of its audit events. The
/// broker adds who (SO_PEERCRED) and the role; what the session says about those is
/// dropped. Fields outside this schema travel as one JSON object in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionEvent {
    pub event: String,
    pub session_id: Option<String>,
    pub ssh_client: Option<String>,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub command: Option<String>,
    pub reason: Option<String>,
    pub mode: Option<String>,
    pub record: Option<String>,
    pub exit_code: Option<i64>,
    pub duration_ms: Option<u64>,
    pub private_tmp: Option<bool>,
    pub extra: Option<String>,
}

/// What the broker sets itself on a reported event; a session's values are ignored.
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

/// The error codes of SPEC §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unmapped,
    Denied,
    Sts,
    Config,
    BadRequest,
    Unavailable,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unmapped => "unmapped",
            Code::Denied => "denied",
            Code::Sts => "sts",
            Code::Config => "config",
            Code::BadRequest => "bad_request",
            Code::Unavailable => "unavailable",
        }
    }

    pub fn parse(s: &str) -> Option<Code> {
        [
            Code::Unmapped,
            Code::Denied,
            Code::Sts,
            Code::Config,
            Code::BadRequest,
            Code::Unavailable,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// An error answer. Messages never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub message: String,
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        // Errors can carry text from STS or EKS: scrubbed like every audit value.
        let message = audit::redact::redact(&self.message);
        json!({"error": {"code": self.code.as_str(), "message": message}})
    }
}

pub fn parse(line: &[u8]) -> Result<Request, Error> {
    let bad = |m: String| Error::new(Code::BadRequest, m);
    let raw: Raw =
        serde_json::from_slice(line).map_err(|e| bad(format!("not a JSON request: {e}")))?;
    match raw.v {
        Some(1) => {}
        Some(v) => {
            return Err(bad(format!(
                "unsupported protocol version {v} (this broker speaks 1)"
            )));
        }
        None => return Err(bad("missing \"v\": 1".into())),
    }
    let cluster = || {
        raw.cluster
            .clone()
            .ok_or_else(|| bad("missing \"cluster\"".into()))
    };
    match raw.op.as_deref() {
        Some("whoami") => Ok(Request::Whoami),
        Some("token") => Ok(Request::Token {
            cluster: cluster()?,
            session_id: raw
                .session_id
                .clone()
                .filter(|id| audit::valid_session_id(id)),
        }),
        Some("credentials") => Ok(Request::Credentials),
        Some("cluster") => Ok(Request::Cluster {
            cluster: cluster()?,
        }),
        Some("record") => record_start(&raw).map(Request::Record),
        Some("event") => session_event(raw.fields.unwrap_or_default())
            .map(|e| Request::Event(Box::new(e)))
            .map_err(bad),
        Some(op) => Err(bad(format!("unknown op {op:?}"))),
        None => Err(bad("missing \"op\"".into())),
    }
}

fn record_start(raw: &Raw) -> Result<RecordStart, Error> {
    let bad = |m: &str| Error::new(Code::BadRequest, m);
    let session_id = raw
        .session_id
        .clone()
        .filter(|id| audit::valid_session_id(id))
        .ok_or_else(|| bad("`session_id` must be 8 to 64 lowercase hex digits"))?;
    let size = |v: Option<u16>| v.filter(|n| (1..=1000).contains(n));
    let (Some(cols), Some(rows)) = (size(raw.cols), size(raw.rows)) else {
        return Err(bad("`cols` and `rows` must be 1 to 1000"));
    };
    Ok(RecordStart {
        session_id,
        cols,
        rows,
        command: raw.command.as_deref().map(audit::clean),
        term: raw.term.as_deref().map(audit::clean),
        record_input: raw.record_input.unwrap_or(false),
    })
}

fn session_event(fields: Map<String, Value>) -> Result<SessionEvent, String> {
    let mut e = SessionEvent::default();
    let mut extra = Map::new();
    for (name, value) in fields {
        if RESERVED.contains(&name.as_str()) {
            continue;
        }
        let text = || match &value {
            Value::String(s) => Ok(Some(audit::clean(s))),
            _ => Err(format!("`{name}` must be a string")),
        };
        match name.as_str() {
            "event" => e.event = text()?.unwrap_or_default(),
            "session_id" => e.session_id = text()?,
            "ssh_client" => e.ssh_client = text()?,
            "cluster" => e.cluster = text()?,
            "namespace" => e.namespace = text()?,
            "pod" => e.pod = text()?,
            "container" => e.container = text()?,
            "command" => e.command = text()?,
            "reason" => e.reason = text()?,
            "mode" => e.mode = text()?,
            "record" => e.record = text()?,
            "exit_code" => {
                e.exit_code = Some(value.as_i64().ok_or("`exit_code` must be an integer")?)
            }
            "duration_ms" => {
                e.duration_ms = Some(
                    value
                        .as_u64()
                        .ok_or("`duration_ms` must be a non-negative integer")?,
                )
            }
            "private_tmp" => {
                e.private_tmp = Some(value.as_bool().ok_or("`private_tmp` must be a boolean")?)
            }
            _ => {
                if !valid_field_name(&name) {
                    return Err(format!("{name:?} is not a field name (a-z, 0-9, _)"));
                }
                extra.insert(name, value);
            }
        }
    }
    if !audit::SESSION_EVENTS.contains(&e.event.as_str()) {
        return Err(format!(
            "a session reports only {} events, not {:?}",
            audit::SESSION_EVENTS.join(", "),
            e.event
        ));
    }
    if e.session_id
        .as_deref()
        .is_some_and(|id| !audit::valid_session_id(id))
    {
        return Err("`session_id` must be 8 to 64 lowercase hex digits".into());
    }
    if extra.len() > MAX_EXTRA {
        return Err(format!("at most {MAX_EXTRA} extra fields"));
    }
    if !extra.is_empty() {
        e.extra = Some(audit::clean(&Value::Object(extra).to_string()));
    }
    Ok(e)
}

fn valid_field_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_about_identity_are_ignored_not_trusted() {
        let r = parse(br#"{"v":1,"op":"token","cluster":"prod","uid":0,"user":"root","role_arn":"arn:aws:iam::1:role/x"}"#);
        assert_eq!(
            r.unwrap(),
            Request::Token {
                cluster: "prod".into(),
                session_id: None,
            }
        );
    }

    #[test]
    fn bad_requests_say_why() {
        assert_eq!(parse(b"{").unwrap_err().code, Code::BadRequest);
        assert!(
            parse(br#"{"op":"whoami"}"#)
                .unwrap_err()
                .message
                .contains("missing \"v\"")
        );
        assert!(
            parse(br#"{"v":2,"op":"whoami"}"#)
                .unwrap_err()
                .message
                .contains("version 2")
        );
        assert!(
            parse(br#"{"v":1,"op":"token"}"#)
                .unwrap_err()
                .message
                .contains("cluster")
        );
        assert!(
            parse(br#"{"v":1,"op":"sudo"}"#)
                .unwrap_err()
                .message
                .contains("unknown op")
        );
        assert_eq!(Code::parse("sts"), Some(Code::Sts));
    }

    #[test]
    fn session_events_cannot_claim_identity_or_grant_access() {
        let r = parse(br#"{"v":1,"op":"event","fields":{"event":"exec","user":"root","uid":0,"role_arn":"x","pod":"web-1","exit_code":3,"shell":"/bin/bash"}}"#).unwrap();
        let Request::Event(e) = r else { panic!() };
        assert_eq!(e.pod.as_deref(), Some("web-1"));
        assert_eq!(e.exit_code, Some(3));
        assert_eq!(e.extra.as_deref(), Some(r#"{"shell":"/bin/bash"}"#));
        for forged in ["token", "assume_role", "denied", ""] {
            let line = format!(r#"{{"v":1,"op":"event","fields":{{"event":"{forged}"}}}}"#);
            assert!(parse(line.as_bytes()).is_err(), "{forged}");
        }
        assert!(
            parse(br#"{"v":1,"op":"event","fields":{"event":"login","session_id":"../x"}}"#)
                .is_err()
        );
        assert!(parse(br#"{"v":1,"op":"event","fields":{"event":"login","Bad-Name":1}}"#).is_err());
    }

    #[test]
    fn record_requests_are_checked() {
        let ok =
            parse(br#"{"v":1,"op":"record","session_id":"0123abcd0123abcd","cols":80,"rows":24}"#);
        assert!(matches!(
            ok,
            Ok(Request::Record(RecordStart { cols: 80, .. }))
        ));
        for bad in [
            r#"{"v":1,"op":"record","session_id":"../../etc/passwd","cols":80,"rows":24}"#,
            r#"{"v":1,"op":"record","session_id":"0123abcd0123abcd","cols":0,"rows":24}"#,
            r#"{"v":1,"op":"record","cols":80,"rows":24}"#,
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
