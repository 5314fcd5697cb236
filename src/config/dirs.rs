//! StrictModes for the directories of the configuration, as sshd checks the path to
//! `authorized_keys`: whoever can write a directory on the way can replace what is below
//! it (rename a drop-in that denied them away, put a `config.toml` of their own in place).
//!
//! Checked, whether or not they hold any `*.toml`: the directory of `config.toml`, its
//! `config.d`, and every directory above them up to `/` (both as written and with
//! symlinks resolved, so a symlink's own directory counts too). Each must be owned by
//! root and not writable by group or others, with one exception for the directories
//! *above*: a root-owned directory with the sticky bit (`/tmp`, `/var/tmp`) may be
//! world-writable, because there nobody but root and an entry's owner can rename or remove
//! that entry, and the entry below it is checked in turn. The configuration's own
//! directories get no such exception: anyone could add a drop-in to a sticky `config.d`.
//!
//! Not owned by root is an error for the system configuration and a warning for
//! `--config PATH` (checking, development), as for the files; writable by group or others
//! is an error either way.

use std::path::{Path, PathBuf};

use super::diag::{ConfigErrors, Diagnostic};
use super::io_reason;
use crate::system::{self, FileOwnership};

const STICKY: u32 = 0o1000;

/// Checks `config_dir`, `drop_in_dir` (when given and present) and every directory above
/// `config_dir`. `strict`: a directory not owned by root is an error, not a warning.
pub(super) fn check(
    config_dir: &Path,
    drop_in_dir: Option<&Path>,
    strict: bool,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    let holders = std::iter::once(config_dir).chain(drop_in_dir);
    for dir in holders {
        if let Err(d) = check_one(dir, Role::Holder, strict, warnings) {
            errors.push(d);
        }
    }
    for dir in ancestors(config_dir) {
        if let Err(d) = check_one(&dir, Role::Above, strict, warnings) {
            errors.push(d);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors::sorted(errors))
    }
}

/// Whether a directory holds configuration files, or is on the way to them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Holder,
    Above,
}

/// The directories above `dir` up to `/`, as written (made absolute) and with symlinks
/// resolved, each once.
fn ancestors(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let written = std::path::absolute(dir).ok();
    let resolved = std::fs::canonicalize(dir).ok();
    for start in [written, resolved].into_iter().flatten() {
        for above in start.ancestors().skip(1) {
            if !out.iter().any(|seen| seen == above) {
                out.push(above.to_path_buf());
            }
        }
    }
    out
}

fn check_one(
    dir: &Path,
    role: Role,
    strict: bool,
    warnings: &mut Vec<String>,
) -> Result<(), Diagnostic> {
    let owner = match system::ownership(dir) {
        Ok(owner) => owner,
        // A missing config directory is the missing config.toml's error, reported with it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Diagnostic::file(
                dir,
                format!("cannot inspect directory: {}", io_reason(&e)),
            ));
        }
    };
    if writable_by_others(owner, role) {
        return Err(Diagnostic::file(
            dir,
            format!(
                "refusing config in a directory writable by group or others (mode {:04o}); run: chmod go-w {}",
                owner.mode & 0o7777,
                dir.display()
            ),
        ));
    }
    if owner.uid != 0 {
        let message = format!(
            "directory owned by uid {}, not root; run: chown root {}",
            owner.uid,
            dir.display()
        );
        if strict {
            return Err(Diagnostic::file(
                dir,
                format!("refusing config in a {message}"),
            ));
        }
        warnings.push(format!(
            "warning: {}: config in a {message} (the broker and login shell refuse it)",
            dir.display()
        ));
    }
    Ok(())
}

/// Group- or world-writable, except a root-owned sticky directory above the config.
fn writable_by_others(owner: FileOwnership, role: Role) -> bool {
    let sticky_root = owner.uid == 0 && owner.mode & STICKY != 0;
    owner.writable_by_group_or_others() && !(role == Role::Above && sticky_root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(uid: u32, mode: u32) -> FileOwnership {
        FileOwnership { uid, mode }
    }

    #[test]
    fn only_root_sticky_directories_above_may_be_world_writable() {
        assert!(!writable_by_others(own(0, 0o1777), Role::Above), "/tmp");
        assert!(writable_by_others(own(0, 0o1777), Role::Holder));
        assert!(writable_by_others(own(1000, 0o1777), Role::Above));
        assert!(writable_by_others(own(0, 0o0777), Role::Above));
        assert!(writable_by_others(own(0, 0o0775), Role::Above));
        assert!(!writable_by_others(own(0, 0o0755), Role::Holder));
    }

    #[test]
    fn every_directory_up_to_the_root_once() {
        let got = ancestors(Path::new("/etc/rolesh"));
        assert_eq!(got, [PathBuf::from("/etc"), PathBuf::from("/")]);
    }
}
