//! `[session]` and `[[session.override]]`: what a login runs and how it is limited.

use super::super::tree::Node;
use super::super::{Mode, RecordPolicy, SessionOverride, SessionPatch, SessionSettings};
use super::read::{Fields, Reader};
use super::{HOUR, MINUTE};

impl Reader {
    pub(super) fn session_section(
        &self,
        node: Option<&Node>,
    ) -> (SessionSettings, Vec<SessionOverride>) {
        let mut settings = SessionSettings::default();
        let Some(f) = node.and_then(|n| self.table(n, "session")) else {
            return (settings, vec![]);
        };
        session_patch(&f).apply(&mut settings);
        let overrides = f
            .get("override")
            .map(|n| self.overrides(n))
            .unwrap_or_default();
        (settings, overrides)
    }

    fn overrides(&self, node: &Node) -> Vec<SessionOverride> {
        let mut out = Vec::new();
        for f in self.tables(node, "session.override") {
            let names = |key| -> Vec<String> {
                f.strings(key)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|u| u.value)
                    .collect()
            };
            let (users, groups) = (names("users"), names("groups"));
            if users.is_empty() && groups.is_empty() {
                self.error(
                    &f.loc,
                    "a [[session.override]] needs `users` or `groups` to say whom it applies to",
                );
            }
            out.push(SessionOverride {
                users,
                groups,
                patch: session_patch(&f),
                origin: f.loc.to_string(),
            });
        }
        out
    }
}

/// The session keys `f` sets (in `[session]` and in each override).
fn session_patch(f: &Fields<'_>) -> SessionPatch {
    SessionPatch {
        mode: f.word("mode", Mode::parse, Mode::choices),
        shell: shell(f),
        path: path(f),
        allowed_commands: allowed_commands(f),
        file_transfer: f.bool("file_transfer"),
        idle_timeout: f.duration("idle_timeout", MINUTE, 24 * HOUR),
        // As short as a minute: a break-glass account, a contractor's brief window.
        max_duration: f.duration("max_duration", MINUTE, 7 * 24 * HOUR),
        banner: f.string("banner").map(|b| b.value),
        record: f.word("record", RecordPolicy::parse, RecordPolicy::choices),
        record_input: f.bool("record_input"),
        exec_command: exec_command(f),
        editor: editor(f),
        record_redact: f.bool("record_redact"),
    }
}

/// A command name (found on `path`) or an absolute path.
fn editor(f: &Fields<'_>) -> Option<String> {
    let e = f.string("editor")?;
    let ok = if e.starts_with('/') || (!e.is_empty() && !e.contains(['/', ' ', '\t'])) {
        Ok(())
    } else {
        Err(format!(
            "`editor` must be a command name or an absolute path, not {:?}",
            e.value
        ))
    };
    f.reader().checked(&e.loc, ok).map(|_| e.value)
}

fn shell(f: &Fields<'_>) -> Option<String> {
    let s = f.string("shell")?;
    let ok = if s.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "`shell` must be an absolute path, not {:?}",
            s.value
        ))
    };
    f.reader().checked(&s.loc, ok).map(|_| s.value)
}

fn path(f: &Fields<'_>) -> Option<String> {
    let p = f.string("path")?;
    let ok = match p.split(':').find(|d| !d.starts_with('/')) {
        Some(d) => Err(format!(
            "every `path` entry must be an absolute directory; {d:?} is not"
        )),
        None => Ok(()),
    };
    f.reader().checked(&p.loc, ok).map(|_| p.value)
}

fn allowed_commands(f: &Fields<'_>) -> Option<Vec<String>> {
    let commands = f.strings("allowed_commands")?;
    Some(
        commands
            .into_iter()
            .filter(|c| {
                let ok = if c.is_empty() || c.chars().any(|ch| ch.is_whitespace() || ch == '/') {
                    Err(format!(
                        "allowed command {:?} must be a plain command name (found on `path`)",
                        c.value
                    ))
                } else {
                    Ok(())
                };
                f.reader().checked(&c.loc, ok).is_some()
            })
            .map(|c| c.value)
            .collect(),
    )
}

fn exec_command(f: &Fields<'_>) -> Option<Vec<String>> {
    let argv = f.strings("exec_command")?;
    if argv.is_empty() {
        let loc = &f.get("exec_command").expect("present").loc;
        f.reader().error(loc, "`exec_command` must not be empty");
        return None;
    }
    Some(argv.into_iter().map(|a| a.value).collect())
}
