//! SPDY/3.1 framing, the server's side, as kubectl's client (moby/spdystream) speaks it: for
//! exec before kubectl 1.30, and for port-forward in every version (1.31 and later tunnel it
//! through a WebSocket, one binary message per write).
//!
//! Control frames: `SYN_STREAM` opens a stream with a header block (the client's streams
//! carry `streamtype`, and for port-forward `port` and `requestid`), `SYN_REPLY` accepts it,
//! `RST_STREAM` cancels it, `PING` is echoed, `GOAWAY` ends the session. Data frames carry a
//! stream's bytes; the FIN flag half-closes it. Header blocks are zlib streams with the
//! SPDY/3 dictionary, one compression context per direction for the session's life, each
//! block ending in a sync flush. `WINDOW_UPDATE` and `SETTINGS` are read and ignored:
//! spdystream keeps no flow-control windows either.

use super::Body;
use super::api::status;
use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// The dictionary every SPDY/3 header block is compressed against (SPDY/3 draft, 2.6.10.1):
/// 65 length-prefixed header names and values, then status lines, dates and media types.
static DICTIONARY: &[u8; 1423] = include_bytes!("../../../../src/broker/proxy/spdy-dictionary.bin");

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const FLAG_FIN: u8 = 0x01;
/// The most a data frame may carry (its length is 24 bits).
const MAX_DATA: usize = (1 << 24) - 1;
/// The most a header block may inflate to: kubectl's are a few dozen bytes.
const MAX_HEADERS: usize = 1 << 20;
/// `RST_STREAM` status: the stream is refused.
pub(crate) const REFUSED_STREAM: u32 = 3;
/// `RST_STREAM` status: the stream is cancelled (how spdystream's `Reset` ends one).
pub(crate) const CANCEL: u32 = 5;

/// One frame from the client, as the session needs it.
#[derive(Debug, PartialEq)]
pub(crate) enum Frame {
    /// `SYN_STREAM`: the client opened a stream.
    Open {
        stream: u32,
        headers: Vec<(String, String)>,
        fin: bool,
    },
    /// Data for a stream; `fin`: the client will send no more on it.
    Data { stream: u32, data: Bytes, fin: bool },
    /// `RST_STREAM`: the client abandoned a stream.
    Reset { stream: u32 },
    /// `PING`, to be echoed.
    Ping(u32),
    /// `GOAWAY`: the client is closing the session.
    GoAway,
    /// A frame the fake has nothing to do with (`SETTINGS`, `WINDOW_UPDATE`, ...).
    Ignored,
}

/// The value of a stream header, by (lowercase) name.
pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("SPDY: {what}"))
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Reads the client's frames.
pub(crate) struct Reader<R> {
    io: R,
    inflate: Decompress,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub(crate) fn new(io: R) -> Reader<R> {
        Reader {
            io,
            inflate: Decompress::new(true),
        }
    }

    /// The next frame; `None` when the client closed the connection between frames.
    pub(crate) async fn next(&mut self) -> io::Result<Option<Frame>> {
        let mut head = [0u8; 8];
        match self.io.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let flags = head[4];
        let fin = flags & FLAG_FIN != 0;
        let len = be32(&[0, head[5], head[6], head[7]]) as usize;
        let mut payload = vec![0u8; len];
        self.io.read_exact(&mut payload).await?;
        if head[0] & 0x80 == 0 {
            let stream = be32(&head[..4]) & 0x7fff_ffff;
            let data = Bytes::from(payload);
            return Ok(Some(Frame::Data { stream, data, fin }));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(invalid(format!("version {version}, not 3")));
        }
        let short = |need: usize| {
            if len < need {
                Err(invalid(format!(
                    "control frame of {len} bytes, need {need}"
                )))
            } else {
                Ok(())
            }
        };
        let frame = match u16::from_be_bytes([head[2], head[3]]) {
            SYN_STREAM => {
                short(10)?;
                let stream = be32(&payload) & 0x7fff_ffff;
                let headers = self.headers(&payload[10..])?;
                Frame::Open {
                    stream,
                    headers,
                    fin,
                }
            }
            // A client sends no SYN_REPLY, but its block still advances the zlib context.
            SYN_REPLY | HEADERS => {
                short(4)?;
                self.headers(&payload[4..])?;
                Frame::Ignored
            }
            RST_STREAM => {
                short(8)?;
                Frame::Reset {
                    stream: be32(&payload) & 0x7fff_ffff,
                }
            }
            PING => {
                short(4)?;
                Frame::Ping(be32(&payload))
            }
            GOAWAY => Frame::GoAway,
            _ => Frame::Ignored,
        };
        Ok(Some(frame))
    }

    /// Inflates one header block and reads its name/value pairs.
    fn headers(&mut self, mut block: &[u8]) -> io::Result<Vec<(String, String)>> {
        let mut raw = Vec::with_capacity(256);
        loop {
            if raw.len() == raw.capacity() {
                if raw.len() >= MAX_HEADERS {
                    return Err(invalid("header block too large"));
                }
                raw.reserve(raw.len());
            }
            let before = self.inflate.total_in();
            let result = self
                .inflate
                .decompress_vec(block, &mut raw, FlushDecompress::Sync);
            let consumed = usize::try_from(self.inflate.total_in() - before)
                .map_err(|_| invalid("header block"))?;
            block = &block[consumed..];
            match result {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| invalid(format!("dictionary: {e}")))?;
                    continue;
                }
                Err(e) => return Err(invalid(format!("header block: {e}"))),
            }
            if block.is_empty() && raw.len() < raw.capacity() {
                break;
            }
        }
        parse_header_block(&raw)
    }
}

/// A header block: a count, then each name and value with a 32-bit length.
fn parse_header_block(raw: &[u8]) -> io::Result<Vec<(String, String)>> {
    let mut rest = raw;
    let mut take = |n: usize| -> io::Result<&[u8]> {
        if rest.len() < n {
            return Err(invalid("truncated header block"));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let count = be32(take(4)?) as usize;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let mut string = || -> io::Result<String> {
            let len = be32(take(4)?) as usize;
            String::from_utf8(take(len)?.to_vec()).map_err(|_| invalid("header is not UTF-8"))
        };
        let name = string()?;
        let value = string()?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// Writes the server's frames.
pub(crate) struct Writer<W> {
    io: W,
    deflate: Compress,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub(crate) fn new(io: W) -> Writer<W> {
        let mut deflate = Compress::new(Compression::best(), true);
        deflate
            .set_dictionary(DICTIONARY)
            .expect("a fresh zlib stream takes a dictionary");
        Writer { io, deflate }
    }

    /// `SYN_REPLY` with no headers: the stream is accepted.
    pub(crate) async fn reply(&mut self, stream: u32) -> io::Result<()> {
        let block = self.compress(&[])?;
        let mut payload = stream.to_be_bytes().to_vec();
        payload.extend_from_slice(&block);
        self.control(SYN_REPLY, 0, &payload).await
    }

    /// Data on a stream; `fin` half-closes it (an empty frame may carry just the FIN).
    pub(crate) async fn data(&mut self, stream: u32, data: &[u8], fin: bool) -> io::Result<()> {
        let mut chunks = data.chunks(MAX_DATA).peekable();
        if chunks.peek().is_none() {
            return self.data_frame(stream, &[], fin).await;
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            self.data_frame(stream, chunk, fin && last).await?;
        }
        Ok(())
    }

    pub(crate) async fn ping(&mut self, id: u32) -> io::Result<()> {
        self.control(PING, 0, &id.to_be_bytes()).await
    }

    pub(crate) async fn reset(&mut self, stream: u32, status: u32) -> io::Result<()> {
        let mut payload = stream.to_be_bytes().to_vec();
        payload.extend_from_slice(&status.to_be_bytes());
        self.control(RST_STREAM, 0, &payload).await
    }

    /// `GOAWAY` (status OK) and the end of the server's side of the connection.
    pub(crate) async fn go_away(&mut self, last_stream: u32) -> io::Result<()> {
        let mut payload = last_stream.to_be_bytes().to_vec();
        payload.extend_from_slice(&0u32.to_be_bytes());
        self.control(GOAWAY, 0, &payload).await?;
        self.io.shutdown().await
    }

    async fn data_frame(&mut self, stream: u32, data: &[u8], fin: bool) -> io::Result<()> {
        let mut frame = Vec::with_capacity(8 + data.len());
        frame.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        frame.push(if fin { FLAG_FIN } else { 0 });
        frame.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(data);
        self.io.write_all(&frame).await?;
        self.io.flush().await
    }

    async fn control(&mut self, kind: u16, flags: u8, payload: &[u8]) -> io::Result<()> {
        let mut frame = Vec::with_capacity(8 + payload.len());
        frame.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        frame.extend_from_slice(&kind.to_be_bytes());
        frame.push(flags);
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(payload);
        self.io.write_all(&frame).await?;
        self.io.flush().await
    }

    /// Deflates one header block, ending in a sync flush so the peer can read all of it.
    fn compress(&mut self, headers: &[(&str, &str)]) -> io::Result<Vec<u8>> {
        let mut raw = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            for s in [name, value] {
                raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
                raw.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = raw.as_slice();
        loop {
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| invalid(format!("deflate: {e}")))?;
            let consumed = usize::try_from(self.deflate.total_in() - before)
                .map_err(|_| invalid("deflate"))?;
            input = &input[consumed..];
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

/// The server's writer, shared by the tasks that send on the session's streams.
pub(crate) type SharedWriter<W> = Arc<Mutex<Writer<W>>>;

/// Reads the client's frames in a task of their own (a read cut short by `select!` would
/// lose bytes) and answers its PINGs; the rest arrive on the channel, then `None` at the
/// end of the connection or on a broken frame.
pub(crate) fn read_frames<R, W>(
    mut reader: Reader<R>,
    writer: SharedWriter<W>,
) -> mpsc::Receiver<Frame>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Ok(Some(frame)) = reader.next().await {
            if super::trace_enabled() {
                eprintln!("fake-k8s: spdy frame {frame:?}");
            }
            match frame {
                Frame::Ping(id) => {
                    if writer.lock().await.ping(id).await.is_err() {
                        return;
                    }
                }
                Frame::Ignored => {}
                frame => {
                    if tx.send(frame).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Accepts a SPDY/3.1 upgrade whose `X-Stream-Protocol-Version` names one of `supported`
/// (the client's order wins, as `httpstream.Handshake` has it): the 101 to send and the
/// connection once upgraded. A client that shares no protocol gets the API server's 403
/// and no connection.
pub(crate) fn upgrade(
    req: &mut Request<Incoming>,
    supported: &[&'static str],
) -> (Response<Body>, Option<OnUpgrade>) {
    let offered: Vec<String> = req
        .headers()
        .get_all(STREAM_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_owned())
        .collect();
    let Some(protocol) = offered
        .iter()
        .find_map(|o| supported.iter().find(|s| **s == o.as_str()))
    else {
        let refused = status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, \
                 server supports {supported:?}"
            ),
            None,
        );
        return (refused, None);
    };
    let on_upgrade = hyper::upgrade::on(req);
    let mut response = Response::new(Empty::<Bytes>::new().boxed_unsync());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(STREAM_PROTOCOL, HeaderValue::from_static(protocol));
    (response, Some(on_upgrade))
}

/// The header a SPDY client lists its stream protocols in.
const STREAM_PROTOCOL: &str = "x-stream-protocol-version";

/// A WebSocket that tunnels SPDY (kubectl 1.31+ port-forward, subprotocol
/// `SPDY/3.1+portforward.k8s.io`) as a byte stream: each binary message is the next bytes;
/// each write goes out as one binary message.
pub(crate) fn websocket_bytes<S>(ws: WebSocketStream<S>) -> DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(64 << 10);
    let (mut sink, mut messages) = ws.split();
    let (mut from_spdy, mut to_spdy) = tokio::io::split(theirs);
    tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            match message {
                Message::Binary(data) if to_spdy.write_all(&data).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = to_spdy.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 << 10];
        while let Ok(n @ 1..) = from_spdy.read(&mut buf).await {
            let data = Bytes::copy_from_slice(&buf[..n]);
            if sink.send(Message::Binary(data)).await.is_err() {
                return;
            }
        }
        let _ = sink.send(Message::Close(None)).await;
        let _ = sink.close().await;
    });
    ours
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's SYN_STREAM, made with this module's own compressor (the client's
    /// direction uses the same dictionary and framing).
    async fn syn_stream(
        writer: &mut Writer<Vec<u8>>,
        stream: u32,
        headers: &[(&str, &str)],
    ) -> Vec<u8> {
        let block = writer.compress(headers).unwrap();
        let mut payload = stream.to_be_bytes().to_vec();
        payload.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        payload.extend_from_slice(&block);
        writer.control(SYN_STREAM, 0, &payload).await.unwrap();
        std::mem::take(&mut writer.io)
    }

    #[tokio::test]
    async fn header_blocks_share_one_zlib_context_across_frames() {
        let mut client = Writer::new(Vec::new());
        let mut wire = syn_stream(&mut client, 1, &[("streamtype", "error")]).await;
        wire.extend(syn_stream(&mut client, 3, &[("streamtype", "stdout"), ("port", "80")]).await);
        client.data(3, b"hi", true).await.unwrap();
        wire.extend(std::mem::take(&mut client.io));
        let mut reader = Reader::new(wire.as_slice());
        let first = reader.next().await.unwrap().unwrap();
        assert_eq!(
            first,
            Frame::Open {
                stream: 1,
                headers: vec![("streamtype".into(), "error".into())],
                fin: false
            }
        );
        let Some(Frame::Open {
            stream, headers, ..
        }) = reader.next().await.unwrap()
        else {
            panic!("second SYN_STREAM");
        };
        assert_eq!(stream, 3);
        assert_eq!(header(&headers, "port"), Some("80"));
        assert_eq!(
            reader.next().await.unwrap(),
            Some(Frame::Data {
                stream: 3,
                data: Bytes::from_static(b"hi"),
                fin: true
            })
        );
        assert_eq!(reader.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_frame_of_another_version_is_an_error() {
        let wire = [0x80, 2, 0, 1, 0, 0, 0, 0];
        let err = Reader::new(&wire[..]).next().await.unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");
    }

    #[tokio::test]
    async fn a_truncated_header_block_is_an_error() {
        let mut client = Writer::new(Vec::new());
        let block = client.compress(&[("streamtype", "error")]).unwrap();
        let mut payload = 1u32.to_be_bytes().to_vec();
        payload.extend_from_slice(&[0; 6]);
        payload.extend_from_slice(&block[..block.len() / 2]);
        client.control(SYN_STREAM, 0, &payload).await.unwrap();
        let wire = std::mem::take(&mut client.io);
        let err = Reader::new(wire.as_slice()).next().await.unwrap_err();
        assert!(err.to_string().contains("SPDY"), "{err}");
    }
}
