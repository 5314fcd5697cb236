//! The login shell (SPEC §4 login and `-c`, §6): ask the broker who the user is, build the
//! in-memory kubeconfig, scrub the environment, and run the user's command or shell.
//!
//! On a terminal, the session runs on a pty of its own behind a relay (`relay`) that sees
//! idle time, passes window sizes on and ends the whole session; without one (`ssh bastion
//! CMD`), the command inherits sshd's pipes and `supervise` ends it on hangup or
//! disconnect. Both: private /tmp where the kernel allows it, `max_duration`.

pub(crate) mod command;
pub(crate) mod kubeconfig;
mod recording;
mod relay;
pub(crate) mod restricted;
mod supervise;

use std::io::IsTerminal;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::Command;

use crate::client;
use crate::config::{Mode, SessionSettings};
use crate::error::{EXIT_RUNTIME, Failure};
use crate::protocol::{ClusterEndpoint, Request, Whoami};
use crate::session_id::SessionId;
use crate::system;
use command::Plan;
use kubeconfig::SessionCluster;

/// A session as the broker's `whoami` describes it, with the endpoints of its clusters.
pub(crate) struct Session {
    pub(crate) who: Whoami,
    pub(crate) clusters: Vec<SessionCluster>,
    /// The user's home directory, if it exists (looked up once, at login).
    pub(crate) home: Option<PathBuf>,
    pub(crate) id: SessionId,
}

impl Session {
    /// Asks the broker (the compiled-in socket in login mode) for the user's session. An
    /// answer that lacks anything the session needs is an error: no defaults.
    pub(crate) fn open(login: bool) -> Result<Session, Failure> {
        let socket = client::socket_path(login);
        let who: Whoami = client::call(&socket, &Request::Whoami {})?;
        let mut clusters = Vec::new();
        for view in &who.grant.clusters {
            let request = Request::Cluster {
                cluster: view.name.clone(),
            };
            // One unreachable cluster does not keep the user from the others.
            match client::call::<ClusterEndpoint>(&socket, &request) {
                Ok(endpoint) => clusters.push(SessionCluster {
                    view: view.clone(),
                    endpoint,
                }),
                Err(e) => eprintln!(
                    "rolesh: warning: cluster {} is left out of this session: {}",
                    view.name, e.message
                ),
            }
        }
        let id = match inherited_session_id(login) {
            Some(id) => id,
            None => SessionId::new().map_err(Failure::runtime)?,
        };
        Ok(Session {
            home: home_of(&who.user),
            who,
            clusters,
            id,
        })
    }

    pub(crate) fn settings(&self) -> &SessionSettings {
        &self.who.grant.session
    }
}

/// `rolesh kubeconfig`: the session's kubeconfig as one file.
pub(crate) fn print_kubeconfig() -> Result<(), Failure> {
    let session = Session::open(false)?;
    let k = kubeconfig::merged(&session.clusters, &self_path());
    print!("{}", kubeconfig::to_yaml(&k));
    Ok(())
}

/// Login mode: `-c COMMAND` (what sshd runs for `ssh bastion COMMAND`) or an interactive
/// session.
pub(crate) fn login(run: Option<&str>) -> Result<u8, Failure> {
    // First, while this process has one thread and may still write its uid_map.
    let private_tmp = system::private_tmp();
    system::harden_supervisor().map_err(Failure::runtime)?;
    let session = Session::open(true)?;
    let plan = plan_for(run, &session)?;
    let recording =
        recording::start(&session, &client::socket_path(true), run).inspect_err(|f| {
            tracing::info!(target: "rolesh::audit", event = "error", session_id = %session.id,
            command = run, reason = %f.message);
        })?;
    let files = KubeconfigFiles::write(&session)?;
    if run.is_none()
        && let Some(banner) = &session.settings().banner
    {
        println!("{banner}");
    }
    // Fields without a value are left out, not written empty.
    let ssh_client = std::env::var("SSH_CLIENT").ok().filter(|c| !c.is_empty());
    tracing::info!(target: "rolesh::audit", event = "login", session_id = %session.id,
        ssh_client = ssh_client.as_deref(), mode = session.settings().mode.as_str(), command = run,
        record = session.settings().record.as_str(), private_tmp = private_tmp.is_ok(),
        reason = private_tmp.as_ref().err().map(String::as_str));
    let env = environment(&session, &files);
    let started = std::time::Instant::now();
    let (status, ending) = supervised(&plan, &session, &env, recording.as_ref())?;
    let code = exit_code(status);
    if let Some(recording) = &recording {
        recording::finish(recording, code);
    }
    let duration_ms = started.elapsed().as_millis() as u64;
    if let Some(cmd) = run {
        tracing::info!(target: "rolesh::audit", event = "command", session_id = %session.id,
            command = %cmd, exit_code = code, duration_ms);
    }
    tracing::info!(target: "rolesh::audit", event = "logout", session_id = %session.id,
        exit_code = code, duration_ms, reason = ending.as_str());
    drop(files);
    Ok(code)
}

/// What the session runs: the `-c` command if it is allowed (a refusal is audited), else
/// the user's mode.
fn plan_for(run: Option<&str>, session: &Session) -> Result<Plan, Failure> {
    let Some(cmd) = run else {
        return Ok(match session.settings().mode {
            Mode::Shell => Plan::Shell(PathBuf::from(&session.settings().shell)),
            // The prompt and the picker run as programs of their own on the session's
            // terminal, so that idle time, hangups and recording work the same for all modes.
            Mode::Restricted => Plan::Subcommand(vec![RESTRICTED_PROMPT.into()]),
            Mode::Picker => Plan::Subcommand(vec!["exec".into(), "--repeat".into()]),
        });
    };
    command::plan(cmd, session.settings()).inspect_err(|f| {
        tracing::info!(target: "rolesh::audit", event = "command", session_id = %session.id,
            command = %cmd, exit_code = f.code, reason = %f.message);
    })
}

/// Runs the plan to its end: on a pty of its own behind the relay when there is a
/// terminal, else on sshd's pipes; then nothing of the session is left running.
fn supervised(
    plan: &Plan,
    session: &Session,
    env: &[(String, String)],
    recording: Option<&std::sync::Arc<std::sync::Mutex<recording::Recording>>>,
) -> Result<(std::process::ExitStatus, relay::Ending), Failure> {
    if std::io::stdin().is_terminal() {
        let limits = relay::Deadlines {
            idle_timeout: session.settings().idle_timeout,
            max_duration: session.settings().max_duration,
        };
        let tap = recording.map(recording::as_tap);
        let (outcome, ending) = relay::run(pty_command(plan, session, env), limits, tap)?;
        return Ok((outcome.status, ending));
    }
    let outcome = without_terminal(plan, session, env, recording)?;
    // Whatever the command left behind in the session's namespace ends with it.
    relay::clear_session(std::process::id());
    let ending = match outcome.session_ended {
        true => relay::Ending::Hangup,
        false => relay::Ending::Exited,
    };
    Ok((outcome.status, ending))
}

/// No terminal (`ssh bastion CMD`, `ssh -T bastion`): the command gets its own process
/// group, so that ending the session ends everything it started (an interactive shell
/// manages its jobs' groups itself). When recorded, its output passes through pipes here.
fn without_terminal(
    plan: &Plan,
    session: &Session,
    env: &[(String, String)],
    recording: Option<&std::sync::Arc<std::sync::Mutex<recording::Recording>>>,
) -> Result<supervise::Outcome, Failure> {
    let own_group = !matches!(plan, Plan::Shell(_));
    let mut cmd = command(plan, session, env, own_group);
    if recording.is_some() {
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::runtime(format!("cannot start {}: {e}", plan.describe())))?;
    let copiers = match recording {
        Some(rec) => vec![
            relay::pump(
                child.stdout.take().expect("piped"),
                std::io::stdout(),
                Some(recording::as_tap(rec)),
            ),
            relay::pump(
                child.stderr.take().expect("piped"),
                std::io::stderr(),
                Some(recording::as_tap(rec)),
            ),
        ],
        None => Vec::new(),
    };
    let outcome = supervise::run(child, own_group, session.settings().max_duration)?;
    for copier in copiers {
        let _ = copier.join();
    }
    Ok(outcome)
}

/// The hidden subcommand that runs the restricted prompt inside a login session.
pub(crate) const RESTRICTED_PROMPT: &str = "restricted-prompt";

/// Restricted mode's prompt, started by the login supervisor on the session's terminal. It
/// asks the broker again (the broker, not an inherited file, says what the user may do) and
/// uses the session's kubeconfig from `KUBECONFIG`.
pub(crate) fn restricted_prompt() -> Result<u8, Failure> {
    let session = Session::open(false)?;
    let overlay = std::env::var("KUBECONFIG")
        .ok()
        .and_then(|k| k.split(':').next().map(PathBuf::from))
        .ok_or_else(|| {
            Failure::usage("the restricted prompt runs inside a rolesh login session")
        })?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    restricted::prompt(&session, &overlay, |plan| {
        let started = std::time::Instant::now();
        let child = command(plan, &session, &env, false)
            .spawn()
            .map_err(|e| Failure::runtime(format!("cannot start {}: {e}", plan.describe())))?;
        let outcome = supervise::run(child, false, session.settings().max_duration)?;
        tracing::info!(target: "rolesh::audit", event = "command", session_id = %session.id,
            command = %plan.command_line(), exit_code = exit_code(outcome.status),
            duration_ms = started.elapsed().as_millis() as u64);
        Ok(outcome.session_ended)
    })
}

/// What to start for a plan: program, arguments, and the name it sees as argv[0].
fn launch(plan: &Plan) -> (PathBuf, Vec<String>, Option<String>) {
    match plan {
        Plan::Program(path, args) => (path.clone(), args.clone(), None),
        Plan::Subcommand(args) => (self_path(), args.clone(), None),
        Plan::Shell(shell) => {
            // A login shell: argv[0] starts with '-'.
            let name = shell
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (shell.clone(), Vec::new(), Some(format!("-{name}")))
        }
    }
}

fn command(plan: &Plan, session: &Session, env: &[(String, String)], own_group: bool) -> Command {
    let (program, args, arg0) = launch(plan);
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(arg0) = arg0 {
        cmd.arg0(arg0);
    }
    cmd.env_clear().envs(env.iter().cloned());
    if let Some(home) = &session.home {
        cmd.current_dir(home);
    }
    if own_group {
        cmd.process_group(0);
    }
    cmd
}

/// The same, started on a pty of its own as a new session (see `relay`).
fn pty_command(
    plan: &Plan,
    session: &Session,
    env: &[(String, String)],
) -> pty_process::blocking::Command {
    let (program, args, arg0) = launch(plan);
    let mut cmd = pty_process::blocking::Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().cloned());
    if let Some(arg0) = arg0 {
        cmd = cmd.arg0(arg0);
    }
    if let Some(home) = &session.home {
        cmd = cmd.current_dir(home);
    }
    cmd
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        _ => EXIT_RUNTIME,
    }
}

/// The sealed memfd and the writable overlay, in a private per-session directory on tmpfs
/// that is removed when the session ends. kubectl locks every file of `KUBECONFIG` (as
/// `FILE.lock`) before it changes any, so the memfd is reached through a symlink
/// (`clusters -> /proc/self/fd/N`, the fd every child inherits) in that directory rather
/// than as `/dev/fd/N`.
struct KubeconfigFiles {
    _sealed: OwnedFd,
    dir: PathBuf,
}

impl KubeconfigFiles {
    fn write(session: &Session) -> Result<KubeconfigFiles, Failure> {
        let rolesh = self_path();
        let sealed_text = kubeconfig::to_yaml(&kubeconfig::sealed(&session.clusters, &rolesh));
        let sealed = system::sealed_memfd("rolesh-kubeconfig", sealed_text.as_bytes())
            .and_then(|fd| system::inheritable_high_fd(&fd))
            .map_err(Failure::runtime)?;
        let dir = runtime_dir(session.who.uid).join(format!("rolesh-{}", session.id));
        let shown = dir.display().to_string();
        let fail = |e: std::io::Error| {
            Failure::runtime(format!(
                "cannot write the session kubeconfig in {shown}: {e}"
            ))
        };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(fail)?;
        let files = KubeconfigFiles {
            _sealed: sealed,
            dir,
        };
        std::os::unix::fs::symlink(
            format!("/proc/self/fd/{}", files._sealed.as_raw_fd()),
            files.dir.join("clusters"),
        )
        .map_err(fail)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(files.dir.join("config"))
            .and_then(|mut f| {
                std::io::Write::write_all(
                    &mut f,
                    kubeconfig::to_yaml(&kubeconfig::overlay(&session.clusters)).as_bytes(),
                )
            })
            .map_err(fail)?;
        Ok(files)
    }

    fn kubeconfig_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.join("config").display(),
            self.dir.join("clusters").display()
        )
    }
}

impl Drop for KubeconfigFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// tmpfs, never persistent disk: the user's runtime directory if it exists, else /dev/shm.
fn runtime_dir(uid: u32) -> PathBuf {
    let run_user = PathBuf::from(format!("/run/user/{uid}"));
    if system::ownership(&run_user).is_ok_and(|o| o.uid == uid) {
        run_user
    } else {
        PathBuf::from("/dev/shm")
    }
}

/// Only TERM, LANG, LC_* and TZ survive from sshd; the rest is set here.
fn environment(session: &Session, files: &KubeconfigFiles) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k == "TERM" || k == "LANG" || k == "TZ" || k.starts_with("LC_"))
        .collect();
    let home = session.home.clone().unwrap_or_else(|| "/".into());
    let settings = session.settings();
    env.extend([
        ("HOME".into(), home.display().to_string()),
        ("USER".into(), session.who.user.clone()),
        ("LOGNAME".into(), session.who.user.clone()),
        ("SHELL".into(), settings.shell.clone()),
        ("PATH".into(), settings.path.clone()),
        ("KUBECONFIG".into(), files.kubeconfig_env()),
        ("ROLESH_SESSION_ID".into(), session.id.to_string()),
    ]);
    if let Ok(client) = std::env::var("SSH_CLIENT") {
        env.push(("SSH_CLIENT".into(), client));
    }
    env
}

fn home_of(user: &str) -> Option<PathBuf> {
    system::account_by_name(user)
        .ok()
        .flatten()
        .map(|a| PathBuf::from(a.home))
        .filter(|h| h.is_dir())
}

/// This binary by absolute path: what the kubeconfig's exec plugin calls.
fn self_path() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/bin/rolesh"))
}

/// Programs a login session starts (the restricted prompt, the picker, `rolesh exec`)
/// belong to that session: its id links their audit events to the login's.
fn inherited_session_id(login: bool) -> Option<SessionId> {
    let id = std::env::var("ROLESH_SESSION_ID").ok()?;
    // The form `SessionId::new` makes: 24 lowercase hex digits.
    (!login && id.len() == 24).then(|| SessionId::parse(&id))?
}
