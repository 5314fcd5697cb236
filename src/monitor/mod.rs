//! `rolesh monitor`: the session monitor (SPEC §1), root, privilege-separated like
//! OpenSSH's monitor. It listens on `/run/rolesh/monitor.sock` (or the socket
//! `rolesh-monitor.socket` passes); for each login it starts a `rolesh session-monitor`
//! process of its own (the connection as its stdin), which holds the session's terminal,
//! cgroup, recording and timers from then on (`session`). The user can signal none of
//! them: they are root's.
//!
//! Per-session processes outlive a restart of this one (systemd's `KillMode=process`), as
//! sshd's sessions do. A session whose monitor is gone anyway (killed, crashed) is ended
//! by this one, at its start and every few seconds: nothing of a session may run without
//! its monitor.

mod cgroup;
mod outer;
mod recording;
mod relay;
pub(crate) mod session;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::client;
use crate::error::{EXIT_OK, Failure};
use crate::live;
use crate::protocol::{Ack, Request, SessionEvent, SessionEventKind};
use crate::system;
use cgroup::Cgroups;

/// How often sessions whose monitor died are looked for.
const SWEEP: Duration = Duration::from_secs(5);

pub(crate) fn run(socket: Option<PathBuf>) -> Result<u8, Failure> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Failure::runtime(
            "rolesh monitor runs as root: it starts each session as its user, in a cgroup of its own",
        ));
    }
    let cgroups = match Cgroups::find() {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("rolesh: monitor: every session will be refused: {e}");
            None
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the monitor: {e}")))?;
    runtime.block_on(serve(socket, cgroups))?;
    Ok(EXIT_OK)
}

async fn serve(socket: Option<PathBuf>, cgroups: Option<Cgroups>) -> Result<(), Failure> {
    let failure = |e: std::io::Error| Failure::runtime(format!("cannot handle signals: {e}"));
    let mut terminate = signal(SignalKind::terminate()).map_err(failure)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(failure)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(failure)?;
    sweep(cgroups.as_ref());
    let (listener, bound) = listen(socket)?;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    eprintln!("rolesh: monitor ready");
    let mut sessions = tokio::task::JoinSet::new();
    let mut sweeping = tokio::time::interval(SWEEP);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match start_session(stream) {
                    Ok(child) => {
                        sessions.spawn(async move {
                            let mut child = child;
                            let _ = child.wait().await;
                        });
                    }
                    Err(e) => eprintln!("rolesh: monitor: {e}"),
                },
                Err(e) => eprintln!("rolesh: monitor: accept failed: {e}"),
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => sweep(cgroups.as_ref()),
            _ = sweeping.tick() => sweep(cgroups.as_ref()),
            _ = hangup.recv() => sweep(cgroups.as_ref()),
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    drop(listener);
    if let Some(path) = &bound {
        let _ = std::fs::remove_file(path);
    }
    // The sessions go on, each with its own monitor.
    Ok(())
}

/// A `rolesh session-monitor` process for one login, the connection as its stdin.
fn start_session(stream: tokio::net::UnixStream) -> Result<tokio::process::Child, String> {
    let stream = stream
        .into_std()
        .map_err(|e| format!("cannot hand the connection over: {e}"))?;
    stream
        .set_nonblocking(false)
        .map_err(|e| format!("cannot hand the connection over: {e}"))?;
    let fd: OwnedFd = stream.into();
    tokio::process::Command::new(crate::paths::running_binary())
        .arg(session::SUBCOMMAND)
        .stdin(Stdio::from(fd))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .env_clear()
        .envs(std::env::vars().filter(|(k, _)| k == "ROLESH_BROKER_SOCKET"))
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| format!("cannot start a session monitor: {e}"))
}

/// Ends every session whose monitor is gone: its processes killed, its record removed,
/// the broker and the trail told (`monitor_killed_session`). A session cgroup without a
/// record is left alone: a session's processes join its cgroup only once its record is
/// written, so such a cgroup is another monitor's (a second installation on the host).
fn sweep(cgroups: Option<&Cgroups>) {
    let Some(cgroups) = cgroups else { return };
    let records = live::all();
    for record in &records {
        let alive = system::process_start(record.monitor_pid) == Some(record.monitor_start);
        if alive {
            continue;
        }
        if let Some(cgroup) = cgroups.existing(&record.cgroup) {
            cgroup.kill();
            let _ = cgroup.remove();
        }
        live::remove(&record.session_id);
        report_killed(record);
    }
}

/// The broker drops the session's tokens; the trail gets its `logout`.
fn report_killed(record: &live::LiveSession) {
    eprintln!(
        "rolesh: monitor: the monitor of session {} ({}) is gone; its processes were ended",
        record.session_id, record.user
    );
    let broker = client::socket_path(false);
    let end = Request::SessionEnd {
        session_id: record.session_id.clone(),
        reason: "monitor_killed_session".into(),
    };
    let _ = client::call::<Ack>(&broker, &end);
    let mut fields = SessionEvent::new(SessionEventKind::Logout);
    fields.session_id = Some(record.session_id.clone());
    fields.reason = Some("monitor_killed_session".into());
    let event = Request::Event {
        fields: Box::new(fields),
        uid: Some(record.uid),
    };
    if let Err(e) = client::call::<Ack>(&broker, &event) {
        eprintln!(
            "rolesh: monitor: the logout of {} is not on the trail: {}",
            record.session_id, e.message
        );
    }
}

/// The socket systemd passed, else `path` bound here (mode 0666: every user logs in
/// through it; the monitor tells them apart by SO_PEERCRED).
fn listen(path: Option<PathBuf>) -> Result<(UnixListener, Option<PathBuf>), Failure> {
    if let Some(std_listener) = system::systemd_socket().map_err(Failure::runtime)? {
        let listener = UnixListener::from_std(std_listener)
            .map_err(|e| Failure::runtime(format!("cannot use the socket from systemd: {e}")))?;
        return Ok((listener, None));
    }
    let path = path.unwrap_or_else(crate::paths::monitor_socket);
    let listener = system::bind_socket(&path, 0o666).map_err(Failure::runtime)?;
    let listener = UnixListener::from_std(listener)
        .map_err(|e| Failure::runtime(format!("cannot listen on {}: {e}", path.display())))?;
    Ok((listener, Some(path)))
}
