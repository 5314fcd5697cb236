//! `pods/exec` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`): the command runs
//! as a local process (in a PTY when `tty=true`), with the Kubernetes channel protocol:
//! stdin 0, stdout 1, stderr 2, status 3 (a v1 `Status`), resize 4 (`{"Width","Height"}`),
//! and, in v5, close 255 (`[255, 0]`: stdin reached EOF).
//!
//! Over SPDY/3.1 (kubectl before 1.30), with `X-Stream-Protocol-Version: v4.channel.k8s.io`,
//! the client opens one stream for each of error, stdin, stdout, stderr and resize (by its
//! `streamtype` header) and the same bytes flow on them; the status goes on the error
//! stream, then every stream is reset (`RST_STREAM`, no FIN), as the kubelet's closing
//! connection does.

use super::api::{RequestInfo, bad_request, pick_container};
use super::fixture::Pod;
use super::spdy::{self, Frame};
use super::{Body, State};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

/// Subprotocols served, most preferred first.
pub const EXEC_PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The stream protocol served over SPDY (`X-Stream-Protocol-Version`).
const SPDY_PROTOCOLS: [&str; 1] = ["v4.channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// How long output may keep flowing after the command exited (background processes that hold
/// the terminal or pipes open) before the status is sent anyway.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What the exec request asks for.
struct ExecOptions {
    command: Vec<String>,
    container: String,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

/// The comma-separated values of every `name` header.
pub(crate) fn header_values(headers: &HeaderMap, name: header::HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Answers an authorized exec request: validates it, upgrades to WebSocket and runs the
/// command once the upgrade completes.
pub(crate) fn exec(
    state: &Arc<State>,
    info: &RequestInfo,
    pod: &Pod,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let headers = req.headers();
    let container = match pick_container(pod, info.param("container")).map_err(|m| bad_request(&m))
    {
        Ok(c) => c.to_owned(),
        Err(response) => return response,
    };
    let options = ExecOptions {
        command: info.params("command"),
        container,
        stdin: info.flag("stdin"),
        stdout: info.flag("stdout"),
        tty: info.flag("tty"),
        // With a TTY, stderr is the terminal: the kubelet drops the stream.
        stderr: info.flag("stderr") && !info.flag("tty"),
    };
    if options.command.is_empty() {
        return bad_request("you must specify at least one command for the container");
    }
    if !(options.stdin || options.stdout || info.flag("stderr")) {
        return bad_request("you must specify at least 1 of stdin, stdout, stderr");
    }
    if pod.phase != "Running" {
        return bad_request(&format!(
            "unable to upgrade connection: container not found (\"{}\")",
            options.container
        ));
    }
    if pod
        .init_containers
        .iter()
        .any(|c| c.name() == options.container)
    {
        return bad_request(&format!(
            "unable to upgrade connection: container not found (\"{}\")",
            options.container
        ));
    }
    // The request is validated before its protocol, as the API server does: a client that
    // falls back from WebSocket to SPDY on a 400 sees the same error twice.
    let upgrade = header_values(headers, header::UPGRADE);
    let context = Context {
        namespace: pod.namespace.clone(),
        pod: pod.name.clone(),
        cluster: state.cluster.clone(),
    };
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1")) {
        let (response, on_upgrade) = spdy::upgrade(&mut req, &SPDY_PROTOCOLS);
        let Some(on_upgrade) = on_upgrade else {
            return response;
        };
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                run_spdy(TokioIo::new(upgraded), options, context).await;
            }
        });
        return response;
    }
    if !upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
        return bad_request("Upgrade request required");
    }
    let offered = header_values(headers, header::SEC_WEBSOCKET_PROTOCOL);
    let Some(protocol) = EXEC_PROTOCOLS
        .iter()
        .find(|p| offered.iter().any(|o| o == *p))
    else {
        return bad_request(&format!(
            "none of the offered subprotocols {offered:?} is supported; this server speaks {EXEC_PROTOCOLS:?}"
        ));
    };
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return bad_request("missing Sec-WebSocket-Key");
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return bad_request("Sec-WebSocket-Version must be 13");
    }
    let accept = derive_accept_key(key.as_bytes());
    let v5 = *protocol == EXEC_PROTOCOLS[0];
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        run(ws, options, context, v5).await;
    });
    switching_to_websocket(&accept, protocol)
}

/// The 101 that accepts a WebSocket with `protocol`.
pub(crate) fn switching_to_websocket(accept: &str, protocol: &'static str) -> Response<Body> {
    let mut response = Response::new(Empty::<Bytes>::new().boxed_unsync());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(accept).expect("base64 is a valid header"),
    );
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    response
}

/// Where the command "runs", passed to it as environment variables.
struct Context {
    namespace: String,
    pod: String,
    cluster: String,
}

/// What the connection loop tells the stdin writer.
enum Input {
    Data(Bytes),
    Resize { rows: u16, cols: u16 },
    Eof,
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(bytes.into())
}

fn base_command<C: CommandLike>(mut command: C, options: &ExecOptions, context: &Context) -> C {
    command = command.env_clear();
    command = command.env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    command = command.env("HOSTNAME", &context.pod);
    command = command.env("HOME", std::env::temp_dir().to_string_lossy().as_ref());
    command = command.env("ROLESH_FAKE_CLUSTER", &context.cluster);
    command = command.env("ROLESH_FAKE_NAMESPACE", &context.namespace);
    command = command.env("ROLESH_FAKE_POD", &context.pod);
    command = command.env("ROLESH_FAKE_CONTAINER", &options.container);
    if options.tty {
        command = command.env("TERM", "xterm");
    }
    command.current_dir("/")
}

/// The builder methods shared by tokio's and pty-process's commands.
trait CommandLike: Sized {
    fn env_clear(self) -> Self;
    fn env(self, key: &str, value: &str) -> Self;
    fn current_dir(self, dir: &str) -> Self;
}

impl CommandLike for tokio::process::Command {
    fn env_clear(mut self) -> Self {
        tokio::process::Command::env_clear(&mut self);
        self
    }
    fn env(mut self, key: &str, value: &str) -> Self {
        tokio::process::Command::env(&mut self, key, value);
        self
    }
    fn current_dir(mut self, dir: &str) -> Self {
        tokio::process::Command::current_dir(&mut self, dir);
        self
    }
}

impl CommandLike for pty_process::Command {
    fn env_clear(self) -> Self {
        pty_process::Command::env_clear(self)
    }
    fn env(self, key: &str, value: &str) -> Self {
        pty_process::Command::env(self, key, value)
    }
    fn current_dir(self, dir: &str) -> Self {
        pty_process::Command::current_dir(self, dir)
    }
}

/// A started command: its process, the channel to its stdin writer, and its output.
struct Running {
    child: tokio::process::Child,
    input: mpsc::Sender<Input>,
    output: mpsc::Receiver<(u8, Bytes)>,
}

fn spawn(options: &ExecOptions, context: &Context) -> std::io::Result<Running> {
    let (out_tx, output) = mpsc::channel(64);
    let (input, in_rx) = mpsc::channel(64);
    let program = &options.command[0];
    let args = &options.command[1..];
    if options.tty {
        let (pty, pts) = pty_process::open().map_err(std::io::Error::other)?;
        pty.resize(pty_process::Size::new(24, 80))
            .map_err(std::io::Error::other)?;
        let command = base_command(
            pty_process::Command::new(program).args(args),
            options,
            context,
        )
        .kill_on_drop(true);
        let child = command.spawn(pts).map_err(|e| match e {
            pty_process::Error::Io(io) => io,
            other => std::io::Error::other(other),
        })?;
        let (reader, writer) = pty.into_split();
        tokio::spawn(pump(reader, STDOUT, out_tx));
        tokio::spawn(write_pty(writer, in_rx));
        return Ok(Running {
            child,
            input,
            output,
        });
    }
    let mut command = base_command(tokio::process::Command::new(program), options, context);
    command
        .args(args)
        .kill_on_drop(true)
        .stdin(if options.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if options.stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(if options.stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = command.spawn()?;
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(pump(stdout, STDOUT, out_tx.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(pump(stderr, STDERR, out_tx.clone()));
    }
    drop(out_tx);
    tokio::spawn(write_pipe(child.stdin.take(), in_rx));
    Ok(Running {
        child,
        input,
        output,
    })
}

/// Copies a stream to the output channel until EOF (EIO on a PTY whose processes are gone).
async fn pump(mut reader: impl AsyncRead + Unpin, channel: u8, tx: mpsc::Sender<(u8, Bytes)>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx
                    .send((channel, Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

async fn write_pipe(mut stdin: Option<impl AsyncWrite + Unpin>, mut rx: mpsc::Receiver<Input>) {
    while let Some(input) = rx.recv().await {
        match input {
            Input::Data(data) => {
                if let Some(pipe) = stdin.as_mut()
                    && pipe.write_all(&data).await.is_err()
                {
                    stdin = None;
                }
            }
            // No terminal to resize.
            Input::Resize { .. } => {}
            // Closing the pipe is the command's EOF.
            Input::Eof => stdin = None,
        }
    }
}

async fn write_pty(mut pty: pty_process::OwnedWritePty, mut rx: mpsc::Receiver<Input>) {
    while let Some(input) = rx.recv().await {
        match input {
            Input::Data(data) => {
                if pty.write_all(&data).await.is_err() {
                    return;
                }
            }
            Input::Resize { rows, cols } => {
                let _ = pty.resize(pty_process::Size::new(rows, cols));
            }
            // A terminal's EOF is ^D.
            Input::Eof => {
                let _ = pty.write_all(&[4]).await;
            }
        }
    }
}

fn normal_close() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }
}

/// The v1 `Status` the status channel carries when the command ends.
fn exit_status(command: &[String], status: ExitStatus) -> Value {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// What the runtime reports when the command cannot be started.
fn start_failure(command: &[String], err: &std::io::Error) -> Value {
    let what = if err.kind() == std::io::ErrorKind::NotFound {
        format!(
            "exec: \"{}\": executable file not found in $PATH",
            command[0]
        )
    } else {
        format!("exec: \"{}\": {err}", command[0])
    };
    let message = format!(
        "Internal error occurred: error executing command in container: failed to exec in \
         container: failed to start exec: OCI runtime exec failed: exec failed: unable to start \
         container process: {what}: unknown"
    );
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    })
}

/// Serves one exec connection until the command ends or the client goes away.
async fn run(mut ws: Ws, options: ExecOptions, context: Context, v5: bool) {
    let mut running = match spawn(&options, &context) {
        Ok(running) => running,
        Err(err) => {
            let body = start_failure(&options.command, &err).to_string();
            let _ = ws.send(frame(STATUS, body.as_bytes())).await;
            let _ = ws.close(Some(normal_close())).await;
            return;
        }
    };
    let mut exited: Option<ExitStatus> = None;
    let mut output_done = false;
    let mut client_gone = false;
    let drain_deadline = tokio::time::sleep(Duration::from_secs(u64::MAX / 4));
    tokio::pin!(drain_deadline);
    while !(exited.is_some() && output_done) {
        tokio::select! {
            message = ws.next(), if !client_gone => match message {
                Some(Ok(Message::Binary(data))) if !data.is_empty() => {
                    if super::trace_enabled() {
                        eprintln!("fake-k8s: exec {}/{}: frame channel {} ({} bytes) {:?}",
                            context.namespace, context.pod, data[0], data.len() - 1,
                            String::from_utf8_lossy(&data[1..data.len().min(64)]));
                    }
                    let payload = data.slice(1..);
                    let input = match data[0] {
                        STDIN if options.stdin => Some(Input::Data(payload)),
                        RESIZE => serde_json::from_slice::<Value>(&payload).ok().map(|size| Input::Resize {
                            cols: size["Width"].as_u64().unwrap_or(80).min(u64::from(u16::MAX)) as u16,
                            rows: size["Height"].as_u64().unwrap_or(24).min(u64::from(u16::MAX)) as u16,
                        }),
                        CLOSE if v5 && payload.first() == Some(&STDIN) => Some(Input::Eof),
                        _ => None,
                    };
                    if let Some(input) = input {
                        let _ = running.input.send(input).await;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    // The client is gone: nothing will read the result.
                    client_gone = true;
                    let _ = running.child.start_kill();
                }
                Some(Ok(_)) => {}
            },
            chunk = running.output.recv(), if !output_done => match chunk {
                Some((channel, data)) => {
                    if !client_gone && ws.send(frame(channel, &data)).await.is_err() {
                        client_gone = true;
                        let _ = running.child.start_kill();
                    }
                }
                None => output_done = true,
            },
            status = running.child.wait(), if exited.is_none() => {
                let status = status.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(1 << 8));
                exited = Some(status);
                drain_deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_GRACE);
            },
            () = &mut drain_deadline, if exited.is_some() => output_done = true,
        }
    }
    if client_gone {
        return;
    }
    if let Some(status) = exited {
        let body = exit_status(&options.command, status).to_string();
        let _ = ws.send(frame(STATUS, body.as_bytes())).await;
    }
    let _ = ws.close(Some(normal_close())).await;
    // Let the close handshake finish (bounded), so the client sees a clean end.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// How long the client has to open the streams an exec needs (the kubelet's default).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The SPDY streams of one exec, by their `streamtype`.
#[derive(Default)]
struct ExecStreams {
    error: Option<u32>,
    stdin: Option<u32>,
    stdout: Option<u32>,
    stderr: Option<u32>,
    resize: Option<u32>,
}

impl ExecStreams {
    fn assign(&mut self, kind: Option<&str>, stream: u32) {
        let slot = match kind {
            Some("error") => &mut self.error,
            Some("stdin") => &mut self.stdin,
            Some("stdout") => &mut self.stdout,
            Some("stderr") => &mut self.stderr,
            Some("resize") => &mut self.resize,
            _ => return,
        };
        *slot = Some(stream);
    }

    /// Whether every stream the request asked for is open (the resize stream is optional,
    /// as for the kubelet).
    fn complete(&self, options: &ExecOptions) -> bool {
        self.error.is_some()
            && (!options.stdin || self.stdin.is_some())
            && (!options.stdout || self.stdout.is_some())
            && (!options.stderr || self.stderr.is_some())
    }

    /// Every stream the client opened.
    fn all(&self) -> impl Iterator<Item = u32> + '_ {
        [
            self.error,
            self.stdin,
            self.stdout,
            self.stderr,
            self.resize,
        ]
        .into_iter()
        .flatten()
    }
}

/// Resize messages: JSON objects one after another (`{"Width":80,"Height":24}`).
fn resizes(data: &[u8]) -> Vec<Input> {
    serde_json::Deserializer::from_slice(data)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .map(|size| Input::Resize {
            cols: size["Width"]
                .as_u64()
                .unwrap_or(80)
                .min(u64::from(u16::MAX)) as u16,
            rows: size["Height"]
                .as_u64()
                .unwrap_or(24)
                .min(u64::from(u16::MAX)) as u16,
        })
        .collect()
}

/// Serves one exec over SPDY until the command ends or the client goes away.
async fn run_spdy<T>(io: T, options: ExecOptions, context: Context)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let writer = Arc::new(tokio::sync::Mutex::new(spdy::Writer::new(write)));
    let mut frames = spdy::read_frames(spdy::Reader::new(read), Arc::clone(&writer));
    let mut streams = ExecStreams::default();
    let opened = tokio::time::timeout(STREAM_CREATION_TIMEOUT, async {
        while !streams.complete(&options) {
            match frames.recv().await {
                Some(Frame::Open {
                    stream, headers, ..
                }) => {
                    writer.lock().await.reply(stream).await.ok()?;
                    streams.assign(spdy::header(&headers, "streamtype"), stream);
                }
                Some(Frame::GoAway) | None => return None,
                Some(_) => {}
            }
        }
        Some(())
    })
    .await;
    if !matches!(opened, Ok(Some(()))) {
        return;
    }
    let status = match spawn(&options, &context) {
        Ok(running) => relay_spdy(running, &streams, &mut frames, &writer, &options.command).await,
        Err(err) => Some(start_failure(&options.command, &err)),
    };
    let Some(status) = status else {
        return;
    };
    let mut w = writer.lock().await;
    if let Some(error) = streams.error {
        let _ = w.data(error, status.to_string().as_bytes(), false).await;
    }
    // As the kubelet closes its side: every stream reset, none finished with a FIN.
    for stream in streams.all() {
        let _ = w.reset(stream, spdy::CANCEL).await;
    }
    drop(w);
    // The client closes the connection once it has read the status (bounded).
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while !matches!(frames.recv().await, None | Some(Frame::GoAway)) {}
    })
    .await;
    let _ = writer.lock().await.go_away(0).await;
}

/// Moves the command's bytes to and from its streams; its status, or `None` when the client
/// went away (nothing will read it).
async fn relay_spdy<W>(
    mut running: Running,
    streams: &ExecStreams,
    frames: &mut mpsc::Receiver<Frame>,
    writer: &spdy::SharedWriter<W>,
    command: &[String],
) -> Option<Value>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut exited: Option<ExitStatus> = None;
    let mut output_done = false;
    let drain_deadline = tokio::time::sleep(Duration::from_secs(u64::MAX / 4));
    tokio::pin!(drain_deadline);
    while !(exited.is_some() && output_done) {
        tokio::select! {
            frame = frames.recv() => {
                let inputs = match frame {
                    Some(Frame::Data { stream, data, fin }) if Some(stream) == streams.stdin => {
                        let mut inputs = Vec::new();
                        if !data.is_empty() {
                            inputs.push(Input::Data(data));
                        }
                        if fin {
                            inputs.push(Input::Eof);
                        }
                        inputs
                    }
                    Some(Frame::Data { stream, data, .. }) if Some(stream) == streams.resize => {
                        resizes(&data)
                    }
                    Some(Frame::Open { stream, .. }) => {
                        // No stream is opened after the exec started: refuse it.
                        let _ = writer.lock().await.reset(stream, spdy::REFUSED_STREAM).await;
                        Vec::new()
                    }
                    Some(Frame::GoAway) | None => {
                        let _ = running.child.start_kill();
                        return None;
                    }
                    Some(_) => Vec::new(),
                };
                for input in inputs {
                    let _ = running.input.send(input).await;
                }
            },
            chunk = running.output.recv(), if !output_done => match chunk {
                Some((channel, data)) => {
                    let stream = if channel == STDERR { streams.stderr } else { streams.stdout };
                    if let Some(stream) = stream
                        && writer.lock().await.data(stream, &data, false).await.is_err()
                    {
                        let _ = running.child.start_kill();
                        return None;
                    }
                }
                None => output_done = true,
            },
            status = running.child.wait(), if exited.is_none() => {
                let status = status.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(1 << 8));
                exited = Some(status);
                drain_deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_GRACE);
            },
            () = &mut drain_deadline, if exited.is_some() => output_done = true,
        }
    }
    exited.map(|status| exit_status(command, status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exit_statuses_become_kubernetes_statuses() {
        let command = vec!["sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()];
        assert_eq!(
            exit_status(&command, ExitStatus::from_raw(0)),
            json!({"metadata": {}, "status": "Success"})
        );
        let failed = exit_status(&command, ExitStatus::from_raw(3 << 8));
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(
            failed["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        assert_eq!(
            failed["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
        // Killed by SIGKILL: 128 + 9, as container runtimes report it.
        let killed = exit_status(&command, ExitStatus::from_raw(9));
        assert_eq!(killed["details"]["causes"][0]["message"], "137");
    }
}
