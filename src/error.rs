//! Exit codes (SPEC §4) and the one-line failures rolesh prints as `rolesh: …`.

use std::fmt;

pub(crate) const EXIT_OK: u8 = 0;
/// STS, network, broker: something at run time failed.
pub(crate) const EXIT_RUNTIME: u8 = 1;
/// Bad command line or configuration.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Unmapped user, role not permitted.
pub(crate) const EXIT_DENIED: u8 = 77;
pub(crate) const EXIT_NOT_ALLOWED: u8 = 126;
pub(crate) const EXIT_NOT_FOUND: u8 = 127;

/// A failure to report: its message (without the `rolesh: ` prefix) and exit code.
/// Messages say what failed and what to do, and never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub(crate) fn runtime(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_RUNTIME,
            message: message.into(),
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    pub(crate) fn denied(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_DENIED,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rolesh: {}", self.message)
    }
}

impl std::error::Error for Failure {}

/// An error and its sources, "outer: inner: innermost", each message once, on one line.
/// (The SDK's own context printer appends a Debug dump, too much for a one-line message.)
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string().replace('\n', " ");
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}
