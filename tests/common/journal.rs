//! A real systemd-journald for the audit tests: started once (standalone, as root) when
//! no journald listens on /run/systemd/journal/socket, and left running; entries read
//! back with `journalctl -o json`.
//!
//! "Listens" is checked by connecting, not by the socket file existing: a journald that
//! ended (a machine's boot-time one, or one a finished session started) leaves its socket
//! files behind, and every write to them is refused (this failed CI on a fresh machine).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

pub const SOCKET: &str = "/run/systemd/journal/socket";
const JOURNALD: &str = "/lib/systemd/systemd-journald";

static STARTING: Mutex<()> = Mutex::new(());

/// Makes sure journald runs (the test fails when it cannot).
pub fn ensure_journald() {
    let _one_at_a_time = STARTING.lock().unwrap_or_else(|p| p.into_inner());
    if !journald_listens() && Path::new(JOURNALD).exists() {
        // setsid: the daemon outlives this test process, and later tests use it. journald
        // unlinks stale socket files before it binds its own.
        let started = Command::new("setsid")
            .arg(JOURNALD)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if started.is_ok() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !journald_listens() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    super::require(
        "a running systemd-journald (Debian systemd; started as root when absent)",
        journald_listens(),
    );
}

/// Whether a journald receives on the native socket: a datagram connect to a socket file
/// nobody holds fails with ECONNREFUSED.
fn journald_listens() -> bool {
    UnixDatagram::unbound().is_ok_and(|s| s.connect(SOCKET).is_ok())
}

/// The journalctl arguments for entries a process wrote from now on: `_PID=` alone would
/// also match an earlier process that had the same pid (the journal outlives many runs).
pub fn from_process_since_now() -> impl Fn(i32) -> Vec<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    move |pid| vec![format!("--since=@{now}"), format!("_PID={pid}")]
}

/// Entries matching `matches` (journalctl FIELD=VALUE matches, ANDed).
pub fn entries(matches: &[String]) -> Vec<Map<String, Value>> {
    let out = Command::new("journalctl")
        .args(["-o", "json", "--no-pager"])
        .args(matches)
        .output()
        .expect("journalctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        })
        .collect()
}

/// Waits (up to 15 s) until `done` holds for the entries matching `matches`, and returns
/// them; panics with what was there otherwise.
pub fn wait_for(
    matches: &[String],
    done: impl Fn(&[Map<String, Value>]) -> bool,
) -> Vec<Map<String, Value>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = entries(matches);
        if done(&found) {
            return found;
        }
        if Instant::now() > deadline {
            panic!("journald never had what the test waited for; it has: {found:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The string value of `field` (journald gives strings for text fields).
pub fn field<'m>(entry: &'m Map<String, Value>, field: &str) -> Option<&'m str> {
    entry.get(field).and_then(Value::as_str)
}

/// The entries whose ROLESH_EVENT is `event`.
pub fn of_event<'e>(entries: &'e [Map<String, Value>], event: &str) -> Vec<&'e Map<String, Value>> {
    entries
        .iter()
        .filter(|e| field(e, "ROLESH_EVENT") == Some(event))
        .collect()
}

/// A fresh session id (hex), unique to this test run: what entries are found by.
pub fn unique_session_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:016x}{:08x}", nanos as u64, std::process::id())
}
