//! The login shell (SPEC §4 login and `-c`, §6): ask the broker who the user is, build the
//! in-memory kubeconfig, scrub the environment, and run the user's command or shell.
//!
//! On a terminal, the session runs on a pty of its own behind a relay (`relay`) that sees
//! idle time, passes window sizes on and ends the whole session; without one (`ssh bastion
//! CMD`), the command inherits sshd's pipes and `supervise` ends it on hangup or
//! disconnect. Both: private /tmp where the kernel allows it, `max_duration`.

pub mod command;
pub mod kubeconfig;
mod recording;
mod relay;
pub mod restricted;
mod supervise;

use std::io::IsTerminal;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::client;
use crate::error::{EXIT_RUNTIME, Failure};
use crate::system;
use command::Plan;
use kubeconfig::ClusterEntry;

/// What the broker's `whoami` says about this user's session.
pub struct Session {
    pub user: String,
    pub uid: u32,
    pub mode: String,
    pub shell: String,
    pub path: String,
    pub allowed_commands: Vec<String>,
    pub file_transfer: bool,
    pub banner: Option<String>,
    /// The user's home directory, if it exists (looked up once, at login).
    pub home: Option<PathBuf>,
    pub max_duration: std::time::Duration,
    pub idle_timeout: std::time::Duration,
    /// `off`, `interactive` or `all`.
    pub record: String,
    pub record_input: bool,
    pub clusters: Vec<ClusterEntry>,
    pub id: String,
}

impl Session {
    /// Asks the broker (the compiled-in socket in login mode) for the user's session.
    pub fn open(login: bool) -> Result<Session, Failure> {
        let socket = client::socket_path(login);
        let who = client::request(&socket, "whoami", &[])?;
        let s = &who["session"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let mut clusters = Vec::new();
        for c in who["clusters"].as_array().into_iter().flatten() {
            let name = text(&c["name"]);
            // One unreachable cluster does not keep the user from the others.
            let info = match client::request(&socket, "cluster", &[("cluster", &name)]) {
                Ok(info) => info,
                Err(e) => {
                    eprintln!(
                        "rolesh: warning: cluster {name} is left out of this session: {}",
                        e.message
                    );
                    continue;
                }
            };
            clusters.push(ClusterEntry {
                endpoint: text(&info["endpoint"]),
                ca_data: text(&info["certificateAuthorityData"]),
                default_namespace: c["default_namespace"].as_str().map(str::to_string),
                namespaces: c["namespaces"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| text(&n["name"]))
                    .collect(),
                name,
            });
        }
        Ok(Session {
            user: text(&who["user"]),
            uid: who["uid"].as_u64().unwrap_or(u64::MAX) as u32,
            mode: text(&s["mode"]),
            shell: text(&s["shell"]),
            path: text(&s["path"]),
            allowed_commands: s["allowed_commands"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect(),
            file_transfer: s["file_transfer"].as_bool().unwrap_or(false),
            banner: s["banner"].as_str().map(str::to_string),
            home: home_of(&text(&who["user"])),
            max_duration: std::time::Duration::from_secs(
                s["max_duration_secs"].as_u64().unwrap_or(12 * 3600),
            ),
            idle_timeout: std::time::Duration::from_secs(
                s["idle_timeout_secs"].as_u64().unwrap_or(30 * 60),
            ),
            record: text(&s["record"]),
            record_input: s["record_input"].as_bool().unwrap_or(false),
            clusters,
            id: inherited_session_id(login).unwrap_or_else(crate::audit::new_session_id),
        })
    }
}

/// `rolesh kubeconfig`: the session's kubeconfig as one file.
pub fn print_kubeconfig() -> Result<(), Failure> {
    let session = Session::open(false)?;
    let v = kubeconfig::merged(&session.clusters, &self_path());
    print!("{}", kubeconfig::to_yaml(&v));
    Ok(())
}

/// Login mode: `-c COMMAND` (what sshd runs for `ssh bastion COMMAND`) or an interactive
/// session.
pub fn login(run: Option<&str>) -> Result<u8, Failure> {
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
        && let Some(banner) = &session.banner
    {
        println!("{banner}");
    }
    // Fields without a value are left out, not written empty.
    let ssh_client = std::env::var("SSH_CLIENT").ok().filter(|c| !c.is_empty());
    tracing::info!(target: "rolesh::audit", event = "login", session_id = %session.id,
        ssh_client = ssh_client.as_deref(), mode = %session.mode, command = run,
        record = %session.record, private_tmp = private_tmp.is_ok(),
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
        return match session.mode.as_str() {
            "shell" => Ok(Plan::Shell(PathBuf::from(&session.shell))),
            // The prompt and the picker run as programs of their own on the session's
            // terminal, so that idle time, hangups and recording work the same for all modes.
            "restricted" => Ok(Plan::Subcommand(vec![RESTRICTED_PROMPT.into()])),
            "picker" => Ok(Plan::Subcommand(vec!["exec".into(), "--repeat".into()])),
            other => Err(Failure::not_implemented(&format!("{other} mode"))),
        };
    };
    command::plan(cmd, session).inspect_err(|f| {
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
        let limits = relay::Limits {
            idle_timeout: session.idle_timeout,
            max_duration: session.max_duration,
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
    let outcome = supervise::run(child, own_group, session.max_duration)?;
    for copier in copiers {
        let _ = copier.join();
    }
    Ok(outcome)
}

/// The hidden subcommand that runs the restricted prompt inside a login session.
pub const RESTRICTED_PROMPT: &str = "restricted-prompt";

/// Restricted mode's prompt, started by the login supervisor on the session's terminal. It
/// asks the broker again (the broker, not an inherited file, says what the user may do) and
/// uses the session's kubeconfig from `KUBECONFIG`.
pub fn restricted_prompt() -> Result<u8, Failure> {
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
        let outcome = supervise::run(child, false, session.max_duration)?;
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
            .map_err(Failure::runtime)?;
        let dir = runtime_dir(session.uid).join(format!("rolesh-{}", session.id));
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
    env.extend([
        ("HOME".into(), home.display().to_string()),
        ("USER".into(), session.user.clone()),
        ("LOGNAME".into(), session.user.clone()),
        ("SHELL".into(), session.shell.clone()),
        ("PATH".into(), session.path.clone()),
        ("KUBECONFIG".into(), files.kubeconfig_env()),
        ("ROLESH_SESSION_ID".into(), session.id.clone()),
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
fn inherited_session_id(login: bool) -> Option<String> {
    let id = std::env::var("ROLESH_SESSION_ID").ok()?;
    // The form `audit::new_session_id` makes: 24 lowercase hex digits.
    let valid = !login && id.len() == 24 && crate::audit::valid_session_id(&id);
    valid.then_some(id)
}
