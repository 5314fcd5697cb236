//! The exit code of an exec or attach, read from the API server's side of the stream as it
//! passes through. With the WebSocket protocols kubectl speaks (`v5.channel.k8s.io`,
//! `v4.channel.k8s.io`), each binary message's first byte is its channel; channel 3
//! carries one `Status` when the command ends: `Success`, or a failure whose cause
//! `ExitCode` holds the code. Frames are parsed by tungstenite; nothing is changed or
//! held back: the bytes are forwarded before they are looked at. SPDY streams (kubectl
//! before 1.30) are not read: their events have no exit code.

use std::io::Cursor;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Data, OpCode};

/// The channel of the exec's status.
const ERROR_CHANNEL: u8 = 3;
/// The largest status message read (a `Status` is a few hundred bytes).
const MAX_STATUS: u64 = 64 << 10;

/// Watches the server-to-client bytes of one WebSocket exec or attach.
#[derive(Default)]
pub(super) struct ExitStatus {
    /// Bytes of an incomplete frame header, or of a status message being collected.
    pending: Vec<u8>,
    /// Payload bytes of the current frame still to pass unread.
    skip: u64,
    /// The stream is not what was expected; nothing more is read.
    lost: bool,
    code: Option<i32>,
}

impl ExitStatus {
    /// The command's exit code, once its status has been seen.
    pub(super) fn code(&self) -> Option<i32> {
        self.code
    }

    /// Looks at the next bytes from the server.
    pub(super) fn feed(&mut self, bytes: &[u8]) {
        let passed = usize::try_from(self.skip)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        self.skip -= passed as u64;
        let bytes = &bytes[passed..];
        if bytes.is_empty() || self.lost || self.code.is_some() {
            return;
        }
        self.pending.extend_from_slice(bytes);
        while self.next_frame() {}
    }

    /// Reads one frame from `pending`; false when it needs more bytes or is done.
    fn next_frame(&mut self) -> bool {
        let mut cursor = Cursor::new(self.pending.as_slice());
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(frame)) => frame,
            Ok(None) => return false,
            Err(_) => {
                self.lose();
                return false;
            }
        };
        let start = cursor.position() as usize;
        let available = (self.pending.len() - start) as u64;
        if len == 0 {
            self.pending.drain(..start);
            return true;
        }
        let Some(&first) = self.pending.get(start) else {
            return false;
        };
        let channel = first ^ header.mask.map_or(0, |m| m[0]);
        let status = header.is_final
            && header.opcode == OpCode::Data(Data::Binary)
            && channel == ERROR_CHANNEL
            && len <= MAX_STATUS;
        if !status {
            self.skip = len.saturating_sub(available);
            let end = start + available.min(len) as usize;
            self.pending.drain(..end);
            return true;
        }
        if available < len {
            return false;
        }
        let end = start + len as usize;
        let mut payload = self.pending[start..end].to_vec();
        if let Some(mask) = header.mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        self.pending.drain(..end);
        self.code = exit_code(&payload[1..]);
        false
    }

    fn lose(&mut self) {
        self.lost = true;
        self.pending = Vec::new();
    }
}

/// The exit code a channel-3 `Status` says: 0 for success, the `ExitCode` cause of a
/// failure; `None` for a failure without one (the command did not run).
pub(super) fn exit_code(message: &[u8]) -> Option<i32> {
    let status: Status = serde_json::from_slice(message).ok()?;
    if status.status.as_deref() == Some("Success") {
        return Some(0);
    }
    status
        .details?
        .causes?
        .into_iter()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))?
        .message?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's (unmasked) binary frame with `payload`.
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x82];
        match payload.len() {
            n if n < 126 => out.push(n as u8),
            n if n < 65536 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    fn on_channel(channel: u8, data: &[u8]) -> Vec<u8> {
        frame(&[&[channel], data].concat())
    }

    const FAILED_7: &str = r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 7], exit code 7","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}"#;

    #[test]
    fn a_failure_gives_its_exit_code_whatever_the_reads() {
        let mut stream = on_channel(1, &vec![b'x'; 100_000]);
        stream.extend(on_channel(2, b"oops\n"));
        stream.extend(on_channel(3, FAILED_7.as_bytes()));
        for chunk in [1, 7, 4096, stream.len()] {
            let mut tap = ExitStatus::default();
            for piece in stream.chunks(chunk) {
                tap.feed(piece);
            }
            assert_eq!(tap.code(), Some(7), "reads of {chunk} bytes");
        }
    }

    #[test]
    fn success_is_zero() {
        let mut tap = ExitStatus::default();
        tap.feed(&on_channel(1, b"hi\n"));
        tap.feed(&on_channel(3, br#"{"metadata":{},"status":"Success"}"#));
        assert_eq!(tap.code(), Some(0));
    }

    #[test]
    fn a_failure_without_an_exit_code_has_none() {
        let mut tap = ExitStatus::default();
        let message = r#"{"status":"Failure","message":"container not found","reason":"NotFound"}"#;
        tap.feed(&on_channel(3, message.as_bytes()));
        assert_eq!(tap.code(), None);
    }

    #[test]
    fn output_that_looks_like_a_status_on_stdout_is_not_one() {
        let mut tap = ExitStatus::default();
        tap.feed(&on_channel(1, FAILED_7.as_bytes()));
        assert_eq!(tap.code(), None);
    }
}
