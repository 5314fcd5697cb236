//! The picker: one level at a time (cluster → namespace → pod → container), a select
//! list with a fuzzy filter as you type (inquire). A level with one choice is skipped.
//! Without a terminal nothing waits for keys: the choices go to stderr, one per line as
//! a target for `rolesh exec`, with an error (exit 2) that says to name one.

use std::fmt;

use inquire::{InquireError, Select};

use crate::error::Failure;

/// One choice: what the list shows, the target it stands for (`demo/web/frontend-1`),
/// and its value.
#[derive(Debug, Clone)]
pub(super) struct Choice<T> {
    pub label: String,
    pub target: String,
    pub value: T,
}

/// A level of the picker, for prompts and messages.
#[derive(Debug, Clone, Copy)]
pub(super) enum Level {
    Cluster,
    Namespace,
    Pod,
    Container,
}

impl Level {
    fn noun(self) -> &'static str {
        match self {
            Level::Cluster => "cluster",
            Level::Namespace => "namespace",
            Level::Pod => "pod",
            Level::Container => "container",
        }
    }

    fn form(self) -> &'static str {
        match self {
            Level::Cluster => "rolesh exec CLUSTER/NS/POD",
            Level::Namespace => "rolesh exec CLUSTER/NS/POD",
            Level::Pod => "rolesh exec CLUSTER/NS/POD",
            Level::Container => "rolesh exec CLUSTER/NS/POD/CONTAINER",
        }
    }
}

pub(super) struct Picker {
    /// stdin is a terminal: prompts may wait for keys.
    pub interactive: bool,
    /// Picker mode: every prompt offers `q` to end the session.
    pub repeat: bool,
}

/// An entry of the select list: a choice by index, or the picker mode's quit entry.
struct Entry {
    label: String,
    index: Option<usize>,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

const QUIT_LABEL: &str = "q  end the session";
const PAGE_SIZE: usize = 15;

impl Picker {
    /// Picks one of `choices` at `level`; `title` says where (e.g. `Pod in demo/web`).
    /// With `always_ask`, a single choice is still shown (picker mode's pod level, so
    /// that there is always a place to end the session). `None`: the user quit (Esc,
    /// Ctrl-D, Ctrl-C, or `q` + Enter in picker mode).
    pub(super) fn choose<T: Clone>(
        &self,
        level: Level,
        title: &str,
        choices: &[Choice<T>],
        always_ask: bool,
    ) -> Result<Option<T>, Failure> {
        if choices.is_empty() {
            return Err(Failure::runtime(format!(
                "{title}: there is no {} you may exec into",
                level.noun()
            )));
        }
        if choices.len() == 1 && !always_ask {
            return Ok(Some(choices[0].value.clone()));
        }
        if !self.interactive {
            return Err(list_and_refuse(level, choices));
        }
        self.prompt(title, choices)
    }

    fn prompt<T: Clone>(&self, title: &str, choices: &[Choice<T>]) -> Result<Option<T>, Failure> {
        let mut entries: Vec<Entry> = choices
            .iter()
            .enumerate()
            .map(|(i, c)| Entry {
                label: c.label.clone(),
                index: Some(i),
            })
            .collect();
        if self.repeat {
            entries.push(Entry {
                label: QUIT_LABEL.into(),
                index: None,
            });
        }
        let help = if self.repeat {
            "type to filter, ↑↓ to move, Enter to exec; q Enter, Ctrl-D or Esc ends the session"
        } else {
            "type to filter, ↑↓ to move, Enter to choose, Esc to cancel"
        };
        let scorer = |input: &str, entry: &Entry, text: &str, i: usize| -> Option<i64> {
            match (input, entry.index) {
                // `q` alone is the quit key in picker mode; it filters nothing else.
                ("q", None) => Some(0),
                ("q", Some(_)) if self.repeat => None,
                (_, None) => input.is_empty().then_some(i64::MIN),
                _ => Select::<Entry>::DEFAULT_SCORER(input, entry, text, i),
            }
        };
        let answer = Select::new(title, entries)
            .with_help_message(help)
            .with_page_size(PAGE_SIZE)
            .with_scorer(&scorer)
            .prompt();
        match answer {
            Ok(Entry { index: Some(i), .. }) => Ok(Some(choices[i].value.clone())),
            Ok(Entry { index: None, .. })
            | Err(InquireError::OperationCanceled | InquireError::OperationInterrupted) => Ok(None),
            Err(e) => Err(Failure::runtime(format!("the picker failed: {e}"))),
        }
    }
}

/// No terminal to ask on: print every choice as a target and say to name one.
fn list_and_refuse<T>(level: Level, choices: &[Choice<T>]) -> Failure {
    for c in choices {
        eprintln!("{}", c.target);
    }
    Failure::usage(format!(
        "more than one {} matches; name one: {}",
        level.noun(),
        level.form()
    ))
}

/// Columns padded to their widest entry, so the list reads as a table.
pub(super) fn aligned(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices(names: &[&str]) -> Vec<Choice<String>> {
        names
            .iter()
            .map(|n| Choice {
                label: n.to_string(),
                target: format!("demo/web/{n}"),
                value: n.to_string(),
            })
            .collect()
    }

    const BATCH: Picker = Picker {
        interactive: false,
        repeat: false,
    };

    #[test]
    fn a_single_choice_is_taken_without_asking() {
        let picked = BATCH.choose(Level::Pod, "Pod", &choices(&["a"]), false);
        assert_eq!(picked, Ok(Some("a".to_string())));
    }

    #[test]
    fn without_a_terminal_several_choices_are_a_usage_error() {
        let err = BATCH
            .choose(Level::Pod, "Pod", &choices(&["a", "b"]), false)
            .unwrap_err();
        assert_eq!(err.code, crate::error::EXIT_USAGE);
        assert_eq!(
            err.message,
            "more than one pod matches; name one: rolesh exec CLUSTER/NS/POD"
        );
        let err = BATCH.choose(Level::Pod, "Pod", &choices(&[]), false);
        assert!(err.unwrap_err().message.contains("no pod"));
    }

    #[test]
    fn columns_line_up() {
        let rows = vec![
            vec!["frontend-1".into(), "Running".into()],
            vec!["api".into(), "Pending".into()],
        ];
        assert_eq!(
            aligned(&rows),
            ["frontend-1  Running", "api         Pending"]
        );
    }
}
