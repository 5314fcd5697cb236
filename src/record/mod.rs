//! Session recording, the session's side (SPEC §6): a [`Recorder`] streams asciicast v2
//! events to the broker (op `record`), which writes them where the user cannot reach
//! (`recordings_dir/USER/SESSION_ID.cast`, owned by the broker's user).
//!
//! The session never waits on the broker for long: events go through a bounded queue to
//! a writer thread. If the broker falls that far behind, output is left out and a marker
//! says how much; if the session dies, the broker sees the stream end without the end line
//! and marks the recording as ended abnormally.

pub(crate) mod asciicast;
pub(crate) mod redact;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::client::Connection;
use crate::config::RecordPolicy;
use crate::error::Failure;
use crate::protocol::{RecordEnd, RecordStart, Recorded, Request};
use asciicast::Event;

/// Data per event, in bytes: JSON escapes a control byte as 6 (`\u001b`), so an event
/// stays under the broker's 64 KiB line limit whatever the output is.
pub(crate) const CHUNK: usize = 8 * 1024;

/// Events queued for the writer thread before output is left out.
const QUEUE: usize = 4096;

/// How long `start` waits for the broker to accept, and `finish` for it to close.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one write to a broker that takes nothing may block the writer thread before
/// the recording is given up (and `finish` stops waiting).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a session must be recorded: `interactive` records login sessions, `all` also
/// `ssh bastion CMD` (`-c`) and `rolesh exec`. When true and [`Recorder::start`] fails,
/// the session must not start.
pub(crate) fn required(record: RecordPolicy, interactive: bool) -> bool {
    match record {
        RecordPolicy::Off => false,
        RecordPolicy::Interactive => interactive,
        RecordPolicy::All => true,
    }
}

enum Message {
    Event(Event),
    Finish(i32),
}

/// A recording in progress. `Send`: a session's proxy task may own it.
pub(crate) struct Recorder {
    queue: SyncSender<Message>,
    writer: Option<JoinHandle<()>>,
    started: Instant,
    record_input: bool,
    output_tail: Vec<u8>,
    input_tail: Vec<u8>,
    /// Output bytes left out since the last marker because the queue was full.
    left_out: u64,
    last_time: f64,
}

impl Recorder {
    /// Asks the broker at `socket` to record. An error means no recording: a session that
    /// must be recorded must not start.
    pub(crate) fn start(socket: &Path, meta: RecordStart) -> Result<Recorder, Failure> {
        let (queue, received) = mpsc::sync_channel(QUEUE);
        let (opened, open_result) = mpsc::sync_channel(1);
        let record_input = meta.record_input;
        let socket = socket.to_path_buf();
        // Everything that touches the socket runs on the writer thread, with SIGPIPE
        // blocked there: a broker that goes away must not kill the session, whatever the
        // rest of the process does with SIGPIPE.
        let writer = std::thread::Builder::new()
            .name("rolesh-recorder".into())
            .spawn(move || {
                crate::system::block_sigpipe_in_this_thread();
                match open(&socket, &meta) {
                    Ok(stream) => {
                        let _ = opened.send(Ok(()));
                        write_events(stream, received);
                    }
                    Err(failure) => {
                        let _ = opened.send(Err(failure));
                    }
                }
            })
            .map_err(|e| Failure::runtime(format!("cannot start the recorder: {e}")))?;
        open_result
            .recv()
            .unwrap_or_else(|_| Err(Failure::runtime("the recorder stopped")))?;
        Ok(Recorder {
            queue,
            writer: Some(writer),
            started: Instant::now(),
            record_input,
            output_tail: Vec::new(),
            input_tail: Vec::new(),
            left_out: 0,
            last_time: 0.0,
        })
    }

    /// Terminal output (any bytes; UTF-8 split across calls is joined, invalid bytes
    /// become U+FFFD).
    pub(crate) fn output(&mut self, data: &[u8]) {
        let text = decode(&mut self.output_tail, data);
        self.text_events("o", &text);
    }

    /// Keystrokes; ignored unless the recording was started with `record_input`.
    pub(crate) fn input(&mut self, data: &[u8]) {
        if self.record_input {
            let text = decode(&mut self.input_tail, data);
            self.text_events("i", &text);
        }
    }

    /// False once the stream to the broker is gone (broker stopped, write timed out): the
    /// recording is already marked as ended abnormally by the broker, and the session's
    /// monitor ends a session that must be recorded.
    pub(crate) fn healthy(&self) -> bool {
        self.writer.as_ref().is_some_and(|w| !w.is_finished())
    }

    pub(crate) fn resize(&mut self, cols: u16, rows: u16) {
        self.push("r", format!("{cols}x{rows}"));
    }

    /// Ends the recording cleanly: the end line with the exit code, then waits (briefly)
    /// for the broker to write and sync the file.
    pub(crate) fn finish(mut self, exit_code: i32) {
        self.flush_tails();
        let _ = self.queue.send(Message::Finish(exit_code));
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }

    fn flush_tails(&mut self) {
        // Bytes of an incomplete character at the very end: recorded as U+FFFD.
        if !self.output_tail.is_empty() {
            self.output_tail.clear();
            self.push("o", "\u{fffd}".into());
        }
    }

    fn text_events(&mut self, kind: &str, text: &str) {
        for piece in chunks(text, CHUNK) {
            self.push(kind, piece.to_string());
        }
    }

    fn push(&mut self, kind: &str, data: String) {
        let time = self.started.elapsed().as_secs_f64().max(self.last_time);
        self.last_time = time;
        if self.left_out > 0 {
            let note = format!(
                "rolesh: {} bytes of output not recorded (broker too slow)",
                self.left_out
            );
            if self.try_send(Event {
                time,
                kind: "m".into(),
                data: note,
            }) {
                self.left_out = 0;
            }
        }
        let len = data.len() as u64;
        if !self.try_send(Event {
            time,
            kind: kind.into(),
            data,
        }) {
            self.left_out += len;
        }
    }

    fn try_send(&self, event: Event) -> bool {
        match self.queue.try_send(Message::Event(event)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

/// Connects, sends the `record` request and waits for the broker to accept.
fn open(socket: &Path, meta: &RecordStart) -> Result<UnixStream, Failure> {
    let fail =
        |f: Failure| Failure::runtime(format!("session recording unavailable: {}", f.message));
    let mut broker = Connection::open(socket, ANSWER_TIMEOUT).map_err(fail)?;
    broker
        .ask::<Recorded>(&Request::Record(meta.clone()))
        .map_err(fail)?;
    let stream = broker.into_stream();
    stream.set_write_timeout(Some(WRITE_TIMEOUT)).ok();
    Ok(stream)
}

/// The writer thread: events to the broker until `finish` (end line, then the broker's
/// answer) or until the `Recorder` is dropped (the stream just closes: abnormal end).
/// Whatever is queued is written in one go, then flushed: a crash loses at most what was
/// still queued.
fn write_events(stream: UnixStream, received: Receiver<Message>) {
    let mut out = std::io::BufWriter::new(&stream);
    loop {
        // A quiet session still learns within a second that the broker went away.
        let first = match received.recv_timeout(Duration::from_secs(1)) {
            Ok(message) => message,
            Err(mpsc::RecvTimeoutError::Timeout) if crate::system::peer_closed(&stream) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Event(e) => {
                    if writeln!(out, "{}", e.line()).is_err() {
                        return;
                    }
                }
                Message::Finish(code) => return end_stream(out, &stream, code),
            }
            next = received.try_recv().ok();
        }
        if out.flush().is_err() {
            return;
        }
    }
    let _ = out.flush();
}

/// The end line, then the broker's answer (sent once the file is synced).
fn end_stream(mut out: std::io::BufWriter<&UnixStream>, stream: &UnixStream, code: i32) {
    let end = RecordEnd {
        end: true,
        exit_code: code.into(),
    };
    let line = serde_json::to_string(&end).unwrap_or_default();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_ok() {
        drop(out);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        // The answer comes once the file is synced; what it says changes nothing here.
        let _ =
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stream), &mut String::new());
    }
}

/// Appends `data` to `tail` and returns the text decoded so far, keeping an incomplete
/// character at the end in `tail` for the next call.
pub(crate) fn decode(tail: &mut Vec<u8>, data: &[u8]) -> String {
    tail.extend_from_slice(data);
    let mut out = String::with_capacity(tail.len());
    let mut rest: &[u8] = tail;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                rest = &[];
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                match e.error_len() {
                    Some(n) => {
                        out.push('\u{fffd}');
                        rest = &after[n..];
                    }
                    None => {
                        rest = after;
                        break;
                    }
                }
            }
        }
    }
    *tail = rest.to_vec();
    out
}

/// `text` in pieces of at most `max` bytes, cut at character boundaries.
pub(crate) fn chunks(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, after) = rest.split_at(end);
        rest = after;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorder_can_move_into_a_task() {
        fn send<T: Send + 'static>() {}
        send::<Recorder>();
    }

    #[test]
    fn which_sessions_are_recorded() {
        assert!(required(RecordPolicy::Interactive, true));
        assert!(!required(RecordPolicy::Interactive, false));
        assert!(required(RecordPolicy::All, false));
        assert!(!required(RecordPolicy::Off, true));
    }

    #[test]
    fn utf8_split_across_chunks_is_joined() {
        let mut tail = Vec::new();
        let bytes = "é€😀".as_bytes();
        let mut text = String::new();
        for b in bytes {
            text.push_str(&decode(&mut tail, &[*b]));
        }
        assert_eq!(text, "é€😀");
        assert!(tail.is_empty());
        assert_eq!(decode(&mut tail, b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn chunks_fit_and_keep_characters_whole() {
        let text = "€".repeat(10_000);
        let pieces: Vec<&str> = chunks(&text, CHUNK).collect();
        assert!(pieces.iter().all(|p| p.len() <= CHUNK));
        assert_eq!(pieces.concat(), text);
        let worst = Event {
            time: 1e6,
            kind: "o".into(),
            data: "\u{1}".repeat(CHUNK),
        };
        assert!(worst.line().len() < crate::protocol::MAX_LINE);
    }
}
