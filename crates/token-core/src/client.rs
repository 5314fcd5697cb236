//! The client side of the broker protocol: a connection, one request line, one answer
//! line. Synchronous and small: kubectl runs it on every API call. `rolesh`'s own client
//! (every request type) is a thin layer over this one.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::Failure;
use crate::paths;
use crate::wire::{ErrorBody, parse_answer};

/// How long to wait for an answer: the broker may be retrying a throttled STS.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// The broker socket: the compiled-in path, or `ROLESH_BROKER_SOCKET` outside login mode
/// (tests, development). The client holds no secret, so pointing it elsewhere can only
/// mislead the user who does it.
pub fn socket_path(login: bool) -> PathBuf {
    match std::env::var_os("ROLESH_BROKER_SOCKET") {
        Some(p) if !login && !p.is_empty() => PathBuf::from(p),
        _ => paths::broker_socket(),
    }
}

/// A connection to the broker.
pub struct Connection {
    stream: UnixStream,
}

impl Connection {
    /// Connects; reads and writes give up after `timeout`.
    pub fn open(socket: &Path, timeout: Duration) -> Result<Connection, Failure> {
        let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                Failure::runtime(
                    "the credential broker is not running (systemctl status rolesh-broker)",
                )
            }
            _ => Failure::runtime(format!(
                "cannot reach the credential broker at {}: {e}",
                socket.display()
            )),
        })?;
        stream.set_read_timeout(Some(timeout)).ok();
        stream.set_write_timeout(Some(timeout)).ok();
        Ok(Connection { stream })
    }

    /// Sends one request `line` (without its newline) for `op` and reads its answer.
    pub fn ask_line<T: DeserializeOwned>(&mut self, line: &str, op: &str) -> Result<T, Failure> {
        let mut line = line.to_string();
        line.push('\n');
        self.stream
            .write_all(line.as_bytes())
            .map_err(|e| Failure::runtime(format!("lost the credential broker: {e}")))?;
        self.answer(op)
    }

    /// Reads one answer line (the broker sends nothing unasked, so nothing past it is
    /// buffered and lost).
    pub fn answer<T: DeserializeOwned>(&mut self, op: &str) -> Result<T, Failure> {
        let mut answer = String::new();
        BufReader::new(&self.stream)
            .read_line(&mut answer)
            .map_err(|e| Failure::runtime(format!("no answer from the credential broker: {e}")))?;
        if answer.is_empty() {
            return Err(Failure::runtime(
                "the credential broker closed the connection without answering",
            ));
        }
        match parse_answer::<T>(&answer) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(failure_from(error)),
            Err(why) => Err(Failure::runtime(format!(
                "the credential broker sent a malformed answer to `{op}` ({why}); is it the same version as this rolesh?"
            ))),
        }
    }

    /// The stream, for a request whose connection carries more than answers (`record`).
    pub fn into_stream(self) -> UnixStream {
        self.stream
    }
}

/// The broker's error as the failure a client exits with (SPEC §4's exit codes).
pub fn failure_from(error: ErrorBody) -> Failure {
    Failure {
        code: error.code.exit_code(),
        message: error.message,
    }
}
