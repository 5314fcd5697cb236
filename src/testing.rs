//! Hidden subcommands the integration tests drive as real accounts (`rolesh __record`,
//! `rolesh __event`): the session's recording and audit paths without a full ssh login.
//! They can do nothing a user could not do with the broker socket directly.

use std::io::BufRead;

use crate::error::{EXIT_OK, Failure};
use crate::protocol::RecordStart;
use crate::record::Recorder;
use crate::session_id::SessionId;

/// Reads commands from stdin: `o TEXT`, `i TEXT`, `r COLSxROWS`, `sleep MS`, `finish N`,
/// `ready` (prints "ready" once everything before it is queued), `status` (prints
/// "healthy" or "broken"). TEXT may use `\n`, `\r`,
/// `\e` and `\xHH`.
pub(crate) fn record(session_id: &str, input: bool) -> Result<u8, Failure> {
    let socket = crate::client::socket_path(false);
    let meta = RecordStart {
        session_id: SessionId::parse(session_id)
            .ok_or_else(|| Failure::usage("--session-id: 8 to 64 lowercase hex digits"))?,
        cols: 80,
        rows: 24,
        command: None,
        record_input: input,
        term: Some("xterm-256color".into()),
        uid: None,
    };
    let mut recorder = Recorder::start(&socket, meta)?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| Failure::runtime(e.to_string()))?;
        let (cmd, arg) = line.split_once(' ').unwrap_or((&line, ""));
        match cmd {
            "o" => recorder.output(&unescape(arg)),
            "i" => recorder.input(&unescape(arg)),
            "r" => {
                let (c, r) = crate::record::asciicast::parse_size(arg)
                    .ok_or_else(|| Failure::usage("r COLSxROWS"))?;
                recorder.resize(c, r);
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(arg.parse().unwrap_or(0)))
            }
            "ready" => println!("ready"),
            "status" => println!(
                "{}",
                if recorder.healthy() {
                    "healthy"
                } else {
                    "broken"
                }
            ),
            "finish" => {
                recorder.finish(arg.parse().unwrap_or(0));
                return Ok(EXIT_OK);
            }
            _ => return Err(Failure::usage(format!("unknown command {cmd:?}"))),
        }
    }
    // stdin closed without `finish`: like a session that died.
    std::process::exit(9)
}

fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            let (b, used) = match bytes[i + 1] {
                b'n' => (b'\n', 2),
                b'r' => (b'\r', 2),
                b'e' => (0x1b, 2),
                b'x' if i + 3 < bytes.len() + 1 => (
                    u8::from_str_radix(&text[i + 2..(i + 4).min(text.len())], 16).unwrap_or(b'?'),
                    4,
                ),
                other => (other, 2),
            };
            out.push(b);
            i += used;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Emits one audit event the way a session does (through `audit::init_session`).
pub(crate) fn event(event: &str, fields: &[String]) -> Result<u8, Failure> {
    crate::audit::init_session(&crate::client::socket_path(false));
    let get = |k: &str| {
        fields
            .iter()
            .find_map(|f| f.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
    };
    let exit_code = get("exit_code").and_then(|c| c.parse::<i64>().ok());
    tracing::info!(
        target: "rolesh::audit",
        event = %event,
        cluster = get("cluster"),
        namespace = get("namespace"),
        pod = get("pod"),
        container = get("container"),
        command = get("command"),
        exit_code,
        user = get("user"),
        uid = get("uid"),
    );
    Ok(EXIT_OK)
}
