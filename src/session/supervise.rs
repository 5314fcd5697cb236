//! The session supervisor: waits for the user's command or shell and ends all of it when
//! the session ends another way — SIGHUP or SIGTERM (sshd, logout), the client going away
//! (sshd closes the session's pipes), or `max_duration`. Ctrl-C reaches the command, not
//! the supervisor.

use std::process::{Child, ExitStatus};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

use crate::error::Failure;
use crate::system;

/// How long a hung-up session has to exit before it is killed.
const GRACE: Duration = Duration::from_secs(2);

/// How a supervised command ended.
pub(super) struct Outcome {
    pub status: ExitStatus,
    /// The session itself ended (hangup, disconnect, max_duration), not just the command.
    pub session_ended: bool,
}

pub(super) fn run(
    child: Child,
    own_group: bool,
    max_duration: Duration,
) -> Result<Outcome, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot supervise the session: {e}")))?;
    runtime.block_on(supervise(child, own_group, max_duration))
}

async fn supervise(
    child: Child,
    own_group: bool,
    max_duration: Duration,
) -> Result<Outcome, Failure> {
    let failure =
        |e: std::io::Error| Failure::runtime(format!("cannot supervise the session: {e}"));
    let joined = |r: Result<std::io::Result<ExitStatus>, tokio::task::JoinError>| {
        r.map_err(|e| Failure::runtime(e.to_string()))?
            .map_err(failure)
    };
    let pid = child.id();
    let mut hangup = signal(SignalKind::hangup()).map_err(failure)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(failure)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(failure)?;
    let mut waiter = tokio::task::spawn_blocking(move || {
        let mut child = child;
        child.wait()
    });
    // A plain thread, not a runtime task: it blocks until hangup and must not keep the
    // runtime from shutting down when the session ends normally.
    let (gone, mut disconnected) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        system::wait_for_output_hangup();
        let _ = gone.send(());
    });
    let deadline = tokio::time::sleep(max_duration);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            status = &mut waiter => return Ok(Outcome { status: joined(status)?, session_ended: false }),
            _ = interrupt.recv() => continue,
            _ = hangup.recv() => break,
            _ = terminate.recv() => break,
            _ = &mut disconnected => break,
            _ = &mut deadline => {
                eprintln!("\r\nrolesh: this session reached its maximum duration ({}); ending it", crate::config::values::short(max_duration));
                break;
            }
        }
    }
    system::signal_session(pid, own_group, Signal::SIGHUP);
    system::signal_session(pid, own_group, Signal::SIGCONT);
    let status = match tokio::time::timeout(GRACE, &mut waiter).await {
        Ok(status) => joined(status)?,
        Err(_) => {
            system::signal_session(pid, own_group, Signal::SIGKILL);
            joined(waiter.await)?
        }
    };
    Ok(Outcome {
        status,
        session_ended: true,
    })
}
