//! The local terminal while an exec with a TTY runs: raw mode (every key, Ctrl-C
//! included, goes to the remote terminal as a byte), restored on every way out: the
//! guard's drop, a panic (the hook runs even with `panic = "abort"`), and the signals
//! the exec loop turns into a normal return.

use std::io::IsTerminal;
use std::sync::{Mutex, Once};

use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use crate::error::Failure;

/// The settings to go back to, while raw mode is on.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);
static PANIC_HOOK: Once = Once::new();

/// Whether stdin is a terminal: then the exec gets a TTY and the picker may ask.
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// The local terminal's size as (rows, columns).
pub fn size() -> Option<(u16, u16)> {
    use std::os::fd::AsFd;
    crate::system::terminal_size(std::io::stdin().as_fd())
}

/// Raw mode on stdin until dropped.
pub struct RawMode(());

impl RawMode {
    pub fn enter() -> Result<RawMode, Failure> {
        let stdin = std::io::stdin();
        let original = tcgetattr(&stdin)
            .map_err(|e| Failure::runtime(format!("cannot read the terminal settings: {e}")))?;
        PANIC_HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        let mut raw = original.clone();
        cfmakeraw(&mut raw);
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some(original);
        tcsetattr(&stdin, SetArg::TCSADRAIN, &raw).map_err(|e| {
            restore();
            Failure::runtime(format!("cannot put the terminal in raw mode: {e}"))
        })?;
        Ok(RawMode(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the saved settings back, once; a no-op when raw mode is off.
pub fn restore() {
    let saved = SAVED.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(original) = saved {
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &original);
    }
}
