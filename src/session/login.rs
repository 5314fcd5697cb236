//! The login shell sshd starts as the user (`-rolesh`, `-l`, `-c CMD`): it does almost
//! nothing, as OpenSSH's unprivileged child does. It hands its terminal, or its stdin,
//! stdout and stderr pipes, to the session monitor (root) over
//! `/run/rolesh/monitor.sock` (SCM_RIGHTS), lets go of them, and waits for the exit code.
//! It holds no secret and controls nothing: killing or stopping it ends the session.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use tokio::io::AsyncBufReadExt;
use tokio::signal::unix::{SignalKind, signal};

use crate::error::{EXIT_RUNTIME, Failure};
use crate::paths;
use crate::protocol::monitor::{MonitorAnswer, MonitorRequest, Open};
use crate::system;

/// Login mode: `-c COMMAND` (what sshd runs for `ssh bastion COMMAND`) or an interactive
/// session, run by the monitor.
pub(crate) fn login(command: Option<&str>) -> Result<u8, Failure> {
    system::harden_login().map_err(Failure::runtime)?;
    let socket = paths::monitor_socket();
    let monitor = UnixStream::connect(&socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            Failure::runtime("the session monitor is not running (systemctl status rolesh-monitor)")
        }
        _ => Failure::runtime(format!(
            "cannot reach the session monitor at {}: {e}",
            socket.display()
        )),
    })?;
    let open = MonitorRequest::Open(Open {
        command: command.map(str::to_string),
        env: handed_env(),
    });
    let mut line = open.to_line();
    line.push('\n');
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    system::send_with_descriptors(
        monitor.as_fd(),
        line.as_bytes(),
        &[stdin.as_fd(), stdout.as_fd(), stderr.as_fd()],
    )
    .map_err(|e| Failure::runtime(format!("cannot hand the session to the monitor: {e}")))?;
    match read_answer(&monitor)? {
        MonitorAnswer::Started { .. } => {}
        MonitorAnswer::Refused { exit_code, message } => {
            return Err(Failure {
                code: exit_code,
                message,
            });
        }
        MonitorAnswer::Ended { exit_code, .. } => return Ok(exit_code),
    }
    // The terminal or pipes are the monitor's now: this process keeps no copy.
    system::let_go_of_stdio().map_err(Failure::runtime)?;
    wait_for_the_end(monitor)
}

/// What sshd set that the session keeps or audits; the monitor drops anything else.
fn handed_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| {
            matches!(k.as_str(), "TERM" | "LANG" | "TZ" | "SSH_CLIENT") || k.starts_with("LC_")
        })
        .collect()
}

/// The first answer, read a byte at a time: nothing after it may be taken from the socket
/// here (the end may follow at once, and is read by `wait_for_the_end`).
fn read_answer(monitor: &UnixStream) -> Result<MonitorAnswer, Failure> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match (&*monitor).read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(lost(e)),
        }
    }
    if line.is_empty() {
        return Err(Failure::runtime(
            "the session monitor closed the connection without answering",
        ));
    }
    serde_json::from_slice(&line).map_err(|e| {
        Failure::runtime(format!(
            "the session monitor sent an unreadable answer: {e}"
        ))
    })
}

fn lost(e: std::io::Error) -> Failure {
    Failure::runtime(format!("lost the session monitor: {e}"))
}

/// Until the monitor says the session ended: passes window-size changes on (the terminal's
/// foreground process gets SIGWINCH, and that is this one).
fn wait_for_the_end(monitor: UnixStream) -> Result<u8, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot wait for the session: {e}")))?;
    runtime.block_on(async move {
        let mut winch = signal(SignalKind::window_change()).map_err(lost)?;
        let reader = monitor.try_clone().map_err(lost)?;
        reader.set_nonblocking(true).map_err(lost)?;
        let mut answers = tokio::io::BufReader::new(
            tokio::net::UnixStream::from_std(reader).map_err(lost)?,
        );
        let mut line = String::new();
        loop {
            tokio::select! {
                read = answers.read_line(&mut line) => {
                    if read.map_err(lost)? == 0 {
                        return Ok(EXIT_RUNTIME);
                    }
                    if let Ok(MonitorAnswer::Ended { exit_code, .. }) = serde_json::from_str(&line) {
                        return Ok(exit_code);
                    }
                    line.clear();
                }
                _ = winch.recv() => {
                    let mut changed = MonitorRequest::WindowChanged {}.to_line();
                    changed.push('\n');
                    let _ = (&monitor).write_all(changed.as_bytes());
                }
            }
        }
    })
}
