//! What runs as the user (SPEC §4 login and `-c`, §6). The login shell sshd starts hands
//! the session to the monitor (`login`); inside the session, as the user, `session-init`
//! asks the broker who the user is, builds the in-memory kubeconfig and starts the
//! user's shell, restricted prompt, picker or command (`init`); the restricted prompt
//! runs allowed commands (`restricted`, `command`, `supervise`). What records, times and
//! ends the session is the monitor's (`crate::monitor`), never the user's.

pub(crate) mod command;
mod init;
pub(crate) mod kubeconfig;
mod login;
pub(crate) mod restricted;
mod supervise;
pub(crate) mod tools;

pub(crate) use init::{InitArgs, init};
pub(crate) use login::login;

use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::Command;

use crate::client;
use crate::config::SessionSettings;
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

/// Restricted mode's prompt, started by the monitor on the session's terminal. It asks the
/// broker again (the broker, not an inherited file, says what the user may do) and uses
/// the session's kubeconfig from `KUBECONFIG`.
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
        let child = command(plan, &session, &env)
            .spawn()
            .map_err(|e| Failure::runtime(format!("cannot start {}: {e}", plan.describe())))?;
        let outcome = supervise::run(child, false, session.settings().max_duration)?;
        tracing::info!(target: "rolesh::audit", event = "command", session_id = %session.id,
            command = %plan.command_line(), exit_code = exit_code(outcome.status),
            duration_ms = started.elapsed().as_millis() as u64);
        Ok(outcome.session_ended)
    })
}

fn command(plan: &Plan, session: &Session, env: &[(String, String)]) -> Command {
    let launch = plan.launch(&self_path());
    let mut cmd = Command::new(launch.program);
    cmd.args(launch.args);
    if let Some(arg0) = launch.arg0 {
        cmd.arg0(arg0);
    }
    cmd.env_clear().envs(env.iter().cloned());
    if let Some(home) = &session.home {
        cmd.current_dir(home);
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

/// The sealed part of the session's kubeconfig (clusters and exec-plugin users) in a
/// memfd on descriptor [`kubeconfig::SEALED_FD`], where `clusters` in the session's
/// kubeconfig directory points; every program the session starts inherits it.
pub(crate) fn seal_kubeconfig(session: &Session) -> Result<OwnedFd, Failure> {
    let text = kubeconfig::to_yaml(&kubeconfig::sealed(&session.clusters, &self_path()));
    system::sealed_memfd("rolesh-kubeconfig", text.as_bytes())
        .and_then(|fd| system::inheritable_fd_at(&fd, kubeconfig::SEALED_FD))
        .map_err(Failure::runtime)
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
