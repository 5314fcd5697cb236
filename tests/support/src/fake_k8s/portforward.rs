//! `pods/portforward` as kubectl speaks it: SPDY/3.1 with `X-Stream-Protocol-Version:
//! portforward.k8s.io` (every kubectl), or the same SPDY tunnelled through a WebSocket with
//! subprotocol `SPDY/3.1+portforward.k8s.io` (kubectl 1.31 and later, which fall back to
//! plain SPDY if the server refuses the WebSocket).
//!
//! For each connection it forwards, the client opens two streams with headers `streamtype`
//! (`error`, then `data`), `port` and `requestid`. The fake's pods have no network of their
//! own: a pod's port is that port on 127.0.0.1, where a test runs its server. A port nothing
//! listens on gets the kubelet's message on the error stream.

use super::api::{RequestInfo, bad_request};
use super::exec::{header_values, switching_to_websocket};
use super::fixture::Pod;
use super::spdy::{self, Frame, SharedWriter};
use super::{Body, State};
use bytes::Bytes;
use http::{Request, Response, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The stream protocol over SPDY.
const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol that tunnels it.
const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Answers an authorized port-forward request: upgrades it and forwards once upgraded.
pub(crate) fn portforward(
    _state: &Arc<State>,
    _info: &RequestInfo,
    pod: &Pod,
    mut req: Request<Incoming>,
) -> Response<Body> {
    if pod.phase != "Running" {
        return bad_request(&format!(
            "unable to upgrade connection: pod {} is not running",
            pod.name
        ));
    }
    let target = format!("{}/{}", pod.namespace, pod.name);
    let upgrade = header_values(req.headers(), header::UPGRADE);
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
        let offered = header_values(req.headers(), header::SEC_WEBSOCKET_PROTOCOL);
        if !offered.iter().any(|p| p == TUNNEL_PROTOCOL) {
            return bad_request(&format!(
                "none of the offered subprotocols {offered:?} is supported; this server \
                 tunnels only {TUNNEL_PROTOCOL:?}"
            ));
        }
        let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
            return bad_request("missing Sec-WebSocket-Key");
        };
        let accept = derive_accept_key(key.as_bytes());
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                serve(spdy::websocket_bytes(ws), target).await;
            }
        });
        return switching_to_websocket(&accept, TUNNEL_PROTOCOL);
    }
    if !upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1")) {
        return bad_request("Upgrade request required");
    }
    let (response, on_upgrade) = spdy::upgrade(&mut req, &[PROTOCOL]);
    let Some(on_upgrade) = on_upgrade else {
        return response;
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            serve(TokioIo::new(upgraded), target).await;
        }
    });
    response
}

/// One forwarded connection's pair of streams, by `requestid`.
#[derive(Default)]
struct Pair {
    error: Option<u32>,
    started: bool,
}

/// Serves one port-forward session until the client closes it.
async fn serve<T>(io: T, target: String)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let writer = Arc::new(tokio::sync::Mutex::new(spdy::Writer::new(write)));
    let mut frames = spdy::read_frames(spdy::Reader::new(read), Arc::clone(&writer));
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    // What the client sends on each data stream, for its connection's task.
    let mut to_pod: HashMap<u32, mpsc::Sender<Option<Bytes>>> = HashMap::new();
    while let Some(frame) = frames.recv().await {
        match frame {
            Frame::Open {
                stream, headers, ..
            } => {
                if writer.lock().await.reply(stream).await.is_err() {
                    break;
                }
                let request = spdy::header(&headers, "requestid").unwrap_or("").to_owned();
                let pair = pairs.entry(request).or_default();
                match spdy::header(&headers, "streamtype") {
                    Some("error") => pair.error = Some(stream),
                    Some("data") if !pair.started => {
                        pair.started = true;
                        let port = spdy::header(&headers, "port").unwrap_or("").to_owned();
                        let (tx, rx) = mpsc::channel(64);
                        to_pod.insert(stream, tx);
                        let forward = Forward {
                            data: stream,
                            error: pair.error,
                            port,
                            target: target.clone(),
                        };
                        tokio::spawn(forward.run(rx, Arc::clone(&writer)));
                    }
                    _ => {
                        let _ = writer
                            .lock()
                            .await
                            .reset(stream, spdy::REFUSED_STREAM)
                            .await;
                    }
                }
            }
            Frame::Data { stream, data, fin } => {
                if let Some(tx) = to_pod.get(&stream) {
                    if !data.is_empty() {
                        let _ = tx.send(Some(data)).await;
                    }
                    if fin {
                        let _ = tx.send(None).await;
                    }
                }
            }
            Frame::Reset { stream } => {
                to_pod.remove(&stream);
            }
            Frame::GoAway => break,
            Frame::Ping(_) | Frame::Ignored => {}
        }
    }
    // Dropping the senders ends every connection's task.
    drop(to_pod);
    let _ = writer.lock().await.go_away(0).await;
}

/// One forwarded connection.
struct Forward {
    data: u32,
    error: Option<u32>,
    port: String,
    target: String,
}

impl Forward {
    async fn run<W>(self, mut from_client: mpsc::Receiver<Option<Bytes>>, writer: SharedWriter<W>)
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let connected = match self.port.parse::<u16>() {
            Ok(port) if port > 0 => TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                .await
                .map_err(|e| e.to_string()),
            _ => Err(format!("invalid port {:?}", self.port)),
        };
        let socket = match connected {
            Ok(socket) => socket,
            Err(why) => {
                let message = format!(
                    "error forwarding port {} to pod {}: failed to connect to localhost:{}: {why}",
                    self.port, self.target, self.port
                );
                self.close(&writer, message.as_bytes()).await;
                return;
            }
        };
        let (mut from_pod, mut to_pod) = socket.into_split();
        let upload = async {
            while let Some(Some(data)) = from_client.recv().await {
                if to_pod.write_all(&data).await.is_err() {
                    break;
                }
            }
            let _ = to_pod.shutdown().await;
        };
        let download = async {
            let mut buf = vec![0u8; 32 << 10];
            while let Ok(n @ 1..) = from_pod.read(&mut buf).await {
                if writer
                    .lock()
                    .await
                    .data(self.data, &buf[..n], false)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        };
        // The pod closing its side ends the connection, as for the kubelet.
        tokio::select! {
            () = download => {},
            () = async { upload.await; std::future::pending::<()>().await } => {},
        }
        self.close(&writer, &[]).await;
    }

    /// Ends both streams, with `message` on the error stream if there is one.
    async fn close<W: AsyncWrite + Unpin>(&self, writer: &SharedWriter<W>, message: &[u8]) {
        let mut w = writer.lock().await;
        if let Some(error) = self.error {
            let _ = w.data(error, message, true).await;
        }
        let _ = w.data(self.data, &[], true).await;
    }
}
