//! One exec over WebSocket (kube-rs speaks `v5.channel.k8s.io`, then `v4`): local stdin
//! to the remote, remote stdout/stderr to ours, window sizes to the resize channel, and
//! the remote exit code back as ours.
//!
//! Stdin EOF: on v5 kube-rs sends the close frame for channel 0, so the remote sees EOF
//! and its output still arrives; on a v4-only server it can only close the whole
//! connection, so output after stdin EOF may be lost (kubectl has the same limit).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, TerminalSize};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::cluster::api_failure;
use crate::error::Failure;
use crate::terminal::{self, RawMode};

/// Buffer between the WebSocket and our pipes, each way. kube-rs defaults to 1 KiB,
/// which costs throughput on large outputs.
const STREAM_BUFFER: usize = 256 * 1024;
/// How long output may still drain when the connection ended without an exit status.
const DRAIN_WITHOUT_STATUS: Duration = Duration::from_secs(2);

/// Where to exec and what.
#[derive(Debug, Clone)]
pub(super) struct ExecSpec {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub command: Vec<String>,
    /// A remote terminal: stdin is one, so ours goes raw and keys pass through.
    pub tty: bool,
}

/// Runs the command and returns its exit code.
pub(super) async fn run(client: &kube::Client, spec: &ExecSpec) -> Result<u8, Failure> {
    let params = AttachParams::default()
        .container(spec.container.clone())
        .stdin(true)
        .stdout(true)
        // With a TTY the remote terminal carries both streams.
        .stderr(!spec.tty)
        .tty(spec.tty)
        .max_stdin_buf_size(STREAM_BUFFER)
        .max_stdout_buf_size(STREAM_BUFFER)
        .max_stderr_buf_size(STREAM_BUFFER);
    let api: Api<Pod> = Api::namespaced(client.clone(), &spec.namespace);
    let what = format!(
        "exec into {}/{} (container {})",
        spec.namespace, spec.pod, spec.container
    );
    let mut attached = api
        .exec(&spec.pod, spec.command.clone(), &params)
        .await
        .map_err(|e| api_failure(&what, &e))?;
    let raw = spec.tty.then(RawMode::enter).transpose()?;
    let mut tasks = Vec::new();
    if let Some(mut sizes) = attached.terminal_size() {
        tasks.push(tokio::spawn(forward_resizes(move |size| {
            let _ = sizes.try_send(size);
        })));
    }
    let (stdin_tx, stdin_rx) = mpsc::channel(16);
    let pump = StdinPump::start(stdin_tx)?;
    if let Some(remote_stdin) = attached.stdin() {
        tasks.push(tokio::spawn(forward_stdin(stdin_rx, remote_stdin)));
    }
    let mut outputs = Vec::new();
    if let Some(out) = attached.stdout() {
        outputs.push(tokio::spawn(copy_out(
            out,
            local_fd(std::io::stdout().as_fd())?,
        )));
    }
    if let Some(err) = attached.stderr() {
        outputs.push(tokio::spawn(copy_out(
            err,
            local_fd(std::io::stderr().as_fd())?,
        )));
    }
    let status = attached.take_status();
    let result = finish(outputs, status).await;
    pump.stop();
    for task in tasks {
        task.abort();
    }
    drop(attached);
    drop(raw);
    result
}

/// Waits for the exit status and for the output to drain, and maps the status.
async fn finish(
    outputs: Vec<tokio::task::JoinHandle<()>>,
    status: Option<impl Future<Output = Option<Status>>>,
) -> Result<u8, Failure> {
    let status = match status {
        Some(status) => status.await,
        None => None,
    };
    let drained = async {
        for output in outputs {
            let _ = output.await;
        }
    };
    match &status {
        // kube-rs ends both output streams right after the status: they drain fully.
        Some(_) => drained.await,
        // The connection ended without one (or failed); what is buffered may still come.
        None => {
            let _ = tokio::time::timeout(DRAIN_WITHOUT_STATUS, drained).await;
        }
    }
    match status {
        Some(status) => exit_code(&status),
        None => Err(Failure::runtime(
            "the connection to the container ended without an exit status",
        )),
    }
}

/// The remote exit code: Success is 0; a failure with an `ExitCode` cause is that code;
/// any other failure (the command could not start, the container is gone) is 1 with the
/// server's message.
pub(super) fn exit_code(status: &Status) -> Result<u8, Failure> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.trim().parse::<u32>().ok());
    match code {
        Some(code) => Ok((code % 256) as u8),
        None => Err(Failure::runtime(format!(
            "the command failed in the container: {}",
            status.message.as_deref().unwrap_or("no reason given")
        ))),
    }
}

/// Sends the local window size now and on every SIGWINCH (`send` drops a size when the
/// channel is full: the next one supersedes it anyway).
async fn forward_resizes(mut send: impl FnMut(TerminalSize) + Send) {
    let mut current = || {
        if let Some((rows, cols)) = terminal::size() {
            send(TerminalSize {
                width: cols,
                height: rows,
            });
        }
    };
    current();
    let Ok(mut winch) = signal(SignalKind::window_change()) else {
        return;
    };
    while winch.recv().await.is_some() {
        current();
    }
}

/// Local stdin chunks to the remote stdin; at EOF, shuts it down, which kube-rs turns
/// into the v5 close frame for channel 0.
async fn forward_stdin(mut chunks: mpsc::Receiver<Vec<u8>>, mut remote: impl AsyncWrite + Unpin) {
    while let Some(chunk) = chunks.recv().await {
        if remote.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = remote.shutdown().await;
}

/// A duplicate of stdout or stderr written to directly: `std::io::Stdout` is line
/// buffered, one write per line, which a binary stream does not need.
fn local_fd(fd: std::os::fd::BorrowedFd<'_>) -> Result<File, Failure> {
    fd.try_clone_to_owned()
        .map(File::from)
        .map_err(|e| Failure::runtime(format!("cannot use the output: {e}")))
}

async fn copy_out(mut remote: impl AsyncRead + Unpin, mut local: File) {
    let mut buf = vec![0u8; STREAM_BUFFER];
    loop {
        let n = match remote.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // A blocking write on its own worker: a slow reader of our output is the
        // backpressure the remote should see.
        if tokio::task::block_in_place(|| local.write_all(&buf[..n])).is_err() {
            return;
        }
    }
}

/// Reads stdin on a thread of its own, in poll() with a cancel pipe, so that when the
/// exec ends nothing is left blocked in read(): in picker mode the next keystroke
/// belongs to the picker, not to a finished exec.
struct StdinPump {
    cancel: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StdinPump {
    fn start(chunks: mpsc::Sender<Vec<u8>>) -> Result<StdinPump, Failure> {
        let (cancelled, cancel) = nix::unistd::pipe()
            .map_err(|e| Failure::runtime(format!("cannot create a pipe: {e}")))?;
        let thread = std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || pump_stdin(&cancelled, &chunks))
            .map_err(|e| Failure::runtime(format!("cannot start the stdin reader: {e}")))?;
        Ok(StdinPump {
            cancel: Some(cancel),
            thread: Some(thread),
        })
    }

    /// Closing the pipe's write end wakes the poll; the thread then returns at once.
    fn stop(mut self) {
        drop(self.cancel.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn pump_stdin(cancelled: &OwnedFd, chunks: &mpsc::Sender<Vec<u8>>) {
    let stdin = std::io::stdin();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds = [
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
            PollFd::new(cancelled.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[1]) {
            return;
        }
        if !ready(&fds[0]) {
            continue;
        }
        match nix::unistd::read(&stdin, &mut buf) {
            // EOF (or a hung-up terminal): dropping the sender ends the remote stdin.
            Ok(0) => return,
            Ok(n) => {
                if chunks.blocking_send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    fn failure(causes: Vec<StatusCause>, message: &str) -> Status {
        Status {
            status: Some("Failure".into()),
            message: Some(message.into()),
            details: Some(StatusDetails {
                causes: Some(causes),
                ..StatusDetails::default()
            }),
            ..Status::default()
        }
    }

    fn cause(reason: &str, message: &str) -> StatusCause {
        StatusCause {
            reason: Some(reason.into()),
            message: Some(message.into()),
            field: None,
        }
    }

    #[test]
    fn statuses_become_exit_codes() {
        let ok = Status {
            status: Some("Success".into()),
            ..Status::default()
        };
        assert_eq!(exit_code(&ok), Ok(0));
        assert_eq!(exit_code(&failure(vec![cause("ExitCode", "3")], "")), Ok(3));
        assert_eq!(
            exit_code(&failure(vec![cause("ExitCode", "137")], "")),
            Ok(137)
        );
        let err = exit_code(&failure(vec![], "OCI runtime exec failed")).unwrap_err();
        assert_eq!(err.code, 1);
        assert!(err.message.contains("OCI runtime exec failed"));
    }
}
