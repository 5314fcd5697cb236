//! One session, from the login shell's `open` to its end: `rolesh session-monitor`, which
//! the monitor daemon starts (as root) for each connection, with the connection as its
//! standard input.
//!
//! In order: who asks (SO_PEERCRED), the user's mapping from the broker (`session_start`),
//! what to run (the mode, or the `-c` command if it is allowed), the session's cgroup and
//! its record for the broker, a private `/tmp`, the outer terminal taken over, the
//! recording, then the user's program — `rolesh session-init`, as the user, in the cgroup,
//! with `no_new_privs` — on a pty of the monitor's or on pipes. Then it watches: the
//! program's exit, the connection (the terminal hung up, the pipes closed), the user's own
//! `rolesh` (gone or stopped), the idle clock and `max_duration`. Whatever ends it, the
//! record says so first (the broker stops answering the session), then every process of
//! the session gets a hangup and, after the grace period, `cgroup.kill`.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::AsyncBufReadExt;

use super::cgroup::{Cgroups, SessionCgroup};
use super::outer::Outer;
use super::recording::{self, Recording};
use super::relay::{self, Activity, PtyEnd, SharedTap};
use crate::client;
use crate::config::{Mode, SessionSettings};
use crate::error::{EXIT_RUNTIME, Failure};
use crate::live::{self, LiveSession};
use crate::mapping::Account;
use crate::protocol::monitor::{MAX_MONITOR_LINE, MonitorAnswer, MonitorRequest, Open};
use crate::protocol::{Ack, RecordStart, Request, SessionStart, Whoami};
use crate::session::command::{self, Plan};
use crate::session::{kubeconfig, tools};
use crate::session_id::SessionId;
use crate::system::{self, SessionIds};

/// How long a hung-up session has to exit before `cgroup.kill`.
const GRACE: Duration = Duration::from_secs(2);
/// How often the idle clock and the user's `rolesh` are looked at.
const TICK: Duration = Duration::from_secs(1);
/// How long the login shell has to send its request.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a session ended (the `logout` event's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The session's program exited.
    Exited,
    /// The connection went away: the terminal hung up, or sshd closed the pipes.
    Hangup,
    /// The user's own `rolesh` (sshd's child) died or was stopped.
    ClientGone,
    Idle,
    MaxDuration,
    /// The session must be recorded and its recording stopped (the broker went away, the
    /// stream broke): it does not go on unrecorded.
    RecordingLost,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Ending::Exited => "exited",
            Ending::Hangup => "hangup",
            Ending::ClientGone => "client_gone",
            Ending::Idle => "idle_timeout",
            Ending::MaxDuration => "max_duration",
            Ending::RecordingLost => "recording_lost",
        }
    }
}

/// The hidden subcommand the monitor daemon starts for each login.
pub(crate) const SUBCOMMAND: &str = "session-monitor";

/// `rolesh session-monitor`: serves the connection on stdin; the exit code is the session's.
pub(crate) fn run() -> u8 {
    let login = match system::stdin_socket().and_then(Login::read) {
        Ok(login) => login,
        Err(e) => {
            eprintln!("rolesh: session monitor: {e}");
            return EXIT_RUNTIME;
        }
    };
    match Session::prepare(login) {
        Ok(session) => session.run(),
        Err((login, refusal)) => {
            let code = match &refusal {
                MonitorAnswer::Refused { exit_code, .. } => *exit_code,
                _ => EXIT_RUNTIME,
            };
            login.answer(&refusal);
            code
        }
    }
}

/// The user's `rolesh` at the other end, and what it handed over.
struct Login {
    conn: UnixStream,
    uid: u32,
    pid: u32,
    /// That very process (SO_PEERPIDFD), to end it without mistaking another for it.
    pidfd: Option<OwnedFd>,
    open: Open,
    fds: Vec<OwnedFd>,
}

impl Login {
    /// Who connected (the kernel's word) and its `open` request with three descriptors.
    fn read(conn: UnixStream) -> Result<Login, String> {
        let (uid, pid) = system::peer_credentials(&conn)?;
        let pidfd = system::peer_pidfd(&conn);
        conn.set_read_timeout(Some(OPEN_TIMEOUT)).ok();
        let mut buf = vec![0u8; MAX_MONITOR_LINE + 1];
        let (n, fds) = system::receive_with_descriptors(conn.as_fd(), &mut buf)
            .map_err(|e| format!("cannot read the login's request: {e}"))?;
        let mut line = buf[..n].to_vec();
        while !line.contains(&b'\n') && line.len() <= MAX_MONITOR_LINE {
            let n = (&conn)
                .read(&mut buf)
                .map_err(|e| format!("cannot read the login's request: {e}"))?;
            if n == 0 {
                return Err("the login closed the connection before its request".into());
            }
            line.extend_from_slice(&buf[..n]);
        }
        let end = line.iter().position(|b| *b == b'\n').unwrap_or(line.len());
        let open = match MonitorRequest::parse(&line[..end])? {
            MonitorRequest::Open(open) => open,
            other => return Err(format!("expected an open request, not {other:?}")),
        };
        conn.set_read_timeout(None).ok();
        Ok(Login {
            conn,
            uid,
            pid,
            pidfd,
            open,
            fds,
        })
    }

    fn answer(&self, answer: &MonitorAnswer) {
        let mut line = answer.to_line();
        line.push('\n');
        let _ = (&self.conn).write_all(line.as_bytes());
    }

    /// The variables the session keeps from sshd's (`TERM`, `LANG`, `LC_*`, `TZ`).
    fn kept_env(&self) -> Vec<(String, String)> {
        self.open
            .env
            .iter()
            .filter(|(k, _)| k == "TERM" || k == "LANG" || k == "TZ" || k.starts_with("LC_"))
            .filter(|(k, v)| !k.contains('=') && !k.contains('\0') && !v.contains('\0'))
            .cloned()
            .collect()
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.open
            .env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

type Refusal = (Login, MonitorAnswer);

/// A session ready to start its program.
struct Session {
    login: Login,
    id: SessionId,
    who: Whoami,
    account: Account,
    ids: SessionIds,
    plan: Plan,
    cgroup: SessionCgroup,
    record: LiveSession,
    outer: Outer,
    recording: Option<Arc<Mutex<Recording>>>,
    broker: PathBuf,
    started: Instant,
}

impl Session {
    fn prepare(mut login: Login) -> Result<Session, Refusal> {
        let refuse = |login: Login, code: u8, message: String| -> Refusal {
            (login, MonitorAnswer::refused(code, message))
        };
        if live::session_of(login.pid).is_some() {
            let why = "a rolesh session cannot be started from inside another".to_string();
            return Err(refuse(login, 77, why));
        }
        let account = match system::account_by_uid(login.uid) {
            Ok(Some(a)) => a,
            Ok(None) => {
                let why = format!("uid {} has no account on this bastion", login.uid);
                return Err(refuse(login, 77, why));
            }
            Err(e) => return Err(refuse(login, EXIT_RUNTIME, e)),
        };
        let id = match SessionId::new() {
            Ok(id) => id,
            Err(e) => return Err(refuse(login, EXIT_RUNTIME, e)),
        };
        let broker = client::socket_path(false);
        let ssh_client = login.var("SSH_CLIENT").map(str::to_string);
        crate::audit::init_monitor(&broker, &account, &id, ssh_client.as_deref());
        match loader_variable(&login) {
            Ok(None) => {}
            Ok(Some(var)) => {
                tracing::info!(target: "rolesh::audit", event = "denied",
                    reason = %format!("loader_variable: sshd passed {var} to the login shell"));
                let why = format!("the bastion's sshd passes {var} through; ask the administrator");
                return Err(refuse(login, 1, why));
            }
            Err(e) => return Err(refuse(login, EXIT_RUNTIME, e)),
        }
        let start = Request::SessionStart(SessionStart {
            uid: login.uid,
            login_pid: login.pid,
            session_id: id.clone(),
        });
        let who: Whoami = match client::call(&broker, &start) {
            Ok(who) => who,
            Err(f) => return Err(refuse(login, f.code, f.message)),
        };
        let settings = &who.grant.session;
        let command = login.open.command.clone();
        let plan = match plan_for(command.as_deref(), settings) {
            Ok(plan) => plan,
            Err(f) => return Err(refuse(login, f.code, f.message)),
        };
        let ids = match system::session_ids(&account) {
            Ok(ids) => ids,
            Err(e) => return Err(refuse(login, EXIT_RUNTIME, e)),
        };
        let outer = match Outer::from_descriptors(login.fds.drain(..).collect()) {
            Ok(outer) => outer,
            Err(e) => return Err(refuse(login, EXIT_RUNTIME, e)),
        };
        let confined = confine(
            &id,
            &account,
            &ids,
            &who,
            confined_tools(&login.open, settings),
        );
        let (cgroup, record) = match confined {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(target: "rolesh::audit", event = "error", reason = %e,
                    command = command.as_deref());
                return Err(refuse(login, EXIT_RUNTIME, e));
            }
        };
        let mut session = Session {
            login,
            id,
            who,
            account,
            ids,
            plan,
            cgroup,
            record,
            outer,
            recording: None,
            broker,
            started: Instant::now(),
        };
        if let Err(e) = session.take_outer_and_record() {
            tracing::info!(target: "rolesh::audit", event = "error", reason = %e.message,
                command = command.as_deref());
            session.discard();
            let refusal = MonitorAnswer::refused(e.code, e.message);
            return Err((session.login, refusal));
        }
        Ok(session)
    }

    fn settings(&self) -> &SessionSettings {
        &self.who.grant.session
    }

    fn interactive(&self) -> bool {
        self.outer.is_terminal()
    }

    /// The terminal becomes the monitor's; the recording starts if the session must have one.
    fn take_outer_and_record(&mut self) -> Result<(), Failure> {
        if self.interactive() {
            self.outer.take_terminal().map_err(Failure::runtime)?;
        }
        let policy = self.settings().record;
        if !crate::record::required(policy, self.login.open.command.is_none()) {
            return Ok(());
        }
        let (cols, rows) = self.outer.window_size().unwrap_or((80, 24));
        let meta = RecordStart {
            session_id: self.id.clone(),
            cols,
            rows,
            command: self.login.open.command.clone(),
            term: self.login.var("TERM").map(str::to_string),
            record_input: self.settings().record_input,
            uid: Some(self.account.uid),
        };
        self.recording = Some(recording::start(&self.broker, meta)?);
        Ok(())
    }

    /// Undoes `confine` for a session that never started.
    fn discard(&mut self) {
        self.outer.give_back();
        live::remove(&self.id);
        let _ = self.cgroup.remove();
    }

    /// Starts the program, watches the session to its end, ends it; the exit code.
    fn run(mut self) -> u8 {
        let command = self.login.open.command.clone();
        tracing::info!(target: "rolesh::audit", event = "login",
            mode = self.settings().mode.as_str(), command = command.as_deref(),
            record = self.settings().record.as_str(), private_tmp = true,
            cgroup = %self.cgroup.path);
        let started = if self.interactive() {
            self.start_on_pty()
        } else {
            self.start_on_pipes()
        };
        let running = match started {
            Ok(running) => running,
            Err(e) => {
                tracing::info!(target: "rolesh::audit", event = "error", reason = %e.message);
                self.discard();
                self.login
                    .answer(&MonitorAnswer::refused(e.code, e.message.clone()));
                return e.code;
            }
        };
        self.login.answer(&MonitorAnswer::Started {
            session_id: self.id.clone(),
        });
        let (ending, status) = self.watch(running);
        self.finish(ending, status)
    }

    /// The environment of the session's programs. `session-init` adds `KUBECONFIG`.
    fn environment(&self) -> Vec<(String, String)> {
        let settings = self.settings();
        let home = home_of(&self.account).unwrap_or_else(|| PathBuf::from("/"));
        let mut env = self.login.kept_env();
        env.extend([
            ("HOME".into(), home.display().to_string()),
            ("USER".into(), self.account.name.clone()),
            ("LOGNAME".into(), self.account.name.clone()),
            ("SHELL".into(), settings.shell.clone()),
            ("PATH".into(), settings.path.clone()),
            ("ROLESH_SESSION_ID".into(), self.id.to_string()),
        ]);
        env.push(("KUBECONFIG".into(), kubeconfig::env_value(&self.id)));
        if let Some(client) = self.login.var("SSH_CLIENT") {
            env.push(("SSH_CLIENT".into(), client.to_string()));
        }
        if confined_tools(&self.login.open, settings) {
            let editor = editor_path(settings);
            env.extend(tools::environment(&editor, &kubeconfig::dir(&self.id)));
        }
        env
    }

    /// `rolesh session-init [--banner] -- PROGRAM ARGS…` for the plan.
    fn init_args(&self, rolesh: &Path) -> Vec<String> {
        let launch = self.plan.launch(rolesh);
        let mut args = vec!["session-init".to_string()];
        if self.login.open.command.is_none() {
            args.push("--banner".into());
        }
        if let Some(arg0) = &launch.arg0 {
            // One word: a login shell's name starts with '-'.
            args.push(format!("--arg0={arg0}"));
        }
        args.push("--".into());
        args.push(launch.program.display().to_string());
        args.extend(launch.args);
        args
    }

    fn start_on_pty(&mut self) -> Result<Running, Failure> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            Failure::runtime(format!("cannot start the session's terminal: {what}: {e}"))
        };
        let rolesh = self_path();
        let (cols, rows) = self.outer.window_size().unwrap_or((80, 24));
        let (pty, pts) = pty_process::blocking::open().map_err(|e| fail("openpty", &e))?;
        pty.resize(pty_process::Size::new(rows, cols))
            .map_err(|e| fail("window size", &e))?;
        system::give_terminal_to(&pts, self.account.uid).map_err(Failure::runtime)?;
        let tap = self.recording.as_ref().map(recording::as_tap);
        if let Some(tap) = &tap {
            relay::lock(tap).resize(cols, rows);
        }
        let join = self
            .cgroup
            .procs_for_joining()
            .map_err(|e| fail("cgroup", &e))?;
        let mut command = pty_process::blocking::Command::new(&rolesh)
            .args(self.init_args(&rolesh))
            .env_clear()
            .envs(self.environment());
        if let Some(home) = home_of(&self.account) {
            command = command.current_dir(home);
        }
        let command = system::start_on_pty_as_user(command, join, self.ids.clone());
        let child = command.spawn(pts).map_err(|e| fail("spawn", &e))?;
        let pty = Arc::new(pty);
        let activity = Activity::new();
        let (gone, outer_gone) = tokio::sync::oneshot::channel();
        let outer_in = dup(&self.outer.stdin)?;
        relay::copy_input(
            outer_in,
            PtyEnd(pty.clone()),
            activity.clone(),
            tap.clone(),
            Some(gone),
        );
        let output = relay::pump(PtyEnd(pty.clone()), dup(&self.outer.stdout)?, tap.clone());
        Ok(Running {
            child,
            outer_gone,
            output: vec![output],
            activity: Some(activity),
            pty: Some(pty),
            tap,
        })
    }

    fn start_on_pipes(&mut self) -> Result<Running, Failure> {
        let rolesh = self_path();
        let tap = self.recording.as_ref().map(recording::as_tap);
        let mut command = std::process::Command::new(&rolesh);
        command
            .args(self.init_args(&rolesh))
            .env_clear()
            .envs(self.environment());
        if let Some(home) = home_of(&self.account) {
            command.current_dir(home);
        }
        // Recorded: every byte passes pipes of the monitor's, so nothing of the session can
        // write to sshd's directly. Not recorded: the command gets sshd's pipes.
        if tap.is_some() {
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        } else {
            command
                .stdin(dup(&self.outer.stdin)?)
                .stdout(dup(&self.outer.stdout)?)
                .stderr(dup(&self.outer.stderr)?);
        }
        let join = self
            .cgroup
            .procs_for_joining()
            .map_err(|e| Failure::runtime(format!("cannot join the session's cgroup: {e}")))?;
        system::start_as_user(&mut command, join, self.ids.clone());
        let mut child = command
            .spawn()
            .map_err(|e| Failure::runtime(format!("cannot start {}: {e}", self.plan.describe())))?;
        let mut output = Vec::new();
        if tap.is_some() {
            let stdin = child.stdin.take().expect("piped");
            let stdout = child.stdout.take().expect("piped");
            let stderr = child.stderr.take().expect("piped");
            // The end of stdin is the command's to see, not the end of the session.
            relay::copy_input(dup(&self.outer.stdin)?, stdin, Activity::new(), None, None);
            output.push(relay::pump(stdout, dup(&self.outer.stdout)?, tap.clone()));
            output.push(relay::pump(stderr, dup(&self.outer.stderr)?, tap.clone()));
        }
        // The connection is gone when sshd closes the pipes the output goes to.
        let (gone, outer_gone) = tokio::sync::oneshot::channel();
        let watched = [dup(&self.outer.stdout)?, dup(&self.outer.stderr)?];
        std::thread::spawn(move || {
            let fds: Vec<_> = watched.iter().map(AsFd::as_fd).collect();
            system::wait_for_hangup(&fds);
            let _ = gone.send(());
        });
        Ok(Running {
            child,
            outer_gone,
            output,
            activity: None,
            pty: None,
            tap,
        })
    }

    /// Waits for whatever ends the session first.
    fn watch(&mut self, running: Running) -> (Ending, Running) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("rolesh: session monitor: cannot watch the session: {e}");
                return (Ending::Hangup, running);
            }
        };
        let result = runtime.block_on(self.watch_until_end(running));
        // Not a plain drop: it would wait for a blocking read that may never return.
        runtime.shutdown_background();
        result
    }

    async fn watch_until_end(&mut self, mut running: Running) -> (Ending, Running) {
        let settings = self.settings().clone();
        let mut login = match self.login.conn.try_clone().and_then(|c| {
            c.set_nonblocking(true)?;
            tokio::net::UnixStream::from_std(c)
        }) {
            Ok(c) => tokio::io::BufReader::new(c),
            Err(_) => return (Ending::ClientGone, running),
        };
        let deadline = tokio::time::sleep(settings.max_duration);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(TICK);
        // The program's end, as soon as it comes (a pidfd turns readable); polled every
        // 50 ms where the kernel has no pidfds.
        let exit = system::ChildExit::of(&running.child).ok();
        let mut poll = tokio::time::interval(Duration::from_millis(50));
        let mut warned = false;
        let mut line = String::new();
        let ending = loop {
            tokio::select! {
                () = async {
                    match &exit {
                        Some(exit) => exit.wait().await,
                        None => std::future::pending().await,
                    }
                } => {
                    break Ending::Exited;
                }
                _ = poll.tick(), if exit.is_none() => {
                    if running.exited() {
                        break Ending::Exited;
                    }
                }
                _ = &mut running.outer_gone => break Ending::Hangup,
                read = login.read_line(&mut line) => {
                    match read {
                        Ok(0) | Err(_) => break self.client_gone_or_hangup(&mut running),
                        Ok(_) => {
                            if let Ok(MonitorRequest::WindowChanged {}) =
                                MonitorRequest::parse(line.trim_end().as_bytes())
                                && let Some(pty) = &running.pty
                            {
                                relay::pass_window_size(self.outer.terminal(), pty, &running.tap);
                            }
                            line.clear();
                        }
                    }
                }
                _ = &mut deadline => {
                    self.notice(&format!("this session reached its maximum duration ({}); ending it",
                        crate::config::values::short(settings.max_duration)));
                    break Ending::MaxDuration;
                }
                _ = tick.tick() => {
                    if system::is_stopped(self.login.pid) {
                        break Ending::ClientGone;
                    }
                    if self.recording.as_ref().is_some_and(|r| !recording::healthy(r)) {
                        self.notice("the recording of this session stopped; a recorded session does not go on unrecorded: ending it");
                        break Ending::RecordingLost;
                    }
                    if let Some(ending) = self.idle_check(&running, &settings, &mut warned) {
                        break ending;
                    }
                }
            }
        };
        (ending, running)
    }

    /// The login's connection closed: the user's `rolesh` is gone. If the terminal hung up
    /// as well (the usual way a dropped connection ends both), that is the reason.
    fn client_gone_or_hangup(&self, running: &mut Running) -> Ending {
        std::thread::sleep(Duration::from_millis(100));
        match running.outer_gone.try_recv() {
            Ok(()) => Ending::Hangup,
            Err(_) => Ending::ClientGone,
        }
    }

    /// The idle warning, and the end when no input came for `idle_timeout` (terminals only:
    /// `ssh bastion CMD` has `max_duration` alone).
    fn idle_check(
        &self,
        running: &Running,
        settings: &SessionSettings,
        warned: &mut bool,
    ) -> Option<Ending> {
        let activity = running.activity.as_ref()?;
        let idle = activity.idle();
        let timeout = settings.idle_timeout;
        let minute = Duration::from_secs(60);
        let warn_at = if timeout > minute * 4 {
            timeout - minute
        } else {
            timeout * 3 / 4
        };
        if idle >= timeout {
            self.notice(&format!(
                "idle for {}; ending this session",
                crate::config::values::short(timeout)
            ));
            return Some(Ending::Idle);
        }
        if idle >= warn_at && !*warned {
            let short = crate::config::values::short;
            self.notice(&format!(
                "this session has been idle for {}; it ends in {} unless you type something",
                short(warn_at),
                short(timeout.saturating_sub(warn_at))
            ));
            *warned = true;
        } else if idle < warn_at {
            *warned = false;
        }
        None
    }

    /// A line from rolesh on the user's terminal, or on stderr without one.
    fn notice(&self, message: &str) {
        if self.interactive() {
            relay::notice(&self.outer.stdout, message);
        } else {
            relay::notice(&self.outer.stderr, message);
        }
    }

    /// Ends the session, whatever ended it: the record first (from now on nothing of the
    /// session gets credentials), the broker told (the session's tokens go), every process
    /// hung up, then killed; the recording ended, the terminal given back, the trail
    /// written, the login answered.
    fn finish(mut self, ending: Ending, mut running: Running) -> u8 {
        self.record.ended = Some(ending.as_str().to_string());
        let _ = live::write(&self.record);
        let end = Request::SessionEnd {
            session_id: self.id.clone(),
            reason: ending.as_str().into(),
        };
        let _ = client::Connection::open(&self.broker, Duration::from_secs(2))
            .and_then(|mut b| b.ask::<Ack>(&end));
        let left = self.cgroup.end(GRACE);
        let status = running.wait();
        // Output still in the pty or pipes reaches the user (and the recording).
        running.finish_output();
        let code = exit_code(status);
        if let Some(recording) = &self.recording {
            recording::finish(recording, code);
        }
        self.outer.give_back();
        let duration_ms = self.started.elapsed().as_millis() as u64;
        if let Some(cmd) = &self.login.open.command {
            tracing::info!(target: "rolesh::audit", event = "command", command = %cmd,
                exit_code = code, duration_ms);
        }
        tracing::info!(target: "rolesh::audit", event = "logout", exit_code = code,
            duration_ms, reason = ending.as_str(), killed = left as u64);
        self.login.answer(&MonitorAnswer::Ended {
            exit_code: code,
            reason: ending.as_str().into(),
        });
        // A stopped login shell would never read that; it goes too, so that sshd ends
        // the connection.
        if let Some(pidfd) = &self.login.pidfd
            && system::is_stopped(self.login.pid)
            && system::pidfd_alive(pidfd)
        {
            system::kill_by_pidfd(pidfd);
        }
        live::remove(&self.id);
        let _ = self.cgroup.remove();
        code
    }
}

/// The session's cgroup and its record (what the broker checks), made before anything of
/// the user runs, and the private `/tmp` everything after this lives with.
fn confine(
    id: &SessionId,
    account: &Account,
    ids: &SessionIds,
    who: &Whoami,
    confined: bool,
) -> Result<(SessionCgroup, LiveSession), String> {
    let settings = &who.grant.session;
    let cgroups =
        Cgroups::find().map_err(|e| format!("this bastion cannot confine sessions: {e}"))?;
    let cgroup = cgroups.create(id)?;
    let me = std::process::id();
    let record = LiveSession {
        session_id: id.clone(),
        uid: account.uid,
        user: account.name.clone(),
        cgroup: cgroup.path.clone(),
        started: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        max_duration_secs: settings.max_duration.as_secs(),
        monitor_pid: me,
        monitor_start: system::process_start(me).unwrap_or(0),
        ended: None,
    };
    // In restricted mode and for `ssh bastion CMD` the kubeconfig files are root's: see
    // `session::kubeconfig`.
    let owner = (!confined).then_some((ids.uid, ids.gid));
    let made = live::write(&record)
        .map_err(|e| {
            format!(
                "cannot record the session in {}: {e}",
                live::dir().display()
            )
        })
        .and_then(|()| system::private_tmp())
        .and_then(|()| {
            kubeconfig::prepare(id, &who.grant.clusters, owner)
                .map_err(|e| format!("cannot write the session's kubeconfig: {e}"))
        })
        .and_then(|()| match confined {
            true => {
                tools::write_aws_config(&kubeconfig::dir(id), &crate::paths::installed_binary())
                    .map_err(|e| format!("cannot write the session's AWS config: {e}"))
            }
            false => Ok(()),
        })
        .and_then(|()| system::hand_tmp_to(ids));
    if let Err(e) = made {
        live::remove(id);
        let _ = cgroup.remove();
        return Err(e);
    }
    Ok((cgroup, record))
}

/// A variable the loader or a shell reads (`crate::loader_env`) in the login shell's
/// environment, as the kernel has it (`/proc/PID/environ`; the login's own word, its
/// `open` request, is looked at too). An environment that cannot be read is an error.
fn loader_variable(login: &Login) -> Result<Option<String>, String> {
    let environ = std::fs::read(format!("/proc/{}/environ", login.pid))
        .map_err(|e| format!("cannot read the login shell's environment: {e}"))?;
    let found = crate::loader_env::first_in_environ(&environ).or_else(|| {
        login
            .open
            .env
            .iter()
            .map(|(name, _)| name)
            .find(|name| crate::loader_env::is_dangerous(name))
            .cloned()
    });
    Ok(found)
}

/// Whether the session's tools run confined (`session::tools`): restricted mode, and every
/// `ssh bastion CMD`. Shell mode has a shell; the monitor and the cgroup hold it.
fn confined_tools(open: &Open, settings: &SessionSettings) -> bool {
    open.command.is_some() || settings.mode == Mode::Restricted
}

/// `[session] editor` by absolute path (a name is looked up on the session's `path`).
fn editor_path(settings: &SessionSettings) -> PathBuf {
    if settings.editor.starts_with('/') {
        return PathBuf::from(&settings.editor);
    }
    command::find(&settings.editor, &settings.path)
        .unwrap_or_else(|| PathBuf::from(&settings.editor))
}

/// What the session runs: the `-c` command if it is allowed (a refusal is audited), else
/// the user's mode.
fn plan_for(run: Option<&str>, settings: &SessionSettings) -> Result<Plan, Failure> {
    let Some(cmd) = run else {
        return Ok(command::mode_plan(settings));
    };
    command::plan(cmd, settings).inspect_err(|f| {
        tracing::info!(target: "rolesh::audit", event = "command", command = %cmd,
            exit_code = f.code, reason = %f.message);
    })
}

/// A started program and the threads that carry its bytes.
struct Running {
    child: Child,
    outer_gone: tokio::sync::oneshot::Receiver<()>,
    output: Vec<std::thread::JoinHandle<()>>,
    activity: Option<Arc<Activity>>,
    pty: Option<Arc<pty_process::blocking::Pty>>,
    tap: Option<SharedTap>,
}

impl Running {
    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn wait(&mut self) -> ExitStatus {
        self.child
            .wait()
            .unwrap_or_else(|_| ExitStatus::from_raw(EXIT_RUNTIME.into()))
    }

    /// Waits (briefly) for the output threads: what the program wrote last is shown.
    fn finish_output(&mut self) {
        let deadline = Instant::now() + GRACE;
        for handle in self.output.drain(..) {
            while !handle.is_finished() && Instant::now() < deadline {
                // (Short: every login's end waits here once.)
                std::thread::sleep(Duration::from_millis(1));
            }
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
    }
}

fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        _ => EXIT_RUNTIME,
    }
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd, Failure> {
    fd.try_clone()
        .map_err(|e| Failure::runtime(format!("cannot use the session's descriptors: {e}")))
}

fn home_of(account: &Account) -> Option<PathBuf> {
    Some(PathBuf::from(&account.home)).filter(|h| h.is_dir())
}

/// This binary: what the session's programs are started with.
fn self_path() -> PathBuf {
    crate::paths::running_binary()
}
