//! The bytes of a session: between the outer terminal (sshd's, now the monitor's) and the
//! session's own pty, or between sshd's pipes and the command's. Everything the user sees
//! passes here, so here it is shown to the recording, and here the monitor sees the user
//! type (the idle clock) and the connection go away.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::system;

/// What a session's bytes are shown to besides the user (a recording).
pub(super) trait Tap: Send {
    fn output(&mut self, data: &[u8]);
    fn input(&mut self, data: &[u8]);
    fn resize(&mut self, cols: u16, rows: u16);
}

pub(super) type SharedTap = Arc<Mutex<dyn Tap>>;

pub(super) fn lock(tap: &SharedTap) -> std::sync::MutexGuard<'_, dyn Tap + 'static> {
    tap.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// When the user last typed, shared with the input thread.
pub(super) struct Activity {
    last_input: Mutex<Instant>,
}

impl Activity {
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            last_input: Mutex::new(Instant::now()),
        })
    }

    pub(super) fn idle(&self) -> std::time::Duration {
        self.last_input
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    fn typed(&self) {
        if let Ok(mut t) = self.last_input.lock() {
            *t = Instant::now();
        }
    }
}

/// The user's keystrokes, from `from` (the outer terminal or stdin pipe) to `to` (the
/// session's pty or the command's stdin pipe). A plain thread: a blocking read cannot be
/// cancelled, and the monitor exits without waiting for it. When `from` ends, `to` is
/// closed (the command sees end of file) and `gone`, if given, fires: the end of a
/// terminal is the connection gone; the end of stdin is not.
pub(super) fn copy_input(
    from: OwnedFd,
    mut to: impl Write + Send + 'static,
    activity: Arc<Activity>,
    tap: Option<SharedTap>,
    gone: Option<tokio::sync::oneshot::Sender<()>>,
) {
    std::thread::spawn(move || {
        let mut from = std::fs::File::from(from);
        let mut buf = [0u8; 4096];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    activity.typed();
                    if let Some(tap) = &tap {
                        lock(tap).input(&buf[..n]);
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        // The session's side closed (the command exited): nothing more to
                        // pass, but the connection is not gone.
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        drop(to);
        if let Some(gone) = gone {
            let _ = gone.send(());
        }
    });
}

/// Output on its way to the user: copies `from` to `to`, showing every chunk to the tap
/// (the recording) first, until end of file or an error: a pty reports EIO once every
/// process has closed it. `to` is written a chunk at a time, so a notice can come between.
pub(super) fn pump(
    mut from: impl Read + Send + 'static,
    to: OwnedFd,
    tap: Option<SharedTap>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut to = std::fs::File::from(to);
        let mut buf = [0u8; 16384];
        loop {
            match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(tap) = &tap {
                        lock(tap).output(&buf[..n]);
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    })
}

/// The session's pty as a reader and writer of its own, for the copy threads.
pub(super) struct PtyEnd(pub(super) Arc<pty_process::blocking::Pty>);

impl Read for PtyEnd {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for PtyEnd {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

/// The outer terminal's size, passed to the pty and the recording.
pub(super) fn pass_window_size(
    outer: BorrowedFd<'_>,
    pty: &pty_process::blocking::Pty,
    tap: &Option<SharedTap>,
) {
    if let Some((cols, rows)) = system::window_size(outer) {
        let _ = pty.resize(pty_process::Size::new(rows, cols));
        if let Some(tap) = tap {
            lock(tap).resize(cols, rows);
        }
    }
}

/// A line from rolesh itself on the user's (raw) terminal or stderr.
pub(super) fn notice(to: &impl AsFd, message: &str) {
    if let Ok(fd) = to.as_fd().try_clone_to_owned() {
        let mut out = std::fs::File::from(fd);
        let _ = write!(out, "\r\nrolesh: {message}\r\n");
    }
}
