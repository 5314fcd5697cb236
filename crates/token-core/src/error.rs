//! Exit codes (SPEC §4) and the one-line failures rolesh prints as `rolesh: …`.

use std::fmt;

pub const EXIT_OK: u8 = 0;
/// STS, network, broker: something at run time failed.
pub const EXIT_RUNTIME: u8 = 1;
/// Bad command line or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Unmapped user, role not permitted.
pub const EXIT_DENIED: u8 = 77;
pub const EXIT_NOT_ALLOWED: u8 = 126;
pub const EXIT_NOT_FOUND: u8 = 127;

/// A failure to report: its message (without the `rolesh: ` prefix) and exit code.
/// Messages say what failed and what to do, and never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn runtime(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_RUNTIME,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    pub fn denied(message: impl Into<String>) -> Self {
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
