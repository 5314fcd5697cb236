//! What the benchmarks that run clients as a test account share: the clients, interleaved
//! measurement, time to first byte, throughput, and files handed to the account.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Builds the command that runs `args` in the pod.
pub(crate) type Build = Box<dyn Fn(&[&str]) -> Command>;

/// One way to exec into the pod: a name and how to build the command.
pub(crate) struct Client {
    pub(crate) name: &'static str,
    pub(crate) build: Build,
}

/// Runs `one` for every client, `runs` rounds, interleaved.
pub(crate) fn measure(
    clients: &[Client],
    runs: usize,
    one: impl Fn(&Client) -> f64,
) -> Vec<Vec<f64>> {
    let mut samples = vec![Vec::with_capacity(runs); clients.len()];
    for _ in 0..runs {
        for (i, c) in clients.iter().enumerate() {
            samples[i].push(one(c));
        }
    }
    samples
}

pub(crate) fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(crate) fn first_byte(client: &Client, args: &[&str]) -> Duration {
    let started = Instant::now();
    let mut child = (client.build)(args).stdout(Stdio::piped()).spawn().unwrap();
    let mut byte = [0u8; 1];
    let n = child.stdout.as_mut().unwrap().read(&mut byte).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(n, 1, "{}: no output", client.name);
    assert!(child.wait().unwrap().success(), "{}", client.name);
    elapsed
}

/// MiB/s of stdout, process start to end.
pub(crate) fn throughput(client: &Client, args: &[&str], mib: usize) -> f64 {
    let started = Instant::now();
    let mut child = (client.build)(args).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0usize;
    loop {
        match out.read(&mut buf).unwrap() {
            0 => break,
            n => total += n,
        }
    }
    assert!(child.wait().unwrap().success(), "{}", client.name);
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(total, mib << 20, "{}: short output", client.name);
    mib as f64 / elapsed
}

pub(crate) fn as_user(program: &str, uid: u32, socket: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .env("ROLESH_BROKER_SOCKET", socket)
        .uid(uid)
        .gid(uid)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    cmd
}

pub(crate) fn rolesh_output(uid: u32, socket: &Path, args: &[&str]) -> String {
    let out = crate::common::stdout_of_success(
        as_user(env!("CARGO_BIN_EXE_rolesh"), uid, socket).args(args),
    );
    String::from_utf8(out).unwrap()
}

pub(crate) fn write_user_file(path: &Path, text: &str, uid: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

pub(crate) fn write_session_kubeconfig(dir: &Path, uid: u32, socket: &Path) -> PathBuf {
    let path = dir.join("session.kubeconfig");
    write_user_file(&path, &rolesh_output(uid, socket, &["kubeconfig"]), uid);
    path
}

/// The session kubeconfig with the plugin replaced by the bearer token it returns (a
/// fake cluster's token, in a private temporary file removed with the run).
pub(crate) fn write_static_kubeconfig(dir: &Path, uid: u32, socket: &Path) -> PathBuf {
    let credential = rolesh_output(uid, socket, &["token", "--cluster", "demo"]);
    let credential: serde_json::Value = serde_json::from_str(&credential).unwrap();
    let token = credential["status"]["token"].as_str().unwrap();
    let mut config: serde_json::Value =
        serde_yaml_ng::from_str(&rolesh_output(uid, socket, &["kubeconfig"])).unwrap();
    for user in config["users"].as_array_mut().unwrap() {
        user["user"] = serde_json::json!({ "token": token });
    }
    let path = dir.join("static.kubeconfig");
    write_user_file(&path, &serde_json::to_string(&config).unwrap(), uid);
    path
}
