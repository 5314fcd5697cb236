//! Restricted mode (SPEC §6): rolesh's own prompt. It runs only `allowed_commands` and its
//! built-ins (`exec`, `clusters`, `use CLUSTER[/NS]`, `help`, `exit`), with line editing,
//! in-memory history and tab completion, and no shell features: pipes, redirection,
//! command lists, globbing and expansion are each refused with a one-line reason.

use std::path::Path;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::command::{self, Plan};
use super::{Session, kubeconfig, tools};
use crate::error::Failure;

const BUILTINS: [&str; 5] = ["clusters", "use", "help", "exit", "exec"];

/// Why a line cannot run here, if it uses a shell feature outside quotes (or `$`, `` ` ``
/// inside double quotes, where a shell would expand them).
pub(crate) fn shell_feature(line: &str) -> Option<&'static str> {
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), _) => {}
            (Some(_), '$' | '`') | (None, '$' | '`') => {
                return Some("variable and command expansion are not available here");
            }
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '|') => return Some("pipes are not available here"),
            (None, '>' | '<') => return Some("redirection is not available here"),
            (None, ';' | '&') => {
                return Some("command lists and background jobs are not available here");
            }
            (None, '*' | '?' | '[' | '~') => return Some("globbing is not available here"),
            (None, _) => {}
        }
    }
    None
}

/// What a line asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    Empty,
    Exit,
    Help,
    Clusters,
    Use(String),
    Run(Plan),
    Refused(String),
}

pub(crate) fn interpret(line: &str, session: &Session) -> Line {
    if let Some(why) = shell_feature(line) {
        return Line::Refused(why.to_string());
    }
    let words = shlex::split(line).unwrap_or_default();
    match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => Line::Empty,
        ["exit" | "quit" | "logout"] => Line::Exit,
        ["help"] => Line::Help,
        ["clusters"] => Line::Clusters,
        ["use", context] => Line::Use(context.to_string()),
        ["use", ..] => Line::Refused("usage: use CLUSTER[/NAMESPACE]".into()),
        _ => match command::plan(line, session.settings()) {
            Ok(plan) => Line::Run(plan),
            Err(f) => Line::Refused(f.message),
        },
    }
}

/// The contexts `use` accepts: `CLUSTER` and `CLUSTER/NS`.
fn contexts(session: &Session) -> Vec<String> {
    session
        .clusters
        .iter()
        .flat_map(|c| c.context_names())
        .collect()
}

/// The context `use` switches to, if the session has it. The session's kubeconfig is not
/// the user's to change in restricted mode, so the prompt keeps the choice and passes it
/// to kubectl, helm and k9s (`--context`, `--kube-context`) on each command.
pub(crate) fn use_context(context: &str, session: &Session) -> Result<String, String> {
    if !contexts(session).iter().any(|c| c == context) {
        return Err(format!("no context {context:?}; `clusters` lists them"));
    }
    Ok(context.to_string())
}

/// The plan with the chosen context passed to the tool, if it takes one.
fn in_context(plan: Plan, context: &str) -> Plan {
    match plan {
        Plan::Program(path, args) => {
            let tool = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let args = tools::with_context(&tool, &args, context);
            Plan::Program(path, args)
        }
        other => other,
    }
}

pub(crate) fn help_text(session: &Session) -> String {
    format!(
        "commands: {}\nbuilt-ins: clusters, use CLUSTER[/NAMESPACE], exec [[CLUSTER/]NS/POD[/CONTAINER]], help, exit\nno pipes, redirection, globbing or expansion in this session",
        session.settings().allowed_commands.join(" ")
    )
}

pub(crate) fn clusters_text(session: &Session, current: &str) -> String {
    contexts(session)
        .into_iter()
        .map(|c| format!("{} {c}", if c == current { "*" } else { " " }))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Tab completion: commands and built-ins first, then contexts after `use`.
struct Completion {
    commands: Vec<String>,
    contexts: Vec<String>,
}

impl Completer for Completion {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(' ').map_or(0, |i| i + 1);
        let word = &before[start..];
        let pool = if start == 0 {
            &self.commands
        } else if before.trim_start().starts_with("use ") {
            &self.contexts
        } else {
            return Ok((pos, vec![]));
        };
        let found = pool
            .iter()
            .filter(|c| c.starts_with(word))
            .map(|c| Pair {
                display: c.clone(),
                replacement: c.clone(),
            })
            .collect();
        Ok((start, found))
    }
}

impl Hinter for Completion {
    type Hint = String;
}
impl Highlighter for Completion {}
impl Validator for Completion {}
impl Helper for Completion {}

/// The prompt loop; `run` starts one planned command and says whether the session ended
/// while it ran.
pub(crate) fn prompt(
    session: &Session,
    overlay: &Path,
    mut run: impl FnMut(&Plan) -> Result<bool, Failure>,
) -> Result<u8, Failure> {
    let mut commands: Vec<String> = session.settings().allowed_commands.clone();
    commands.extend(BUILTINS.iter().map(|b| b.to_string()));
    commands.sort();
    let helper = Completion {
        commands,
        contexts: contexts(session),
    };
    let mut editor: Editor<Completion, rustyline::history::MemHistory> = Editor::with_history(
        rustyline::Config::default(),
        rustyline::history::MemHistory::new(),
    )
    .map_err(|e| Failure::runtime(format!("cannot start the prompt: {e}")))?;
    editor.set_helper(Some(helper));
    let default_context = kubeconfig::current_context(overlay).unwrap_or_default();
    let mut chosen: Option<String> = None;
    loop {
        let line = match editor.readline(&format!("{}@rolesh> ", session.who.user)) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(_) => return Ok(0),
        };
        let _ = editor.add_history_entry(line.as_str());
        match interpret(&line, session) {
            Line::Empty => {}
            Line::Exit => return Ok(0),
            Line::Help => println!("{}", help_text(session)),
            Line::Clusters => {
                let current = chosen.as_deref().unwrap_or(&default_context);
                println!("{}", clusters_text(session, current));
            }
            Line::Use(context) => match use_context(&context, session) {
                Ok(context) => {
                    println!("now using {context}");
                    chosen = Some(context);
                }
                Err(e) => eprintln!("rolesh: {e}"),
            },
            Line::Refused(why) => {
                tracing::info!(target: "rolesh::audit", event = "command", session_id = %session.id,
                    command = %line, exit_code = 126, reason = %why);
                eprintln!("rolesh: {why}");
            }
            Line::Run(plan) => {
                let plan = match &chosen {
                    Some(context) => in_context(plan, context),
                    None => plan,
                };
                if run(&plan)? {
                    return Ok(0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_features_are_refused_with_their_reason() {
        assert_eq!(
            shell_feature("kubectl get pods | sh"),
            Some("pipes are not available here")
        );
        assert_eq!(
            shell_feature("kubectl get pods > /tmp/x"),
            Some("redirection is not available here")
        );
        assert_eq!(
            shell_feature("echo $(id)"),
            Some("variable and command expansion are not available here")
        );
        assert_eq!(
            shell_feature("echo \"$HOME\""),
            Some("variable and command expansion are not available here")
        );
        assert_eq!(
            shell_feature("ls *"),
            Some("globbing is not available here")
        );
        assert_eq!(
            shell_feature("a; b"),
            Some("command lists and background jobs are not available here")
        );
        assert_eq!(
            shell_feature("kubectl get pods -l 'tier in (web)' -o 'jsonpath={.items[*]}'"),
            None,
            "quoted is literal"
        );
        assert_eq!(shell_feature("echo '$HOME'"), None);
    }
}
