//! Helpers shared by the integration tests: the built binary, config files, real accounts,
//! and what a test needs. A test may skip only when not root, and then it is reported as
//! ignored (harness.rs; under ROLESH_REQUIRE_ALL=1, which CI sets, it fails instead); a
//! missing tool is no reason to skip: the test fails saying what to install ([`require`]).
#![allow(dead_code)]
// Helpers for several test crates: `pub` here is for the test files, not an API.
#![allow(unreachable_pub)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;

pub fn rolesh() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rolesh"))
}

/// `rolesh-token`, the exec plugin of the session kubeconfig (`rolesh token` in a small
/// binary).
pub fn rolesh_token() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rolesh-token"))
}

/// Writes a config file with mode 0644 (what `rolesh check` accepts).
pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run rolesh");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs `cmd`, which must succeed (otherwise the test fails naming the program, its
/// arguments and its exit status, with its stderr), and returns its stdout.
pub fn stdout_of_success(cmd: &mut Command) -> Vec<u8> {
    let what = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Fails the test unless `available`: what it needs (a tool, a daemon) is installed by
/// scripts/setup, and a test does not skip for lack of it. Root is declared instead
/// (harness.rs).
pub fn require(requirement: &str, available: bool) {
    assert!(available, "needs {requirement}: run scripts/setup");
}

/// A minimal valid configuration, to which tests append.
pub const MINIMAL: &str = "[aws]\nregion = \"us-east-1\"\n\n[mapping]\ndefault_role = \"arn:aws:iam::123456789012:role/bastion-{user}\"\n";

/// A Unix account (and its groups) made with useradd/groupadd for one test, removed on drop.
pub struct TestUser {
    pub name: String,
    groups: Vec<String>,
}

impl TestUser {
    /// Creates `name` with supplementary `groups` (created as needed). Root only.
    pub fn create(name: &str, groups: &[&str]) -> TestUser {
        // Leftovers of an interrupted run: its processes, the account, its personal group.
        let _ = Command::new("pkill").args(["-KILL", "-u", name]).output();
        let _ = Command::new("userdel").arg(name).output();
        let _ = Command::new("groupdel").arg(name).output();
        for g in groups {
            stdout_of_success(Command::new("groupadd").arg("-f").arg(g));
        }
        let mut cmd = Command::new("useradd");
        // "*": no password, but not locked (sshd refuses key logins to locked accounts).
        cmd.args(["-M", "-s", "/usr/sbin/nologin", "-p", "*"]);
        if !groups.is_empty() {
            cmd.args(["-G", &groups.join(",")]);
        }
        stdout_of_success(cmd.arg(name));
        TestUser {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }
}

impl TestUser {
    pub fn uid(&self) -> u32 {
        nix::unistd::User::from_name(&self.name)
            .unwrap()
            .expect("user exists")
            .uid
            .as_raw()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // userdel refuses an account with running processes (e.g. after a failed assertion).
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .output();
        let _ = Command::new("userdel").arg(&self.name).output();
        let _ = Command::new("groupdel").arg(&self.name).output();
        for g in &self.groups {
            let _ = Command::new("groupdel").arg(g).output();
        }
    }
}

/// libnss_wrapper (Debian libnss-wrapper): fake passwd/group databases for one process,
/// for names useradd refuses (spaces, 70 characters) and for many users without root.
pub const NSS_WRAPPER: &str = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so";

pub fn nss_wrapped(cmd: &mut Command, dir: &Path, passwd: &str, group: &str) {
    let p = dir.join("passwd");
    let g = dir.join("group");
    std::fs::write(&p, passwd).unwrap();
    std::fs::write(&g, group).unwrap();
    cmd.env("LD_PRELOAD", NSS_WRAPPER)
        .env("NSS_WRAPPER_PASSWD", p)
        .env("NSS_WRAPPER_GROUP", g);
}

// --- AWS and the awscli reference -----------------------------------------------------

pub const KEY: &str = "AKIDEXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

pub fn botocore_available() -> bool {
    Command::new("python3")
        .args(["-c", "import awscli, botocore"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A clean environment with credentials only from the environment (no profile, no IMDS).
pub fn aws_env(cmd: &mut Command, session_token: Option<&str>, extra: &[(&str, &str)]) {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    if let Some(t) = session_token {
        cmd.env("AWS_SESSION_TOKEN", t);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
}

pub fn presigned_url(token: &str) -> String {
    let b64 = token.strip_prefix("k8s-aws-v1.").expect("token prefix");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .expect("base64url");
    String::from_utf8(bytes).unwrap()
}

pub fn x_amz_date(token: &str) -> String {
    let url = presigned_url(token);
    let start = url.find("X-Amz-Date=").expect("X-Amz-Date") + "X-Amz-Date=".len();
    url[start..start + 16].to_string()
}

/// awscli's own `aws eks get-token` with its clock pinned to `x_amz_date`
/// (tests/interop/eks_get_token.py); add the get-token arguments.
pub fn aws_eks_get_token_at(x_amz_date: &str) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/eks_get_token.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(x_amz_date);
    cmd
}
pub mod broker;
pub mod daemon;
pub mod harness;
pub mod journal;
pub mod monitor;
pub mod moto;
pub mod recorder;
pub mod tmux;

/// A temporary directory that login sessions can see: outside /tmp, which they get a
/// private copy of (user + mount namespace). For the binary used as login shell, home
/// directories and the broker's socket.
#[allow(dead_code)]
pub fn session_visible_tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .unwrap()
}
