//! `rolesh -c COMMAND`: split with shell-word rules and run without a shell, only if
//! allowed (SPEC §4).

use std::path::{Path, PathBuf};

use super::tools;
use crate::config::{Mode, SessionSettings};
use crate::error::{EXIT_NOT_ALLOWED, EXIT_NOT_FOUND, Failure};

/// rolesh's own subcommands a session may run.
const SUBCOMMANDS: [&str; 4] = ["exec", "kubeconfig", "token", "credentials"];
/// What scp, sftp and rsync run on the server side.
const FILE_TRANSFER: [&str; 4] = ["scp", "sftp-server", "internal-sftp", "rsync"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    Program(PathBuf, Vec<String>),
    Subcommand(Vec<String>),
    Shell(PathBuf),
}

/// What to start for a plan: program, arguments, and the name it sees as argv[0].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Launch {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) arg0: Option<String>,
}

/// The plan of a session without a command: the user's mode. The prompt and the picker
/// run as programs of their own on the session's terminal, so that idle time, hangups and
/// recording work the same for all modes.
pub(crate) fn mode_plan(session: &SessionSettings) -> Plan {
    match session.mode {
        Mode::Shell => Plan::Shell(PathBuf::from(&session.shell)),
        Mode::Restricted => Plan::Subcommand(vec![RESTRICTED_PROMPT.into()]),
        Mode::Picker => Plan::Subcommand(vec!["exec".into(), "--repeat".into()]),
    }
}

/// The hidden subcommand that runs the restricted prompt inside a login session.
pub(crate) const RESTRICTED_PROMPT: &str = "restricted-prompt";

impl Plan {
    /// How to start it; `rolesh` is this binary (for subcommands).
    pub(crate) fn launch(&self, rolesh: &Path) -> Launch {
        match self {
            Plan::Program(path, args) => Launch {
                program: path.clone(),
                args: args.clone(),
                arg0: None,
            },
            Plan::Subcommand(args) => Launch {
                program: rolesh.to_path_buf(),
                args: args.clone(),
                arg0: None,
            },
            Plan::Shell(shell) => {
                // A login shell: argv[0] starts with '-'.
                let name = shell
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Launch {
                    program: shell.clone(),
                    args: Vec::new(),
                    arg0: Some(format!("-{name}")),
                }
            }
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Plan::Program(p, _) | Plan::Shell(p) => p.display().to_string(),
            Plan::Subcommand(args) => format!("rolesh {}", args.join(" ")),
        }
    }

    /// The whole command line, quoted as a shell would need it: for the audit trail.
    pub(crate) fn command_line(&self) -> String {
        let words: Vec<String> = match self {
            Plan::Program(p, args) => std::iter::once(p.display().to_string())
                .chain(args.iter().cloned())
                .collect(),
            Plan::Shell(p) => vec![p.display().to_string()],
            Plan::Subcommand(args) => std::iter::once("rolesh".to_string())
                .chain(args.iter().cloned())
                .collect(),
        };
        shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" "))
    }
}

pub(crate) fn plan(command: &str, session: &SessionSettings) -> Result<Plan, Failure> {
    let refuse = |message: String| Failure {
        code: EXIT_NOT_ALLOWED,
        message,
    };
    let words = shlex::split(command)
        .ok_or_else(|| refuse("cannot parse the command (unbalanced quotes)".into()))?;
    let Some((name, args)) = words.split_first() else {
        return Err(refuse("empty command".into()));
    };
    let base = name.rsplit('/').next().unwrap_or(name);
    if FILE_TRANSFER.contains(&base) {
        if !session.file_transfer {
            return Err(refuse("file transfer is disabled on this bastion".into()));
        }
        let path = if name.contains('/') {
            Some(PathBuf::from(name))
        } else {
            find(name, &session.path)
        };
        return path
            .map(|p| Plan::Program(p, args.to_vec()))
            .ok_or_else(|| Failure {
                code: EXIT_NOT_FOUND,
                message: format!("{name}: command not found"),
            });
    }
    if SUBCOMMANDS.contains(&name.as_str()) {
        return Ok(Plan::Subcommand(words));
    }
    if name.contains('/') || !session.allowed_commands.iter().any(|c| c == name) {
        return Err(refuse(format!(
            "'{name}' is not allowed on this bastion (allowed: {})",
            allowed_list(session)
        )));
    }
    tools::check(name, args).map_err(refuse)?;
    find(name, &session.path)
        .map(|p| Plan::Program(p, args.to_vec()))
        .ok_or_else(|| Failure {
            code: EXIT_NOT_FOUND,
            message: format!("{name}: command not found"),
        })
}

fn allowed_list(session: &SessionSettings) -> String {
    let mut all: Vec<&str> = session
        .allowed_commands
        .iter()
        .map(String::as_str)
        .collect();
    all.extend(SUBCOMMANDS);
    all.join(", ")
}

/// `name` on the session's PATH, as an executable file.
pub(crate) fn find(name: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path.split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(file_transfer: bool) -> SessionSettings {
        SessionSettings {
            allowed_commands: vec!["ls".into(), "kubectl-missing".into()],
            file_transfer,
            ..SessionSettings::default()
        }
    }

    #[test]
    fn allowed_commands_run_without_a_shell() {
        let p = plan("ls -l '/tmp/a b'", &session(false)).unwrap();
        assert_eq!(
            p,
            Plan::Program(
                PathBuf::from("/usr/bin/ls"),
                vec!["-l".into(), "/tmp/a b".into()]
            )
        );
        assert_eq!(
            plan("token --cluster x", &session(false)).unwrap(),
            Plan::Subcommand(vec!["token".into(), "--cluster".into(), "x".into()])
        );
    }

    #[test]
    fn refusals_and_their_exit_codes() {
        let s = session(false);
        let e = plan("bash -i", &s).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                126,
                "'bash' is not allowed on this bastion (allowed: ls, kubectl-missing, exec, kubeconfig, token, credentials)"
            )
        );
        assert_eq!(
            plan("/bin/ls", &s).unwrap_err().code,
            126,
            "no paths, even to allowed names"
        );
        let e = plan("scp -t /tmp", &s).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (126, "file transfer is disabled on this bastion")
        );
        assert_eq!(
            plan("/usr/lib/openssh/sftp-server", &s)
                .unwrap_err()
                .message,
            "file transfer is disabled on this bastion"
        );
        let e = plan("kubectl-missing get pods", &s).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (127, "kubectl-missing: command not found")
        );
        assert_eq!(plan("ls 'unbalanced", &s).unwrap_err().code, 126);
        assert_eq!(
            plan("ls $(id)", &s).unwrap(),
            Plan::Program(PathBuf::from("/usr/bin/ls"), vec!["$(id)".into()]),
            "no expansion: a literal argument"
        );
    }
}
