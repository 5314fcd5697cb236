//! What sshd lets through to the login shell (`rolesh check`): its effective configuration
//! (`sshd -T`), looked at for a client variable the dynamic loader or a shell would read
//! before rolesh runs (`crate::loader_env`). `AcceptEnv` patterns that match one,
//! `SetEnv` of one, and `PermitUserEnvironment` other than `no` (which lets
//! `~/.ssh/environment` set anything) are errors. `Match` blocks are not evaluated
//! (`sshd -T` without `-C` reads the global settings).

use std::path::Path;
use std::process::Command;

use crate::loader_env;

/// Where Debian's and RHEL's sshd is.
const SSHD: &str = "/usr/sbin/sshd";

/// What the check found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// sshd is not installed (and no configuration was named).
    NotInstalled,
    /// `sshd -T` failed (not root, a broken configuration): its first line of stderr.
    Unreadable(String),
    /// Nothing dangerous passes.
    Clean,
    /// Each setting that lets a dangerous variable through, and which.
    LetsThrough(Vec<String>),
}

/// Runs `sshd -T [-f CONFIG]` and judges its output.
pub(crate) fn check(config: Option<&Path>) -> Verdict {
    if config.is_none() && !Path::new(SSHD).exists() {
        return Verdict::NotInstalled;
    }
    let mut sshd = Command::new(SSHD);
    sshd.arg("-T");
    if let Some(config) = config {
        sshd.arg("-f").arg(config);
    }
    let output = match sshd.output() {
        Ok(output) => output,
        Err(e) => return Verdict::Unreadable(format!("cannot run {SSHD} -T: {e}")),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or("no output").to_string();
        return Verdict::Unreadable(format!("{SSHD} -T failed: {first}"));
    }
    judge(&String::from_utf8_lossy(&output.stdout))
}

/// Judges `sshd -T` output (one lowercase keyword and its value a line).
pub(crate) fn judge(effective: &str) -> Verdict {
    let mut found = Vec::new();
    for line in effective.lines() {
        let Some((keyword, value)) = line.split_once(' ') else {
            continue;
        };
        match keyword {
            "acceptenv" => {
                for pattern in value.split_whitespace() {
                    if let Some(var) = loader_env::let_through_by(pattern) {
                        found.push(format!("AcceptEnv {pattern} lets {var} through"));
                    }
                }
            }
            "setenv" => {
                let name = value.split('=').next().unwrap_or_default();
                if loader_env::is_dangerous(name) {
                    found.push(format!("SetEnv sets {name}"));
                }
            }
            "permituserenvironment" if value != "no" => found.push(format!(
                "PermitUserEnvironment {value} lets ~/.ssh/environment set LD_PRELOAD"
            )),
            _ => {}
        }
    }
    match found.is_empty() {
        true => Verdict::Clean,
        false => Verdict::LetsThrough(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debians_default_is_clean() {
        let effective = "port 22\nacceptenv LANG\nacceptenv LC_*\npermituserenvironment no\n";
        assert_eq!(judge(effective), Verdict::Clean);
    }

    #[test]
    fn every_setting_that_lets_a_loader_variable_through_is_named() {
        let effective = "acceptenv LANG\nacceptenv *\nacceptenv LD_PRELOAD\nsetenv FOO=1\n\
                         setenv BASH_ENV=/x\npermituserenvironment yes\n";
        assert_eq!(
            judge(effective),
            Verdict::LetsThrough(vec![
                "AcceptEnv * lets LD_* through".into(),
                "AcceptEnv LD_PRELOAD lets LD_* through".into(),
                "SetEnv sets BASH_ENV".into(),
                "PermitUserEnvironment yes lets ~/.ssh/environment set LD_PRELOAD".into(),
            ])
        );
    }
}
