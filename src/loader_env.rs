//! Variables that run a user's code before rolesh can scrub anything: the dynamic loader's
//! (`LD_PRELOAD`, `LD_AUDIT`, `LD_LIBRARY_PATH`, …), glibc's (`GCONV_PATH`,
//! `GLIBC_TUNABLES`), and the ones a shell or interpreter started on the way would read
//! (`BASH_ENV`, `ENV`, exported functions, `PYTHON*`, `PERL5*`). sshd passes a client's
//! variable to the login shell when `AcceptEnv` (or `PermitUserEnvironment`) lets it
//! through; the loader then runs the user's library inside rolesh's own process, as the
//! user, outside the session's cgroup.
//!
//! The fix is sshd's configuration, so `rolesh check` reads it (`sshd -T`) and calls such a
//! configuration an error; and a login that arrives with one of them anyway is refused by
//! the monitor, which reads the login's environment from `/proc` (the kernel's copy, not
//! what the login says) and writes a `denied` event.

/// Exact names.
const NAMES: [&str; 7] = [
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
];

/// Name prefixes: every variable that starts with one.
const PREFIXES: [&str; 4] = ["LD_", "BASH_FUNC_", "PYTHON", "PERL5"];

/// Whether `name` is one of them.
pub(crate) fn is_dangerous(name: &str) -> bool {
    NAMES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The first dangerous variable in `environ` (NUL-separated `NAME=VALUE`, as
/// `/proc/PID/environ` has it).
pub(crate) fn first_in_environ(environ: &[u8]) -> Option<String> {
    environ
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let name = entry.split(|b| *b == b'=').next()?;
            std::str::from_utf8(name).ok()
        })
        .find(|name| is_dangerous(name))
        .map(str::to_string)
}

/// A dangerous variable an sshd `AcceptEnv` pattern (`*` and `?` wildcards) lets through,
/// if it lets one through: `*`, `L*`, `LD_*`, `LD_PRELOAD`, `PYTHON?ATH`…
pub(crate) fn let_through_by(pattern: &str) -> Option<String> {
    // The loader's own first: what an administrator recognises.
    if can_match_with_prefix(pattern, "LD_") {
        return Some("LD_*".into());
    }
    if let Some(name) = NAMES.iter().find(|n| glob(pattern, n)) {
        return Some(name.to_string());
    }
    PREFIXES
        .iter()
        .find(|prefix| can_match_with_prefix(pattern, prefix))
        .map(|prefix| format!("{prefix}*"))
}

/// Whether some name that starts with `prefix` matches `pattern`: the pattern can consume
/// the whole prefix (whatever of the pattern is left then matches some rest).
fn can_match_with_prefix(pattern: &str, prefix: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(b'*'), _) => go(&p[1..], t) || go(p, &t[1..]),
            (Some(b'?'), _) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) => a == b && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), prefix.as_bytes())
}

/// sshd's wildcard match (`*` any run, `?` one character), whole string.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_and_shell_variables_are_dangerous_others_not() {
        for name in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "LD_AUDIT",
            "GCONV_PATH",
            "GLIBC_TUNABLES",
            "BASH_ENV",
            "ENV",
            "BASH_FUNC_ls%%",
            "PYTHONSTARTUP",
            "PERL5OPT",
        ] {
            assert!(is_dangerous(name), "{name}");
        }
        for name in ["LANG", "LC_ALL", "TZ", "TERM", "ENVIRONMENT", "XLD_PRELOAD"] {
            assert!(!is_dangerous(name), "{name}");
        }
    }

    #[test]
    fn the_environ_of_a_process_is_read_by_name() {
        let environ = b"TERM=xterm\0LANG=C.UTF-8\0LD_PRELOAD=/home/a/evil.so\0";
        assert_eq!(first_in_environ(environ).as_deref(), Some("LD_PRELOAD"));
        assert_eq!(first_in_environ(b"TERM=xterm\0VALUE=LD_PRELOAD\0"), None);
        assert_eq!(first_in_environ(b""), None);
    }

    #[test]
    fn accept_env_patterns_that_let_a_dangerous_variable_through() {
        for (pattern, through) in [
            ("*", "LD_*"),
            ("L*", "LD_*"),
            ("LD_*", "LD_*"),
            ("LD_PRELOAD", "LD_*"),
            ("LD?PRELOAD", "LD_*"),
            ("BASH_ENV", "BASH_ENV"),
            ("B*", "BASH_ENV"),
            ("PYTHON*", "PYTHON*"),
            ("PYTHONPATH", "PYTHON*"),
            ("P*", "PS4"),
            ("E?V", "ENV"),
        ] {
            assert_eq!(
                let_through_by(pattern).as_deref(),
                Some(through),
                "{pattern}"
            );
        }
        for pattern in [
            "LANG",
            "LC_*",
            "TZ",
            "XMODIFIERS",
            "COLORTERM",
            "LC_?",
            "LA*",
        ] {
            assert_eq!(let_through_by(pattern), None, "{pattern}");
        }
    }
}
