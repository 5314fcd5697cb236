//! A real terminal for tests: tmux on a server socket of its own, running one command, with
//! keys sent and the screen read back. For what only a terminal can drive (the picker asks
//! the terminal where its cursor is; window sizes; Ctrl-C as a key).
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
    /// Read the whole scrollback rather than the visible screen.
    history: bool,
    _dir: tempfile::TempDir,
}

impl Tmux {
    /// Runs `script` (through the shell) in a `cols`×`rows` terminal with no status line.
    pub fn start(label: &str, cols: u16, rows: u16, script: &str) -> Tmux {
        super::require("tmux", Command::new("tmux").arg("-V").output().is_ok());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tmux.conf"), "set -g status off\n").unwrap();
        let socket = format!("rolesh-{label}-{}", std::process::id());
        super::stdout_of_success(
            Command::new("tmux")
                .args(["-L", &socket, "-f"])
                .arg(dir.path().join("tmux.conf"))
                .args(["new-session", "-d", "-s", "t"])
                .args(["-x", &cols.to_string(), "-y", &rows.to_string(), script]),
        );
        Tmux {
            socket,
            history: false,
            _dir: dir,
        }
    }

    /// Screens read from now on include what scrolled off the top.
    pub fn with_history(mut self) -> Tmux {
        self.history = true;
        self
    }

    pub fn tmux(&self, args: &[&str]) -> String {
        let out =
            super::stdout_of_success(Command::new("tmux").args(["-L", &self.socket]).args(args));
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Keys as tmux names them (`Enter`, `C-c`, `C-d`, `Escape`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Text typed as it is.
    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", text]);
    }

    pub fn screen(&self) -> String {
        match self.history {
            true => self.tmux(&["capture-pane", "-p", "-S", "-", "-t", "t"]),
            false => self.tmux(&["capture-pane", "-p", "-t", "t"]),
        }
    }

    /// Waits (up to 30 s) until the screen satisfies `ready`, and returns it.
    pub fn wait(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_for(&self, needle: &str) -> String {
        self.wait(needle, |s| s.contains(needle))
    }

    /// Waits until the screen has every one of `needles`: a menu is drawn line by line, so
    /// its title alone does not mean its entries are there yet.
    pub fn wait_for_all(&self, needles: &[&str]) -> String {
        self.wait(&needles.join(", "), |s| {
            needles.iter().all(|n| s.contains(n))
        })
    }

    /// A line that is exactly `line` (output, not the echo of a typed command).
    pub fn wait_for_line(&self, line: &str) -> String {
        self.wait(line, |s| s.lines().any(|l| l.trim_end() == line))
    }

    /// Waits for a shell's prompt (`#` or `$`) on the last line with text.
    pub fn wait_for_shell(&self) {
        self.wait("a shell's prompt", |s| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.trim_end().ends_with('#') || l.trim_end().ends_with('$'))
        });
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        let (cols, rows) = (cols.to_string(), rows.to_string());
        self.tmux(&["resize-window", "-t", "t", "-x", &cols, "-y", &rows]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}
