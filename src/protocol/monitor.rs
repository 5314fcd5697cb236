//! The login shell ↔ session monitor protocol (`/run/rolesh/monitor.sock`): the `rolesh`
//! process sshd starts as the user hands its terminal or pipes over (SCM_RIGHTS) with one
//! [`Open`] line, then only waits. The monitor (root) answers [`MonitorAnswer`] lines:
//! `started`, and at the end `ended` with the exit code, or `refused` instead of both.
//! While waiting, the login shell may send `window_changed` when its terminal is resized.
//!
//! Who asks is the kernel's to say (SO_PEERCRED): the request has no field for it, and
//! unknown fields are refused.

use serde::{Deserialize, Serialize};

use super::{VERSION, WireError};
use crate::session_id::SessionId;

/// The longest line either side sends.
pub const MAX_MONITOR_LINE: usize = 16 * 1024;

/// What the login shell asks for. Its stdin, stdout and stderr travel with it (SCM_RIGHTS,
/// in that order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum MonitorRequest {
    /// Start the session: `command` is what `-c` was given (none: the user's mode).
    Open(Open),
    /// The login shell's terminal changed size (SIGWINCH): the monitor reads the new size
    /// from the terminal itself.
    WindowChanged {},
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Open {
    #[serde(default)]
    pub command: Option<String>,
    /// The variables sshd set that a session keeps (`TERM`, `LANG`, `LC_*`, `TZ`) or
    /// audits (`SSH_CLIENT`); the monitor drops any other.
    #[serde(default)]
    pub env: Vec<(String, String)>,
}

impl MonitorRequest {
    /// The request as one line (no newline), `"v"` first.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::Map::new();
        line.insert("v".into(), VERSION.into());
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(self) {
            line.extend(fields);
        }
        serde_json::Value::Object(line).to_string()
    }

    /// Reads one request line, refusing anything that is not exactly a request.
    pub fn parse(line: &[u8]) -> Result<MonitorRequest, String> {
        if line.len() > MAX_MONITOR_LINE {
            return Err(format!("a request longer than {MAX_MONITOR_LINE} bytes"));
        }
        let mut fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(line).map_err(|e| format!("not a JSON request: {e}"))?;
        match fields.shift_remove("v") {
            Some(v) if v == VERSION => {}
            _ => return Err(format!("a request needs \"v\": {VERSION}")),
        }
        serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| e.to_string())
    }
}

/// What the monitor answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum MonitorAnswer {
    /// The session runs; the login shell lets go of its terminal.
    Started { session_id: SessionId },
    /// The session ended; the login shell exits with `exit_code`.
    Ended { exit_code: u8, reason: String },
    /// No session: the login shell prints `rolesh: MESSAGE` and exits with `exit_code`.
    Refused { exit_code: u8, message: String },
}

impl MonitorAnswer {
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A refusal that carries a broker error's exit code and message.
    pub fn refused(exit_code: u8, message: impl Into<String>) -> MonitorAnswer {
        MonitorAnswer::Refused {
            exit_code,
            message: crate::redact::redact(&message.into()).into_owned(),
        }
    }
}

impl From<&WireError> for MonitorAnswer {
    fn from(e: &WireError) -> MonitorAnswer {
        use super::ErrorCode::*;
        let exit_code = match e.code {
            Unmapped | Denied => 77,
            Config | BadRequest => 2,
            Sts | Unavailable => 1,
        };
        MonitorAnswer::refused(exit_code, e.message.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_round_trips_and_nothing_else_is_accepted() {
        let open = MonitorRequest::Open(Open {
            command: Some("kubectl get pods".into()),
            env: vec![("TERM".into(), "xterm".into())],
        });
        assert_eq!(MonitorRequest::parse(open.to_line().as_bytes()), Ok(open));
        for bad in [
            r#"{"v":1,"op":"open","uid":0}"#,
            r#"{"op":"open"}"#,
            r#"{"v":1,"op":"open","command":7}"#,
            r#"{"v":1,"op":"sudo"}"#,
            r#"{"v":1,"op":"window_changed","cols":1}"#,
        ] {
            assert!(MonitorRequest::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_round_trip() {
        for answer in [
            MonitorAnswer::Ended {
                exit_code: 7,
                reason: "exited".into(),
            },
            MonitorAnswer::refused(77, "user x is in [mapping] deny_users"),
        ] {
            let back: MonitorAnswer = serde_json::from_str(&answer.to_line()).unwrap();
            assert_eq!(back, answer);
        }
    }
}
