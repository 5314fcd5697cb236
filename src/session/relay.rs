//! An interactive session on a terminal of its own (SPEC §6): the supervisor opens a new
//! pty, starts the user's shell (or restricted prompt, or picker) on it as a new session,
//! switches the user's terminal to raw mode and relays bytes both ways. Sitting in the
//! middle is what lets it see the user go idle, pass window sizes on, hand every byte of
//! output to a recording, and end the whole session — every process on that pty, whatever
//! process group the shell put it in — on hangup, idle timeout or `max_duration`.
//!
//! Idle means no input from the user: a `kubectl logs -f` left running in front of an
//! empty chair still counts as idle, as with OpenSSH's and most bastions' client idle
//! timeouts.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

use super::supervise::Outcome;
use crate::config::values::short;
use crate::error::Failure;
use crate::system;

/// How long a hung-up session has to exit before it is killed.
const GRACE: Duration = Duration::from_secs(2);
/// How often the idle clock is looked at.
const TICK: Duration = Duration::from_secs(1);

/// What a session's bytes are shown to besides the user (a recording).
pub(super) trait Tap: Send {
    fn output(&mut self, data: &[u8]);
    fn input(&mut self, data: &[u8]);
    fn resize(&mut self, cols: u16, rows: u16);
}

pub(super) type SharedTap = Arc<Mutex<dyn Tap>>;

/// When an interactive session ends on its own.
#[derive(Clone, Copy, Debug)]
pub(super) struct Deadlines {
    pub idle_timeout: Duration,
    pub max_duration: Duration,
}

impl Deadlines {
    /// The warning comes a minute before the end, or at three quarters of a short timeout.
    fn idle_warning(&self) -> Duration {
        let minute = Duration::from_secs(60);
        if self.idle_timeout > minute * 4 {
            self.idle_timeout - minute
        } else {
            self.idle_timeout * 3 / 4
        }
    }
}

/// Why the session ended, when the program did not simply exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    Exited,
    Hangup,
    Idle,
    MaxDuration,
}

impl Ending {
    /// For the `logout` audit event.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Ending::Exited => "exited",
            Ending::Hangup => "hangup",
            Ending::Idle => "idle_timeout",
            Ending::MaxDuration => "max_duration",
        }
    }
}

/// Runs `command` on a new pty between the user's terminal (stdin/stdout) and it.
pub(super) fn run(
    command: pty_process::blocking::Command,
    limits: Deadlines,
    tap: Option<SharedTap>,
) -> Result<(Outcome, Ending), Failure> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Failure::runtime(format!("cannot start the session's terminal: {what}: {e}"))
    };
    let stdin = std::io::stdin();
    let (cols, rows) = system::window_size(stdin.as_fd()).unwrap_or((80, 24));
    let (pty, pts) = pty_process::blocking::open().map_err(|e| fail("openpty", &e))?;
    pty.resize(pty_process::Size::new(rows, cols))
        .map_err(|e| fail("window size", &e))?;
    if let Some(tap) = &tap {
        lock(tap).resize(cols, rows);
    }
    let raw = crate::terminal::RawMode::enter()?;
    let child = command.spawn(pts).map_err(|e| fail("spawn", &e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail("runtime", &e))?;
    let result = runtime.block_on(relay(child, pty, limits, tap));
    // Not a plain drop, which would wait for a copier still blocked on a pty that an
    // escaped process holds open.
    runtime.shutdown_background();
    drop(raw);
    result
}

fn lock(tap: &SharedTap) -> std::sync::MutexGuard<'_, dyn Tap + 'static> {
    tap.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// When the user last typed, shared with the input thread.
struct Activity {
    last_input: Mutex<Instant>,
}

async fn relay(
    child: std::process::Child,
    pty: pty_process::blocking::Pty,
    limits: Deadlines,
    tap: Option<SharedTap>,
) -> Result<(Outcome, Ending), Failure> {
    let failure =
        |e: std::io::Error| Failure::runtime(format!("cannot supervise the session: {e}"));
    let sid = child.id();
    let pty = Arc::new(pty);
    let activity = Arc::new(Activity {
        last_input: Mutex::new(Instant::now()),
    });
    let (input_gone, mut disconnected) = tokio::sync::oneshot::channel();
    copy_input(pty.clone(), activity.clone(), tap.clone(), input_gone);
    let output = pump(PtyOutput(pty.clone()), std::io::stdout(), tap.clone());

    let mut winch = signal(SignalKind::window_change()).map_err(failure)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(failure)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(failure)?;
    let mut waiter = tokio::task::spawn_blocking(move || {
        let mut child = child;
        child.wait()
    });
    let deadline = tokio::time::sleep(limits.max_duration);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(TICK);
    let mut warned = false;
    let ending = loop {
        tokio::select! {
            status = &mut waiter => {
                let status = joined(status)?;
                // The shell is gone: so is everything it left running on its terminal.
                clear_session(sid);
                finish_output(output).await;
                return Ok((Outcome { status, session_ended: false }, Ending::Exited));
            }
            _ = winch.recv() => pass_window_size(&pty, &tap),
            _ = hangup.recv() => break Ending::Hangup,
            _ = terminate.recv() => break Ending::Hangup,
            _ = &mut disconnected => break Ending::Hangup,
            _ = &mut deadline => {
                notice(&format!("this session reached its maximum duration ({}); ending it", short(limits.max_duration)));
                break Ending::MaxDuration;
            }
            _ = tick.tick() => {
                let idle = activity.last_input.lock().map(|t| t.elapsed()).unwrap_or_default();
                if idle >= limits.idle_timeout {
                    notice(&format!("idle for {}; ending this session", short(limits.idle_timeout)));
                    break Ending::Idle;
                }
                if idle >= limits.idle_warning() && !warned {
                    let warned_at = limits.idle_warning();
                    let left = limits.idle_timeout.saturating_sub(warned_at);
                    notice(&format!("this session has been idle for {}; it ends in {} unless you type something", short(warned_at), short(left)));
                    warned = true;
                } else if idle < limits.idle_warning() {
                    warned = false;
                }
            }
        }
    };
    let status = end_session(sid, &mut waiter).await?;
    finish_output(output).await;
    Ok((
        Outcome {
            status,
            session_ended: true,
        },
        ending,
    ))
}

type Waiter = tokio::task::JoinHandle<std::io::Result<std::process::ExitStatus>>;

fn joined(
    r: Result<std::io::Result<std::process::ExitStatus>, tokio::task::JoinError>,
) -> Result<std::process::ExitStatus, Failure> {
    r.map_err(|e| Failure::runtime(e.to_string()))?
        .map_err(|e| Failure::runtime(format!("cannot supervise the session: {e}")))
}

/// Hangs up every process left in the session, and kills what is still there after the
/// grace period. Blocking: it runs when the session is over and nothing else is waited for.
pub(super) fn clear_session(sid: u32) {
    system::signal_whole_session(sid, Signal::SIGHUP);
    let deadline = Instant::now() + GRACE;
    // SIGCONT wakes stopped jobs so they see the hangup; the count says who is left.
    while system::signal_whole_session(sid, Signal::SIGCONT) > 0 {
        if Instant::now() >= deadline {
            system::signal_whole_session(sid, Signal::SIGKILL);
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ends a session whose leader is still running and returns the leader's status.
async fn end_session(sid: u32, waiter: &mut Waiter) -> Result<std::process::ExitStatus, Failure> {
    clear_session(sid);
    joined(waiter.await)
}

/// Output still in the pty when the session ends reaches the user (and the recording).
async fn finish_output(output: std::thread::JoinHandle<()>) {
    let _ = tokio::time::timeout(GRACE, tokio::task::spawn_blocking(move || output.join())).await;
}

fn pass_window_size(pty: &pty_process::blocking::Pty, tap: &Option<SharedTap>) {
    if let Some((cols, rows)) = system::window_size(std::io::stdin().as_fd()) {
        let _ = pty.resize(pty_process::Size::new(rows, cols));
        if let Some(tap) = tap {
            lock(tap).resize(cols, rows);
        }
    }
}

/// A line from rolesh itself on the user's raw terminal.
fn notice(message: &str) {
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "\r\nrolesh: {message}\r\n");
    let _ = out.flush();
}

/// The user's keystrokes to the pty. A plain thread: a blocking read of the terminal
/// cannot be cancelled, and the process exits without waiting for it.
fn copy_input(
    pty: Arc<pty_process::blocking::Pty>,
    activity: Arc<Activity>,
    tap: Option<SharedTap>,
    gone: tokio::sync::oneshot::Sender<()>,
) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Ok(mut t) = activity.last_input.lock() {
                        *t = Instant::now();
                    }
                    if let Some(tap) = &tap {
                        lock(tap).input(&buf[..n]);
                    }
                    if (&*pty).write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        // The user's terminal is gone (the ssh client disconnected).
        let _ = gone.send(());
    });
}

/// Output on its way to the user: copies `from` to `to`, showing every chunk to the tap
/// (the recording) first, until end of file or an error: a pty reports EIO once every
/// process has closed it. `to` is written a chunk at a time, so a `notice` can come between.
pub(super) fn pump(
    mut from: impl Read + Send + 'static,
    mut to: impl Write + Send + 'static,
    tap: Option<SharedTap>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(tap) = &tap {
                        lock(tap).output(&buf[..n]);
                    }
                    if to.write_all(&buf[..n]).and_then(|_| to.flush()).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    })
}

/// The session's pty as a reader of its own, for the output thread.
struct PtyOutput(Arc<pty_process::blocking::Pty>);

impl Read for PtyOutput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.0).read(buf)
    }
}
