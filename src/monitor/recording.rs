//! Session recording from the monitor's side (SPEC §6): what the session shows is streamed
//! to the broker, which writes the file the user cannot touch. With a terminal, the relay
//! hands every byte to the recording; without one (`ssh bastion CMD` under
//! `record = "all"`), the command's stdout and stderr pass through pipes of the monitor on
//! their way to sshd. The user can reach neither: the monitor is root's.

use std::sync::{Arc, Mutex};

use super::relay::{SharedTap, Tap};
use crate::error::Failure;
use crate::protocol::RecordStart;
use crate::record::Recorder;

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

/// Starts a recording through the broker at `socket`. An error means the session must
/// not start: a bastion that promises recordings does not run unrecorded sessions.
pub(super) fn start(
    socket: &std::path::Path,
    meta: RecordStart,
) -> Result<Arc<Mutex<Recording>>, Failure> {
    let recorder = Recorder::start(socket, meta).map_err(|f| {
        Failure::runtime(format!(
            "this session must be recorded and the recording cannot start ({}); not starting it",
            f.message
        ))
    })?;
    Ok(Arc::new(Mutex::new(Recording(Some(recorder)))))
}

/// Whether the recording still reaches the broker (a finished one counts as healthy).
pub(super) fn healthy(recording: &Arc<Mutex<Recording>>) -> bool {
    let recording = recording.lock().unwrap_or_else(|p| p.into_inner());
    recording.0.as_ref().is_none_or(Recorder::healthy)
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
