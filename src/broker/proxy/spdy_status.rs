//! The exit code of an exec or attach over SPDY/3.1 (kubectl before 1.30, stream protocol
//! `v4.channel.k8s.io`), read from both directions as they pass. The client opens a stream
//! for each of error, stdin, stdout, stderr and resize, naming it in its `SYN_STREAM`
//! header `streamtype`; the server writes one `Status` on the error stream when the command
//! ends, then closes it (FIN). Header blocks are zlib streams with the SPDY/3 dictionary
//! and one compression context for the connection's life, so every client header block is
//! inflated, in order, each one bounded; the server's (another context) are not needed.
//!
//! As for WebSocket ([`super::exit_status`]), nothing is changed or held back, and a stream
//! that is not what was expected is no longer read: the event then has no exit code. The
//! client's bytes are read before they are forwarded, so the error stream is known before
//! the server can write on it.

use flate2::{Decompress, FlushDecompress};

use super::exit_status::exit_code;

/// The dictionary SPDY/3 header blocks are compressed against (SPDY/3 draft, 2.6.10.1).
static DICTIONARY: &[u8; 1423] = include_bytes!("spdy-dictionary.bin");

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const HEADERS: u16 = 8;
const FLAG_FIN: u8 = 0x01;
/// The largest frame read whole (a header block or a status is well under 1 KiB).
const MAX_READ: usize = 64 << 10;

/// One frame's 8-byte head.
#[derive(Clone, Copy)]
struct Head {
    control: bool,
    /// A control frame's type, or a data frame's stream.
    kind: u32,
    flags: u8,
    len: usize,
}

impl Head {
    fn parse(bytes: &[u8; 8]) -> Head {
        let first = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let control = first & 0x8000_0000 != 0;
        Head {
            control,
            kind: if control {
                first & 0xffff
            } else {
                first & 0x7fff_ffff
            },
            flags: bytes[4],
            len: u32::from_be_bytes([0, bytes[5], bytes[6], bytes[7]]) as usize,
        }
    }
}

/// Cuts one direction's bytes into frames, keeping whole only those it is asked for.
#[derive(Default)]
struct Splitter {
    pending: Vec<u8>,
    /// Payload bytes of the current frame still to pass unread.
    skip: usize,
    /// The frame being collected, once its head was read and it was wanted: decided once,
    /// so that what is wanted changing mid-frame cannot shift the frame boundaries.
    current: Option<Head>,
}

impl Splitter {
    /// The frames `bytes` completes that `want` asks for, with their payloads; `Err` when a
    /// wanted frame is too large to read.
    fn feed(
        &mut self,
        mut bytes: &[u8],
        want: impl Fn(&Head) -> bool,
    ) -> Result<Vec<(Head, Vec<u8>)>, ()> {
        let mut frames = Vec::new();
        loop {
            let passed = self.skip.min(bytes.len());
            self.skip -= passed;
            bytes = &bytes[passed..];
            if bytes.is_empty() {
                return Ok(frames);
            }
            let head = match self.current {
                Some(head) => head,
                None => {
                    let need = 8 - self.pending.len();
                    let take = need.min(bytes.len());
                    self.pending.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.pending.len() < 8 {
                        return Ok(frames);
                    }
                    let mut raw = [0u8; 8];
                    raw.copy_from_slice(&self.pending);
                    let head = Head::parse(&raw);
                    if !want(&head) {
                        self.pending.clear();
                        self.skip = head.len;
                        continue;
                    }
                    if head.len > MAX_READ {
                        return Err(());
                    }
                    self.current = Some(head);
                    head
                }
            };
            let missing = 8 + head.len - self.pending.len();
            let take = missing.min(bytes.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() < 8 + head.len {
                return Ok(frames);
            }
            let payload = self.pending.split_off(8);
            self.pending.clear();
            self.current = None;
            frames.push((head, payload));
        }
    }
}

/// Watches one SPDY exec or attach.
pub(super) struct SpdyExitStatus {
    client: Splitter,
    server: Splitter,
    inflate: Decompress,
    error_stream: Option<u32>,
    /// The last stream the client opened: ids must increase (spdystream refuses others).
    last_stream: u32,
    status: Vec<u8>,
    /// The stream is not what was expected; nothing more is read.
    lost: bool,
    code: Option<i32>,
}

impl Default for SpdyExitStatus {
    fn default() -> Self {
        SpdyExitStatus {
            client: Splitter::default(),
            server: Splitter::default(),
            inflate: Decompress::new(true),
            error_stream: None,
            last_stream: 0,
            status: Vec::new(),
            lost: false,
            code: None,
        }
    }
}

impl SpdyExitStatus {
    /// The command's exit code, once its status has been seen.
    pub(super) fn code(&self) -> Option<i32> {
        self.code
    }

    /// Looks at the client's next bytes (before they are forwarded).
    pub(super) fn client_bytes(&mut self, bytes: &[u8]) {
        if self.lost || self.code.is_some() {
            return;
        }
        let headers =
            |h: &Head| h.control && matches!(h.kind as u16, SYN_STREAM | SYN_REPLY | HEADERS);
        let Ok(frames) = self.client.feed(bytes, headers) else {
            return self.lose();
        };
        for (head, payload) in frames {
            let offset = if head.kind as u16 == SYN_STREAM {
                10
            } else {
                4
            };
            let Some(block) = payload.get(offset..) else {
                return self.lose();
            };
            let Some(pairs) = self.inflate(block) else {
                return self.lose();
            };
            if head.kind as u16 != SYN_STREAM {
                continue;
            }
            // A stream id the server would refuse (zero, the high bit set, not above the
            // last), or a second error stream: the client is not kubectl, and what the
            // server writes can no longer be told apart. Nothing more is read.
            let stream = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            if stream == 0 || stream > 0x7fff_ffff || stream <= self.last_stream {
                return self.lose();
            }
            self.last_stream = stream;
            if error_stream_type(&pairs) {
                if self.error_stream.is_some() {
                    return self.lose();
                }
                self.error_stream = Some(stream);
            }
        }
    }

    /// Looks at the server's next bytes.
    pub(super) fn server_bytes(&mut self, bytes: &[u8]) {
        if self.lost || self.code.is_some() {
            return;
        }
        let error_stream = self.error_stream;
        let on_error_stream = |h: &Head| !h.control && Some(h.kind) == error_stream;
        let Ok(frames) = self.server.feed(bytes, on_error_stream) else {
            return self.lose();
        };
        for (head, payload) in frames {
            if self.status.len() + payload.len() > MAX_READ {
                return self.lose();
            }
            self.status.extend_from_slice(&payload);
            // The kubelet writes the status in one piece, then resets every stream as it
            // closes the connection (no FIN): a complete status is read as soon as it is.
            if serde_json::from_slice::<serde::de::IgnoredAny>(&self.status).is_ok() {
                self.code = exit_code(&self.status);
                self.status = Vec::new();
                self.error_stream = None;
                return;
            }
            if head.flags & FLAG_FIN != 0 {
                return self.lose();
            }
        }
    }

    /// Inflates one header block in the client's context; its raw name/value pairs.
    fn inflate(&mut self, mut block: &[u8]) -> Option<Vec<u8>> {
        let mut raw = Vec::with_capacity(1024);
        loop {
            if raw.len() == raw.capacity() {
                if raw.len() >= MAX_READ {
                    return None;
                }
                raw.reserve(raw.len());
            }
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            let result = self
                .inflate
                .decompress_vec(block, &mut raw, FlushDecompress::Sync);
            let consumed = usize::try_from(self.inflate.total_in() - before_in).ok()?;
            let produced = self.inflate.total_out() - before_out;
            block = block.get(consumed..)?;
            match result {
                // One zlib stream serves the whole connection: its end is not kubectl's.
                Ok(flate2::Status::StreamEnd) => return None,
                // Input left that zlib will not take: it would never end.
                Ok(_) if consumed == 0 && produced == 0 && !block.is_empty() => return None,
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate.set_dictionary(DICTIONARY).ok()?;
                    continue;
                }
                Err(_) => return None,
            }
            if block.is_empty() && raw.len() < raw.capacity() {
                return Some(raw);
            }
        }
    }

    fn lose(&mut self) {
        self.lost = true;
        self.client = Splitter::default();
        self.server = Splitter::default();
        self.status = Vec::new();
    }
}

/// Whether a header block (count, then length-prefixed names and values) has
/// `streamtype: error`.
fn error_stream_type(raw: &[u8]) -> bool {
    let mut at = 4usize;
    let mut next = |raw: &[u8]| -> Option<(usize, usize)> {
        let len = raw.get(at..at + 4)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let start = at + 4;
        let end = start.checked_add(len).filter(|&end| end <= raw.len())?;
        at = end;
        Some((start, end))
    };
    let Some(count) = raw.get(..4) else {
        return false;
    };
    let count = u32::from_be_bytes([count[0], count[1], count[2], count[3]]);
    for _ in 0..count.min(256) {
        let (Some(name), Some(value)) = (next(raw), next(raw)) else {
            return false;
        };
        if &raw[name.0..name.1] == b"streamtype" && &raw[value.0..value.1] == b"error" {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    /// A client: its header compressor and the bytes it has sent.
    struct Client {
        deflate: Compress,
    }

    impl Client {
        fn new() -> Client {
            let mut deflate = Compress::new(Compression::best(), true);
            deflate.set_dictionary(DICTIONARY).unwrap();
            Client { deflate }
        }

        fn syn_stream(&mut self, stream: u32, streamtype: &str) -> Vec<u8> {
            let mut raw = 1u32.to_be_bytes().to_vec();
            for s in ["streamtype", streamtype] {
                raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
                raw.extend_from_slice(s.as_bytes());
            }
            let mut block = Vec::with_capacity(raw.len() + 2048);
            self.deflate
                .compress_vec(&raw, &mut block, FlushCompress::Sync)
                .unwrap();
            let mut payload = stream.to_be_bytes().to_vec();
            payload.extend_from_slice(&[0; 6]);
            payload.extend_from_slice(&block);
            let mut frame = vec![0x80, 3, 0, SYN_STREAM as u8, 0];
            frame.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
            frame.extend_from_slice(&payload);
            frame
        }
    }

    fn data(stream: u32, payload: &[u8], fin: bool) -> Vec<u8> {
        let mut frame = stream.to_be_bytes().to_vec();
        frame.push(if fin { FLAG_FIN } else { 0 });
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(payload);
        frame
    }

    const FAILED_7: &str = r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 7], exit code 7","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}"#;

    /// kubectl's order: error, stdout, stderr; the server writes output, then the status
    /// and the FIN on the error stream.
    fn exec_exiting_7() -> (Vec<u8>, Vec<u8>) {
        let mut client = Client::new();
        let mut up = client.syn_stream(1, "error");
        up.extend(client.syn_stream(3, "stdout"));
        up.extend(client.syn_stream(5, "stderr"));
        let mut down = data(3, &vec![b'x'; 100_000], false);
        down.extend(data(5, b"oops\n", false));
        down.extend(data(1, FAILED_7.as_bytes(), false));
        down.extend(data(1, b"", true));
        (up, down)
    }

    #[test]
    fn the_error_streams_status_gives_the_exit_code_whatever_the_reads() {
        let (up, down) = exec_exiting_7();
        for chunk in [1, 7, 4096, usize::MAX] {
            let mut tap = SpdyExitStatus::default();
            for piece in up.chunks(chunk.min(up.len())) {
                tap.client_bytes(piece);
            }
            for piece in down.chunks(chunk.min(down.len())) {
                tap.server_bytes(piece);
            }
            assert_eq!(tap.code(), Some(7), "reads of {chunk} bytes");
        }
    }

    #[test]
    fn a_status_printed_on_stdout_is_not_the_exit_code() {
        let mut client = Client::new();
        let mut tap = SpdyExitStatus::default();
        tap.client_bytes(&client.syn_stream(1, "error"));
        tap.client_bytes(&client.syn_stream(3, "stdout"));
        tap.server_bytes(&data(3, FAILED_7.as_bytes(), true));
        assert_eq!(tap.code(), None);
        tap.server_bytes(&data(1, br#"{"metadata":{},"status":"Success"}"#, true));
        assert_eq!(tap.code(), Some(0));
    }

    #[test]
    fn a_header_block_that_does_not_inflate_loses_the_stream() {
        let mut tap = SpdyExitStatus::default();
        let mut frame = vec![0x80, 3, 0, SYN_STREAM as u8, 0, 0, 0, 14];
        frame.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
        tap.client_bytes(&frame);
        assert!(tap.lost);
        tap.server_bytes(&data(1, br#"{"metadata":{},"status":"Success"}"#, true));
        assert_eq!(tap.code(), None);
    }

    /// A SYN_STREAM whose header block is a whole zlib stream (ended), then one more byte:
    /// inflating it must end, with the stream lost.
    #[test]
    fn a_header_block_that_ends_the_zlib_stream_loses_it_without_spinning() {
        let mut tap = SpdyExitStatus::default();
        let frame = [
            0x80, 3, 0, 1, 0, 0, 0, 0x13, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x78, 0x9c, 0x03, 0, 0, 0,
            0, 1, 0,
        ];
        tap.client_bytes(&frame);
        assert!(tap.lost);
    }

    /// The user's client opens a second stream typed `error` (here the id of stdout with
    /// the high bit set, which the server refuses) so that stdout would be read as the
    /// status: the stream is lost instead, and no exit code is made up.
    #[test]
    fn a_second_error_stream_or_a_refused_stream_id_loses_the_stream() {
        for forged in [0x8000_0003, 3, 5] {
            let mut client = Client::new();
            let mut tap = SpdyExitStatus::default();
            tap.client_bytes(&client.syn_stream(1, "error"));
            tap.client_bytes(&client.syn_stream(3, "stdout"));
            tap.client_bytes(&client.syn_stream(forged, "error"));
            assert!(tap.lost, "stream {forged:#x}");
            tap.server_bytes(&data(3, br#"{"metadata":{},"status":"Success"}"#, true));
            assert_eq!(tap.code(), None, "stream {forged:#x}");
        }
    }

    /// The kubelet writes the status, then resets the streams (no FIN).
    #[test]
    fn a_status_followed_by_a_reset_gives_the_exit_code() {
        let mut client = Client::new();
        let mut tap = SpdyExitStatus::default();
        tap.client_bytes(&client.syn_stream(1, "error"));
        let (head, tail) = FAILED_7.as_bytes().split_at(40);
        tap.server_bytes(&data(1, head, false));
        assert_eq!(tap.code(), None);
        tap.server_bytes(&data(1, tail, false));
        let mut reset = vec![0x80, 3, 0, 3, 0, 0, 0, 8];
        reset.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 5]);
        tap.server_bytes(&reset);
        assert_eq!(tap.code(), Some(7));
    }

    #[test]
    fn an_oversized_status_loses_the_stream() {
        let mut client = Client::new();
        let mut tap = SpdyExitStatus::default();
        tap.client_bytes(&client.syn_stream(1, "error"));
        tap.server_bytes(&data(1, &vec![b' '; MAX_READ + 1], true));
        assert!(tap.lost);
        assert_eq!(tap.code(), None);
    }
}
