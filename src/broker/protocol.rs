//! The broker protocol (SPEC §2): newline-delimited JSON over the Unix socket, several
//! requests per connection, each at most 64 KiB.
//!
//! A request carries `"v": 1` and an `"op"`; anything else in it that names a user, uid or
//! role is ignored: who asks is what SO_PEERCRED says.

use serde::Deserialize;
use serde_json::{Value, json};

/// The longest request line accepted, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
struct Raw {
    v: Option<u64>,
    op: Option<String>,
    cluster: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Whoami,
    Token { cluster: String },
    Credentials,
    Cluster { cluster: String },
    Record,
}

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
        json!({"error": {"code": self.code.as_str(), "message": self.message}})
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
        }),
        Some("credentials") => Ok(Request::Credentials),
        Some("cluster") => Ok(Request::Cluster {
            cluster: cluster()?,
        }),
        Some("record") => Ok(Request::Record),
        Some(op) => Err(bad(format!("unknown op {op:?}"))),
        None => Err(bad("missing \"op\"".into())),
    }
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
                cluster: "prod".into()
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
}
