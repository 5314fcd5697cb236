//! `rolesh session-init`: the first program of a session, started by the monitor as the
//! user, inside the session's cgroup and private `/tmp`. It asks the broker (from inside
//! the session, so the broker answers) for the user's clusters and their endpoints, seals
//! them into the in-memory part of the kubeconfig (the monitor made the rest), shows the
//! banner, and becomes the user's shell, restricted prompt, picker or command (exec:
//! nothing of it stays behind).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use super::{Session, seal_kubeconfig};
use crate::error::{EXIT_NOT_ALLOWED, EXIT_NOT_FOUND, Failure};

/// What the monitor says to start.
pub(crate) struct InitArgs {
    /// Show `[session] banner` first (interactive logins).
    pub(crate) banner: bool,
    /// argv[0], when it is not the program (`-bash` for a login shell).
    pub(crate) arg0: Option<String>,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
}

pub(crate) fn init(args: InitArgs) -> Result<u8, Failure> {
    let session = Session::open(false)?;
    let sealed = seal_kubeconfig(&session)?;
    if args.banner
        && let Some(banner) = &session.settings().banner
    {
        println!("{banner}");
    }
    let mut command = Command::new(&args.program);
    command.args(&args.args);
    if let Some(arg0) = &args.arg0 {
        command.arg0(arg0);
    }
    // Only returns on failure; on success the memfd lives on in the program.
    let error = command.exec();
    let code = if error.kind() == std::io::ErrorKind::NotFound {
        EXIT_NOT_FOUND
    } else {
        EXIT_NOT_ALLOWED
    };
    drop(sealed);
    Err(Failure {
        code,
        message: format!("cannot start {}: {error}", args.program.display()),
    })
}
