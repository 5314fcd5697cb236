//! Session recording from the supervisor's side (SPEC §6): what the session shows is
//! streamed to the broker, which writes the file the user cannot touch. With a terminal,
//! the relay hands every byte to the recording; without one (`ssh bastion CMD` under
//! `record = "all"`), the command's stdout and stderr pass through pipes of the supervisor
//! on their way to sshd.

use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use super::Session;
use super::relay::{SharedTap, Tap};
use crate::error::Failure;
use crate::protocol::RecordStart;
use crate::record::Recorder;
use crate::system;

/// A recording the relay and the pipe copiers share; `finish` ends it once.
pub(super) struct Recording(Option<Recorder>);

impl Tap for Recording {
    fn output(&mut self, data: &[u8]) {
        if let Some(r) = &mut self.0 {
            r.output(data);
        }
    }

    fn input(&mut self, data: &[u8]) {
        if let Some(r) = &mut self.0 {
            r.input(data);
        }
    }

    fn resize(&mut self, cols: u16, rows: u16) {
        if let Some(r) = &mut self.0 {
            r.resize(cols, rows);
        }
    }
}

/// Starts the recording this session must have, if any. An error means the session must
/// not start: a bastion that promises recordings does not run unrecorded sessions.
pub(super) fn start(
    session: &Session,
    socket: &std::path::Path,
    command: Option<&str>,
) -> Result<Option<Arc<Mutex<Recording>>>, Failure> {
    // An unknown recording mode from the broker never got this far: `whoami` is typed.
    if !crate::record::required(session.settings().record, command.is_none()) {
        return Ok(None);
    }
    let (cols, rows) = system::window_size(std::io::stdin().as_fd()).unwrap_or((80, 24));
    let meta = RecordStart {
        session_id: session.id.clone(),
        cols,
        rows,
        command: command.map(str::to_string),
        record_input: session.settings().record_input,
        term: std::env::var("TERM").ok(),
    };
    let recorder = Recorder::start(socket, meta).map_err(|f| {
        Failure::runtime(format!(
            "this session must be recorded and the recording cannot start ({}); not starting it",
            f.message
        ))
    })?;
    Ok(Some(Arc::new(Mutex::new(Recording(Some(recorder))))))
}

/// Ends the recording with the session's exit code (the broker marks a clean end).
pub(super) fn finish(recording: &Arc<Mutex<Recording>>, exit_code: u8) {
    let recorder = recording.lock().unwrap_or_else(|p| p.into_inner()).0.take();
    if let Some(r) = recorder {
        r.finish(i32::from(exit_code));
    }
}

pub(super) fn as_tap(recording: &Arc<Mutex<Recording>>) -> SharedTap {
    recording.clone()
}
