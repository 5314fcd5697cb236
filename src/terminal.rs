//! The user's terminal (stdin): raw mode while bytes are relayed to another terminal —
//! the session's own pty (`session::relay`) or a remote one (`rolesh exec` with a TTY) —
//! so that every key, Ctrl-C included, goes through as a byte; and the settings rolesh
//! found put back on every way out: the raw-mode guard's drop, a panic (the hook runs even
//! with `panic = "abort"`), and, for `rolesh exec`, SIGTERM/SIGHUP, which end the process
//! from [`watch_signals`] (in the picker, too, where a blocking prompt could not notice
//! them).

use std::io::IsTerminal;
use std::sync::{Mutex, Once};

use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use tokio::signal::unix::{SignalKind, signal};

use crate::error::Failure;

/// The settings rolesh found on stdin, to go back to.
static ORIGINAL: Mutex<Option<Termios>> = Mutex::new(None);
static PANIC_HOOK: Once = Once::new();

/// Whether stdin is a terminal: then the exec gets a TTY and the picker may ask.
pub(crate) fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Whether the exec gets a remote TTY: stdin and stdout are both terminals. With output
/// redirected (`rolesh exec … -- cat f > copy`) the bytes must come through unchanged,
/// which a remote terminal's line discipline would not do.
pub(crate) fn wants_tty() -> bool {
    stdin_is_terminal() && std::io::stdout().is_terminal()
}

/// The local terminal's size as (rows, columns).
pub(crate) fn size() -> Option<(u16, u16)> {
    use std::os::fd::AsFd;
    crate::system::window_size(std::io::stdin().as_fd()).map(|(cols, rows)| (rows, cols))
}

/// Saves stdin's settings (once) and makes a panic put them back.
pub(crate) fn remember() -> Result<(), Failure> {
    let mut original = ORIGINAL.lock().unwrap_or_else(|p| p.into_inner());
    if original.is_none() {
        let settings = tcgetattr(std::io::stdin())
            .map_err(|e| Failure::runtime(format!("cannot read the terminal settings: {e}")))?;
        *original = Some(settings);
    }
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
    Ok(())
}

/// Puts the saved settings back; a no-op when nothing was saved.
pub(crate) fn restore() {
    let original = ORIGINAL.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(original) = original {
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &original);
    }
}

/// Raw mode on stdin until dropped.
pub(crate) struct RawMode(());

impl RawMode {
    pub(crate) fn enter() -> Result<RawMode, Failure> {
        remember()?;
        let mut raw = tcgetattr(std::io::stdin())
            .map_err(|e| Failure::runtime(format!("cannot read the terminal settings: {e}")))?;
        cfmakeraw(&mut raw);
        tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &raw)
            .map_err(|e| Failure::runtime(format!("cannot put the terminal in raw mode: {e}")))?;
        Ok(RawMode(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// On SIGTERM or SIGHUP (the session ends, the connection is gone): call `before_exit`
/// with the signal's number, restore the terminal, and exit with 128 + it. Runs on a runtime
/// worker, so it fires even while the picker blocks the main thread in a prompt.
pub(crate) fn watch_signals(
    runtime: &tokio::runtime::Runtime,
    before_exit: fn(u8),
) -> Result<(), Failure> {
    let _guard = runtime.enter();
    let listen =
        |kind| signal(kind).map_err(|e| Failure::runtime(format!("cannot handle signals: {e}")));
    let (mut term, mut hup) = (
        listen(SignalKind::terminate())?,
        listen(SignalKind::hangup())?,
    );
    runtime.spawn(async move {
        let number: u8 = tokio::select! {
            _ = term.recv() => 15,
            _ = hup.recv() => 1,
        };
        // The audit event first: restoring waits for pending output to drain, which a
        // terminal nobody reads any more (the connection is gone) may never do.
        before_exit(number);
        restore();
        std::process::exit(i32::from(128 + number));
    });
    Ok(())
}
