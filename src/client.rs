//! The client side of the broker protocol, for `rolesh token --cluster`, `credentials`
//! and the login session. Synchronous and small: kubectl runs it on every API call.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::broker::protocol::Code;
use crate::error::{EXIT_DENIED, EXIT_RUNTIME, EXIT_USAGE, Failure};
use crate::paths;

/// How long to wait for an answer: the broker may be retrying a throttled STS.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// The broker socket: the compiled-in path, or `ROLESH_BROKER_SOCKET` outside login mode
/// (tests, development). The client holds no secret, so pointing it elsewhere can only
/// mislead the user who does it.
pub fn socket_path(login: bool) -> PathBuf {
    match std::env::var_os("ROLESH_BROKER_SOCKET") {
        Some(p) if !login && !p.is_empty() => PathBuf::from(p),
        _ => paths::broker_socket(),
    }
}

/// Sends one request and returns the answer, or the broker's error as a failure with the
/// exit code it maps to.
pub fn request(
    socket: &std::path::Path,
    op: &str,
    fields: &[(&str, &str)],
) -> Result<Value, Failure> {
    let mut stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => Failure::runtime(
            "the credential broker is not running (systemctl status rolesh-broker)",
        ),
        _ => Failure::runtime(format!(
            "cannot reach the credential broker at {}: {e}",
            socket.display()
        )),
    })?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).ok();
    let mut req = json!({"v": 1, "op": op});
    for (k, v) in fields {
        req[*k] = json!(v);
    }
    let mut line = req.to_string();
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| Failure::runtime(format!("lost the credential broker: {e}")))?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| Failure::runtime(format!("no answer from the credential broker: {e}")))?;
    if answer.is_empty() {
        return Err(Failure::runtime(
            "the credential broker closed the connection without answering",
        ));
    }
    let value: Value = serde_json::from_str(&answer)
        .map_err(|_| Failure::runtime("the credential broker sent an unreadable answer"))?;
    match value.get("error") {
        Some(err) => Err(failure_from(err)),
        None => Ok(value),
    }
}

fn failure_from(err: &Value) -> Failure {
    let code = err
        .get("code")
        .and_then(Value::as_str)
        .and_then(Code::parse);
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("unknown error")
        .to_string();
    let exit = match code {
        Some(Code::Unmapped | Code::Denied) => EXIT_DENIED,
        Some(Code::Config | Code::BadRequest) => EXIT_USAGE,
        _ => EXIT_RUNTIME,
    };
    Failure {
        code: exit,
        message,
    }
}
