//! What the token path reads and writes of the broker protocol (SPEC §2): the `token`
//! request line, the answer (a [`Token`] or an error), and the ExecCredential kubectl
//! reads. The rest of the protocol is `rolesh`'s (`src/protocol`), which re-exports these.
//!
//! A client fails closed: an answer that is neither the expected answer nor a well-formed
//! error is an error, never a default.

use std::fmt;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

/// The protocol version every request carries as `"v"`.
pub const VERSION: u64 = 1;

/// The error codes of SPEC §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Unmapped,
    Denied,
    Sts,
    Config,
    BadRequest,
    Unavailable,
}

impl ErrorCode {
    /// The exit code a client exits with for this error (SPEC §4).
    pub fn exit_code(self) -> u8 {
        use crate::error::{EXIT_DENIED, EXIT_RUNTIME, EXIT_USAGE};
        match self {
            ErrorCode::Unmapped | ErrorCode::Denied => EXIT_DENIED,
            ErrorCode::Config | ErrorCode::BadRequest => EXIT_USAGE,
            ErrorCode::Sts | ErrorCode::Unavailable => EXIT_RUNTIME,
        }
    }
}

/// An error answer's body as a client reads it. (The broker's own type, which redacts
/// what it sends, is `rolesh`'s `protocol::WireError`.)
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorAnswer {
    error: ErrorBody,
}

/// Only whether an answer line has an `error` key.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    error: Option<IgnoredAny>,
}

/// An answer line read by a client: the broker's error, or the answer `T`. `Err` when the
/// line is neither (the broker is not one this client understands: fail closed).
pub fn parse_answer<T: DeserializeOwned>(line: &str) -> Result<Result<T, ErrorBody>, String> {
    let probe: Probe = serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    if probe.error.is_some() {
        let answer: ErrorAnswer = serde_json::from_str(line)
            .map_err(|e| format!("a malformed error: {}", without_position(&e)))?;
        return Ok(Err(answer.error));
    }
    serde_json::from_str(line)
        .map(Ok)
        .map_err(|e| without_position(&e))
}

/// serde_json's message without " at line 1 column N": an answer is one line, and the
/// column of a byte in it tells the user nothing.
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    message
        .strip_suffix(&position)
        .map_or(message.clone(), str::to_string)
}

/// The `token` request for `cluster`, as one line without the newline:
/// `{"v":1,"op":"token","cluster":"…"}` (what `rolesh`'s `Request::Token` writes).
pub fn token_request_line(cluster: &str) -> String {
    #[derive(Serialize)]
    struct TokenRequest<'a> {
        v: u64,
        op: &'static str,
        cluster: &'a str,
    }
    serde_json::to_string(&TokenRequest {
        v: VERSION,
        op: "token",
        cluster,
    })
    .unwrap_or_default()
}

/// `token`: an EKS bearer token and when kubectl should consider it expired.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    #[serde(rename = "expirationTimestamp")]
    pub expiration_timestamp: String,
    pub token: String,
}

/// What stands for a secret in debug output and messages.
pub const REDACTED: &str = "<redacted>";

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A bearer token is a secret: never printed, not even in debug output.
        f.debug_struct("Token")
            .field("token", &REDACTED)
            .field("expiration_timestamp", &self.expiration_timestamp)
            .finish()
    }
}

/// What an exec plugin prints for kubectl (client.authentication.k8s.io), in awscli's
/// key order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecCredential<'a> {
    pub kind: &'static str,
    pub api_version: &'a str,
    pub spec: Empty,
    pub status: &'a Token,
}

/// `{}`.
#[derive(Serialize)]
pub struct Empty {}

impl<'a> ExecCredential<'a> {
    pub fn new(token: &'a Token, api_version: &'a str) -> Self {
        ExecCredential {
            kind: "ExecCredential",
            api_version,
            spec: Empty {},
            status: token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_request_is_one_line_with_the_version_first() {
        assert_eq!(
            token_request_line("prod"),
            r#"{"v":1,"op":"token","cluster":"prod"}"#
        );
        assert_eq!(
            token_request_line("a\"b"),
            r#"{"v":1,"op":"token","cluster":"a\"b"}"#
        );
    }

    #[test]
    fn a_malformed_answer_names_the_field_not_a_column() {
        let Err(why) = parse_answer::<Token>(r#"{"token":"k8s-aws-v1.x"}"#) else {
            panic!("a missing field is an error");
        };
        assert_eq!(why, "missing field `expirationTimestamp`");
    }

    #[test]
    fn answers_errors_and_anything_else() {
        let ok = r#"{"expirationTimestamp":"2024-01-01T00:14:00Z","token":"k8s-aws-v1.x"}"#;
        let token: Token = parse_answer(ok).unwrap().unwrap();
        assert_eq!(token.expiration_timestamp, "2024-01-01T00:14:00Z");
        let err = parse_answer::<Token>(r#"{"error":{"code":"denied","message":"no"}}"#)
            .unwrap()
            .unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (ErrorCode::Denied, "no"));
        for malformed in [
            "",
            "[]",
            r#"{"error":{"code":"nope","message":"x"}}"#,
            r#"{"error":{"code":"sts","message":"x","extra":1}}"#,
            r#"{"token":"k8s-aws-v1.x"}"#,
        ] {
            assert!(parse_answer::<Token>(malformed).is_err(), "{malformed}");
        }
    }

    #[test]
    fn error_codes_map_to_exit_codes_and_their_words() {
        assert_eq!(ErrorCode::Unmapped.exit_code(), 77);
        assert_eq!(ErrorCode::Denied.exit_code(), 77);
        assert_eq!(ErrorCode::BadRequest.exit_code(), 2);
        assert_eq!(ErrorCode::Config.exit_code(), 2);
        assert_eq!(ErrorCode::Sts.exit_code(), 1);
        assert_eq!(ErrorCode::Unavailable.exit_code(), 1);
        assert_eq!(
            serde_json::to_string(&ErrorCode::BadRequest).unwrap(),
            r#""bad_request""#
        );
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let t = Token {
            expiration_timestamp: "x".into(),
            token: "k8s-aws-v1.secret".into(),
        };
        assert!(!format!("{t:?}").contains("secret"));
    }
}
