//! `rolesh __record` (a test hook) as a real account: a session's recorder, scripted.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};

use super::broker::BrokerProc;
use super::rolesh;

/// `rolesh __record` as `uid`, stdin and stdout piped.
pub fn recorder(b: &BrokerProc, uid: u32, session_id: &str, input: bool) -> Child {
    let mut cmd = rolesh();
    cmd.arg("__record")
        .args(["--session-id", session_id])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("ROLESH_BROKER_SOCKET", b.socket())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .uid(uid);
    if input {
        cmd.arg("--input");
    }
    cmd.spawn().unwrap()
}

pub fn script(child: &mut Child, lines: &str) {
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
}

pub fn finish(mut child: Child) -> std::process::Output {
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
