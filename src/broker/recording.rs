//! Session recordings, the broker's side (SPEC §6): after a `record` request the
//! connection carries asciicast v2 event lines, which the broker checks and writes to
//! `recordings_dir/USER/SESSION_ID.cast`. USER is what SO_PEERCRED says; the header (size,
//! time, title with the user) is the broker's own, so the user cannot forge who or when.
//!
//! Files are 0640 and directories 0750, owned by the broker's user (`rolesh`): the
//! recorded user can neither write, replace nor remove them. A clean end (the session's
//! end line) adds an end marker; anything else (the session killed, the connection lost,
//! an invalid event, the broker stopping) adds a visible note and an "abnormal end"
//! marker. Either way the file is synced before the broker lets go of it.

use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tracing::{info, warn};

use super::quota::Quotas;
use crate::config::values::human_bytes;
use crate::protocol::{ErrorCode, MAX_LINE, RecordEnd, RecordStart, Recorded, WireError};
use crate::record::asciicast::{self, Event, Header};
use crate::record::redact::OutputRedactor;
use crate::system::Account;

/// Recordings one uid may have open at once.
pub(super) const MAX_PER_UID: u32 = 8;

/// The largest recording; past it output is no longer written (and the end says so).
pub(super) const MAX_BYTES: u64 = 1 << 30;

/// How far ahead of the broker's own clock an event's time may be (seconds).
const CLOCK_SLACK: f64 = 60.0;

pub(super) const FILE_MODE: u32 = 0o640;
pub(super) const DIR_MODE: u32 = 0o750;

/// Open recordings per uid.
#[derive(Default, Clone)]
pub(super) struct Active {
    per_uid: Arc<Mutex<HashMap<u32, u32>>>,
}

/// One open recording's slot, given back when dropped.
pub(super) struct Slot {
    active: Active,
    uid: u32,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.active.per_uid.lock().expect("recordings lock");
        if let Some(n) = map.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Active {
    pub(super) fn admit(&self, uid: u32) -> Result<Slot, WireError> {
        let mut map = self.per_uid.lock().expect("recordings lock");
        let n = map.entry(uid).or_insert(0);
        if *n >= MAX_PER_UID {
            return Err(WireError::new(
                ErrorCode::Unavailable,
                format!("too many recordings open for uid {uid} (limit {MAX_PER_UID})"),
            ));
        }
        *n += 1;
        Ok(Slot {
            active: self.clone(),
            uid,
        })
    }
}

/// How a recording is written, from the broker's configuration for its user.
pub(super) struct Options {
    /// Whether input events are kept (the session asked, and the configuration allows).
    pub(super) allow_input: bool,
    /// `[session] record_redact` for the user: secret-shaped output becomes `<redacted>`.
    pub(super) redact: bool,
    /// The user's recordings today, and `[audit] recording_quota`.
    pub(super) quotas: Quotas,
    pub(super) quota: u64,
}

/// A recording file being written; ends abnormally if dropped before it was finished
/// (e.g. the broker stopped mid-session).
pub(super) struct Recording {
    out: BufWriter<File>,
    pub path: PathBuf,
    last_time: f64,
    bytes: u64,
    finished: bool,
    started: Instant,
    options: Options,
    /// Output held back until no later chunk can complete a secret in it (with
    /// `redact`).
    redactor: Option<OutputRedactor>,
    /// The user's quota was crossed by the last write: a marker and an audit event are due.
    quota_crossed: bool,
    /// Who and which session, for the audit event of an abnormal end.
    user: String,
    uid: u32,
    session_id: String,
}

/// Creates the recording of `start` for `account` under `dir`, header included.
pub(super) fn create(
    dir: &Path,
    account: &Account,
    host: &str,
    start: &RecordStart,
    options: Options,
) -> Result<Recording, WireError> {
    let user_dir = user_dir(dir, &account.name)?;
    let path = user_dir.join(format!("{}.cast", start.session_id));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(crate::system::no_follow_flag())
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => WireError::new(
                ErrorCode::BadRequest,
                format!("a recording of session {} exists already", start.session_id),
            ),
            _ => unavailable(&path, e),
        })?;
    // The broker's umask (0077 under systemd) would take the group's read bit.
    file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
        .map_err(|e| unavailable(&path, e))?;
    let title = format!(
        "rolesh session {} of {} (uid {}) on {host}",
        start.session_id, account.name, account.uid
    );
    // What the session says is scrubbed like every value it reports.
    let command = start.command.as_deref().map(crate::redact::clean);
    let term = start.term.as_deref().map(crate::redact::clean);
    let mut header = Header::new(start.cols, start.rows, unix_now(), title);
    header.command = command;
    if let Some(term) = term {
        header.env.term = Some(term);
    }
    let mut recording = Recording {
        out: BufWriter::new(file),
        path,
        last_time: 0.0,
        bytes: 0,
        finished: false,
        started: Instant::now(),
        redactor: options.redact.then(OutputRedactor::default),
        options,
        quota_crossed: false,
        user: account.name.clone(),
        uid: account.uid,
        session_id: start.session_id.to_string(),
    };
    let header = recording.write_line(&header.line());
    if let Err(e) = header.and_then(|()| recording.out.flush()) {
        // Nothing to end: dropping it must not add an abnormal end to a file without a
        // header, nor an audit event about it.
        recording.finished = true;
        return Err(unavailable(&recording.path, e));
    }
    let _ = File::open(&user_dir).and_then(|d| d.sync_all());
    Ok(recording)
}

/// `dir/USER`, where USER's recordings go (not made here); refused for a name that
/// cannot be a directory's.
pub(super) fn user_dir_path(dir: &Path, user: &str) -> Result<PathBuf, WireError> {
    if user.is_empty() || user == "." || user == ".." || user.contains('/') {
        return Err(WireError::new(
            ErrorCode::BadRequest,
            format!("user name {user:?} cannot name a recordings directory"),
        ));
    }
    Ok(dir.join(user))
}

/// `dir/USER`, made 0750 if missing; refused if it is not a directory of ours.
fn user_dir(dir: &Path, user: &str) -> Result<PathBuf, WireError> {
    let user_dir = user_dir_path(dir, user)?;
    make_dir(dir, true)?;
    make_dir(&user_dir, false)?;
    Ok(user_dir)
}

fn make_dir(path: &Path, recursive: bool) -> Result<(), WireError> {
    match DirBuilder::new()
        .recursive(recursive)
        .mode(DIR_MODE)
        .create(path)
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(unavailable(path, e)),
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| unavailable(path, e))?;
    if !meta.is_dir() || meta.uid() != crate::system::effective_uid() {
        return Err(WireError::new(
            ErrorCode::Unavailable,
            format!(
                "{} is not a directory owned by the broker's user; not recording there",
                path.display()
            ),
        ));
    }
    if meta.mode() & 0o7777 != DIR_MODE {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| unavailable(path, e))?;
    }
    Ok(())
}

fn unavailable(path: &Path, e: std::io::Error) -> WireError {
    WireError::new(
        ErrorCode::Unavailable,
        format!("cannot record to {}: {e}", path.display()),
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How a stream ended.
enum End {
    Clean(i64),
    Abnormal(String),
}

impl Recording {
    /// Checks one event line and writes it. Input the configuration does not allow is
    /// dropped, never written.
    fn event(&mut self, line: &str) -> Result<(), String> {
        let event = asciicast::parse_event(line, self.last_time)?;
        if event.time > self.started.elapsed().as_secs_f64() + CLOCK_SLACK {
            return Err(format!(
                "time {} is ahead of the broker's clock",
                event.time
            ));
        }
        if event.kind == "i" && !self.options.allow_input {
            return Ok(());
        }
        self.last_time = event.time;
        if self.bytes > MAX_BYTES {
            return Err(format!("the recording reached {} MiB", MAX_BYTES >> 20));
        }
        let time = event.time;
        self.write_redacted(event)
            .and_then(|()| self.note_quota_crossed(time))
            .map_err(|e| format!("cannot write: {e}"))
    }

    /// Writes `event`, through the redactor when there is one: output may be held back
    /// for a while; anything else first writes out what is held, and input is redacted
    /// as it comes (a token pasted in one piece).
    fn write_redacted(&mut self, mut event: Event) -> std::io::Result<()> {
        let Some(redactor) = &mut self.redactor else {
            return self.write(&event);
        };
        if event.kind == "o" {
            let ready = redactor.push(event.time, event.data);
            return self.write_output(ready);
        }
        let held = redactor.flush();
        self.write_output(held)?;
        if event.kind == "i" {
            event.data = crate::redact::redact_shapes(&event.data).into_owned();
        }
        self.write(&event)
    }

    /// Output events the redactor let go of.
    fn write_output(&mut self, ready: Vec<crate::record::redact::Piece>) -> std::io::Result<()> {
        for (time, data) in ready {
            self.write(&Event {
                time,
                kind: "o".into(),
                data,
            })?;
        }
        Ok(())
    }

    /// Whatever the redactor still holds (before the end markers).
    fn flush_redactor(&mut self) -> std::io::Result<()> {
        match self.redactor.as_mut().map(OutputRedactor::flush) {
            Some(held) => self.write_output(held),
            None => Ok(()),
        }
    }

    fn write(&mut self, event: &Event) -> std::io::Result<()> {
        self.write_line(&event.line())
    }

    /// One line of the file, counted against the recording's and the user's limits.
    fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        writeln!(self.out, "{line}")?;
        let n = line.len() as u64 + 1;
        self.bytes += n;
        let (quotas, quota) = (&self.options.quotas, self.options.quota);
        if quotas.add(&self.user, n, quota) {
            self.quota_crossed = true;
        }
        Ok(())
    }

    /// When the last write took the user past `[audit] recording_quota`: a marker here,
    /// and an `error` event in the trail. The recording goes on (cutting it would leave
    /// the rest of the session unrecorded); the user's next one today is refused.
    fn note_quota_crossed(&mut self, time: f64) -> std::io::Result<()> {
        if !std::mem::take(&mut self.quota_crossed) {
            return Ok(());
        }
        let quota = human_bytes(self.options.quota);
        let note = format!(
            "quota: {}'s recording quota ({quota} a day) is used up; this recording goes on, new ones are refused until 00:00 UTC",
            self.user
        );
        info!(
            target: "rolesh::audit",
            event = "error",
            user = %self.user,
            uid = self.uid,
            session_id = %self.session_id,
            reason = %format!("recording quota ({quota} a day) used up during {}", self.path.display()),
        );
        self.write(&Event {
            time,
            kind: "m".into(),
            data: note,
        })
    }

    /// The end marker (`exit N`), then sync.
    fn finish_clean(&mut self, exit_code: i64) -> std::io::Result<()> {
        self.flush_redactor()?;
        let end = self.marker(format!("end: exit {exit_code}"));
        self.write(&end)?;
        self.sync()
    }

    /// A visible note and an "abnormal end" marker, then sync.
    fn finish_abnormal(&mut self, reason: &str) -> std::io::Result<()> {
        // What was held is output the session showed: it goes in, redacted.
        let _ = self.flush_redactor();
        let mut note = self.marker(format!(
            "\r\n[rolesh: recording ended abnormally: {reason}]\r\n"
        ));
        note.kind = "o".into();
        self.write(&note)?;
        let marker = self.marker(format!("abnormal end: {reason}"));
        self.write(&marker)?;
        self.sync()
    }

    fn marker(&self, data: String) -> Event {
        let now = self.started.elapsed().as_secs_f64();
        Event {
            time: now.clamp(self.last_time, self.last_time + CLOCK_SLACK),
            kind: "m".into(),
            data,
        }
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.finished = true;
        self.out.flush()?;
        self.out.get_ref().sync_all()
    }

    fn end(&mut self, how: &End) {
        let done = match how {
            End::Clean(code) => self.finish_clean(*code),
            End::Abnormal(reason) => self.finish_abnormal(reason),
        };
        if let Err(e) = done {
            warn!(path = %self.path.display(), "cannot finish the recording: {e}");
        }
        if let End::Abnormal(reason) = how {
            // Auditors learn of it from the trail, not only from the file.
            info!(
                target: "rolesh::audit",
                event = "error",
                user = %self.user,
                uid = self.uid,
                session_id = %self.session_id,
                reason = %format!("recording {} ended abnormally: {reason}", self.path.display()),
            );
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if !self.finished {
            self.end(&End::Abnormal("the broker stopped".into()));
        }
    }
}

/// Reads the event stream into `recording` until its end line or its end, then finishes
/// the file and tells the session.
pub(super) async fn stream(
    mut recording: Recording,
    mut reader: BufReader<OwnedReadHalf>,
    write: &mut OwnedWriteHalf,
) {
    let end = read_events(&mut recording, &mut reader).await;
    recording.end(&end);
    let answer = match &end {
        End::Clean(_) => serde_json::to_string(&Recorded {
            ok: true,
            path: recording.path.display().to_string(),
        })
        .unwrap_or_default(),
        End::Abnormal(reason) => WireError::new(ErrorCode::BadRequest, reason.clone()).to_line(),
    };
    let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
    let path = recording.path.display().to_string();
    match &end {
        End::Clean(code) => {
            info!(user = %recording.user, path = %path, exit_code = code, "recording finished")
        }
        End::Abnormal(reason) => {
            warn!(user = %recording.user, path = %path, reason = %reason, "recording ended abnormally")
        }
    }
}

/// No idle timeout here: a session may be silent for hours. The line limit still holds.
async fn read_events(recording: &mut Recording, reader: &mut BufReader<OwnedReadHalf>) -> End {
    loop {
        let mut line = Vec::new();
        let mut limited = (&mut *reader).take(MAX_LINE as u64 + 1);
        match limited.read_until(b'\n', &mut line).await {
            Ok(0) => {
                return End::Abnormal(
                    "the session's stream ended without its end line (session killed or disconnected)"
                        .into(),
                );
            }
            Err(e) => return End::Abnormal(format!("the session's stream failed: {e}")),
            Ok(_) => {}
        }
        if !line.ends_with(b"\n") {
            return End::Abnormal(if line.len() > MAX_LINE {
                format!("an event longer than {} KiB", MAX_LINE / 1024)
            } else {
                "the session's stream ended in the middle of an event".into()
            });
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            return End::Abnormal("an event that is not UTF-8".into());
        };
        let text = text.trim_end();
        if text.starts_with('{') {
            return end_line(text);
        }
        if let Err(why) = recording.event(text) {
            return End::Abnormal(format!("invalid event: {why}"));
        }
        // Hand what arrived to the kernel before waiting for more: a broker that dies
        // loses at most the events it was reading.
        if reader.buffer().is_empty()
            && let Err(e) = recording.out.flush()
        {
            return End::Abnormal(format!("cannot write: {e}"));
        }
    }
}

/// `{"end": true, "exit_code": N}`.
fn end_line(text: &str) -> End {
    match serde_json::from_str::<RecordEnd>(text) {
        Ok(RecordEnd {
            end: true,
            exit_code,
        }) => End::Clean(exit_code),
        _ => End::Abnormal("an end line that is not {\"end\":true,\"exit_code\":N}".into()),
    }
}
